/* An IFUNC of our own: scale() is bound at load to what pick_scale()
 * returns, the second of two look-alike implementations.  A program calls
 * it N times (usage: ifuncown N [wait|armed|stuck]); built with -shared -fPIC
 * -DPLUGIN it is a library whose plugin_work() calls it twice, for
 * dlcycle.c.  "wait" says "ready" and reads a line from stdin before the
 * calls (a tracer attaches meanwhile); "armed" also makes the resolver
 * fault if anyone runs it again after load, "stuck" makes it spin. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

__attribute__((noinline)) static int scale_a(int x) { return x * 10 + 1; }
__attribute__((noinline)) static int scale_b(int x) { return x * 10 + 1; }

static volatile int armed;

/* A function the resolver calls, which a test probes too. */
__attribute__((noinline)) static int pick_second(int x) { __asm__ volatile(""); return x; }

/* Runs in the loader's relocation, before any constructor: it touches
 * nothing that needs one. */
static void *pick_scale(void)
{
    if (armed == 1)
        *(volatile int *)0 = 0;
    while (armed == 2)
        ;
    return pick_second(1) ? (void *)scale_b : (void *)scale_a;
}

int scale(int x) __attribute__((ifunc("pick_scale")));

#ifdef PLUGIN
int plugin_work(int x) { return scale(x) + scale(x + 1); }
#else
int main(int argc, char **argv)
{
    int n = argc > 1 ? atoi(argv[1]) : 3, total = 0;
    if (argc > 2) {
        char line[16];
        armed = !strcmp(argv[2], "armed") ? 1 : !strcmp(argv[2], "stuck") ? 2 : 0;
        printf("ready\n");
        fflush(stdout);
        if (!fgets(line, sizeof line, stdin))
            return 1;
    }
    for (int i = 0; i < n; i++)
        total += scale(i);
    printf("total=%d\n", total);
    return 0;
}
#endif
