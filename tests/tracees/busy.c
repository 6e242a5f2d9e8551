/* Two threads call spin() and a recursive ret_depth() without pause while
 * the main thread answers each input line N with sum(N) = N*(N+1)/2,
 * computed through handle().  A tracer may come and go at any moment: the
 * answers must stay right.  Usage: busy */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static volatile long sink;

__attribute__((noinline)) long spin(long x) { return (x * 7) ^ (x >> 3); }
__attribute__((noinline)) long ret_depth(long d) { return d ? ret_depth(d - 1) + 1 : 0; }
__attribute__((noinline)) long handle(long n) { return n ? n + handle(n - 1) : 0; }

static void *worker(void *arg)
{
    long i = (long)arg;
    for (;;) {
        long d = ret_depth(i % 5);
        if (d != i % 5)
            abort();
        sink += spin(i++);
    }
    return NULL;
}

int main(void)
{
    pthread_t t;
    for (long i = 0; i < 2; i++)
        pthread_create(&t, NULL, worker, (void *)i);
    char line[64];
    puts("ready");
    fflush(stdout);
    while (fgets(line, sizeof line, stdin)) {
        if (!strncmp(line, "quit", 4))
            return 0;
        printf("%ld\n", handle(atol(line)));
        fflush(stdout);
    }
    return 0;
}
