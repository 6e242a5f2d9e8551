/* A library loaded with dlopen by libuser.c. */
__attribute__((noinline)) int plugin_work(int x) { return x * 10 + 1; }
