/* Recurses N calls deep (descend) and calls leaf() at the bottom, so that a
 * backtrace at leaf is N + 2 frames and more (leaf, N descend, main, then
 * libc's start).  Prints the depth reached.  Usage: deep N */
#include <stdio.h>
#include <stdlib.h>

__attribute__((noinline)) long leaf(long n) { return n + 1; }

__attribute__((noinline)) long descend(long n)
{
    return (n ? descend(n - 1) : leaf(0)) + 1;
}

int main(int argc, char **argv)
{
    printf("depth=%ld\n", descend(argc > 1 ? atol(argv[1]) : 10));
    return 0;
}
