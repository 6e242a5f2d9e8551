/* vfork + exec, and a plain vfork child that only calls work() and
 * _exits, while the parent (borrowed memory and all) waits. */
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

__attribute__((noinline)) long work(long x) { return x + 1; }

int main(int argc, char **argv)
{
    int status, ok = 0;
    long s = work(1);
    pid_t pid = vfork();
    if (pid == 0) {
        execl(argv[1], argv[1], "7", (char *)NULL);
        _exit(99);
    }
    waitpid(pid, &status, 0);
    ok += WIFEXITED(status) && WEXITSTATUS(status) == 7;
    pid = vfork();
    if (pid == 0)
        _exit((int)work(41));
    waitpid(pid, &status, 0);
    ok += WIFEXITED(status) && WEXITSTATUS(status) == 42;
    s += work(2);
    printf("ok=%d s=%ld\n", ok, s);
    return 0;
}
