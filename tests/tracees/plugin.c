/* A library loaded with dlopen by libuser.c and dlcycle.c; built again
 * with another SCALE, it is another library with the same layout. */
#ifndef SCALE
#define SCALE 10
#endif
__attribute__((noinline)) int plugin_work(int x) { return x * SCALE + 1; }
