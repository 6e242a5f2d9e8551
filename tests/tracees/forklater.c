/* Forks one child, which calls ready() and then two() CHILD times; the
 * parent waits for it, then calls ready() and two() PARENT times.  A
 * tracer can set probes at the child's ready(), after the fork, while the
 * parent waits.  Usage: forklater CHILD PARENT */
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

__attribute__((noinline)) void ready(void) { __asm__ volatile(""); }
__attribute__((noinline)) long two(long x) { return x * 2; }

static long calls(int n)
{
    long s = 0;
    ready();
    for (int i = 0; i < n; i++)
        s += two(i);
    return s;
}

int main(int argc, char **argv)
{
    int child = argc > 1 ? atoi(argv[1]) : 3, parent = argc > 2 ? atoi(argv[2]) : 5;
    pid_t pid = fork();
    if (pid == 0)
        _exit(calls(child) == (long)child * (child - 1) ? 0 : 1);
    int status;
    waitpid(pid, &status, 0);
    long s = calls(parent);
    printf("child=%d sum=%ld\n", WIFEXITED(status) ? WEXITSTATUS(status) : -1, s);
    return 0;
}
