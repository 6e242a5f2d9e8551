/* Prints its arguments and exits with the code given as the first one. */
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        printf("arg%d=%s\n", i, argv[i]);
    fflush(stdout);
    return argc > 1 ? atoi(argv[1]) : 0;
}
