/* Faults whose siginfo names the faulting instruction (si_addr of SIGFPE):
 * an idiv by zero (a probe steps it out of line) and a divsd by zero with
 * the exception unmasked (a probe boosts it).  The handler says whether
 * si_addr and ip are the instruction's own address, and skips it. */
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <ucontext.h>

long f_idiv(long x);
double f_divsd(double x);
extern char f_idiv_at[], f_divsd_at[];

#if defined(__x86_64__)
#define IP REG_RIP
__asm__(".text\n .globl f_idiv\n .type f_idiv,@function\n"
        "f_idiv: mov %rdi,%rax\n xor %ecx,%ecx\n cqo\n"
        " .globl f_idiv_at\n f_idiv_at: idiv %rcx\n ret\n .size f_idiv,.-f_idiv\n"
        " .globl f_divsd\n .type f_divsd,@function\n"
        "f_divsd: xorpd %xmm1,%xmm1\n"
        " .globl f_divsd_at\n f_divsd_at: divsd %xmm1,%xmm0\n ret\n .size f_divsd,.-f_divsd\n");
#else
#define IP REG_EIP
__asm__(".text\n .globl f_idiv\n .type f_idiv,@function\n"
        "f_idiv: mov 4(%esp),%eax\n xor %ecx,%ecx\n cltd\n"
        " .globl f_idiv_at\n f_idiv_at: idiv %ecx\n ret\n .size f_idiv,.-f_idiv\n"
        " .globl f_divsd\n .type f_divsd,@function\n"
        "f_divsd: movsd 4(%esp),%xmm0\n xorpd %xmm1,%xmm1\n"
        " .globl f_divsd_at\n f_divsd_at: divsd %xmm1,%xmm0\n"
        " movsd %xmm0,4(%esp)\n fldl 4(%esp)\n ret\n .size f_divsd,.-f_divsd\n");
#endif

static void on_fpe(int sig, siginfo_t *si, void *ctx)
{
    greg_t *g = ((ucontext_t *)ctx)->uc_mcontext.gregs;
    char *ip = (char *)g[IP];
    char *at = ip == f_divsd_at ? f_divsd_at : f_idiv_at;
    printf("%s: si_addr %s, ip %s\n", at == f_idiv_at ? "idiv" : "divsd",
           (char *)si->si_addr == at ? "home" : "elsewhere", ip == at ? "home" : "elsewhere");
    g[IP] += at == f_idiv_at ? 2 + (sizeof(long) == 8) : 4;
}

int main(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_fpe;
    sa.sa_flags = SA_SIGINFO;
    sigaction(SIGFPE, &sa, 0);
    unsigned mxcsr;
    __asm__ volatile("stmxcsr %0" : "=m"(mxcsr));
    mxcsr &= ~(1u << 9);  /* divide-by-zero unmasked: divsd by 0 traps */
    __asm__ volatile("ldmxcsr %0" : : "m"(mxcsr));
    for (int i = 0; i < 2; i++) {
        printf("%ld\n", f_idiv(7 + i));
        printf("%g\n", f_divsd(1.5 + i));
    }
    return 0;
}
