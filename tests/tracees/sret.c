/* Functions returning what their caller must give room for: a struct of
 * more than 16 bytes (through memory at both bitnesses), one of 16 (in
 * rax:rdx on x86_64, through memory on i386) and a double _Complex (in
 * xmm0:xmm1 on x86_64, through memory on i386).  The room's address is a
 * hidden first argument where it goes through memory.  Usage: sret */
#include <complex.h>
#include <stdio.h>

struct big { long x[4]; };
struct pair { long a, b; };

__attribute__((noinline)) struct big make_big(int a, int b, int c)
{
    struct big r = {{a, b, c, a + b + c}};
    return r;
}

__attribute__((noinline)) struct pair make_pair(int a, int b)
{
    struct pair r = {a, b};
    return r;
}

__attribute__((noinline)) double _Complex make_complex(int re, int im)
{
    return re + im * I;
}

int main(void)
{
    struct big g = make_big(11, 12, 13);
    struct pair p = make_pair(21, 22);
    double _Complex z = make_complex(31, 32);
    printf("%ld %ld %g\n", g.x[3], p.a + p.b, creal(z) + cimag(z));
    return 0;
}
