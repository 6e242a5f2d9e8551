/* libc's string functions on many lengths and alignments, for probes on
 * every instruction of the implementations glibc selects on this CPU
 * (AVX2/EVEX/SSE variants: vector loads, masks, tails, page-cross paths).
 * Nothing is printed until the end, so libc's own calls (printf's) do not
 * mix with the program's.
 * Usage: libcstress N          -- N rounds, then the results
 *        libcstress --addrs    -- each function's implementation: its file
 *                                 and its offset from the file's load base */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const NAMES[] = {"strlen", "memcpy", "memset", "strcmp", "strchr", "memchr", 0};

static char a[4096 + 64], b[4096 + 64];

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--addrs") == 0) {
        for (int i = 0; NAMES[i]; i++) {
            /* dlsym runs an IFUNC's resolver: this is what callers reach */
            void *p = dlsym(RTLD_DEFAULT, NAMES[i]);
            Dl_info info;
            if (p && dladdr(p, &info))
                printf("%s %s %lx\n", NAMES[i], info.dli_fname,
                       (unsigned long)((char *)p - (char *)info.dli_fbase));
        }
        return 0;
    }
    int rounds = argc > 1 ? atoi(argv[1]) : 1;
    unsigned long acc = 0, calls = 0;
    static const int lens[] = {0, 1, 7, 15, 16, 17, 31, 32, 33, 63, 64, 65, 127, 200, 4000};
    for (int r = 0; r < rounds; r++)
        for (unsigned k = 0; k < sizeof lens / sizeof lens[0]; k++)
            for (int al = 0; al < 3; al++) {
                int n = lens[k];
                char *s = a + al * 7, *d = b + al * 5;
                memset(s, 'a' + (n + al) % 26, n);
                s[n] = 0;
                acc += strlen(s);
                memcpy(d, s, n + 1);
                acc += strcmp(d, s) == 0;
                d[n / 2] ^= 1;
                acc += strcmp(d, s) < 0 ? 3 : 5;
                char *c = strchr(s, 'a' + (n + al) % 26);
                acc += c ? (unsigned long)(c - s) : 999;
                c = strchr(s, 'Z');
                acc += c ? 7 : 11;
                c = memchr(s, 0, n + 1);
                acc += c ? (unsigned long)(c - s) : 999;
                calls += 8;
            }
    printf("acc=%lu calls=%lu\n", acc, calls);
    return 0;
}
