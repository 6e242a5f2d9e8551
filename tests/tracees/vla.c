/* A variable-length array, whose bound gcc describes with a variable of
 * its own: artificial, without a name.  Usage: vla N */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

__attribute__((noinline)) int fill(int n)
{
    char tag[n + 1];
    memset(tag, 'x', n);
    tag[n] = 0;
    return (int)strlen(tag);                  /* LINE: fill */
}

int main(int argc, char **argv)
{
    int n = argc > 1 ? atoi(argv[1]) : 3;
    printf("%d\n", fill(n));
    return 0;
}
