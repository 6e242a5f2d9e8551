/* Source-line probe sites: a loop, an inlined function called from two
 * places, an unrolled loop.  Tests find lines by the LINE: markers. */
#include <stdio.h>
#include <stdlib.h>

volatile int sink;

static inline __attribute__((always_inline)) int clamp(int v, int lo, int hi)
{
    if (v < lo)                                         /* LINE: clamp_test */
        return lo;
    return v > hi ? hi : v;                             /* LINE: clamp_ret */
}

__attribute__((noinline)) int sum_loop(const int *a, int n)
{
    int s = 0;
    for (int i = 0; i < n; i++)                         /* LINE: loop_head */
        s += a[i] * 3;                                  /* LINE: loop_body */
    return s;                                           /* LINE: loop_ret */
}

__attribute__((noinline)) int clamp_both(int x, int y)
{
    int a = clamp(x, 0, 100);                           /* LINE: call_one */
    int b = clamp(y, -5, 5);                            /* LINE: call_two */
    return a * 1000 + b;
}

__attribute__((noinline)) unsigned unrolled(const unsigned char *p, unsigned n)
{
    unsigned h = 5381;
    for (unsigned i = 0; i < n; i++)
        h = h * 33 + p[i];                              /* LINE: unrolled_body */
    return h;
}

int main(int argc, char **argv)
{
    int v[16];
    for (int i = 0; i < 16; i++)
        v[i] = i * argc;

    /* no code on the next line */

    sink = sum_loop(v, 16);                             /* LINE: main_sum */
    sink = clamp_both(argc * 7, argc - 9);
    sink = (int)unrolled((const unsigned char *)argv[0], 8);
    /* At -O2 glibc's atoi is inlined from <stdlib.h>: the line table
     * switches files at one address, which drops rows. */
    if (argc > 1) {
        sink = atoi(argv[1]);
        if (argc > 2) {
            sink += atoi(argv[2]);
            if (argc > 3)
                sink += atoi(argv[3]);
        }
    }
    return 0;
}
