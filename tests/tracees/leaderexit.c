/* The main thread leaves with pthread_exit while a second thread calls a
 * function whose indirect call a tracer emulates, writing
 * the return address: the process then goes on with a zombie leader, whose
 * pid no longer reaches the address space through process_vm_writev.
 * Usage: leaderexit N */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

long callfirst(long i, long (*leaf)(long));
long leaf(long i);
#if defined(__x86_64__)
__asm__(".globl callfirst\n.type callfirst,@function\ncallfirst:\n"
        "call *%rsi\nret\n.size callfirst, .-callfirst\n"
        ".globl leaf\n.type leaf,@function\nleaf:\nlea 1(%rdi), %rax\nret\n.size leaf, .-leaf\n");
#else
__asm__(".globl callfirst\n.type callfirst,@function\ncallfirst:\nmov 8(%esp), %eax\n"
        "call *%eax\nret\n.size callfirst, .-callfirst\n"
        ".globl leaf\n.type leaf,@function\nleaf:\nmov 8(%esp), %eax\nlea 1(%eax), %eax\nret\n"
        ".size leaf, .-leaf\n");
#endif

static long calls;

static void *work(void *arg)
{
    (void)arg;
    long sum = 0;
    for (long i = 0; i < calls; i++)
        sum += callfirst(i, leaf);
    printf("sum=%ld\n", sum);
    fflush(stdout);
    return NULL;
}

int main(int argc, char **argv)
{
    calls = argc > 1 ? atol(argv[1]) : 10;
    pthread_t thread;
    pthread_create(&thread, NULL, work, NULL);
    pthread_exit(NULL);
}
