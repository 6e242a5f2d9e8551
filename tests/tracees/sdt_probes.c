/* SDT markers with semaphores and arguments of every shape gcc picks for
 * an "nor" operand: stack slots (-O0), registers, globals (rip-relative or
 * @GOTOFF), indexed arrays, TLS (%fs:/%gs:), floats and constants (-O2).
 * Run, it prints sdt_tvar's offset from the thread pointer. */
#define _SDT_HAS_SEMAPHORES 1
#include <stdint.h>
#include <stdio.h>
#include <sys/sdt.h>

unsigned short sdt_tick_semaphore __attribute__((unused)) __attribute__((section(".probes")));
unsigned short sdt_data_semaphore __attribute__((unused)) __attribute__((section(".probes")));
unsigned short sdt_consts_semaphore __attribute__((unused)) __attribute__((section(".probes")));

int sdt_gvar = 5;
static long sdt_svar = 7;
__thread int sdt_tvar = 3;
__thread long long sdt_tbig = 1;   /* a 12-byte, 8-aligned TLS block: rounds up to 16 */
long sdt_arr[4] = {1, 2, 3, 4};
double sdt_dv = 1.5;
float sdt_fv = 2.5f;
struct { int a; long b; } sdt_st = {1, 2};

__attribute__((noinline)) int sdt_work(int a, unsigned char c, short s, long long q,
                                       char *p, long *ap, int i)
{
    DTRACE_PROBE7(sdt, tick, a, c, s, q, p, sdt_gvar, sdt_svar);
    DTRACE_PROBE6(sdt, data, sdt_arr[i], sdt_tvar, sdt_dv, sdt_fv, sdt_st.b, ap[i]);
    DTRACE_PROBE3(sdt, consts, 42, -7, (int8_t)-1);
    return a + i;
}

int main(int argc, char **argv)
{
    long x[3] = {1, 2, 3};
    /* Where %fs:/%gs: TLS operands point: sdt_tvar's offset from the
     * thread pointer, checked against ElfImage.tls_offset. */
    printf("%td\n", (char *)&sdt_tvar - (char *)__builtin_thread_pointer());
    return sdt_work(argc, 200, -3, -5LL, argv[0], x, argc);
}
