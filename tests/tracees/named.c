/* Two threads that name themselves, "alpha" and "beta", then call leaf()
 * three and five times; the main thread calls it once.  Usage: named */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>

__attribute__((noinline)) int leaf(int x) { return x + 1; }

static void *worker(void *arg)
{
    const char *name = arg;
    int n = name[0] == 'a' ? 3 : 5, s = 0;
    pthread_setname_np(pthread_self(), name);
    for (int i = 0; i < n; i++)
        s += leaf(i);
    return (void *)(long)s;
}

int main(void)
{
    pthread_t a, b;
    void *ra, *rb;
    pthread_create(&a, NULL, worker, "alpha");
    pthread_join(a, &ra);
    pthread_create(&b, NULL, worker, "beta");
    pthread_join(b, &rb);
    printf("sum=%ld\n", (long)ra + (long)rb + leaf(0));
    return 0;
}
