/* A vfork child shares its parent's memory, inline patches included.
 * main calls work() twice, then vforks; the child calls work() 5 times,
 * lets the parent's other thread run (a byte on one pipe) and waits for
 * it (a byte on another): that thread calls work() 3 times while the
 * child still borrows the memory.  The child then _exits, and main calls
 * work() once more and prints the child's status and the sum.  Untraced,
 * or with the child not followed, the parent makes 6 calls. */
#include <pthread.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

__attribute__((noinline)) long work(long x) { __asm__ volatile(""); return x + 1; }

static int go[2], done[2];

static void *other(void *arg)
{
    long *sum = arg;
    char c;
    if (read(go[0], &c, 1) != 1)
        return NULL;
    for (int k = 0; k < 3; k++)
        *sum += work(k);
    write(done[1], &c, 1);
    return NULL;
}

int main(void)
{
    long sum = work(0) + work(1), theirs = 0;
    pthread_t thread;
    if (pipe(go) || pipe(done) || pthread_create(&thread, NULL, other, &theirs))
        return 2;
    pid_t pid = vfork();
    if (pid == 0) {
        long s = 0;
        char c = 'x';
        for (int k = 0; k < 5; k++)
            s += work(k);
        write(go[1], &c, 1);
        read(done[0], &c, 1);
        _exit(s == 15 ? 0 : 1);
    }
    int status;
    waitpid(pid, &status, 0);
    pthread_join(thread, NULL);
    sum += theirs + work(2);
    printf("child status %d sum %ld\n", status, sum);
    return 0;
}
