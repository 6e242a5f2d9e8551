/* A multithreaded service driven through stdin: worker threads spin doing
 * arithmetic; each input line "N" is answered with N*N and the number of
 * threads alive, so a test can check it still computes correctly after
 * being traced and detached.  "spawn" starts one more worker, "quit" ends. */
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <stdlib.h>

static volatile long sink;
static volatile int workers;

static void *work(void *arg)
{
    (void)arg;
    __atomic_fetch_add(&workers, 1, __ATOMIC_SEQ_CST);
    for (;;) {
        long s = 0;
        for (long i = 0; i < 100000; i++)
            s += i ^ (s >> 3);
        sink = s;
    }
    return NULL;
}

static void start_worker(void)
{
    pthread_t t;
    pthread_create(&t, NULL, work, NULL);
    pthread_detach(t);
}

int main(int argc, char **argv)
{
    int n = argc > 1 ? atoi(argv[1]) : 3;
    char line[64];
    for (int i = 0; i < n; i++)
        start_worker();
    while (workers < n)
        ;
    printf("ready %d\n", workers);
    fflush(stdout);
    while (fgets(line, sizeof line, stdin)) {
        if (!strncmp(line, "quit", 4))
            break;
        if (!strncmp(line, "spawn", 5)) {
            int want = workers + 1;
            start_worker();
            while (workers < want)
                ;
            printf("workers %d\n", workers);
        } else {
            long v = atol(line);
            printf("%ld %d\n", v * v, workers);
        }
        fflush(stdout);
    }
    return 0;
}
