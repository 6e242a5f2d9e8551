/* Locals that -O2 code describes through pointer parameters: DWARF reads
 * them from memory with DW_OP_deref (longs) and DW_OP_deref_size (an int
 * and a short), at the function's entry already.  With go 0 the pointers
 * are never followed: they point at the top page, which a process never
 * has (on x86_64, in the kernel's half of the address space).
 * Usage: derefs */
#include <stdio.h>

__attribute__((noinline)) long sum_longs(int go, const long *x, const long *y)
{
    long sum = *x + *y;
    if (!go)
        return 0;
    return sum * 2;
}

__attribute__((noinline)) int sum_ints(int go, const int *x, const short *y)
{
    int sum = *x + *y;
    if (!go)
        return 0;
    return sum * 2;
}

int main(void)
{
    long a = 40, b = 2;
    int c = -50;
    short d = 8;
    const void *top = (const void *)-4096L;
    long r = sum_longs(0, top, top) + sum_longs(1, &a, &b);
    r += sum_ints(0, top, top) + sum_ints(1, &c, &d);
    printf("%ld\n", r);
    return 0;
}
