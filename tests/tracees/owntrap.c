/* Runs its own int3 inside a function the tests probe: under a correct
 * tracer each one reaches the program's SIGTRAP handler once, with ip just
 * past the int3, as it would untraced. */
#define _GNU_SOURCE
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <ucontext.h>

extern char past_trap[];
static volatile long traps, misplaced;

static void on_trap(int sig, siginfo_t *info, void *context)
{
    (void)sig;
    (void)info;
    ucontext_t *uc = context;
#ifdef __x86_64__
    uintptr_t ip = uc->uc_mcontext.gregs[REG_RIP];
#else
    uintptr_t ip = uc->uc_mcontext.gregs[REG_EIP];
#endif
    if (ip != (uintptr_t)past_trap)
        misplaced++;
    traps++;
}

__attribute__((noinline)) long trapping(long x)
{
    __asm__ volatile("int3\n.globl past_trap\npast_trap:\n");
    return x + 1;
}

int main(int argc, char **argv)
{
    struct sigaction sa = {0};
    sa.sa_sigaction = on_trap;
    sa.sa_flags = SA_SIGINFO;
    sigaction(SIGTRAP, &sa, NULL);
    int n = argc > 1 ? atoi(argv[1]) : 10;
    long sum = 0;
    for (int i = 0; i < n; i++)
        sum += trapping(i);
    printf("sum=%ld traps=%ld misplaced=%ld\n", sum, traps, misplaced);
    return 0;
}
