/* A thread storm: ROUNDS rounds of creating THREADS threads that each call
 * work() CALLS times, then joining them.  Usage: storm ROUNDS THREADS CALLS */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

static int calls;

__attribute__((noinline)) long work(long x) { return x ^ 0x5a; }

static void *body(void *arg)
{
    long s = 0;
    for (int i = 0; i < calls; i++)
        s += work(i + (long)arg);
    return (void *)s;
}

int main(int argc, char **argv)
{
    int rounds = atoi(argv[1]), threads = atoi(argv[2]);
    calls = atoi(argv[3]);
    long total = 0;
    for (int r = 0; r < rounds; r++) {
        pthread_t t[64];
        for (long i = 0; i < threads; i++)
            pthread_create(&t[i], NULL, body, (void *)i);
        for (int i = 0; i < threads; i++) {
            void *v;
            pthread_join(t[i], &v);
            total += (long)v;
        }
    }
    printf("total=%ld\n", total);
    return 0;
}
