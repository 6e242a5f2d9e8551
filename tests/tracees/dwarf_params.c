/* Functions whose parameters the DWARF tests read: integers of each
 * signedness, pointers, strings, typedefs and struct pointers.  describe()
 * is both inlined into main and called through a pointer, so -O2 builds
 * give it an abstract DIE and an out-of-line copy that refers to it. */
#include <stdio.h>

typedef unsigned long counter_t;
typedef const char *label_t;

struct point {
    int x, y;
};

enum mode { MODE_A = -1, MODE_B = 2 };

__attribute__((noinline)) long take_all(int i, unsigned u, const void *p, const char *s,
                                        counter_t n, struct point *pt, signed char c,
                                        short sh, unsigned long long big)
{
    return i + (long)u + (p != 0) + s[0] + (long)n + pt->x + c + sh + (long)big;
}

static inline __attribute__((always_inline)) int describe(label_t name, struct point *pt, enum mode m, double scale)
{
    return printf("%s %d %d %d %g\n", name, pt->x, pt->y, (int)m, scale);
}

static void takes_nothing(void)
{
    puts("nothing");
}

int (*volatile describe_ptr)(label_t, struct point *, enum mode, double) = describe;
void (*volatile nothing_ptr)(void) = takes_nothing;

int main(int argc, char **argv)
{
    struct point pt = {argc, 2};
    long r = take_all(-5, 7u, &pt, argv[0], 3, &pt, 'x', -2, 1ULL << 40);
    describe("direct", &pt, MODE_B, 1.5);
    describe_ptr("pointer", &pt, MODE_A, 2.5);
    nothing_ptr();
    return r == 0;
}
