/* Faults whose siginfo names the faulting instruction (si_addr of SIGFPE):
 * an idiv by zero in a register, a div by zero in memory (on x86_64 a
 * rip-relative operand, whose boosted copy has its displacement moved for
 * the slot) and a divsd by zero with the exception unmasked.  A probe
 * boosts each (a test can have them stepped instead).  The handler says
 * whether si_addr and ip are the instruction's own address, and skips it. */
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <ucontext.h>
#include <unistd.h>

long f_idiv(long x);
unsigned long f_div(unsigned long x, unsigned long zero);
double f_divsd(double x);
extern char f_idiv_at[], f_div_at[], f_divsd_at[];

#if defined(__x86_64__)
#define IP REG_RIP
__asm__(".text\n .globl f_idiv\n .type f_idiv,@function\n"
        "f_idiv: mov %rdi,%rax\n xor %ecx,%ecx\n cqo\n"
        " .globl f_idiv_at\n f_idiv_at: idiv %rcx\n ret\n .size f_idiv,.-f_idiv\n"
        " .globl f_div\n .type f_div,@function\n"
        "f_div: mov %rdi,%rax\n xor %edx,%edx\n"
        " .globl f_div_at\n f_div_at: divq f_zero(%rip)\n ret\n .size f_div,.-f_div\n"
        " .globl f_divsd\n .type f_divsd,@function\n"
        "f_divsd: xorpd %xmm1,%xmm1\n"
        " .globl f_divsd_at\n f_divsd_at: divsd %xmm1,%xmm0\n ret\n .size f_divsd,.-f_divsd\n"
        " .section .rodata\n .p2align 3\n f_zero: .quad 0\n .text\n");
#else
#define IP REG_EIP
__asm__(".text\n .globl f_idiv\n .type f_idiv,@function\n"
        "f_idiv: mov 4(%esp),%eax\n xor %ecx,%ecx\n cltd\n"
        " .globl f_idiv_at\n f_idiv_at: idiv %ecx\n ret\n .size f_idiv,.-f_idiv\n"
        " .globl f_div\n .type f_div,@function\n"
        "f_div: mov 4(%esp),%eax\n xor %edx,%edx\n"
        " .globl f_div_at\n f_div_at: divl 8(%esp)\n ret\n .size f_div,.-f_div\n"
        " .globl f_divsd\n .type f_divsd,@function\n"
        "f_divsd: movsd 4(%esp),%xmm0\n xorpd %xmm1,%xmm1\n"
        " .globl f_divsd_at\n f_divsd_at: divsd %xmm1,%xmm0\n"
        " movsd %xmm0,4(%esp)\n fldl 4(%esp)\n ret\n .size f_divsd,.-f_divsd\n");
#endif

/* each faulting instruction, its name and its length */
static const struct {
    const char *at, *name;
    int len;
} sites[] = {
    {f_idiv_at, "idiv", sizeof(long) == 8 ? 3 : 2},
    {f_div_at, "div", sizeof(long) == 8 ? 7 : 4},
    {f_divsd_at, "divsd", 4},
};

static void on_fpe(int sig, siginfo_t *si, void *ctx)
{
    (void)sig;
    greg_t *g = ((ucontext_t *)ctx)->uc_mcontext.gregs;
    char *ip = (char *)g[IP];
    for (unsigned k = 0; k < sizeof sites / sizeof sites[0]; k++) {
        if (ip == sites[k].at) {
            printf("%s: si_addr %s, ip home\n", sites[k].name,
                   (char *)si->si_addr == ip ? "home" : "elsewhere");
            g[IP] += sites[k].len;
            return;
        }
    }
    /* nothing to skip: ip is not the instruction's own */
    printf("SIGFPE at ip %p, si_addr %p: elsewhere\n", (void *)ip, si->si_addr);
    _exit(3);
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
        printf("%lu\n", f_div(9 + i, 0));
        printf("%g\n", f_divsd(1.5 + i));
    }
    return 0;
}
