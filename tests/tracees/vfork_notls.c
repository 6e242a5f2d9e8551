/* A program with no libc, so no TLS and no thread pointer (fs or gs base
 * 0): work() once, a raw vfork whose child calls work() and exits, then
 * work() again and exit 0.  Built -nostdlib -static.  The vfork is made
 * in _start itself: a child returning from a function would pop the frame
 * its parent returns through. */
__attribute__((noinline)) void work(void) { __asm__ volatile(""); }

__attribute__((noreturn)) static void exit_raw(long code)
{
#if defined(__x86_64__)
    __asm__ volatile("syscall" :: "a"(231L), "D"(code));
#else
    __asm__ volatile("int $0x80" :: "a"(252L), "b"(code));
#endif
    for (;;)
        ;
}

void _start(void)
{
    long pid;
    work();
#if defined(__x86_64__)
    __asm__ volatile("syscall" : "=a"(pid) : "a"(58L) : "rcx", "r11", "memory");
#else
    __asm__ volatile("int $0x80" : "=a"(pid) : "a"(190L) : "memory");
#endif
    if (pid == 0) {
        work();
        exit_raw(0);
    }
    work();
    exit_raw(0);
}
