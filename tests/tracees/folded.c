/* Parameters that -O2 folds into constants: where an inlined call passes
 * them, DWARF gives a float's and a double's value as their bytes
 * (DW_OP_implicit_value); in the copy of a function made for the one
 * constant its every call passes (shift.constprop.0), as the value's
 * bytes too (DW_AT_const_value in a block), and so for a local computed
 * from it.  Usage: folded N */
#include <stdio.h>
#include <stdlib.h>

static volatile double out;

static inline void scale(double factor, float bias, int k)
{
    out = factor * k + bias;                   /* LINE: scale */
}

static __attribute__((noinline)) void shift(double by, int k)
{
    const double half = by / 2;
    out += half * k;                           /* LINE: shift */
}

int main(int argc, char **argv)
{
    int n = argc > 1 ? atoi(argv[1]) : 2;
    for (int i = 0; i < n; i++) {
        scale(2.5, -0.75f, i);
        shift(2.5, i);
    }
    printf("%g\n", out);
    return 0;
}
