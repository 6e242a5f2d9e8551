/* A probed function that catches a longjmp from deeper probed frames, then
 * returns: at its return, the frames the longjmp left are still recorded
 * above it. */
#include <setjmp.h>
#include <stdio.h>

static jmp_buf env;

__attribute__((noinline)) void thrower(int v) { longjmp(env, v); }

__attribute__((noinline)) long dive(long x)
{
    if (x == 0)
        thrower(3);
    return dive(x - 1) + 1;
}

__attribute__((noinline)) long catcher(long n)
{
    volatile long r = setjmp(env);
    if (!r)
        r = dive(n);
    return r * 10;
}

int main(void)
{
    long t = 0;
    for (int i = 0; i < 3; i++)
        t += catcher(4);
    printf("t=%ld\n", t);
    return 0;
}
