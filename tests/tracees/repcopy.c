/* Long rep movsb copies, which a tracer single-steps: a step ends when an
 * interrupt cuts the copy short, with ip still on the instruction, and a
 * detach can come right then.  The copy must still finish correctly. */
#include <stdio.h>
#include <string.h>

static char src[1 << 26], dst[1 << 26];
void cp(char *d, const char *s, long n);
#if defined(__x86_64__)
__asm__(".globl cp\n.type cp,@function\ncp:\nmov %rdx, %rcx\n.byte 0x2e, 0xf3, 0xa4\nret\n"
        ".size cp, .-cp\n");
#else
__asm__(".globl cp\n.type cp,@function\ncp:\npush %esi\npush %edi\nmov 12(%esp), %edi\n"
        "mov 16(%esp), %esi\nmov 20(%esp), %ecx\n.byte 0x2e, 0xf3, 0xa4\npop %edi\npop %esi\nret\n"
        ".size cp, .-cp\n");
#endif

int main(void)
{
    memset(src, 7, sizeof src);
    puts("copying");
    fflush(stdout);
    for (int i = 0; i < 4; i++)
        cp(dst, src, sizeof src);
    printf("done %d\n", memcmp(dst, src, sizeof src));
    return 0;
}
