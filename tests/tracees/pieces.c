/* A complex float whose real half is a known 0 and whose imaginary half
 * is kept in a register or on the stack: DWARF describes it in pieces, the
 * first a constant (DW_OP_implicit_value).  Usage: pieces N */
#include <complex.h>
#include <stdio.h>
#include <stdlib.h>

static volatile float seen;

__attribute__((noinline)) void use(float f)
{
    seen = f;
}

__attribute__((noinline)) float imag_only(float x)
{
    float _Complex z = CMPLXF(0.0f, x);
    use(cimagf(z));
    use(cimagf(z) * 2);                        /* LINE: pieces */
    return cimagf(z);
}

int main(int argc, char **argv)
{
    printf("%g\n", imag_only(argc > 1 ? atoi(argv[1]) : 3));
    return 0;
}
