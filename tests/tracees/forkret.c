/* fork() inside a function whose return is probed: the parent and the
 * child each return through it once, with different values. */
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

__attribute__((noinline)) int split(void)
{
    pid_t pid = fork();
    return pid == 0 ? 111 : 222;
}

int main(void)
{
    int v = split();
    if (v == 111) {
        printf("child %d\n", v);
        return 0;
    }
    int status;
    wait(&status);
    printf("parent %d child_ok=%d\n", v, WIFEXITED(status) && WEXITSTATUS(status) == 0);
    return 0;
}
