/* vex_first begins with a VEX-encoded instruction, as glibc's AVX2 string
 * functions do (__strchr_avx2: vmovd %esi,%xmm0).  Calls it N times and
 * prints the sum.  Build with -O2 (no frame set-up before the asm).
 * Usage: vexfirst N */
#include <stdio.h>
#include <stdlib.h>

__attribute__((noinline, target("avx"))) int vex_first(int x)
{
    int r;
    __asm__ volatile("vmovd %1, %%xmm0\n\tvmovd %%xmm0, %0" : "=r"(r) : "rm"(x) : "xmm0");
    return r + 1;
}

int main(int argc, char **argv)
{
    int n = argc > 1 ? atoi(argv[1]) : 5;
    long sum = 0;
    for (int i = 0; i < n; i++)
        sum += vex_first(i);
    printf("sum=%ld\n", sum);
    return 0;
}
