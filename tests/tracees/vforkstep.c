/* A vfork child hits a stepped probe while its parent, whose memory it
 * borrows, is stopped between two hits of another stepped probe: the two
 * must not share a slot.  fa and fb each step a popf (never boosted: a TF
 * it pops would trap on the slot's jump back).  Usage: vforkstep */
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

#if defined(__x86_64__)
__asm__(".globl fa\n.type fa,@function\nfa:\npushf\npopf\nneg %rdi\nmov %rdi, %rax\nret\n.size fa, .-fa\n"
        ".globl fb\n.type fb,@function\nfb:\npushf\npopf\nnot %rdi\nmov %rdi, %rax\nret\n.size fb, .-fb\n");
#else
__asm__(".globl fa\n.type fa,@function\nfa:\npushf\npopf\nnegl 4(%esp)\nmov 4(%esp), %eax\nret\n.size fa, .-fa\n"
        ".globl fb\n.type fb,@function\nfb:\npushf\npopf\nnotl 4(%esp)\nmov 4(%esp), %eax\nret\n.size fb, .-fb\n");
#endif
long fa(long);
long fb(long);

int main(void)
{
    long s = fa(5);
    pid_t p = vfork();
    if (p == 0)
        _exit((int)(fb(3) & 0xff));
    int st;
    waitpid(p, &st, 0);
    printf("fa(5)=%ld child=%d fa(7)=%ld\n", s, WEXITSTATUS(st), fa(7));
    return 0;
}
