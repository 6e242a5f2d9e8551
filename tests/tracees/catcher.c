/* A probed function that catches a longjmp from deeper probed frames, then
 * returns: at its return, the frames the longjmp left are still recorded
 * above it.  With "deep", main first leaves 100 probed frames (more than a
 * tracer may record) by a longjmp of its own.
 * Usage: catcher [deep] */
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

int main(int argc, char **argv)
{
    (void)argv;
    long t = 0;
    if (argc > 1 && !setjmp(env))
        dive(100);
    for (int i = 0; i < 3; i++)
        t += catcher(4);
    printf("t=%ld\n", t);
    return 0;
}
