/* A signal that interrupts a known instruction, for backtraces taken in its
 * handler: main -> outer -> interrupted, whose store to a read-only page
 * faults (SIGSEGV at that very instruction, the first of its line); the
 * handler calls in_handler (where a test puts its probe), makes the page
 * writable and returns, so the store runs again and succeeds.
 *   plain     a handler without SA_SIGINFO (i386: the vDSO's sigreturn),
 *   siginfo   an SA_SIGINFO handler (i386: the vDSO's rt_sigreturn),
 *   altstack  the SA_SIGINFO handler on a sigaltstack.
 * Usage: sigframes plain|siginfo|altstack.  Prints "stored N" (N: how often
 * the handler ran, 1). */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

#define NOIPA __attribute__((noipa))
#define PAGE 4096

/* A page of its own, so that the store into it is one instruction. */
static char ro_page[PAGE] __attribute__((aligned(PAGE)));
static volatile int handled, sink;

NOIPA void in_handler(int sig)
{
    sink = sig;
}

NOIPA static void recover(void)
{
    handled++;
    mprotect(ro_page, PAGE, PROT_READ | PROT_WRITE);
}

NOIPA static void on_plain(int sig)
{
    in_handler(sig);
    recover();
}

NOIPA static void on_siginfo(int sig, siginfo_t *info, void *uc)
{
    (void)sig, (void)uc;
    in_handler(info->si_signo);
    recover();
}

NOIPA void interrupted(void)
{
    sink++;
    ro_page[0] = 1;                                         /* LINE: fault */
}

NOIPA void outer(void)
{
    interrupted();
    sink++;
}

int main(int argc, char **argv)
{
    static char alt[65536];
    const char *mode = argc > 1 ? argv[1] : "plain";
    struct sigaction sa = {0};
    if (!strcmp(mode, "plain")) {
        sa.sa_handler = on_plain;
    } else {
        sa.sa_sigaction = on_siginfo;
        sa.sa_flags = SA_SIGINFO;
    }
    if (!strcmp(mode, "altstack")) {
        stack_t ss = {.ss_sp = alt, .ss_size = sizeof alt};
        if (sigaltstack(&ss, NULL))
            return 2;
        sa.sa_flags |= SA_ONSTACK;
    }
    if (sigaction(SIGSEGV, &sa, NULL) || mprotect(ro_page, PAGE, PROT_READ))
        return 2;
    outer();
    printf("stored %d\n", handled);
    return 0;
}
