/* A function whose first instruction is a one-byte nop, as a USDT marker
 * is: an int3 there traps with ip already where the nop leaves it, so a
 * tracer needs to write no ip for a hit.  Usage: nopfirst N */
#include <stdio.h>
#include <stdlib.h>

long nopfirst(long x);
#if defined(__x86_64__)
__asm__(".globl nopfirst\n.type nopfirst,@function\nnopfirst:\nnop\nlea 1(%rdi), %rax\nret\n"
        ".size nopfirst, .-nopfirst\n");
#else
__asm__(".globl nopfirst\n.type nopfirst,@function\nnopfirst:\nnop\nmov 4(%esp), %eax\n"
        "lea 1(%eax), %eax\nret\n.size nopfirst, .-nopfirst\n");
#endif

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 3, acc = 0;
    for (long i = 0; i < n; i++)
        acc += nopfirst(i);
    printf("acc=%ld\n", acc);
    return 0;
}
