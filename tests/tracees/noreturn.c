/* A call to a noreturn function as its caller's last instruction: the
 * return address is the first byte of the next function, and a backtrace
 * must still name the caller (built with -falign-functions=1 so that no
 * padding lies between the two). */
#include <stdio.h>
#include <stdlib.h>

__attribute__((noinline)) void leaf(void) { __asm__ volatile(""); }

__attribute__((noreturn, noinline)) void fail_now(int code)
{
    leaf();
    exit(code);
}

__attribute__((noinline)) void last_call(int code) { fail_now(code); }

__attribute__((noinline)) int after(int x) { return x * 3; }

int main(int argc, char **argv)
{
    (void)argv;
    printf("%d\n", after(argc));
    fflush(stdout);
    last_call(7);
}
