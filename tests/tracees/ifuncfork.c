/* The main thread forks while another thread is stopped at a probe whose
 * handler sets one on scale(), an IFUNC of the program: the worker calls
 * trigger() (the probe), and main forks when a byte arrives on stdin,
 * which the handler sends.  The child exits 7; main then calls scale() N
 * times and says whether fork() returned the child's pid, its status and
 * the total.  Usage: ifuncfork N < a byte */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

__attribute__((noinline)) static int scale_a(int x) { return x * 10 + 1; }
__attribute__((noinline)) static int scale_b(int x) { return x * 10 + 1; }

static void *pick_scale(void)
{
    return scale_a == scale_b ? (void *)scale_a : (void *)scale_b;
}

int scale(int x) __attribute__((ifunc("pick_scale")));

__attribute__((noinline)) int trigger(int x) { __asm__ volatile(""); return x; }

static void *worker(void *arg)
{
    (void)arg;
    trigger(0);
    return NULL;
}

int main(int argc, char **argv)
{
    int n = argc > 1 ? atoi(argv[1]) : 3, total = 0, status = 0;
    pthread_t thread;
    char c;
    if (pthread_create(&thread, NULL, worker, NULL) != 0)
        return 2;
    if (read(0, &c, 1) != 1)
        return 3;
    pid_t child = fork();
    if (child == 0)
        _exit(7);
    if (child > 0)
        waitpid(child, &status, 0);
    pthread_join(thread, NULL);
    for (int i = 0; i < n; i++)
        total += scale(i);
    printf("fork %s, status %#x, total=%d\n", child > 0 ? "ok" : "failed", status, total);
    return 0;
}
