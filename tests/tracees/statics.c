/* A static helper() here and another in statics_other.c: a probe on
 * helper means both, as gdb's breakpoint has two locations.
 * Prints the sum of both helpers' results. */
#include <stdio.h>

static __attribute__((noinline)) int helper(int x) { return x + 1; }

int other_side(int x);

int main(void)
{
    int sum = 0;
    for (int i = 0; i < 3; i++)
        sum += helper(i) + other_side(i);
    printf("sum=%d\n", sum);
    return 0;
}
