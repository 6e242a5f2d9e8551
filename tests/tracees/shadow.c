/* An inlined call whose parameter is named as its caller's, and unused:
 * clang leaves it out of the inlined copy, where gcc gives it as the
 * constant 0.  Usage: shadow LEVEL */
#include <stdio.h>
#include <stdlib.h>

static volatile int sink;

static inline void report(int level, int value)
{
    (void)level;
    sink = value * 3;                          /* LINE: report */
}

__attribute__((noinline)) void run(int level, int n)
{
    for (int i = 0; i < n; i++)
        report(0, i + level);
}

int main(int argc, char **argv)
{
    run(argc > 1 ? atoi(argv[1]) : 7, 2);
    printf("%d\n", sink);
    return 0;
}
