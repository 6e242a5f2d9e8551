/* USDT markers (one guarded by a semaphore), a loop with a known trip count
 * for line probes, a call chain through qsort for backtraces, and a function
 * with typed parameters for named arguments.  Prints how often the guarded
 * marker's argument set-up ran, so a test sees the semaphore working.
 * Usage: markers N [PROGRAM ARG...]: with a PROGRAM, it then execs it. */
#define _SDT_HAS_SEMAPHORES 1
#include <stdio.h>
#include <stdlib.h>
#include <sys/sdt.h>
#include <unistd.h>

unsigned short app_tick_semaphore __attribute__((unused)) __attribute__((section(".probes")));
unsigned short app_plain_semaphore __attribute__((unused)) __attribute__((section(".probes")));
#define APP_TICK_ENABLED() __builtin_expect(app_tick_semaphore, 0)

static int enabled_runs;

__attribute__((noinline)) int compare(const void *a, const void *b)
{
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

__attribute__((noinline)) void level3(int *v, int n) { qsort(v, n, sizeof *v, compare); __asm__ volatile(""); }
__attribute__((noinline)) void level2(int *v, int n) { level3(v, n); __asm__ volatile(""); }
__attribute__((noinline)) void level1(int *v, int n) { level2(v, n); __asm__ volatile(""); }

__attribute__((noinline)) long typed(int count, unsigned mask, const char *label, long *ptr)
{
    return count + (long)mask + label[0] + *ptr;
}

struct pair { long a, b, c; };

/* Parameters the integer argument slots alone do not place: floats (xmm
 * registers on x86_64), a 64-bit integer (two slots on i386) and a struct
 * by value (in memory). */
__attribute__((noinline)) long mixed(float f, long long q, double d, int k, struct pair by_value,
                                     int last)
{
    return (long)f + (long)q + (long)d + k + by_value.a + last;
}

int main(int argc, char **argv)
{
    int n = argc > 1 ? atoi(argv[1]) : 5;
    long total = 0;
    for (int i = 0; i < n; i++) {
        total += i * 2;                                     /* LINE: loop_body */
        DTRACE_PROBE2(app, plain, i, (long)-i);
        if (APP_TICK_ENABLED()) {
            enabled_runs++;
            DTRACE_PROBE2(app, tick, i, "tick");
        }
    }
    int v[4] = {4, 2, 3, 1};
    level1(v, 4);                                           /* LINE: level1_call */
    long cell = 40;
    total += typed(-3, 0xfffffff0u, "xyz", &cell);
    total += mixed(1.5f, -5000000000LL, -2.25, -4, (struct pair){7, 8, 9}, 11);
    printf("total=%ld enabled=%d sorted=%d%d%d%d\n", total, enabled_runs, v[0], v[1], v[2], v[3]);
    if (argc > 2) {
        fflush(stdout);
        execv(argv[2], argv + 2);
        perror("execv");
        return 127;
    }
    return 0;
}
