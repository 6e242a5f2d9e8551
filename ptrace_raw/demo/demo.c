/* The program `ptrace-raw demo` builds and traces.
 *
 * work() runs in a loop with a cost that doubles from one call to the next
 * (twelve sizes, then again), so its latency histogram spreads over several
 * buckets; greet() takes a string the tracer reads from the tracee's
 * memory; each round ends at a USDT marker (when <sys/sdt.h> is there, the
 * build defines DEMO_SDT) carrying the round and its result.
 * Usage: demo [ROUNDS] [NAME] */
#include <stdio.h>
#include <stdlib.h>

#ifdef DEMO_SDT
#include <sys/sdt.h>
#define DEMO_TICK(round, value) DTRACE_PROBE2(demo, tick, round, value)
#else
#define DEMO_TICK(round, value) do { } while (0)
#endif

__attribute__((noinline)) long work(long n)
{
    volatile long acc = 0;
    for (long i = 0; i < n; i++)
        acc += i % 7;
    return acc;
}

__attribute__((noinline)) int greet(const char *name)
{
    return printf("hello, %s\n", name);
}

int main(int argc, char **argv)
{
    long rounds = argc > 1 ? atol(argv[1]) : 600;
    long total = 0;
    greet(argc > 2 ? argv[2] : "ptrace-raw");
    for (long i = 0; i < rounds; i++) {
        long value = work(64L << (i % 12));
        DEMO_TICK(i, value);
        total += value;
    }
    printf("total=%ld\n", total);
    return 0;
}
