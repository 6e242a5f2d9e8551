/* A call through a register that faults, at a probed instruction: the
 * program's SIGSEGV handler must see ip and sp where it sees them untraced.
 * On x86_64 the target is non-canonical, so the call itself faults with
 * nothing pushed (a boosted copy pushes before its jmp faults: the tracer
 * must take the push back); on i386 the target is unmapped, so the fault
 * comes at the target with the return address pushed.
 *   callbad    call *%rdi first / mov 4(%esp),%eax; call *%eax
 * Usage: icallfault N */
#define _GNU_SOURCE
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <ucontext.h>

void run_bad(uintptr_t target);
uintptr_t saved_sp;

#if defined(__x86_64__)
__asm__(".text\n.globl run_bad\nrun_bad:\nmov %rsp, saved_sp(%rip)\ncall callbad\nret\n"
        ".globl callbad\n.type callbad,@function\ncallbad:\ncall *%rdi\nret\n"
        ".size callbad, .-callbad\n");
#define IP(uc) ((uc)->uc_mcontext.gregs[REG_RIP])
#define SP(uc) ((uc)->uc_mcontext.gregs[REG_RSP])
#define TARGET ((uintptr_t)1 << 63)
#else
__asm__(".text\n.globl run_bad\nrun_bad:\nmov 4(%esp), %eax\nmov %esp, saved_sp\npush %eax\n"
        "call callbad\nadd $4, %esp\nret\n"
        ".globl callbad\n.type callbad,@function\ncallbad:\nmov 4(%esp), %eax\ncall *%eax\nret\n"
        ".size callbad, .-callbad\n");
#define IP(uc) ((uc)->uc_mcontext.gregs[REG_EIP])
#define SP(uc) ((uc)->uc_mcontext.gregs[REG_ESP])
#define TARGET ((uintptr_t)0x10)
#endif
void callbad(void);

static sigjmp_buf back;
static volatile long faults, misplaced;

static void on_segv(int sig, siginfo_t *info, void *context)
{
    (void)sig;
    (void)info;
    ucontext_t *uc = context;
#if defined(__x86_64__)
    /* saved_sp was taken before run_bad's call pushed its return address */
    uintptr_t ip = (uintptr_t)callbad, sp = saved_sp - 8;
#else
    /* before run_bad's push of the argument, and both calls' pushes */
    uintptr_t ip = TARGET, sp = saved_sp - 12;
#endif
    if ((uintptr_t)IP(uc) != ip || (uintptr_t)SP(uc) != sp)
        misplaced++;
    faults++;
    siglongjmp(back, 1);
}

int main(int argc, char **argv)
{
    if (argc < 2)
        return 2;
    int n = atoi(argv[1]);
    struct sigaction sa = {0};
    sa.sa_sigaction = on_segv;
    sa.sa_flags = SA_SIGINFO;
    sigaction(SIGSEGV, &sa, NULL);
    for (int i = 0; i < n; i++)
        if (!sigsetjmp(back, 1))
            run_bad(TARGET);
    printf("faults=%ld misplaced=%ld\n", faults, misplaced);
    return 0;
}
