/* A thread whose signal handler runs on an alternate stack mapped above the
 * thread's own stack, and calls a probed function while another probed
 * function waits on the thread's stack: stack addresses compare only
 * within one stack, so a tracer that compares them across the two loses
 * the pending return of the outer function.  Prints alt_above=1 when the
 * layout is the one the test needs. */
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <sys/mman.h>

#define ALT_SIZE 65536

static char *alt;
static volatile long inner_sum;
static int alt_above;

__attribute__((noinline)) long inner(long x) { return x + 1; }

static void on_usr1(int sig)
{
    (void)sig;
    inner_sum = inner(inner_sum);
}

__attribute__((noinline)) long outer(long x)
{
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
    long sum = 0;
    for (long i = 0; i < 5; i++)
        sum += outer(i);
    return (void *)sum;
}

int main(void)
{
    /* Mapped before the thread's stack, so (mmap going down) above it. */
    alt = mmap(NULL, ALT_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK,
               -1, 0);
    if (alt == MAP_FAILED)
        return 1;
    struct sigaction sa = {0};
    sa.sa_handler = on_usr1;
    sa.sa_flags = SA_ONSTACK;
    sigaction(SIGUSR1, &sa, NULL);
    pthread_t t;
    void *sum;
    pthread_create(&t, NULL, worker, NULL);
    pthread_join(t, &sum);
    printf("sum=%ld inner=%ld alt_above=%d\n", (long)sum, inner_sum, alt_above);
    return 0;
}
