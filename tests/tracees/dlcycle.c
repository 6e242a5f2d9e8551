/* dlopen, call, dlclose, three times: probes on the library must come back
 * each time it is loaded again.  Usage: dlcycle LIB.so */
#include <dlfcn.h>
#include <stdio.h>

int main(int argc, char **argv)
{
    int total = 0;
    for (int i = 0; i < 3; i++) {
        void *h = dlopen(argv[1], RTLD_NOW);
        int (*f)(int) = (int (*)(int))dlsym(h, "plugin_work");
        total += f(i);
        dlclose(h);
    }
    printf("total=%d\n", total);
    return 0;
}
