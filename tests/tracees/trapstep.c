/* Calls stepme(), whose second instruction (a popf, at stepme+1) a tracer
 * must single-step (boosted, a TF it pops would trap on the slot's jump
 * back), N times, and counts the SIGTRAPs its handler sees: a test sends
 * one from a probe at that instruction, so it is delivered as the step
 * starts.  It also counts SIGUSR1 and SIGUSR2, and how many came with the
 * siginfo of a kill() by its parent (the tracer), as a test sends them.  With "call" or
 * "rep", the function called is one whose probed instruction a tracer
 * steps with registers to fix: a call through memory (callmem, its return
 * address rewritten after the step) or a rep string (rep_at in repmove,
 * one step per byte, ip left at the instruction between them; its cs
 * prefix keeps it from being boosted).
 * Usage: trapstep N [step|call|rep] */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

long stepme(long x);
#if defined(__x86_64__)
__asm__(".globl stepme\n.type stepme,@function\nstepme:\npushf\npopf\nneg %rdi\nmov %rdi, %rax\nneg %rax\nret\n"
        ".size stepme, .-stepme\n");
__asm__(".globl callmem\n.type callmem,@function\ncallmem:\ncall *(%rsi)\nret\n"
        ".size callmem, .-callmem\n"
        "same:\nmov %rdi, %rax\nret\n"
        ".globl repmove\n.type repmove,@function\nrepmove:\nmov %rdi, %rax\nmov %rdi, %rdx\n"
        "mov %rsi, %rdi\nmov $8, %ecx\n"
        ".globl rep_at\n.type rep_at,@function\nrep_at:\n.byte 0x2e\nrep stosb\nmov %rdx, %rax\nret\n"
        ".size rep_at, .-rep_at\n.size repmove, .-repmove\n");
#else
__asm__(".globl stepme\n.type stepme,@function\nstepme:\npushf\npopf\nnegl 4(%esp)\nmov 4(%esp), %eax\nneg %eax\nret\n"
        ".size stepme, .-stepme\n");
__asm__(".globl callmem\n.type callmem,@function\ncallmem:\nmov 8(%esp), %eax\ncall *(%eax)\nret\n"
        ".size callmem, .-callmem\n"
        "same:\nmov 8(%esp), %eax\nret\n"
        ".globl repmove\n.type repmove,@function\nrepmove:\npush %edi\nmov 8(%esp), %eax\n"
        "mov 12(%esp), %edi\nmov %eax, %edx\nmov $8, %ecx\n"
        ".globl rep_at\n.type rep_at,@function\nrep_at:\n.byte 0x2e\nrep stosb\nmov %edx, %eax\npop %edi\nret\n"
        ".size rep_at, .-rep_at\n.size repmove, .-repmove\n");
#endif
long same(long x);
long callmem(long x, long (**fn)(long));
long repmove(long x, char *buf);

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
    const char *how = argc > 2 ? argv[2] : "step";
    long (*fn)(long) = same;
    char buf[8];
    for (long i = 0; i < n; i++) {
        if (how[0] == 'c') {
            bad += callmem(i, &fn) != i;
        } else if (how[0] == 'r') {
            bad += repmove(i, buf) != i;
            for (int k = 0; k < 8; k++)
                bad += buf[k] != (char)i;
        } else {
            bad += stepme(i) != i;
        }
    }
    printf("traps=%d usr=%d from_parent=%d bad=%ld\n", (int)traps, (int)usr, (int)usr_from_parent,
           bad);
    return 0;
}
