/* A library of non-PIC code, as libuser.c's plugin: the loader writes the
 * addresses of tr_value and (on i386) tr_helper into its instructions (text
 * relocations, DT_TEXTREL), so the file's bytes are not the code that
 * runs.  plugin_work(x) returns 3 * (x + 40) on i386, x + 40 on x86_64. */
#if defined(__x86_64__)
__asm__(".data\n .globl tr_value\n tr_value: .long 40\n"
        ".text\n .globl plugin_work\n .type plugin_work,@function\n plugin_work:\n"
        " movabs $tr_value,%rax\n mov (%rax),%eax\n add %edi,%eax\n ret\n"
        " .size plugin_work,.-plugin_work\n");
#else
__asm__(".data\n .globl tr_value\n tr_value: .long 40\n"
        ".text\n .globl plugin_work\n .type plugin_work,@function\n plugin_work:\n"
        " mov 4(%esp),%eax\n add tr_value,%eax\n push %eax\n call tr_helper\n"
        " add $4,%esp\n ret\n .size plugin_work,.-plugin_work\n"
        " .globl tr_helper\n .type tr_helper,@function\n tr_helper:\n"
        " mov 4(%esp),%eax\n imul $3,%eax\n ret\n .size tr_helper,.-tr_helper\n");
#endif
