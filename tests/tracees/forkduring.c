/* A thread forks (or vforks) while another is stopped at a probe whose
 * handler adds or removes a probe: the child must get the change as its
 * parent does.  The main thread calls trigger() (the probe); the forker
 * forks when a byte arrives on stdin, which the handler sends, so the fork
 * happens while main is stopped there.  The child calls f() and trigger()
 * 20 times each and exits 0 if they all returned right; then the forker
 * calls f() 10 times.  Prints the child's exit status.  The probe is on
 * trigger+1, a popf, which is stepped, never boosted (a TF it pops would
 * trap on the slot's jump back): main's step slot is written after the
 * fork, and the child, which takes that slot over, must not find it
 * empty.
 * Usage: forkduring [fork|vfork] < a byte */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

__attribute__((noinline)) int f(int x) { __asm__ volatile(""); return x + 1; }
int trigger(int x); /* returns x */
#ifdef __x86_64__
__asm__(".globl trigger\n.type trigger,@function\ntrigger:\npushf\npopf\nneg %rdi\n"
        "mov %rdi, %rax\nneg %rax\nret\n.size trigger, .-trigger\n");
#else
__asm__(".globl trigger\n.type trigger,@function\ntrigger:\npushf\npopf\n"
        "negl 4(%esp)\nmov 4(%esp), %eax\nneg %eax\nret\n.size trigger, .-trigger\n");
#endif

static int use_vfork;

static void *forker(void *arg)
{
    (void)arg;
    char c;
    if (read(0, &c, 1) != 1)
        return NULL;
    pid_t child = use_vfork ? vfork() : fork();
    if (child == 0) {
        int sum = 0;
        for (int k = 0; k < 20; k++)
            sum += f(k) + trigger(k);
        _exit(sum == 400 ? 0 : 1);
    }
    int status = 0;
    waitpid(child, &status, 0);
    for (int k = 0; k < 10; k++)
        f(k);
    printf("child status %#x\n", status);
    return NULL;
}

int main(int argc, char **argv)
{
    pthread_t thread;
    use_vfork = argc > 1 && strcmp(argv[1], "vfork") == 0;
    if (pthread_create(&thread, NULL, forker, NULL) != 0)
        return 2;
    trigger(0);
    pthread_join(thread, NULL);
    return 0;
}
