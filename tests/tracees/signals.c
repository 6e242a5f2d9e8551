/* Sends itself SIGUSR1 and SIGALRM (via kill and via an interval timer)
 * and counts what its handlers saw: under a correct tracer every signal
 * arrives exactly once. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/time.h>
#include <unistd.h>

static volatile sig_atomic_t usr1, alrm;

static void on_usr1(int s) { (void)s; usr1++; }
static void on_alrm(int s) { (void)s; alrm++; }

int main(int argc, char **argv)
{
    int n = argc > 1 ? atoi(argv[1]) : 100;
    struct sigaction sa = {0};
    sa.sa_handler = on_usr1;
    sigaction(SIGUSR1, &sa, NULL);
    sa.sa_handler = on_alrm;
    sigaction(SIGALRM, &sa, NULL);
    for (int i = 0; i < n; i++) {
        kill(getpid(), SIGUSR1);
        if (i % 2)
            raise(SIGALRM);
    }
    struct itimerval it = {{0, 1000}, {0, 1000}};
    setitimer(ITIMER_REAL, &it, NULL);
    int ticks = 0;
    while (alrm < n / 2 + 5)
        ticks++;
    struct itimerval off = {{0, 0}, {0, 0}};
    setitimer(ITIMER_REAL, &off, NULL);
    printf("usr1=%d alrm_at_least=%d\n", usr1, alrm >= n / 2 + 5);
    return 0;
}
