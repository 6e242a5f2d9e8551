/* A function with more integer arguments than x86_64 passes in
 * registers: the last two are on the stack there, all eight on i386. */
#include <stdio.h>

__attribute__((noinline)) long sum8(long a, long b, long c, long d, long e, long f, long g,
                                    long h)
{
    return a + b + c + d + e + f + g + h;
}

int main(void)
{
    long t = 0;
    for (long i = 0; i < 3; i++)
        t += sum8(i, 1, 2, 3, 4, 5, 6 + i, -7);
    printf("t=%ld\n", t);
    return 0;
}
