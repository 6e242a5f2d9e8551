/*
 * Reference tracer: the floor a ptrace probe tracer can reach.
 *
 * It makes exactly the stops and system calls that a smart tracer makes for
 * one probe, with no decoding, no lookups and no allocation on the hot path,
 * so the Python tracer's ns/hit can be read as a ratio to it.  A stop reads
 * the registers the way the Python tracer does: all of them (GETREGS) when
 * the hit needs more than ip (a push to emulate, a return address to swap,
 * arguments to read), else ip alone (PEEKUSER, half the cost).
 *
 * Schemes (per hit; V = probe address, L = instruction length, S = XOL slot):
 *   emulate  push %rbp/%ebp, call rel32 or call *%rsi/%edx: write the
 *            pushed word below sp (process_vm_writev, which honours a
 *            guard page as the program's own push would), sp -= W, ip,
 *            SETREGS; endbr: POKEUSER ip = V + L; a one-byte nop: nothing
 *            written (the trap left ip at V + 1 already).              1 stop
 *   boost    POKEUSER ip = S; the slot holds the copy and a jmp back
 *            (for a call rel32: push of V + L, high half set with a mov
 *            on x86_64, and a jmp to the call's target; for call *%reg
 *            the same push and a jmp through the register; a ret leaves
 *            by itself, so its jmp back is never reached).          1 stop
 *   step     POKEUSER ip = S, SINGLESTEP; then ip += V - S.          2 stops
 *   return   swap the return address for an int3 trampoline in the XOL
 *            page, then run the entry as the Python tracer does: a push
 *            boosted, a nop skipped; at the trampoline, ip = saved.  2 stops
 *
 * The XOL page is mapped by an mmap system call injected at the exec stop,
 * near the code so a rip-relative displacement can be re-encoded for the
 * slot, and written through /proc/PID/mem.  The tracee may be 32-bit: the
 * registers are read in the x86_64 layout either way, with esp/eip in the
 * low halves, and words are 4 bytes.
 *
 * Usage and output: see usage() below.
 */
#define _GNU_SOURCE
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/ptrace.h>
#include <sys/uio.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define OFF_RIP offsetof(struct user_regs_struct, rip)
#define PAGE 4096UL
#define SLOT_OFF 0  /* the instruction copy and its jmp back */
#define TRAMP_OFF 64 /* the return trampoline: one int3 */
#define MAX_THREADS 64
#define MAX_DEPTH 64

enum scheme { EMULATE, BOOST, STEP, RETURN };
enum kind { K_PUSH, K_NOP, K_RIPREL, K_PLAIN, K_CALL, K_ICALL, K_RET };

struct insn {
    enum kind kind;
    unsigned len;
    unsigned disp_off; /* K_RIPREL: where the disp32 sits */
};

struct thread {
    pid_t tid;
    int stepping;
    int depth;
    uint64_t ret[MAX_DEPTH];
};

static struct {
    enum scheme scheme;
    int read_args;
    pid_t pid;
    int mem;   /* /proc/PID/mem, for writes */
    int is32;  /* tracee runs in 32-bit mode (cs == 0x23) */
    unsigned word;
    uint64_t probe, slot, tramp;
    uint64_t call_target; /* K_CALL: V + 5 + rel32 */
    struct insn insn;
    struct thread threads[MAX_THREADS];
    uint64_t hits, stops, returns, args_sum;
    uint64_t t_first, t_last;
} T;

static void die(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));
static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("ref_tracer: ", stderr);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    if (T.pid > 0)
        kill(T.pid, SIGKILL);
    exit(1);
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static void xptrace(enum __ptrace_request req, pid_t tid, uint64_t addr, uint64_t data,
                    const char *what)
{
    if (ptrace(req, tid, (void *)(uintptr_t)addr, (void *)(uintptr_t)data) == -1)
        die("%s(%d): %s", what, tid, strerror(errno));
}

static void getregs(pid_t tid, struct user_regs_struct *r)
{
    xptrace(PTRACE_GETREGS, tid, 0, (uintptr_t)r, "GETREGS");
}

static void setregs(pid_t tid, const struct user_regs_struct *r)
{
    xptrace(PTRACE_SETREGS, tid, 0, (uintptr_t)r, "SETREGS");
}

static uint64_t get_ip(pid_t tid)
{
    errno = 0;
    long ip = ptrace(PTRACE_PEEKUSER, tid, (void *)OFF_RIP, NULL);
    if (ip == -1 && errno)
        die("PEEKUSER rip(%d): %s", tid, strerror(errno));
    return (uint64_t)ip;
}

static void set_ip(pid_t tid, uint64_t ip)
{
    xptrace(PTRACE_POKEUSER, tid, OFF_RIP, ip, "POKEUSER rip");
}

static void resume(pid_t tid, int sig)
{
    xptrace(PTRACE_CONT, tid, 0, (uint64_t)sig, "CONT");
}

static void mem_write(uint64_t addr, const void *buf, size_t len)
{
    if (pwrite(T.mem, buf, len, (off_t)addr) != (ssize_t)len)
        die("writing %zu bytes at %#" PRIx64 ": %s", len, addr, strerror(errno));
}

/* A write with the program's own rights, for an emulated push. */
static void prog_write(uint64_t addr, const void *buf, size_t len)
{
    struct iovec local = {(void *)buf, len}, remote = {(void *)(uintptr_t)addr, len};
    if (process_vm_writev(T.pid, &local, 1, &remote, 1, 0) != (ssize_t)len)
        die("writing %zu bytes at %#" PRIx64 ": %s", len, addr, strerror(errno));
}

static void mem_read(uint64_t addr, void *buf, size_t len)
{
    struct iovec local = {buf, len}, remote = {(void *)(uintptr_t)addr, len};
    if (process_vm_readv(T.pid, &local, 1, &remote, 1, 0) != (ssize_t)len)
        die("reading %zu bytes at %#" PRIx64 ": %s", len, addr, strerror(errno));
}

/* Store one tracee word (4 or 8 bytes) into buf at index i. */
static void put_word(unsigned char *buf, unsigned i, uint64_t v)
{
    if (T.word == 4) {
        uint32_t w = (uint32_t)v;
        memcpy(buf + 4 * i, &w, 4);
    } else {
        memcpy(buf + 8 * i, &v, 8);
    }
}

static uint64_t get_word(const unsigned char *buf, unsigned i)
{
    if (T.word == 4) {
        uint32_t w;
        memcpy(&w, buf + 4 * i, 4);
        return w;
    }
    uint64_t v;
    memcpy(&v, buf + 8 * i, 8);
    return v;
}

static struct thread *thread_of(pid_t tid)
{
    struct thread *free_slot = NULL;
    for (int k = 0; k < MAX_THREADS; k++) {
        if (T.threads[k].tid == tid)
            return &T.threads[k];
        if (!free_slot && T.threads[k].tid == 0)
            free_slot = &T.threads[k];
    }
    if (!free_slot)
        die("more than %d threads", MAX_THREADS);
    memset(free_slot, 0, sizeof(*free_slot));
    free_slot->tid = tid;
    return free_slot;
}

static void forget_thread(pid_t tid)
{
    for (int k = 0; k < MAX_THREADS; k++)
        if (T.threads[k].tid == tid)
            T.threads[k].tid = 0;
}

/*
 * Classify the probed instruction.  The benchmark probes only the few
 * encodings target.c emits, so a table of exact byte patterns stands in for
 * a decoder; anything else is refused rather than guessed.
 */
static struct insn classify(const unsigned char *b)
{
    static const unsigned char endbr[3] = {0xf3, 0x0f, 0x1e};
    if (b[0] == 0x55)
        return (struct insn){K_PUSH, 1, 0};
    if (b[0] == 0x90)
        return (struct insn){K_NOP, 1, 0};
    if (b[0] == 0xe8)
        return (struct insn){K_CALL, 5, 1};
    if (b[0] == 0xc3)
        return (struct insn){K_RET, 1, 0};
    if (b[0] == 0xff && b[1] == (T.is32 ? 0xd2 : 0xd6))
        return (struct insn){K_ICALL, 2, 0}; /* call *%edx / call *%rsi */
    if (memcmp(b, endbr, 3) == 0 && b[3] == (T.is32 ? 0xfb : 0xfa))
        return (struct insn){K_NOP, 4, 0};
    if (!T.is32 && b[0] == 0x48 && b[1] == 0x8b && (b[2] & 0xc7) == 0x05)
        return (struct insn){K_RIPREL, 7, 3}; /* mov disp32(%rip),%r64 */
    if (T.is32 && b[0] == 0x8b && (b[1] & 0xc7) == 0x05)
        return (struct insn){K_PLAIN, 6, 0}; /* mov abs32,%r32 */
    if (b[0] == 0x9d)
        return (struct insn){K_PLAIN, 1, 0}; /* popf: stepped, never boosted */
    die("unsupported probed instruction %02x %02x %02x %02x", b[0], b[1], b[2], b[3]);
}

/* Load address of the executable: 0 for ET_EXEC, the offset-0 mapping for ET_DYN. */
static uint64_t load_base(void)
{
    char path[64], exe[PATH_MAX], line[PATH_MAX + 128];
    snprintf(path, sizeof(path), "/proc/%d/exe", T.pid);
    int fd = open(path, O_RDONLY);
    Elf32_Half type;
    if (fd < 0 || pread(fd, &type, sizeof(type), offsetof(Elf32_Ehdr, e_type)) != sizeof(type))
        die("reading the ELF header of %s", path);
    close(fd);
    if (type == ET_EXEC)
        return 0;
    ssize_t n = readlink(path, exe, sizeof(exe) - 1);
    if (n < 0)
        die("readlink %s: %s", path, strerror(errno));
    exe[n] = 0;
    snprintf(path, sizeof(path), "/proc/%d/maps", T.pid);
    FILE *maps = fopen(path, "r");
    if (!maps)
        die("open %s: %s", path, strerror(errno));
    while (fgets(line, sizeof(line), maps)) {
        uint64_t start, offset;
        int name_at = 0;
        if (sscanf(line, "%" SCNx64 "-%*x %*s %" SCNx64 " %*s %*u %n", &start, &offset,
                   &name_at) < 2 || !name_at)
            continue;
        line[strcspn(line, "\n")] = 0;
        if (offset == 0 && strcmp(line + name_at, exe) == 0) {
            fclose(maps);
            return start;
        }
    }
    die("no mapping of %s in %s", exe, path);
}

/*
 * Run one mmap in the tracee, at the exec stop: borrow the bytes at ip for
 * the syscall instruction, step over it, then put bytes and registers back.
 */
static uint64_t inject_mmap(uint64_t hint)
{
    struct user_regs_struct saved, r;
    unsigned char orig[2];
    static const unsigned char sys64[2] = {0x0f, 0x05}, sys32[2] = {0xcd, 0x80};
    getregs(T.pid, &saved);
    mem_read(saved.rip, orig, 2);
    mem_write(saved.rip, T.is32 ? sys32 : sys64, 2);
    r = saved;
    r.orig_rax = (uint64_t)-1;
    if (T.is32) {
        r.rax = 192; /* mmap2(addr, len, prot, flags, fd, pgoff) */
        r.rbx = hint;
        r.rcx = PAGE;
        r.rdx = PROT_READ | PROT_EXEC;
        r.rsi = MAP_PRIVATE | MAP_ANONYMOUS;
        r.rdi = 0xffffffffu;
        r.rbp = 0;
    } else {
        r.rax = 9; /* mmap(addr, len, prot, flags, fd, off) */
        r.rdi = hint;
        r.rsi = PAGE;
        r.rdx = PROT_READ | PROT_EXEC;
        r.r10 = MAP_PRIVATE | MAP_ANONYMOUS;
        r.r8 = (uint64_t)-1;
        r.r9 = 0;
    }
    setregs(T.pid, &r);
    xptrace(PTRACE_SINGLESTEP, T.pid, 0, 0, "SINGLESTEP over mmap");
    int st;
    if (waitpid(T.pid, &st, __WALL) != T.pid || !WIFSTOPPED(st) || WSTOPSIG(st) != SIGTRAP)
        die("injected mmap did not stop as expected (status %#x)", st);
    getregs(T.pid, &r);
    int64_t ret = T.is32 ? (int64_t)(int32_t)r.rax : (int64_t)r.rax;
    if (ret < 0 && ret > -4096)
        die("injected mmap failed: %s", strerror((int)-ret));
    mem_write(saved.rip, orig, 2);
    setregs(T.pid, &saved);
    return (uint64_t)ret;
}

static int fits_s32(int64_t v)
{
    return v >= INT32_MIN && v <= INT32_MAX;
}

/* jmp rel32 at the slot's byte OFF to TARGET. */
static void put_jmp(unsigned char *page, unsigned off, uint64_t target)
{
    int64_t rel = (int64_t)target - (int64_t)(T.slot + off + 5);
    if (T.is32)
        rel = (int32_t)(uint32_t)rel; /* i386 jumps wrap modulo 2^32 */
    else if (!fits_s32(rel))
        die("XOL slot %#" PRIx64 " is out of jmp reach of %#" PRIx64, T.slot, target);
    int32_t rel32 = (int32_t)rel;
    page[SLOT_OFF + off] = 0xe9;
    memcpy(page + SLOT_OFF + off + 1, &rel32, 4);
}

/* A call rel32 from the slot: push $ret (imm32; on x86_64 sign-extended,
 * then movl $hi, 4(%rsp) into the word it wrote), jmp target. */
static unsigned put_call(unsigned char *page)
{
    uint64_t ret = T.probe + T.insn.len;
    uint32_t lo = (uint32_t)ret, hi = (uint32_t)(ret >> 32);
    unsigned char *p = page + SLOT_OFF;
    p[0] = 0x68;
    memcpy(p + 1, &lo, 4);
    if (T.is32)
        return 5;
    memcpy(p + 5, "\xc7\x44\x24\x04", 4);
    memcpy(p + 9, &hi, 4);
    return 13;
}

/* Fill the XOL page: the copied instruction, a jmp back to V + L, and the trampoline. */
static void write_xol(const unsigned char *orig)
{
    unsigned char page[128];
    memset(page, 0xcc, sizeof(page));
    unsigned len = T.insn.len;
    if (T.insn.kind == K_CALL) {
        put_jmp(page, put_call(page), T.call_target);
        mem_write(T.slot - SLOT_OFF, page, sizeof(page));
        return;
    }
    if (T.insn.kind == K_ICALL) {
        /* the push, then jmp *%rsi / jmp *%edx (ModRM reg 2 -> 4) */
        unsigned off = put_call(page);
        page[SLOT_OFF + off] = 0xff;
        page[SLOT_OFF + off + 1] = T.is32 ? 0xe2 : 0xe6;
        mem_write(T.slot - SLOT_OFF, page, sizeof(page));
        return;
    }
    memcpy(page + SLOT_OFF, orig, len);
    if (T.insn.kind == K_RIPREL) {
        int32_t disp;
        memcpy(&disp, orig + T.insn.disp_off, 4);
        int64_t moved = (int64_t)disp + (int64_t)(T.probe - T.slot);
        if (!fits_s32(moved))
            die("XOL slot %#" PRIx64 " is out of rip-relative reach of %#" PRIx64, T.slot,
                T.probe);
        disp = (int32_t)moved;
        memcpy(page + SLOT_OFF + T.insn.disp_off, &disp, 4);
    }
    put_jmp(page, len, T.probe + len);
    mem_write(T.slot - SLOT_OFF, page, sizeof(page));
}

/* The emulate scheme: a push or a call pushes a word; a nop moves ip,
 * unless the trap left it where the nop ends. */
static void emulate(pid_t tid, struct user_regs_struct *r)
{
    unsigned char buf[8];
    if (T.insn.kind == K_NOP) {
        if (T.insn.len > 1)
            set_ip(tid, T.probe + T.insn.len);
        return;
    }
    uint64_t sp = r->rsp - T.word;
    put_word(buf, 0, T.insn.kind == K_PUSH ? r->rbp : T.probe + T.insn.len);
    prog_write(sp, buf, T.word);
    r->rsp = sp;
    r->rip = T.insn.kind == K_PUSH   ? T.probe + T.insn.len
             : T.insn.kind == K_CALL ? T.call_target
             : (T.is32 ? (uint32_t)r->rdx : r->rsi);
    setregs(tid, r);
}

/* The return scheme's entry: swap the return address (alone: the call just
 * wrote that word), then a push runs boosted and a nop is skipped. */
static void hijack_entry(pid_t tid, struct user_regs_struct *r, struct thread *t)
{
    unsigned char buf[8];
    if (t->depth == MAX_DEPTH)
        die("return-probe depth above %d", MAX_DEPTH);
    mem_read(r->rsp, buf, T.word);
    t->ret[t->depth++] = get_word(buf, 0);
    put_word(buf, 0, T.tramp);
    mem_write(r->rsp, buf, T.word);
    if (T.insn.kind == K_PUSH)
        set_ip(tid, T.slot);
    else if (T.insn.len > 1)
        set_ip(tid, T.probe + T.insn.len);
}

/* The "two args and a C string" handler: sum a + b + strlen(s). */
static void read_args(const struct user_regs_struct *r)
{
    uint64_t a, b, s;
    if (T.is32) {
        int32_t w[3]; /* cdecl: [esp] is the return address */
        mem_read(r->rsp + 4, w, sizeof(w));
        a = (uint64_t)(int64_t)w[0];
        b = (uint64_t)(int64_t)w[1];
        s = (uint32_t)w[2];
    } else {
        a = r->rdi;
        b = r->rsi;
        s = r->rdx;
    }
    char str[64];
    struct iovec local = {str, sizeof(str)}, remote = {(void *)(uintptr_t)s, sizeof(str)};
    ssize_t got = process_vm_readv(T.pid, &local, 1, &remote, 1, 0);
    if (got <= 0)
        die("reading the string argument at %#" PRIx64 ": %s", s, strerror(errno));
    T.args_sum += a + b + strnlen(str, (size_t)got);
}

static void on_sigtrap(pid_t tid)
{
    struct user_regs_struct r;
    struct thread *t = thread_of(tid);
    int full = !t->stepping && (T.read_args || T.scheme == RETURN ||
                                (T.scheme == EMULATE && T.insn.kind != K_NOP));
    if (full)
        getregs(tid, &r);
    else
        r.rip = get_ip(tid);
    T.stops++;
    if (t->stepping) {
        t->stepping = 0;
        if (r.rip != T.slot + T.insn.len)
            die("step ended at %#llx, not after the slot copy", (unsigned long long)r.rip);
        set_ip(tid, r.rip + T.probe - T.slot);
        resume(tid, 0);
        return;
    }
    if (r.rip == T.tramp + 1 && T.scheme == RETURN) {
        if (t->depth == 0)
            die("return trampoline hit with no pending return in thread %d", tid);
        T.returns++;
        set_ip(tid, t->ret[--t->depth]);
        resume(tid, 0);
        return;
    }
    if (r.rip != T.probe + 1)
        die("unexpected SIGTRAP in thread %d at %#llx", tid, (unsigned long long)r.rip);
    T.t_last = now_ns();
    if (T.hits++ == 0)
        T.t_first = T.t_last;
    if (T.read_args)
        read_args(&r);
    switch (T.scheme) {
    case EMULATE:
        emulate(tid, &r);
        break;
    case RETURN:
        hijack_entry(tid, &r, t);
        break;
    case BOOST:
        set_ip(tid, T.slot);
        break;
    case STEP:
        set_ip(tid, T.slot);
        t->stepping = 1;
        xptrace(PTRACE_SINGLESTEP, tid, 0, 0, "SINGLESTEP");
        return;
    }
    resume(tid, 0);
}

static void pin(pid_t who, int cpu)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    if (sched_setaffinity(who, sizeof(set), &set) != 0)
        die("pinning to CPU %d: %s", cpu, strerror(errno));
}

static void usage(void)
{
    fputs("usage: ref_tracer -s {emulate|boost|step|return} -a ADDR [-A] [-c CHECKSUM]\n"
          "                  [-T CPU] [-C CPU] -- TARGET [ARGS...]\n"
          "  -a ADDR      probe address as in the ELF file (nm / readelf -n); PIE bases\n"
          "               are added from /proc/PID/maps\n"
          "  -A           read two integer args and a C string at each hit\n"
          "  -c CHECKSUM  fail unless the tracee prints checksum=CHECKSUM\n"
          "  -T / -C CPU  pin the tracer / the tracee (and its threads) to CPU\n"
          "prints: hits= returns= stops= elapsed_ns= ns_per_hit= stops_per_hit= args_sum=\n"
          "        checksum= tracee_loop_ns=  and exits 0 only if the tracee exited 0, printed the\n"
          "        expected checksum and made one hit per call.\n",
          stderr);
    exit(2);
}

int main(int argc, char **argv)
{
    static const char *const names[] = {"emulate", "boost", "step", "return"};
    const char *want_sum = NULL;
    uint64_t addr = 0;
    int opt, scheme = -1, tracer_cpu = -1, tracee_cpu = -1;
    while ((opt = getopt(argc, argv, "+s:a:Ac:T:C:")) != -1) {
        switch (opt) {
        case 's':
            for (int k = 0; k < 4; k++)
                if (strcmp(optarg, names[k]) == 0)
                    scheme = k;
            break;
        case 'a': addr = strtoull(optarg, NULL, 0); break;
        case 'A': T.read_args = 1; break;
        case 'c': want_sum = optarg; break;
        case 'T': tracer_cpu = atoi(optarg); break;
        case 'C': tracee_cpu = atoi(optarg); break;
        default: usage();
        }
    }
    if (scheme < 0 || addr == 0 || optind >= argc)
        usage();
    T.scheme = (enum scheme)scheme;
    if (tracer_cpu >= 0)
        pin(0, tracer_cpu);

    int out[2];
    if (pipe(out) != 0)
        die("pipe: %s", strerror(errno));
    T.pid = fork();
    if (T.pid < 0)
        die("fork: %s", strerror(errno));
    if (T.pid == 0) {
        dup2(out[1], STDOUT_FILENO);
        close(out[0]);
        close(out[1]);
        if (tracee_cpu >= 0)
            pin(0, tracee_cpu);
        ptrace(PTRACE_TRACEME, 0, NULL, NULL);
        execv(argv[optind], argv + optind);
        fprintf(stderr, "ref_tracer: exec %s: %s\n", argv[optind], strerror(errno));
        _exit(127);
    }
    close(out[1]);

    int st;
    if (waitpid(T.pid, &st, 0) != T.pid || !WIFSTOPPED(st) || WSTOPSIG(st) != SIGTRAP)
        die("tracee did not stop at exec (status %#x)", st);
    xptrace(PTRACE_SETOPTIONS, T.pid, 0, PTRACE_O_TRACECLONE | PTRACE_O_EXITKILL,
            "SETOPTIONS");
    char mem_path[64];
    snprintf(mem_path, sizeof(mem_path), "/proc/%d/mem", T.pid);
    T.mem = open(mem_path, O_RDWR);
    if (T.mem < 0)
        die("open %s: %s", mem_path, strerror(errno));
    struct user_regs_struct r;
    getregs(T.pid, &r);
    T.is32 = r.cs == 0x23;
    T.word = T.is32 ? 4 : 8;

    uint64_t base = load_base();
    T.probe = base + addr;
    unsigned char orig[16];
    mem_read(T.probe, orig, sizeof(orig));
    T.insn = classify(orig);
    if (T.scheme == RETURN && T.insn.kind != K_PUSH && T.insn.kind != K_NOP)
        die("the return scheme boosts or skips the entry; probe a push, endbr or nop");
    if (T.scheme == EMULATE && T.insn.kind != K_PUSH && T.insn.kind != K_NOP &&
        T.insn.kind != K_CALL && T.insn.kind != K_ICALL)
        die("the probed instruction cannot be emulated; use boost or step");
    if (T.scheme != EMULATE && T.scheme != BOOST && T.insn.kind == K_ICALL)
        die("a call through a register is emulated or boosted here, never stepped");
    if (T.scheme != BOOST && T.insn.kind == K_RET)
        die("a ret is only boosted here");
    if (T.scheme != EMULATE && T.scheme != BOOST && T.insn.kind == K_CALL)
        die("a call rel32 is emulated or boosted here, never stepped");
    if (T.scheme != STEP && orig[0] == 0x9d)
        die("a popf is only stepped here (boosted, a TF it pops would trap on the jmp back)");
    if (T.insn.kind == K_CALL) {
        int32_t rel;
        memcpy(&rel, orig + T.insn.disp_off, 4);
        T.call_target = (T.probe + T.insn.len + (uint64_t)(int64_t)rel) &
                        (T.is32 ? 0xffffffffULL : ~0ULL);
    }
    /* Below the executable, within rip-relative reach of it. */
    uint64_t page = inject_mmap((base ? base : T.probe & ~(PAGE - 1)) - 16 * PAGE);
    T.slot = page + SLOT_OFF;
    T.tramp = page + TRAMP_OFF;
    write_xol(orig);
    static const unsigned char int3 = 0xcc;
    mem_write(T.probe, &int3, 1);
    resume(T.pid, 0);

    int exit_status = -1;
    for (;;) {
        pid_t tid = waitpid(-1, &st, __WALL);
        if (tid < 0) {
            if (errno == EINTR)
                continue;
            if (errno == ECHILD)
                break;
            die("waitpid: %s", strerror(errno));
        }
        if (WIFEXITED(st) || WIFSIGNALED(st)) {
            if (tid == T.pid)
                exit_status = st;
            forget_thread(tid);
        } else if (st >> 16) {
            resume(tid, 0); /* PTRACE_EVENT_CLONE: the new thread reports itself */
        } else if (WSTOPSIG(st) == SIGTRAP) {
            on_sigtrap(tid);
        } else if (WSTOPSIG(st) == SIGSTOP) {
            resume(tid, 0); /* a new thread's first stop */
        } else {
            resume(tid, WSTOPSIG(st));
        }
    }

    char text[4096];
    size_t used = 0;
    ssize_t n;
    while (used < sizeof(text) - 1 && (n = read(out[0], text + used, sizeof(text) - 1 - used)) > 0)
        used += (size_t)n;
    text[used] = 0;

    if (!WIFEXITED(exit_status) || WEXITSTATUS(exit_status) != 0)
        die("tracee did not exit 0 (status %#x); it printed: %s", exit_status, text);
    const char *sum = strstr(text, "checksum=");
    const char *calls = strstr(text, "calls=");
    const char *loop_ns = strstr(text, "loop_ns=");
    if (!sum || !calls || !loop_ns)
        die("tracee output lacks checksum/calls/loop_ns: %s", text);
    if (want_sum && strtoull(sum + strlen("checksum="), NULL, 10) != strtoull(want_sum, NULL, 0))
        die("wrong checksum: want %s, tracee printed: %s", want_sum, text);
    uint64_t ncalls = strtoull(calls + strlen("calls="), NULL, 10);
    if (T.hits != ncalls)
        die("%" PRIu64 " hits for %" PRIu64 " calls", T.hits, ncalls);
    if (T.scheme == RETURN && T.returns != T.hits)
        die("%" PRIu64 " returns for %" PRIu64 " hits", T.returns, T.hits);

    uint64_t elapsed = T.t_last - T.t_first;
    printf("hits=%" PRIu64 " returns=%" PRIu64 " stops=%" PRIu64 " elapsed_ns=%" PRIu64
           " ns_per_hit=%.1f stops_per_hit=%.2f args_sum=%" PRIu64 " checksum=%" PRIu64
           " tracee_loop_ns=%" PRIu64 "\n",
           T.hits, T.returns, T.stops, elapsed,
           T.hits > 1 ? (double)elapsed / (double)(T.hits - 1) : 0.0,
           T.hits ? (double)T.stops / (double)T.hits : 0.0, T.args_sum,
           (uint64_t)strtoull(sum + strlen("checksum="), NULL, 10),
           (uint64_t)strtoull(loop_ns + strlen("loop_ns="), NULL, 10));
    return 0;
}
