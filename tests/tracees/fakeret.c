/* caller() keeps a value in its frame across two calls of g(): a return
 * a handler fakes at g's entry must leave that frame alone.
 * Prints caller(i) for i < 3 and exits 0. */
#include <stdio.h>

__attribute__((noinline)) int g(int x) { return x + 1; }
__attribute__((noinline)) int caller(int x)
{
    int a = g(x);
    int b = g(a);
    return a * 100 + b;
}

int main(void)
{
    for (int i = 0; i < 3; i++)
        printf("caller(%d)=%d\n", i, caller(i));
    return 0;
}
