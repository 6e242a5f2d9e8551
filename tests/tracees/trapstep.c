/* Calls stepme(), whose first instruction a tracer must single-step, N
 * times, and counts the SIGTRAPs its handler sees: a test sends one from
 * a probe at that instruction, so it is delivered as the step starts.  It
 * also counts SIGUSR1 and SIGUSR2, and how many came with the siginfo of a
 * kill() by its parent (the tracer), as a test sends them.
 * Usage: trapstep N */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

long stepme(long x);
#if defined(__x86_64__)
__asm__(".globl stepme\n.type stepme,@function\nstepme:\nneg %rdi\nmov %rdi, %rax\nneg %rax\nret\n"
        ".size stepme, .-stepme\n");
#else
__asm__(".globl stepme\n.type stepme,@function\nstepme:\nnegl 4(%esp)\nmov 4(%esp), %eax\nneg %eax\nret\n"
        ".size stepme, .-stepme\n");
#endif

static volatile sig_atomic_t traps, usr, usr_from_parent;

static void on_trap(int sig)
{
    (void)sig;
    traps++;
}

static void on_usr(int sig, siginfo_t *info, void *ctx)
{
    (void)sig;
    (void)ctx;
    usr++;
    usr_from_parent += info->si_code == SI_USER && info->si_pid == getppid();
}

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 100, bad = 0;
    signal(SIGTRAP, on_trap);
    struct sigaction sa = {0};
    sa.sa_sigaction = on_usr;
    sa.sa_flags = SA_SIGINFO;
    sigaction(SIGUSR1, &sa, NULL);
    sigaction(SIGUSR2, &sa, NULL);
    for (long i = 0; i < n; i++)
        bad += stepme(i) != i;
    printf("traps=%d usr=%d from_parent=%d bad=%ld\n", (int)traps, (int)usr, (int)usr_from_parent,
           bad);
    return 0;
}
