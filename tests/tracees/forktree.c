/* Forks CHILDREN children; child i calls work() i+1 times, and every
 * fourth child then execs PROG (if given) with argument i.  The parent also
 * calls work() once before and once after forking, waits for every child
 * and prints how many exited cleanly.  Usage: forktree CHILDREN [PROG] */
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

__attribute__((noinline)) long work(long x) { return x * 2 + 1; }

int main(int argc, char **argv)
{
    int n = argc > 1 ? atoi(argv[1]) : 4;
    long sum = work(0);
    for (int i = 0; i < n; i++) {
        pid_t pid = fork();
        if (pid == 0) {
            long s = 0;
            for (int k = 0; k <= i; k++)
                s += work(k);
            if (argc > 2 && i % 4 == 3) {
                char arg[16];
                snprintf(arg, sizeof arg, "%d", i);
                execl(argv[2], argv[2], arg, (char *)NULL);
                _exit(99);
            }
            _exit(s == (long)(i + 1) * (i + 1) ? 0 : 1);
        }
    }
    int ok = 0, status;
    while (wait(&status) > 0)
        ok += WIFEXITED(status) && WEXITSTATUS(status) == 0;
    sum += work(1);
    printf("ok=%d sum=%ld\n", ok, sum);
    return 0;
}
