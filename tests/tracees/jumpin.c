/* Hand-written code jumps into its neighbours, as glibc's mempcpy jumps
 * to the second instruction of memmove: pre() computes its first step and
 * jumps into target() past its first instruction, which an inline jump
 * over target's first five bytes covers.  Prints the sum of target(k) and
 * pre(k) for k < N.  Usage: jumpin N */
#include <stdio.h>
#include <stdlib.h>

long target(long x), pre(long x);

#if defined(__x86_64__)
__asm__(".text\n"
        ".globl pre\n .type pre,@function\n"
        "pre: mov %rdi,%rax\n add $1,%rax\n jmp 1f\n .size pre,.-pre\n"
        ".globl target\n .type target,@function\n"
        "target: mov %rdi,%rax\n 1: add $2,%rax\n ret\n .size target,.-target\n");
#else
__asm__(".text\n"
        ".globl pre\n .type pre,@function\n"
        "pre: mov 4(%esp),%eax\n add $1,%eax\n jmp 1f\n .size pre,.-pre\n"
        ".globl target\n .type target,@function\n"
        "target: mov 4(%esp),%eax\n 1: add $2,%eax\n ret\n .size target,.-target\n");
#endif

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 10, sum = 0;
    for (long k = 0; k < n; k++)
        sum += target(k) + pre(k);
    printf("sum=%ld\n", sum);
    return 0;
}
