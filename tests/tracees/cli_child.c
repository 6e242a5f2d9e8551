/* Exit statuses and forks for the command-line tests.
 * Usage: cli_child STATUS [FORKS]
 * The parent calls work(1); each of FORKS children calls work(100 + k)
 * once and exits 0; after waiting for them the parent prints "done" and
 * ends with STATUS: a number is its exit code, -N raises signal N. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

__attribute__((noinline)) long work(long n) { return n * 3; }

int main(int argc, char **argv)
{
    int status = argc > 1 ? atoi(argv[1]) : 0;
    int forks = argc > 2 ? atoi(argv[2]) : 0;
    long total = work(1);
    for (int k = 0; k < forks; k++) {
        pid_t pid = fork();
        if (pid == 0)
            _exit(work(100 + k) > 0 ? 0 : 1);
        waitpid(pid, NULL, 0);
    }
    printf("done %ld\n", total);
    fflush(stdout);
    if (status < 0)
        raise(-status);
    return status;
}
