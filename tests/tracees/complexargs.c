/* Integer parameters after floating-point ones the integer registers do
 * not carry.  On x86_64 a float _Complex travels in xmm0 and a double
 * _Complex in xmm0-xmm1, neither in an integer register; floats past the
 * eighth xmm register go on the stack, before the integers that find the
 * six integer registers taken.  On i386 everything is on the stack.
 * Usage: complexargs N */
#include <complex.h>
#include <stdio.h>
#include <stdlib.h>

__attribute__((noinline)) float scaled(float _Complex z, int a)
{
    return crealf(z) * (float)a + cimagf(z);
}

__attribute__((noinline)) double rotated(double _Complex z, int a, double _Complex w, int b)
{
    return creal(z) * a + cimag(w) * b;
}

__attribute__((noinline)) double spilled(int a, int b, int c, int d, int e, int f,
                                         double x0, double x1, double x2, double x3,
                                         double x4, double x5, double x6, double x7,
                                         double x8, int g, double x9, int h)
{
    return a + b + c + d + e + f + x0 + x1 + x2 + x3 + x4 + x5 + x6 + x7 + x8 + g + x9 + h;
}

int main(int argc, char **argv)
{
    int n = argc > 1 ? atoi(argv[1]) : 3;
    double total = 0;
    for (int i = 0; i < n; i++) {
        total += scaled(1.5f + 2.0f * I, i + 7);
        total += rotated(0.5 + 1.0 * I, i + 20, 2.0 - 3.0 * I, i + 30);
        total += spilled(1, 2, 3, 4, 5, 6, 0.5, 1.5, 2.5, 3.5, 4.5, 5.5, 6.5, 7.5, 8.5,
                         i + 40, 9.5, i + 50);
    }
    printf("total=%g\n", total);
    return 0;
}
