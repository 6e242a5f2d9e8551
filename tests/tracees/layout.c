/* Prints the kernel's structure layouts as the C library sees them, so a
 * test can compare them with the ctypes ones. */
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <sys/user.h>

#define F(s, f) printf(#f " %zu\n", offsetof(struct s, f))

int main(void)
{
    printf("user_regs_struct %zu\n", sizeof(struct user_regs_struct));
    F(user_regs_struct, r15); F(user_regs_struct, rax); F(user_regs_struct, orig_rax);
    F(user_regs_struct, rip); F(user_regs_struct, cs); F(user_regs_struct, eflags);
    F(user_regs_struct, rsp); F(user_regs_struct, fs_base); F(user_regs_struct, gs);
    printf("user_fpregs_struct %zu\n", sizeof(struct user_fpregs_struct));
    F(user_fpregs_struct, mxcsr); F(user_fpregs_struct, st_space); F(user_fpregs_struct, xmm_space);
    printf("siginfo_t %zu\n", sizeof(siginfo_t));
    printf("si_signo %zu\n", offsetof(siginfo_t, si_signo));
    printf("si_code %zu\n", offsetof(siginfo_t, si_code));
    printf("si_pid %zu\n", offsetof(siginfo_t, si_pid));
    printf("si_addr %zu\n", offsetof(siginfo_t, si_addr));
    printf("si_status %zu\n", offsetof(siginfo_t, si_status));
    return 0;
}
