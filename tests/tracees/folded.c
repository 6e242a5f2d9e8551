/* Parameters that -O2 folds into constants where an inlined call passes
 * them: DWARF gives a float's and a double's value as their bytes
 * (DW_OP_implicit_value).  Usage: folded N */
#include <stdio.h>
#include <stdlib.h>

static volatile double out;

static inline void scale(double factor, float bias, int k)
{
    out = factor * k + bias;                   /* LINE: scale */
}

int main(int argc, char **argv)
{
    int n = argc > 1 ? atoi(argv[1]) : 2;
    for (int i = 0; i < n; i++)
        scale(2.5, -0.75f, i);
    printf("%g\n", out);
    return 0;
}
