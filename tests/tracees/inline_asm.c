/* Functions whose first five bytes hold instructions an inline probe must
 * relocate (rip-relative operands, calls, short and conditional jumps), or
 * that it must refuse (too short, a branch target inside, a syscall), as
 * top-level asm so the bytes are exact whatever the compiler does.
 * f_icall calls through a register inside its first five bytes (a thread
 * in the callee returns into them); f_inner starts inside f_outer, and
 * f_label (a label with no type) inside f_outer2.
 * Usage: inline_asm calls N | spin K US | wait | until | icall | inner N
 *        | longjmp | phases N */
#define _GNU_SOURCE
#include <fcntl.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

long k_value = 40;
long f_riprel(long x), f_call(long x), f_jmp(long x), f_jcc(long x), f_cmp(long x);
long f_pc(void), f_tiny(void), f_loop(void), f_sys(void);
long f_outer(long x), f_inner(long x), f_outer2(long x), f_label(long x);

#if defined(__x86_64__)
__asm__(
    ".text\n"
    ".globl f_riprel\n .type f_riprel,@function\n"
    "f_riprel: mov k_value(%rip),%rax\n add %rdi,%rax\n ret\n .size f_riprel,.-f_riprel\n"
    ".globl f_call\n .type f_call,@function\n"
    "f_call: call helper\n add %rdi,%rax\n ret\n .size f_call,.-f_call\n"
    "helper: mov $5,%eax\n ret\n"
    ".globl f_jmp\n .type f_jmp,@function\n"
    "f_jmp: jmp 1f\n nop\n nop\n nop\n nop\n nop\n nop\n 1: lea 1(%rdi),%rax\n ret\n"
    " .size f_jmp,.-f_jmp\n"
    ".globl f_jcc\n .type f_jcc,@function\n"
    "f_jcc: test $1,%dil\n jz 1f\n lea 1(%rdi),%rax\n ret\n 1: mov $7,%eax\n ret\n"
    " .size f_jcc,.-f_jcc\n"
    ".globl f_cmp\n .type f_cmp,@function\n"
    "f_cmp: cmpq $40,k_value(%rip)\n jne 1f\n lea 2(%rdi),%rax\n ret\n 1: xor %eax,%eax\n ret\n"
    " .size f_cmp,.-f_cmp\n"
    ".globl f_pc\n .type f_pc,@function\n"
    "f_pc: call 1f\n 1: pop %rax\n sub $5,%rax\n ret\n .size f_pc,.-f_pc\n"
    ".globl f_tiny\n .type f_tiny,@function\n"
    "f_tiny: xor %eax,%eax\n ret\n .size f_tiny,.-f_tiny\n"
    ".globl f_loop\n .type f_loop,@function\n"
    "f_loop: xor %eax,%eax\n 1: inc %eax\n cmp $3,%eax\n jne 1b\n ret\n .size f_loop,.-f_loop\n"
    ".globl f_sys\n .type f_sys,@function\n"
    "f_sys: xor %eax,%eax\n mov $39,%al\n syscall\n ret\n .size f_sys,.-f_sys\n"
    ".globl f_icall\n .type f_icall,@function\n"
    "f_icall: push %rbx\n call *%rdi\n pop %rbx\n nop\n nop\n nop\n ret\n"
    " .size f_icall,.-f_icall\n"
    ".globl f_outer\n .type f_outer,@function\n"
    "f_outer: xor %eax,%eax\n .globl f_inner\n .type f_inner,@function\n"
    "f_inner: lea 1(%rdi),%rax\n ret\n .size f_inner,.-f_inner\n .size f_outer,.-f_outer\n"
    ".globl f_outer2\n .type f_outer2,@function\n"
    "f_outer2: xor %eax,%eax\n .globl f_label\n"
    "f_label: lea 2(%rdi),%rax\n ret\n .size f_outer2,.-f_outer2\n");
void f_icall(void (*cb)(void));
#else
__asm__(
    ".text\n"
    ".globl f_riprel\n .type f_riprel,@function\n"
    "f_riprel: mov 4(%esp),%eax\n add $40,%eax\n ret\n .size f_riprel,.-f_riprel\n"
    ".globl f_call\n .type f_call,@function\n"
    "f_call: call helper\n add 4(%esp),%eax\n ret\n .size f_call,.-f_call\n"
    "helper: mov $5,%eax\n ret\n"
    ".globl f_jmp\n .type f_jmp,@function\n"
    "f_jmp: jmp 1f\n nop\n nop\n nop\n nop\n nop\n nop\n 1: mov 4(%esp),%eax\n inc %eax\n ret\n"
    " .size f_jmp,.-f_jmp\n"
    ".globl f_jcc\n .type f_jcc,@function\n"
    "f_jcc: testb $1,4(%esp)\n jz 1f\n mov 4(%esp),%eax\n inc %eax\n ret\n 1: mov $7,%eax\n ret\n"
    " .size f_jcc,.-f_jcc\n"
    ".globl f_cmp\n .type f_cmp,@function\n"
    "f_cmp: xor %eax,%eax\n cmp $1,%al\n jne 1f\n ud2\n 1: mov 4(%esp),%eax\n add $2,%eax\n ret\n"
    " .size f_cmp,.-f_cmp\n"
    ".globl f_pc\n .type f_pc,@function\n"
    "f_pc: call 1f\n 1: pop %eax\n sub $5,%eax\n ret\n .size f_pc,.-f_pc\n"
    ".globl f_tiny\n .type f_tiny,@function\n"
    "f_tiny: xor %eax,%eax\n ret\n .size f_tiny,.-f_tiny\n"
    ".globl f_loop\n .type f_loop,@function\n"
    "f_loop: xor %eax,%eax\n 1: inc %eax\n cmp $3,%eax\n jne 1b\n ret\n .size f_loop,.-f_loop\n"
    ".globl f_sys\n .type f_sys,@function\n"
    "f_sys: xor %eax,%eax\n mov $20,%al\n int $0x80\n ret\n .size f_sys,.-f_sys\n"
    ".globl f_icall\n .type f_icall,@function\n"
    "f_icall: push %ebx\n call *%ecx\n pop %ebx\n nop\n nop\n nop\n ret\n"
    " .size f_icall,.-f_icall\n"
    ".globl f_outer\n .type f_outer,@function\n"
    "f_outer: xor %eax,%eax\n .globl f_inner\n .type f_inner,@function\n"
    "f_inner: mov 4(%esp),%eax\n inc %eax\n ret\n .size f_inner,.-f_inner\n"
    " .size f_outer,.-f_outer\n"
    ".globl f_outer2\n .type f_outer2,@function\n"
    "f_outer2: xor %eax,%eax\n .globl f_label\n"
    "f_label: mov 4(%esp),%eax\n add $2,%eax\n ret\n .size f_outer2,.-f_outer2\n");
__attribute__((fastcall)) void f_icall(void (*cb)(void));
#endif

static long now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000000000L + ts.tv_nsec;
}

/* Busy for at least ``us`` microseconds: a duration two timers can agree on. */
__attribute__((noinline)) long spin(long us)
{
    long start = now_ns(), n = 0;
    while (now_ns() - start < us * 1000)
        n++;
    return n;
}

extern char __executable_start, etext;

/* Blocks in read(): a latency probe's hijacked return address is on the
 * stack when the tracer detaches; says whether it was put back. */
__attribute__((noinline)) int wait_line(void)
{
    char buf[64];
    if (read(0, buf, sizeof buf) < 0)
        return -1;
    char *ret = __builtin_return_address(0);
    return ret >= &__executable_start && ret < &etext;
}

__attribute__((noinline)) void callback(void) { __asm__ volatile(""); }
__attribute__((noinline)) void marker(void) { __asm__ volatile(""); }

static jmp_buf env;

/* Leaves by longjmp, or blocks in read() once marker() has run. */
__attribute__((noinline)) long jump_or_wait(int jump)
{
    char buf[64];
    if (jump)
        longjmp(env, 1);
    marker();
    return read(0, buf, sizeof buf) > 0 ? 7 : -1;
}

int main(int argc, char **argv)
{
    if (argc > 2 && strcmp(argv[1], "calls") == 0) {
        long n = atol(argv[2]), s[9] = {0};
        for (long i = 0; i < n; i++) {
            s[0] += f_riprel(i); s[1] += f_call(i); s[2] += f_jmp(i);
            s[3] += f_jcc(i); s[4] += f_cmp(i); s[5] += f_pc() == (long)f_pc;
            s[6] += f_tiny(); s[7] += f_loop(); s[8] += f_sys() == getpid();
        }
        for (int k = 0; k < 9; k++)
            printf("%ld%c", s[k], k == 8 ? '\n' : ' ');
    } else if (argc > 3 && strcmp(argv[1], "spin") == 0) {
        for (long i = atol(argv[2]); i > 0; i--)
            spin(atol(argv[3]));
        puts("spun");
    } else if (argc > 1 && strcmp(argv[1], "until") == 0) {
        /* Calls f_riprel without pause until stdin is closed, checking
         * each result: a tracer may detach while a call is in its probe. */
        long n = 0, bad = 0;
        fcntl(0, F_SETFL, fcntl(0, F_GETFL) | O_NONBLOCK);
        for (;;) {
            bad += f_riprel(n) != n + 40;
            if (++n % 4096 == 0 && read(0, &(char){0}, 1) == 0)
                break;
        }
        printf("until %s\n", bad ? "wrong results" : "ok");
    } else if (argc > 1 && strcmp(argv[1], "wait") == 0) {
        printf("return address %s\n", wait_line() == 1 ? "own" : "foreign");
    } else if (argc > 1 && strcmp(argv[1], "icall") == 0) {
        f_icall(callback);
        puts("icall returned");
    } else if (argc > 2 && strcmp(argv[1], "inner") == 0) {
        long n = atol(argv[2]), sum = 0;
        for (long i = 0; i < n; i++)
            sum += f_inner(i) + f_label(i);
        printf("inner %ld\n", sum);
    } else if (argc > 1 && strcmp(argv[1], "longjmp") == 0) {
        /* Both calls from here: their return addresses share one slot. */
        static volatile int returns;
        if (!setjmp(env))
            jump_or_wait(1);
        if (++returns > 1) {
            puts("longjmp: back at the first call");
            return 1;
        }
        long r = jump_or_wait(0);
        printf("longjmp: %ld\n", r);
    } else if (argc > 2 && strcmp(argv[1], "phases") == 0) {
        long n = atol(argv[2]), s = 0;
        for (long i = 0; i < n; i++)
            s += f_riprel(i) + f_tiny();
        marker();
        for (long i = 0; i < n; i++)
            s += f_riprel(i) + f_tiny();
        printf("phases %ld\n", s);
    } else {
        return 2;
    }
    return 0;
}
