/* leaf() reached along two call paths, a() three times a call and b() five
 * times, so that counting its hits by backtrace tells them apart; main calls
 * a() twice and b() once.  Prints the sum.  Usage: callers */
#include <stdio.h>

__attribute__((noinline)) int leaf(int x) { return x + 1; }

__attribute__((noinline)) int a(void)
{
    int s = 0;
    for (int i = 0; i < 3; i++)
        s += leaf(i);
    return s;
}

__attribute__((noinline)) int b(void)
{
    int s = 0;
    for (int i = 0; i < 5; i++)
        s += leaf(i);
    return s;
}

int main(void)
{
    printf("sum=%d\n", a() + a() + b());
    return 0;
}
