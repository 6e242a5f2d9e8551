/* Signals meeting threads in the middle of a stepped instruction: stepme()
 * starts with pushf and popf; a probe on the popf (stepme+1) has it
 * single-stepped in a slot (boosted, a TF it pops would trap on the
 * slot's jump back).
 *   rt N       calls stepme N times; a SIGRTMIN handler keeps each
 *              si_value, printed in arrival order at the end
 *   threads N T  T threads call stepme N times each (job control may stop
 *              and continue the process meanwhile)
 * Both print how many results were wrong. */
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

long stepme(long x); /* returns x */
#if defined(__x86_64__)
__asm__(".globl stepme\n.type stepme,@function\nstepme:\npushf\npopf\nneg %rdi\n"
        "mov %rdi, %rax\nneg %rax\nret\n.size stepme, .-stepme\n");
#else
__asm__(".globl stepme\n.type stepme,@function\nstepme:\npushf\npopf\n"
        "negl 4(%esp)\nmov 4(%esp), %eax\nneg %eax\nret\n.size stepme, .-stepme\n");
#endif

static volatile int values[4096], nvalues;
static long calls;
static volatile long bad;

static void on_rt(int sig, siginfo_t *info, void *ctx)
{
    (void)sig;
    (void)ctx;
    if (nvalues < 4096)
        values[nvalues++] = info->si_value.sival_int;
}

static void *caller(void *arg)
{
    long base = (long)arg, wrong = 0;
    for (long i = 0; i < calls; i++)
        wrong += stepme(base + i) != base + i;
    __sync_fetch_and_add(&bad, wrong);
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc > 2 && strcmp(argv[1], "rt") == 0) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_sigaction = on_rt;
        sa.sa_flags = SA_SIGINFO;
        sigaction(SIGRTMIN, &sa, NULL);
        calls = atol(argv[2]);
        caller(0);
        for (int i = 0; i < nvalues; i++)
            printf("%d ", values[i]);
        printf("\nbad=%ld\n", bad);
    } else if (argc > 3 && strcmp(argv[1], "threads") == 0) {
        pthread_t threads[16];
        int n = atoi(argv[3]);
        calls = atol(argv[2]);
        for (long i = 0; i < n && i < 16; i++)
            pthread_create(&threads[i], NULL, caller, (void *)(i * 1000000));
        for (int i = 0; i < n && i < 16; i++)
            pthread_join(threads[i], NULL);
        printf("bad=%ld\n", bad);
    } else {
        return 2;
    }
    return 0;
}
