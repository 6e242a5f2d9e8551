/* Locals and parameters to read at line probes: a loop whose variables
 * change at every pass, a block that declares a name again, a static, a
 * char pointer and a double.  Each line a test probes is marked "LINE:"
 * and found by it.  Usage: locals N */
#include <stdio.h>
#include <stdlib.h>

static int calls;

__attribute__((noinline)) long step(long base, int k)
{
    static int seen;
    const char *label = k % 2 ? "odd" : "even";
    long total = base * 10;
    double ratio = k / 4.0;
    seen++;
    {
        long total = -k;              /* a block's own total */
        calls += (int)total;          /* LINE: inner */
    }
    total += k + (long)ratio;         /* LINE: outer */
    return total + (label[0] == 'o');
}

int main(int argc, char **argv)
{
    int n = argc > 1 ? atoi(argv[1]) : 3;
    long sum = 0;
    for (int i = 0; i < n; i++)
        sum += step(i, i + 1);
    printf("sum=%ld calls=%d\n", sum, calls);
    return 0;
}
