/* Functions full of what probes-on-every-instruction must survive:
 * rip-relative data, calls, jumps, loops, SIMD, rep movs and a jump table.
 * Prints a deterministic transcript. */
#include <stdio.h>
#include <string.h>

static int table[16] = {3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5, 8, 9, 7, 9, 3};
static char src[256], dst[256];
static volatile double scale = 1.5;

__attribute__((noinline)) int pick(int k)
{
    switch (k & 7) {
    case 0: return table[k & 15] * 3;
    case 1: return table[(k + 1) & 15] - 2;
    case 2: return k << 2;
    case 3: return -k;
    case 4: return table[3] + k;
    case 5: return k ^ 0x55;
    case 6: return k / 3;
    default: return 42;
    }
}

__attribute__((noinline)) long sum_loop(int n)
{
    long s = 0;
    for (int i = 0; i < n; i++)
        s += table[i & 15] * (i % 5 == 0 ? 2 : 1);
    return s;
}

__attribute__((noinline)) double simd(int n)
{
    float a[8], b[8];
    for (int i = 0; i < 8; i++) {
        a[i] = (float)(i + n);
        b[i] = (float)(i * 2);
    }
    double d = 0;
    for (int i = 0; i < 8; i++)
        d += a[i] * b[i] * scale;
    return d;
}

__attribute__((noinline)) int copy(int n)
{
    for (int i = 0; i < 256; i++)
        src[i] = (char)(i * 7 + n);
    char *d = dst, *s_ = src;
    long c = 200;
    __asm__ volatile("rep movsb" : "+D"(d), "+S"(s_), "+c"(c) : : "memory");
    memcpy(dst + 200, src, 56);
    int s = 0;
    for (int i = 0; i < 256; i++)
        s += (unsigned char)dst[i];
    return s;
}

int main(void)
{
    for (int k = 0; k < 20; k++)
        printf("%d %ld %.1f %d\n", pick(k), sum_loop(k * 3), simd(k), copy(k));
    return 0;
}
