/* A function whose first parameter is a float _Complex: on x86_64 it
 * travels in xmm0 and takes no integer register, on i386 two stack slots.
 * The int after it must still read right.  Usage: complexargs N */
#include <complex.h>
#include <stdio.h>
#include <stdlib.h>

__attribute__((noinline)) float scaled(float _Complex z, int a)
{
    return crealf(z) * (float)a + cimagf(z);
}

int main(int argc, char **argv)
{
    int n = argc > 1 ? atoi(argv[1]) : 3;
    float total = 0;
    for (int i = 0; i < n; i++)
        total += scaled(1.5f + 2.0f * I, i + 7);
    printf("total=%g\n", total);
    return 0;
}
