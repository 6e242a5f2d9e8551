/* Functions whose first instruction works on the stack slot a return probe
 * swaps: ret_first is a bare ret (its emulation reads the return address),
 * call_first starts with a call (its emulation pushes just below it). */
#include <stdio.h>

__asm__(".text\n"
        ".globl ret_first\n.type ret_first, @function\n"
        "ret_first:\n\tret\n.size ret_first, .-ret_first\n"
        ".globl call_first\n.type call_first, @function\n"
        "call_first:\n\tcall ret_first\n\tret\n.size call_first, .-call_first\n");

void ret_first(void);
void call_first(void);

int main(void)
{
    for (int i = 0; i < 3; i++) {
        ret_first();
        call_first();
    }
    puts("done");
    return 0;
}
