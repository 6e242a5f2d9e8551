/* A library function of 2101 instructions, each of which a probe runs
 * boosted: probing every one takes more boosted slots than one
 * out-of-line area holds, so the tracer maps another near the library
 * (above 2 GiB in a 32-bit tracee).  Loaded by libuser.c as its plugin:
 * plugin_work(x) returns x - 1050. */
#if defined(__x86_64__)
__asm__(".text\n .globl plugin_work\n .type plugin_work,@function\n plugin_work:\n"
        " mov %edi,%eax\n"
        " .rept 1050\n add $1,%eax\n sub $2,%eax\n .endr\n"
        " ret\n .size plugin_work,.-plugin_work\n");
#else
__asm__(".text\n .globl plugin_work\n .type plugin_work,@function\n plugin_work:\n"
        " mov 4(%esp),%eax\n"
        " .rept 1050\n add $1,%eax\n sub $2,%eax\n .endr\n"
        " ret\n .size plugin_work,.-plugin_work\n");
#endif
