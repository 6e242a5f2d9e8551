/* Calls libc IFUNCs a known number of times: memrchr, which nothing else in
 * the program calls, and wcslen.  Build with -fno-builtin so the calls stay
 * calls.  Usage: ifuncs N [wait]; with "wait" it says "ready" and blocks
 * reading a line from stdin first (a tracer attaches meanwhile). */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <wchar.h>

int main(int argc, char **argv)
{
    int n = argc > 1 ? atoi(argv[1]) : 5;
    static const char path[] = "/usr/lib/x";
    static const wchar_t wide[] = L"wide";
    size_t total = 0;
    if (argc > 2 && !strcmp(argv[2], "wait")) {
        char line[16];
        printf("ready\n");
        fflush(stdout);
        if (!fgets(line, sizeof line, stdin))
            return 1;
    }
    for (int i = 0; i < n; i++) {
        total += (size_t)((const char *)memrchr(path, '/', sizeof path - 1) - path);
        total += wcslen(wide);
    }
    printf("total=%zu\n", total);
    return 0;
}
