/* A push at a function's first instruction that lands on a guard page
 * (PROT_NONE, like a thread stack's): the program must see its own fault,
 * at its own instruction, every time; a tracer that emulates the push with
 * a forced write into the guard page would hide it.
 *   pushy      push %rbp / %ebp first (emulated or boosted by a tracer)
 *   callfirst  call first (emulated: the pushed return address)
 * Usage: guardpage push|call N */
#define _GNU_SOURCE
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <ucontext.h>

void run_on(void *stack_top, void (*fn)(void));
void pushy(void);
void callfirst(void);

#if defined(__x86_64__)
__asm__(".globl run_on\nrun_on:\npush %rbp\nmov %rsp, %rbp\nmov %rdi, %rsp\ncall *%rsi\n"
        "mov %rbp, %rsp\npop %rbp\nret\n"
        ".globl pushy\n.type pushy,@function\npushy:\npush %rbp\npop %rbp\nret\n.size pushy, .-pushy\n"
        ".globl callfirst\n.type callfirst,@function\ncallfirst:\ncall helper\nret\n"
        ".size callfirst, .-callfirst\nhelper:\nret\n");
#define IP(uc) ((uc)->uc_mcontext.gregs[REG_RIP])
#else
__asm__(".globl run_on\nrun_on:\npush %ebp\nmov %esp, %ebp\nmov 8(%ebp), %eax\nmov 12(%ebp), %ecx\n"
        "mov %eax, %esp\ncall *%ecx\nmov %ebp, %esp\npop %ebp\nret\n"
        ".globl pushy\n.type pushy,@function\npushy:\npush %ebp\npop %ebp\nret\n.size pushy, .-pushy\n"
        ".globl callfirst\n.type callfirst,@function\ncallfirst:\ncall helper\nret\n"
        ".size callfirst, .-callfirst\nhelper:\nret\n");
#define IP(uc) ((uc)->uc_mcontext.gregs[REG_EIP])
#endif

static sigjmp_buf back;
static volatile long faults, misplaced;
static uintptr_t expected;

static void on_segv(int sig, siginfo_t *info, void *context)
{
    (void)sig;
    (void)info;
    if ((uintptr_t)IP((ucontext_t *)context) != expected)
        misplaced++;
    faults++;
    siglongjmp(back, 1);
}

int main(int argc, char **argv)
{
    if (argc < 3)
        return 2;
    void (*fn)(void) = strcmp(argv[1], "call") == 0 ? callfirst : pushy;
    int n = atoi(argv[2]);
    expected = (uintptr_t)fn;
    static char alt[1 << 16];
    stack_t ss = {.ss_sp = alt, .ss_size = sizeof(alt)};
    sigaltstack(&ss, NULL);
    struct sigaction sa = {0};
    sa.sa_sigaction = on_segv;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigaction(SIGSEGV, &sa, NULL);
    char *stack = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    mprotect(stack, 4096, PROT_NONE);
    /* run_on's call leaves the return address at the guard's upper edge */
    void *top = stack + 4096 + sizeof(void *);
    for (int i = 0; i < n; i++)
        if (!sigsetjmp(back, 1))
            run_on(top, fn);
    printf("faults=%ld misplaced=%ld\n", faults, misplaced);
    return 0;
}
