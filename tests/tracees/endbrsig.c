/* A function that starts with endbr (built with -fcf-protection), and a
 * SIGUSR1 handler that prints where the signal found the program, as an
 * offset into that function.  A tracer may resume a hit one byte into the
 * endbr (the rest runs as a nop); a handler must still see the program at
 * an instruction's start. */
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <ucontext.h>

__attribute__((noinline)) int marked(int x)
{
    return x + 1;
}

static void on_usr1(int sig, siginfo_t *si, void *ctx)
{
    (void)sig;
    (void)si;
    ucontext_t *uc = ctx;
#ifdef __x86_64__
    unsigned long ip = uc->uc_mcontext.gregs[REG_RIP];
#else
    unsigned long ip = uc->uc_mcontext.gregs[REG_EIP];
#endif
    unsigned long off = ip - (unsigned long)marked;
    if (off < 64)
        printf("usr1 at marked+%lu\n", off);
    else
        printf("usr1 elsewhere\n");
}

int main(int argc, char **argv)
{
    int n = argc > 1 ? atoi(argv[1]) : 3;
    struct sigaction sa = {0};
    sa.sa_sigaction = on_usr1;
    sa.sa_flags = SA_SIGINFO;
    sigaction(SIGUSR1, &sa, NULL);
    int acc = 0;
    for (int i = 0; i < n; i++)
        acc = marked(acc);
    printf("acc=%d\n", acc);
    return 0;
}
