/*
 * Benchmark tracee: a tight loop that calls one probed function N times.
 *
 * Modelled on the kernel's uprobe benchmarks (a noinline function called in
 * a loop), with one function per first-instruction class, because the class
 * of the probed instruction decides how many stops a tracer needs per hit:
 *
 *   push    push %rbp / push %ebp             emulated or boosted
 *   endbr   endbr64 / endbr32                 a NOP: skipped (ip moved)
 *   riprel  mov disp(%rip),%rax (x86_64)      run out of line, boostable
 *           mov abs32,%edx      (i386)
 *   step    popf, after a pushf               stepped: boosted, a TF it pops
 *           (bench_step+1)                    would trap on the slot's jump
 *                                             back, and no plan emulates it
 *                                             (the neg after it was the
 *                                             case's instruction until group
 *                                             3 boosted)
 *   call    call rel32 first                  boosted (a slot that pushes
 *                                             the return address and jumps);
 *                                             its ret (bench_call+5) is
 *                                             boosted as a copy alone
 *   icall   call *%rsi / call *%edx first     boosted (a slot that pushes
 *           (i386: regparm, so the pointer    the return address and jumps
 *           arrives in edx)                   through the same register)
 *   args    push first, then reads (a, b, s)  "two args and a C string"
 *   usdt    a <sys/sdt.h> probe (a nop) inside the loop
 *   loop    no call at all: the bare loop cost
 *
 * The probed functions are top-level asm so their first instruction is
 * exact whatever the compiler does.  Each computes a different formula of
 * its argument, and the loop sums the results: a tracer that mis-emulates or
 * mis-relocates an instruction changes the printed checksum.
 *
 * Usage: target [-t THREADS] FUNC N
 * Prints one line:
 *   func=FUNC calls=N threads=T checksum=C loop_ns=NS
 * where loop_ns is the time the calling loops took, measured inside the
 * tracee (from before the first call to after the last thread finished).
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/sdt.h>
#include <time.h>
#include <unistd.h>

long bench_push(long i);
long bench_endbr(long i);
long bench_riprel(long i);
long bench_step(long i);
long bench_call(long i);
long bench_args(long a, long b, const char *s);
#if defined(__i386__)
long bench_icall(long i, long (*leaf)(long)) __attribute__((regparm(2)));
#else
long bench_icall(long i, long (*leaf)(long));
#endif
/* What bench_icall calls: i is still in rdi/eax. */
long bench_leaf(long i);

/* The constant bench_riprel loads; the harness uses the same value. */
#define BENCH_K 0x5bd1e995
#define STR_(x) #x
#define STR(x) STR_(x)
/* An asm function's frame; the body between is exactly its code. */
#define FUNC(name) "  .globl " #name "\n  .type " #name ", @function\n  .p2align 4\n" #name ":\n"
#define END(name) "  .size " #name ", .-" #name "\n"

#if defined(__x86_64__)
__asm__(
    "  .text\n"
    FUNC(bench_push)
    "  push %rbp\n"
    "  mov %rsp, %rbp\n"
    "  lea 1(%rdi,%rdi), %rax\n"
    "  pop %rbp\n"
    "  ret\n"
    END(bench_push)

    FUNC(bench_endbr)
    "  endbr64\n"
    "  lea 2(%rdi,%rdi,2), %rax\n"
    "  ret\n"
    END(bench_endbr)

    FUNC(bench_riprel)
    "  mov bench_k(%rip), %rax\n"
    "  add %rdi, %rax\n"
    "  ret\n"
    END(bench_riprel)

    FUNC(bench_step)
    "  pushf\n"
    "  popf\n"
    "  neg %rdi\n"
    "  lea 3(%rdi), %rax\n"
    "  ret\n"
    END(bench_step)

    FUNC(bench_call)
    "  call 1f\n"
    "  ret\n"
    "1:\n"
    "  lea 4(%rdi,%rdi,4), %rax\n"
    "  ret\n"
    END(bench_call)

    FUNC(bench_icall)
    "  call *%rsi\n"
    "  ret\n"
    END(bench_icall)

    FUNC(bench_leaf)
    "  lea 5(%rdi,%rdi,8), %rax\n"
    "  ret\n"
    END(bench_leaf)

    FUNC(bench_args)
    "  push %rbp\n"
    "  mov %rsp, %rbp\n"
    "  movzbl (%rdx), %eax\n"
    "  add %rdi, %rax\n"
    "  add %rsi, %rax\n"
    "  pop %rbp\n"
    "  ret\n"
    END(bench_args)

    "  .section .rodata\n"
    "  .p2align 3\n"
    "bench_k:\n"
    "  .quad " STR(BENCH_K) "\n"
    "  .text\n");
#elif defined(__i386__)
/*
 * i386 has no rip-relative form; the riprel variant loads from a fixed
 * absolute address instead (modrm 8b 15 disp32).  A literal address needs no
 * text relocation, so the binary stays a clean PIE; main() maps the page.
 */
#define BENCH_K_ADDR 0x10000000
__asm__(
    "  .text\n"
    FUNC(bench_push)
    "  push %ebp\n"
    "  mov %esp, %ebp\n"
    "  mov 8(%ebp), %eax\n"
    "  lea 1(%eax,%eax), %eax\n"
    "  pop %ebp\n"
    "  ret\n"
    END(bench_push)

    FUNC(bench_endbr)
    "  endbr32\n"
    "  mov 4(%esp), %eax\n"
    "  lea 2(%eax,%eax,2), %eax\n"
    "  ret\n"
    END(bench_endbr)

    FUNC(bench_riprel)
    "  mov " STR(BENCH_K_ADDR) ", %edx\n"
    "  mov 4(%esp), %eax\n"
    "  add %edx, %eax\n"
    "  ret\n"
    END(bench_riprel)

    FUNC(bench_step)
    "  pushf\n"
    "  popf\n"
    "  negl 4(%esp)\n"
    "  mov 4(%esp), %eax\n"
    "  add $3, %eax\n"
    "  ret\n"
    END(bench_step)

    FUNC(bench_call)
    "  call 1f\n"
    "  ret\n"
    "1:\n"
    "  mov 8(%esp), %eax\n"
    "  lea 4(%eax,%eax,4), %eax\n"
    "  ret\n"
    END(bench_call)

    FUNC(bench_icall)
    "  call *%edx\n"
    "  ret\n"
    END(bench_icall)

    FUNC(bench_leaf)
    "  lea 5(%eax,%eax,8), %eax\n"
    "  ret\n"
    END(bench_leaf)

    FUNC(bench_args)
    "  push %ebp\n"
    "  mov %esp, %ebp\n"
    "  mov 16(%ebp), %edx\n"
    "  movzbl (%edx), %eax\n"
    "  add 8(%ebp), %eax\n"
    "  add 12(%ebp), %eax\n"
    "  pop %ebp\n"
    "  ret\n"
    END(bench_args));
#else
#error "target.c supports x86_64 and i386 only"
#endif

/* Strings bench_args receives; the harness knows their lengths. */
static const char *const words[4] = {"alpha", "beta", "gamma", "delta"};

typedef unsigned long long (*loop_fn)(long lo, long hi);

/*
 * One loop per function, each with a direct call, as in the kernel's
 * benchmark: an indirect call would add a cost no real call site has.
 */
static unsigned long long loop_bare(long lo, long hi)
{
    unsigned long long acc = 0;
    for (long i = lo; i < hi; i++) {
        acc += (unsigned long long)i;
        /* Keep the compiler from folding the loop into a formula. */
        __asm__ volatile("" : "+r"(acc));
    }
    return acc;
}

#define DEFINE_LOOP(name)                                            \
    static unsigned long long loop_##name(long lo, long hi)          \
    {                                                                \
        unsigned long long acc = 0;                                  \
        for (long i = lo; i < hi; i++)                               \
            acc += (unsigned long long)bench_##name(i);              \
        return acc;                                                  \
    }
DEFINE_LOOP(push)
DEFINE_LOOP(endbr)
DEFINE_LOOP(riprel)
DEFINE_LOOP(step)
DEFINE_LOOP(call)

static unsigned long long loop_args(long lo, long hi)
{
    unsigned long long acc = 0;
    for (long i = lo; i < hi; i++)
        acc += (unsigned long long)bench_args(i, i ^ 0x55, words[i & 3]);
    return acc;
}

static unsigned long long loop_icall(long lo, long hi)
{
    unsigned long long acc = 0;
    for (long i = lo; i < hi; i++)
        acc += (unsigned long long)bench_icall(i, bench_leaf);
    return acc;
}

static unsigned long long loop_usdt(long lo, long hi)
{
    unsigned long long acc = 0;
    for (long i = lo; i < hi; i++) {
        DTRACE_PROBE2(ptrace_raw_bench, tick, i, acc);
        acc += (unsigned long long)i;
    }
    return acc;
}

static const struct {
    const char *name;
    loop_fn fn;
} loops[] = {
    {"loop", loop_bare},   {"push", loop_push}, {"endbr", loop_endbr},
    {"riprel", loop_riprel}, {"step", loop_step}, {"call", loop_call},
    {"icall", loop_icall}, {"args", loop_args}, {"usdt", loop_usdt},
};

struct worker {
    pthread_t thread;
    loop_fn fn;
    long lo, hi;
    unsigned long long acc;
};

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    w->acc = w->fn(w->lo, w->hi);
    return NULL;
}

static unsigned long long now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (unsigned long long)ts.tv_sec * 1000000000ULL + (unsigned long long)ts.tv_nsec;
}

static void usage(void)
{
    fprintf(stderr, "usage: target [-t THREADS] {loop|push|endbr|riprel|step|call|icall|args|usdt} N\n");
    exit(2);
}

int main(int argc, char **argv)
{
    int nthreads = 1, opt;
    while ((opt = getopt(argc, argv, "t:")) != -1) {
        if (opt != 't')
            usage();
        nthreads = atoi(optarg);
        if (nthreads < 1 || nthreads > 64)
            usage();
    }
    if (argc - optind != 2)
        usage();
    const char *name = argv[optind];
    char *end;
    long n = strtol(argv[optind + 1], &end, 0);
    if (*end || n < 0)
        usage();

    loop_fn fn = NULL;
    for (size_t k = 0; k < sizeof(loops) / sizeof(loops[0]); k++)
        if (strcmp(loops[k].name, name) == 0)
            fn = loops[k].fn;
    if (!fn)
        usage();

#if defined(__i386__)
    void *page = mmap((void *)BENCH_K_ADDR, 4096, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
    if (page != (void *)BENCH_K_ADDR) {
        perror("target: mapping the riprel constant");
        return 1;
    }
    *(volatile long *)page = BENCH_K;
#endif

    struct worker w[64];
    unsigned long long t0 = now_ns();
    for (int k = 0; k < nthreads; k++) {
        w[k].fn = fn;
        w[k].lo = n * k / nthreads;
        w[k].hi = n * (k + 1) / nthreads;
        if (nthreads == 1) {
            worker_main(&w[k]);
        } else if (pthread_create(&w[k].thread, NULL, worker_main, &w[k]) != 0) {
            fprintf(stderr, "target: pthread_create failed\n");
            return 1;
        }
    }
    unsigned long long acc = 0;
    for (int k = 0; k < nthreads; k++) {
        if (nthreads > 1)
            pthread_join(w[k].thread, NULL);
        acc += w[k].acc;
    }
    unsigned long long t1 = now_ns();
    printf("func=%s calls=%ld threads=%d checksum=%llu loop_ns=%llu\n", name, n, nthreads,
           acc, t1 - t0);
    return 0;
}
