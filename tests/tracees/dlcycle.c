/* dlopen, call, dlclose, three times: probes on the library must come back
 * each time it is loaded again.  With LIB2.so, that one is loaded the
 * second and third time (where LIB.so was, as a rule).
 * Usage: dlcycle LIB.so [LIB2.so] */
#include <dlfcn.h>
#include <stdio.h>

__attribute__((noinline)) int add_up(int total, int v) { return total + v; }

int main(int argc, char **argv)
{
    int total = 0;
    for (int i = 0; i < 3; i++) {
        void *h = dlopen(argc > 2 && i ? argv[2] : argv[1], RTLD_NOW);
        int (*f)(int) = (int (*)(int))dlsym(h, "plugin_work");
        total = add_up(total, f(i));
        dlclose(h);
    }
    printf("total=%d\n", total);
    return 0;
}
