/* Execs its arguments in place: the traced process takes another image,
 * which may be of the other bitness. */
#include <stdio.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    if (argc < 2)
        return 2;
    execv(argv[1], argv + 1);
    perror("execv");
    return 127;
}
