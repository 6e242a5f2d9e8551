/* Answers each input line with its length; the line "b" first blocks
 * SIGTRAP and raises it, which then stays pending: a program's own
 * SIGTRAP that a tracer must neither wait for nor take. */
#include <signal.h>
#include <stdio.h>
#include <string.h>

__attribute__((noinline)) int never(int x) { return x + 1; }

int main(void)
{
    char line[64];
    puts("ready");
    fflush(stdout);
    while (fgets(line, sizeof line, stdin)) {
        if (strcmp(line, "b\n") == 0) {
            sigset_t set;
            sigemptyset(&set);
            sigaddset(&set, SIGTRAP);
            sigprocmask(SIG_BLOCK, &set, NULL);
            raise(SIGTRAP);
        }
        printf("%zu\n", strlen(line));
        fflush(stdout);
    }
    return 0;
}
