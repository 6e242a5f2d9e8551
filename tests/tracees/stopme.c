/* Answers each input line with its length; used to check that SIGSTOP and
 * SIGCONT from outside behave as without a tracer. */
#include <stdio.h>
#include <string.h>

int main(void)
{
    char line[128];
    puts("ready");
    fflush(stdout);
    while (fgets(line, sizeof line, stdin)) {
        printf("%zu\n", strlen(line));
        fflush(stdout);
    }
    return 0;
}
