/* Prints which of SIGHUP, SIGINT, SIGTERM and SIGPIPE it was started with
 * ignored: dispositions a tracer must pass on as a shell would. */
#include <signal.h>
#include <stdio.h>

int main(void)
{
    int sigs[] = {SIGHUP, SIGINT, SIGTERM, SIGPIPE};
    for (int i = 0; i < 4; i++) {
        struct sigaction old;
        sigaction(sigs[i], NULL, &old);
        printf("%d:%s ", sigs[i], old.sa_handler == SIG_IGN ? "ign" : "dfl");
    }
    putchar('\n');
    return 0;
}
