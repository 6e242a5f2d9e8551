/* Signals and faults around probed instructions:
 *  - faulty() loads through its argument; called with NULL it faults, and
 *    the SIGSEGV handler checks the fault is reported at faulty's own
 *    faulting instruction, then siglongjmps out (on an alternate stack);
 *    faulty2() does the same with a neg of memory (a boosted group 3
 *    write), badret() with a ret whose stack cannot be read (its sp is
 *    its argument, NULL): a boosted ret faults in its slot, and
 *    stepfault() with a popf whose stack cannot be read: a stepped copy
 *    faults in its slot;
 *  - stepme()'s second instruction is a popf, which a tracer must
 *    single-step (boosted, a TF it pops would trap on the slot's jump
 *    back); a second thread queues SIGUSR1 with a sequence number to the
 *    main thread while it calls stepme() in a loop, and both sides
 *    count: every signal must arrive once, with the siginfo it was sent
 *    with (a signal a tracer holds back during a step must not lose it).
 * Usage: faults SIGNALS */
#define _GNU_SOURCE
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <ucontext.h>
#include <unistd.h>

#if defined(__x86_64__)
__asm__(".globl faulty\n.type faulty,@function\nfaulty:\nmov (%rdi), %rax\nret\n"
        ".size faulty, .-faulty\n"
        ".globl faulty2\n.type faulty2,@function\nfaulty2:\nnegq (%rdi)\nret\n"
        ".size faulty2, .-faulty2\n"
        ".globl stepme\n.type stepme,@function\nstepme:\npushf\npopf\nneg %rdi\nmov %rdi, %rax\n"
        "neg %rax\nret\n.size stepme, .-stepme\n"
        ".globl badret\n.type badret,@function\nbadret:\nmov %rdi, %rsp\nret\n"
        ".size badret, .-badret\n"
        ".globl stepfault\n.type stepfault,@function\nstepfault:\nmov %rdi, %rsp\npopf\nret\n"
        ".size stepfault, .-stepfault\n");
#define IP(uc) ((uc)->uc_mcontext.gregs[REG_RIP])
#else
__asm__(".globl faulty\n.type faulty,@function\nfaulty:\nmov 4(%esp), %eax\nmov (%eax), %eax\nret\n"
        ".size faulty, .-faulty\n"
        ".globl faulty2\n.type faulty2,@function\nfaulty2:\nmov 4(%esp), %eax\nnegl (%eax)\nret\n"
        ".size faulty2, .-faulty2\n"
        ".globl stepme\n.type stepme,@function\nstepme:\npushf\npopf\nnegl 4(%esp)\n"
        "mov 4(%esp), %eax\nneg %eax\nret\n.size stepme, .-stepme\n"
        ".globl badret\n.type badret,@function\nbadret:\nmov 4(%esp), %esp\nret\n"
        ".size badret, .-badret\n"
        ".globl stepfault\n.type stepfault,@function\nstepfault:\nmov 4(%esp), %esp\npopf\nret\n"
        ".size stepfault, .-stepfault\n");
#define IP(uc) ((uc)->uc_mcontext.gregs[REG_EIP])
#endif
long faulty(long *p);
long faulty2(long *p);
long stepme(long x);
long badret(long *sp);
long stepfault(long *sp);

static sigjmp_buf env;
static volatile long fault_ip;
static volatile int received, info_bad, sending = 1;
static pthread_t main_thread;

static void on_segv(int sig, siginfo_t *si, void *ctx)
{
    (void)sig; (void)si;
    fault_ip = (long)IP((ucontext_t *)ctx);
    siglongjmp(env, 1);
}

static void on_usr1(int sig, siginfo_t *si, void *ctx)
{
    (void)sig; (void)ctx;
    info_bad += si->si_code != SI_QUEUE || si->si_pid != getpid() ||
                si->si_value.sival_int != received;
    received++;
}

static void *sender(void *arg)
{
    long n = (long)arg;
    for (long i = 0; i < n; i++) {
        int before = received;
        pthread_sigqueue(main_thread, SIGUSR1, (union sigval){.sival_int = (int)i});
        while (received == before)
            ;
    }
    sending = 0;
    return NULL;
}

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 1000;
    static char altstack[65536];
    stack_t ss = {.ss_sp = altstack, .ss_size = sizeof altstack};
    sigaltstack(&ss, NULL);
    struct sigaction sa = {0};
    sa.sa_sigaction = on_segv;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigaction(SIGSEGV, &sa, NULL);
    sa.sa_sigaction = on_usr1;
    sa.sa_flags = SA_SIGINFO;
    sigaction(SIGUSR1, &sa, NULL);

    int faults = 0;
    for (int i = 0; i < 3; i++) {
        if (!sigsetjmp(env, 1))
            faulty(NULL);
        faults += fault_ip == (long)faulty + (sizeof(long) == 8 ? 0 : 4);
        if (!sigsetjmp(env, 1))
            faulty2(NULL);
        faults += fault_ip == (long)faulty2 + (sizeof(long) == 8 ? 0 : 4);
        if (!sigsetjmp(env, 1))
            badret(NULL);
        faults += fault_ip == (long)badret + (sizeof(long) == 8 ? 3 : 4);
        if (!sigsetjmp(env, 1))
            stepfault(NULL);
        faults += fault_ip == (long)stepfault + (sizeof(long) == 8 ? 3 : 4);
    }
    main_thread = pthread_self();
    pthread_t t;
    pthread_create(&t, NULL, sender, (void *)n);
    long calls = 0, bad = 0;
    while (sending) {
        bad += stepme(calls) != calls;
        calls++;
    }
    pthread_join(t, NULL);
    printf("faults_at_home=%d received=%d bad=%ld info_bad=%d\n", faults, received, bad,
           info_bad);
    return 0;
}
