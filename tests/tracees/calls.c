/* Calls a few noinline functions a known number of times and prints a
 * checksum, so a test can count hits and check the output is unchanged.
 * Usage: calls N [threads] */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

__attribute__((noinline)) long add(long a, long b) { return a + b; }
__attribute__((noinline)) long square(long x) { return x * x; }
__attribute__((noinline)) int greet(const char *who, int n)
{
    return (int)strlen(who) + n;
}
__attribute__((noinline)) long fib(long n) { return n < 2 ? n : fib(n - 1) + fib(n - 2); }

static long iterations;

static void *worker(void *arg)
{
    long id = (long)arg, sum = 0;
    for (long i = 0; i < iterations; i++)
        sum += add(i, id);
    return (void *)sum;
}

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 10;
    int threads = argc > 2 ? atoi(argv[2]) : 0;
    long total = 0;
    if (threads > 0) {
        pthread_t t[64];
        iterations = n / threads;
        for (long i = 0; i < threads; i++)
            pthread_create(&t[i], NULL, worker, (void *)i);
        for (int i = 0; i < threads; i++) {
            void *r;
            pthread_join(t[i], &r);
            total += (long)r;
        }
    } else {
        for (long i = 0; i < n; i++)
            total += add(i, 1) + square(i % 7);
        total += greet("world", 3);
        total += fib(10);
    }
    printf("total=%ld\n", total);
    return 0;
}
