/* An IFUNC whose resolver uses a vector register (xmm0), as compiled code
 * may (glibc's gettimeofday resolver zeroes a struct with it).  The
 * program loads a pattern into xmm0 and spins, saying "ready" from inside
 * the loop's asm once the register holds it, until SIGUSR1 (a handler's
 * frame keeps the vector registers); then it says whether xmm0 kept the
 * pattern and calls scale() N times.  Usage: ifuncvec N */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

__attribute__((noinline)) static int scale_a(int x) { return x * 10 + 1; }
__attribute__((noinline)) static int scale_b(int x) { return x * 10 + 1; }

static void *pick_scale(void)
{
    __asm__ volatile("pxor %%xmm0, %%xmm0" ::: "xmm0");
    return scale_a == scale_b ? (void *)scale_a : (void *)scale_b;
}

int scale(int x) __attribute__((ifunc("pick_scale")));

static volatile int done;
static const unsigned char pattern[16] = "0123456789abcdef";
static unsigned char seen[16];

static void on_usr1(int sig)
{
    (void)sig;
    done = 1;
}

/* Spin with the pattern in xmm0 until SIGUSR1; what xmm0 holds then goes
 * to ``seen``.  "ready" is written by a system call from inside the asm,
 * which keeps the vector registers. */
static void spin(void)
{
    static const char ready[] = "ready\n";
#if defined(__x86_64__)
    __asm__ volatile(
        "movdqu %[p], %%xmm0\n"
        "mov $1, %%eax\n mov $1, %%edi\n mov $6, %%edx\n syscall\n"
        "1: cmpl $0, %[d]\n je 1b\n"
        "movdqu %%xmm0, %[o]\n"
        : [o] "=m" (seen) : [p] "m" (pattern), "S" (ready), [d] "m" (done)
        : "rax", "rdi", "rdx", "rcx", "r11", "xmm0", "memory");
#else
    __asm__ volatile(
        "movdqu %[p], %%xmm0\n"
        "mov $4, %%eax\n mov $1, %%ebx\n mov $6, %%edx\n int $0x80\n"
        "1: cmpl $0, %[d]\n je 1b\n"
        "movdqu %%xmm0, %[o]\n"
        : [o] "=m" (seen) : [p] "m" (pattern), "c" (ready), [d] "m" (done)
        : "eax", "ebx", "edx", "xmm0", "memory");
#endif
}

int main(int argc, char **argv)
{
    int n = argc > 1 ? atoi(argv[1]) : 3, total = 0;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_usr1;
    sa.sa_flags = SA_RESTART;
    sigaction(SIGUSR1, &sa, 0);
    spin();
    for (int i = 0; i < n; i++)
        total += scale(i);
    printf("%s total=%d\n", memcmp(seen, pattern, sizeof seen) ? "clobbered" : "kept", total);
    return 0;
}
