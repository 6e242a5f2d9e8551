/* The main thread leaves with pthread_exit; a second thread waits for a
 * line on stdin, then the process exits.  A process in this state has a
 * zombie main thread, though it runs on. */
#include <pthread.h>
#include <stdio.h>
#include <unistd.h>

static void *waiter(void *arg)
{
    char c;
    (void)arg;
    return (void *)read(0, &c, 1);
}

int main(void)
{
    pthread_t thread;
    if (pthread_create(&thread, NULL, waiter, NULL) != 0)
        return 2;
    pthread_exit(NULL);
}
