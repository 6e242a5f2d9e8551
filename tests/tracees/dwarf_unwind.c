/* A call chain main -> level_a -> level_b -> level_c -> qsort (libc) ->
 * compare -> level_d -> snapshot that saves its own registers, stack and
 * memory map to files, so a test can replay an unwinder over real frames
 * without a process.
 *
 * "signal" takes the snapshot in a signal handler instead:
 * main -> level_sig -> raise -> (signal) on_signal -> level_d -> snapshot.
 * "noreturn" takes it below a call that ends its function, so the return
 * address is the first byte after the caller:
 * main -> level_nr -> stop_here (noreturn) -> snapshot, then exit.
 *
 * usage: dwarf_unwind PREFIX [signal|noreturn]
 * writes PREFIX.regs, PREFIX.stack, PREFIX.maps and PREFIX.vdso
 *
 * PREFIX.regs is one "name value" per line (hex): pc, sp, the frame
 * pointer, the callee-saved registers, and stack_base (the address of the
 * first byte of PREFIX.stack, equal to sp).
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NOIPA __attribute__((noipa))

void snapshot(unsigned long *buf);

static const char *prefix;
static unsigned long regs_buf[8];
static int taken;

#if defined(__x86_64__)
static const char *const reg_names[] = {"pc", "sp", "fp", "rbx", "r12", "r13", "r14", "r15"};
#define NREGS 8
/* snapshot(buf): keeps a frame-pointer frame with CFI for itself, saves
 * its registers at .Lcap into buf, then calls write_snapshot(buf) from
 * below the saved stack pointer so the saved stack stays intact. */
__asm__(
    ".text\n"
    ".globl snapshot\n"
    ".type snapshot, @function\n"
    "snapshot:\n"
    ".cfi_startproc\n"
    "    pushq %rbp\n"
    ".cfi_adjust_cfa_offset 8\n"
    ".cfi_rel_offset %rbp, 0\n"
    "    movq %rsp, %rbp\n"
    ".cfi_def_cfa_register %rbp\n"
    ".Lcap:\n"
    "    leaq .Lcap(%rip), %rax\n"
    "    movq %rax, 0(%rdi)\n"
    "    movq %rsp, 8(%rdi)\n"
    "    movq %rbp, 16(%rdi)\n"
    "    movq %rbx, 24(%rdi)\n"
    "    movq %r12, 32(%rdi)\n"
    "    movq %r13, 40(%rdi)\n"
    "    movq %r14, 48(%rdi)\n"
    "    movq %r15, 56(%rdi)\n"
    "    call write_snapshot\n"
    "    popq %rbp\n"
    ".cfi_def_cfa %rsp, 8\n"
    "    ret\n"
    ".cfi_endproc\n"
    ".size snapshot, .-snapshot\n");
#else
static const char *const reg_names[] = {"pc", "sp", "fp", "ebx", "esi", "edi"};
#define NREGS 6
__asm__(
    ".text\n"
    ".globl snapshot\n"
    ".type snapshot, @function\n"
    "snapshot:\n"
    ".cfi_startproc\n"
    "    pushl %ebp\n"
    ".cfi_adjust_cfa_offset 4\n"
    ".cfi_rel_offset %ebp, 0\n"
    "    movl %esp, %ebp\n"
    ".cfi_def_cfa_register %ebp\n"
    ".Lcap:\n"
    "    movl 8(%ebp), %eax\n"
    "    movl %esp, 4(%eax)\n"
    "    movl %ebp, 8(%eax)\n"
    "    movl %ebx, 12(%eax)\n"
    "    movl %esi, 16(%eax)\n"
    "    movl %edi, 20(%eax)\n"
    "    call .Lhere\n"
    ".Lhere:\n"
    "    popl %ecx\n"
    "    subl $(.Lhere - .Lcap), %ecx\n"
    "    movl %ecx, 0(%eax)\n"
    "    subl $4, %esp\n"
    "    pushl %eax\n"
    "    call write_snapshot\n"
    "    addl $8, %esp\n"
    "    popl %ebp\n"
    ".cfi_def_cfa %esp, 4\n"
    "    ret\n"
    ".cfi_endproc\n"
    ".size snapshot, .-snapshot\n");
#endif

static FILE *open_out(const char *ext)
{
    char path[4096];
    snprintf(path, sizeof path, "%s.%s", prefix, ext);
    FILE *f = fopen(path, "w");
    if (!f) {
        perror(path);
        exit(2);
    }
    return f;
}

static void write_bytes(const char *ext, unsigned long from, unsigned long to)
{
    FILE *out = open_out(ext);
    fwrite((void *)from, 1, to - from, out);
    fclose(out);
}

__attribute__((used)) static void write_snapshot(unsigned long *buf)
{
    unsigned long sp = buf[1], lo, hi, stack_top = 0, vdso_lo = 0, vdso_hi = 0;
    char line[4096];
    FILE *maps = fopen("/proc/self/maps", "r"), *out = open_out("maps");
    while (fgets(line, sizeof line, maps)) {
        fputs(line, out);
        if (sscanf(line, "%lx-%lx", &lo, &hi) != 2)
            continue;
        if (lo <= sp && sp < hi)
            stack_top = hi;
        if (strstr(line, "[vdso]"))
            vdso_lo = lo, vdso_hi = hi;
    }
    fclose(maps);
    fclose(out);
    if (!stack_top)
        exit(3);

    out = open_out("regs");
    for (int i = 0; i < NREGS; i++)
        fprintf(out, "%s %lx\n", reg_names[i], buf[i]);
    fprintf(out, "stack_base %lx\n", sp);
    fclose(out);

    write_bytes("stack", sp, stack_top);
    /* The vDSO is an ELF image only in memory; on i386 it holds the
     * signal trampoline and its CFI. */
    if (vdso_lo)
        write_bytes("vdso", vdso_lo, vdso_hi);
}

NOIPA int level_d(int x)
{
    if (!taken) {
        taken = 1;
        snapshot(regs_buf);
    }
    return x * 2 + 1;
}

NOIPA int compare(const void *a, const void *b)
{
    int x = *(const int *)a, y = *(const int *)b;
    level_d(x);
    return (x > y) - (x < y);
}

NOIPA int level_c(int *v, int n)
{
    qsort(v, n, sizeof *v, compare);
    return v[0] + 1;
}

NOIPA int level_b(int *v, int n)
{
    return level_c(v, n) * 3;
}

NOIPA int level_a(int *v, int n)
{
    return level_b(v, n) + 7;
}

static volatile int last_signal;

NOIPA void on_signal(int sig)
{
    level_d(sig);
    last_signal = sig;
}

NOIPA int level_sig(int x)
{
    signal(SIGUSR1, on_signal);
    raise(SIGUSR1);
    return x + 1;
}

NOIPA __attribute__((noreturn)) void stop_here(int code)
{
    snapshot(regs_buf);
    exit(code);
}

NOIPA void level_nr(int code)
{
    stop_here(code - 1);
}

int main(int argc, char **argv)
{
    int v[] = {5, 3, 9, 1, 7, 2};
    if (argc < 2) {
        fprintf(stderr, "usage: %s PREFIX [signal|noreturn]\n", argv[0]);
        return 2;
    }
    prefix = argv[1];
    if (argc > 2 && !strcmp(argv[2], "noreturn"))
        level_nr(1);
    if (argc > 2)
        return level_sig(argc) == argc + 1 ? 0 : 1;
    return level_a(v, 6) == 13 ? 0 : 1;
}
