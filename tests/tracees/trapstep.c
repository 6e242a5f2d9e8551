/* Calls stepme(), whose first instruction a tracer must single-step, N
 * times, and counts the SIGTRAPs its handler sees: a test sends one from
 * a probe at that instruction, so it is delivered as the step starts.
 * Usage: trapstep N */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

long stepme(long x);
#if defined(__x86_64__)
__asm__(".globl stepme\n.type stepme,@function\nstepme:\nneg %rdi\nmov %rdi, %rax\nneg %rax\nret\n"
        ".size stepme, .-stepme\n");
#else
__asm__(".globl stepme\n.type stepme,@function\nstepme:\nnegl 4(%esp)\nmov 4(%esp), %eax\nneg %eax\nret\n"
        ".size stepme, .-stepme\n");
#endif

static volatile sig_atomic_t traps;

static void on_trap(int sig)
{
    (void)sig;
    traps++;
}

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 100, bad = 0;
    signal(SIGTRAP, on_trap);
    for (long i = 0; i < n; i++)
        bad += stepme(i) != i;
    printf("traps=%d bad=%ld\n", (int)traps, bad);
    return 0;
}
