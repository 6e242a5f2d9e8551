/* Return-probe edge cases: tail calls, longjmp out of a probed function,
 * and a function that blocks (so a test can detach while it is on the
 * stack).  Usage: returns [block] */
#include <setjmp.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static jmp_buf env;

__attribute__((noinline)) long leaf(long x) { return x * 3; }
__attribute__((noinline)) long tail(long x) { return leaf(x + 1); }  /* a jmp at -O2 */
__attribute__((noinline)) void jumper(int v) { longjmp(env, v); }
__attribute__((noinline)) long deep(long x)
{
    if (x == 0) {
        jumper(7);
    }
    return deep(x - 1) + 1;
}
__attribute__((noinline)) int wait_line(void)
{
    char buf[16];
    puts("waiting");
    fflush(stdout);
    return (int)read(0, buf, sizeof buf);
}

int main(int argc, char **argv)
{
    long t = 0;
    for (int i = 0; i < 5; i++)
        t += tail(i);
    int got = setjmp(env);
    if (!got)
        deep(4);
    t += leaf(100);
    printf("t=%ld got=%d\n", t, got);
    if (argc > 1 && !strcmp(argv[1], "block")) {
        int n = wait_line();
        printf("read=%d leaf=%ld\n", n, leaf(5));
    }
    return 0;
}
