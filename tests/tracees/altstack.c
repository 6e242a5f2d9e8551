/* Signal handlers on an alternate stack mapped above the thread's stack,
 * while probed functions are pending on the thread's own stack (stack
 * addresses compare only within one stack).  f() raises SIGUSR1; then
 *   call   the handler calls g(), which returns normally;
 *   out    the handler calls g(), which jumps back into f, which then
 *          returns normally (the SIGSEGV-recovery pattern);
 *   stale  the handler calls g(), which jumps out to the caller of f(); f is
 *          then called again from another call site at the same depth, and
 *          a second signal's handler calls g() at the same slot as before:
 *          f must return to the second call site.
 * Usage: altstack call|out|stale.  Prints alt_above=1 when the stacks lie
 * as the tests need. */
#define _GNU_SOURCE
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

#define ALT_SIZE 65536

static char *alt;
static const char *mode;
static sigjmp_buf jb;
static int alt_above;
static volatile int jump_in_g, after_a, after_b;
static volatile long g_sum;

__attribute__((noinline)) long g(long x)
{
    if (jump_in_g)
        siglongjmp(jb, 1);
    return x + 1;
}

static void on_usr1(int sig)
{
    (void)sig;
    g_sum = g(g_sum);
}

__attribute__((noinline)) long f(long x)
{
    if (!strcmp(mode, "out")) {
        volatile long r = sigsetjmp(jb, 1);
        if (!r)
            pthread_kill(pthread_self(), SIGUSR1);
        return x * 2 + (r != 0);
    }
    pthread_kill(pthread_self(), SIGUSR1);
    return x * 2;
}

static void *worker(void *arg)
{
    (void)arg;
    char here;
    alt_above = alt > &here;
    stack_t ss = {.ss_sp = alt, .ss_size = ALT_SIZE};
    sigaltstack(&ss, NULL);
    long r = 0;
    jump_in_g = !strcmp(mode, "out");
    if (strcmp(mode, "stale")) {
        for (long i = 0; i < 3; i++)
            r += f(i);
        return (void *)r;
    }
    jump_in_g = 1;
    if (!sigsetjmp(jb, 1))
        r = f(1); /* call site A, left by the jump out of g */
    if (++after_a > 1)
        return (void *)-1;
    jump_in_g = 0;
    r = f(2); /* call site B, at the same depth */
    after_b++;
    return (void *)r;
}

int main(int argc, char **argv)
{
    mode = argc > 1 ? argv[1] : "call";
    alt = mmap(NULL, ALT_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK,
               -1, 0);
    if (alt == MAP_FAILED)
        return 1;
    struct sigaction sa = {0};
    sa.sa_handler = on_usr1;
    sa.sa_flags = SA_ONSTACK;
    sigaction(SIGUSR1, &sa, NULL);
    pthread_t t;
    void *r;
    pthread_create(&t, NULL, worker, NULL);
    pthread_join(t, &r);
    printf("r=%ld g=%ld after_a=%d after_b=%d alt_above=%d\n", (long)r, g_sum, after_a, after_b,
           alt_above);
    return 0;
}
