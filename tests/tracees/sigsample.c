/* A SIGUSR1 handler that looks at where the signal interrupted the program,
 * as a sampling profiler does: in the program's own code, or elsewhere.
 * f's instructions are each boosted or emulated by a probe (a push, a
 * rip-relative load, arithmetic, a call, a pop, a ret), but popf, which
 * is stepped; pushf stores the flags where a stepped copy would leak the
 * trap flag, which popf then sets.
 * Usage: sigsample N -- calls f N times and prints the sum and the
 * counts of samples in and outside the program's code. */
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ucontext.h>

extern char __executable_start[], etext[];
long f(long x);
long base_value = 7;

#if defined(__x86_64__)
#define IP REG_RIP
__asm__(".text\n .globl f\n .type f,@function\n"
        "f: push %rbx\n mov base_value(%rip),%rax\n add %rdi,%rax\n call g\n"
        " pushf\n popf\n pop %rbx\n ret\n .size f,.-f\n"
        "g: lea 1(%rax),%rax\n ret\n");
#else
#define IP REG_EIP
__asm__(".text\n .globl f\n .type f,@function\n"
        "f: push %ebx\n mov base_value,%eax\n add 8(%esp),%eax\n call g\n"
        " pushf\n popf\n pop %ebx\n ret\n .size f,.-f\n"
        "g: lea 1(%eax),%eax\n ret\n");
#endif

static volatile long own, elsewhere;

static void on_usr1(int sig, siginfo_t *si, void *ctx)
{
    char *pc = (char *)((ucontext_t *)ctx)->uc_mcontext.gregs[IP];
    if (pc >= __executable_start && pc < etext)
        own++;
    else
        elsewhere++;
}

int main(int argc, char **argv)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_usr1;
    sa.sa_flags = SA_SIGINFO | SA_RESTART;
    sigaction(SIGUSR1, &sa, 0);
    long n = argc > 1 ? atol(argv[1]) : 3, s = 0;
    for (long i = 0; i < n; i++)
        s += f(i);
    printf("sum %ld own %ld elsewhere %ld\n", s, own, elsewhere);
    return 0;
}
