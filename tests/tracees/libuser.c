/* Calls into libc and into a library it dlopens later.
 * Usage: libuser LIB.so N */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    int n = argc > 2 ? atoi(argv[2]) : 3;
    size_t total = 0;
    for (int i = 0; i < n; i++) {
        char *p = malloc(32 + i);
        strcpy(p, "probe me");
        total += strlen(p) + (size_t)getpid() * 0;
        free(p);
    }
    void *h = dlopen(argv[1], RTLD_NOW);
    if (!h) {
        fprintf(stderr, "%s\n", dlerror());
        return 1;
    }
    int (*plugin)(int) = (int (*)(int))dlsym(h, "plugin_work");
    for (int i = 0; i < n; i++)
        total += plugin(i);
    printf("total=%zu\n", total);
    return 0;
}
