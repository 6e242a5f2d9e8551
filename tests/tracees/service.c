/* Answers each input line N with handle(N) = N*N + 1; "quit" ends.  Also
 * holds a function that starts with an instruction no tracer may displace
 * (syscall), for refusal tests. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

__attribute__((noinline)) long handle(long n) { return n * n + 1; }

#if defined(__x86_64__)
__asm__(".globl raw_getpid\n.type raw_getpid,@function\nraw_getpid:\n"
        "mov $39, %eax\nsyscall\nret\n.size raw_getpid, .-raw_getpid\n");
#else
__asm__(".globl raw_getpid\n.type raw_getpid,@function\nraw_getpid:\n"
        "mov $20, %eax\nint $0x80\nret\n.size raw_getpid, .-raw_getpid\n");
#endif
long raw_getpid(void);

int main(void)
{
    char line[64];
    printf("ready %ld\n", raw_getpid() > 0 ? 1L : 0L);
    fflush(stdout);
    while (fgets(line, sizeof line, stdin)) {
        if (!strncmp(line, "quit", 4))
            break;
        printf("%ld\n", handle(atol(line)));
        fflush(stdout);
    }
    return 0;
}
