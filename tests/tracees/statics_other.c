/* The second static helper() of statics.c (not built on its own). */
static __attribute__((noinline)) int helper(int x) { return x * 2; }

int other_side(int x) { return helper(x); }
