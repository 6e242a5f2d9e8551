/* Symbols of every kind ElfImage reports, and a main that says where they
 * were loaded: it prints elf_target's runtime address, libc's getpid as the
 * dynamic linker resolved it, and elf_target's first 16 bytes, then waits on
 * stdin so a test can read /proc/PID/maps while it is still mapped. */
#include <dlfcn.h>
#include <stdio.h>
#include <unistd.h>

int elf_counter = 3;
static int elf_hidden_counter;
const char elf_table[64] = "table";

int elf_target(int x) { return x * 2 + elf_counter; }
int elf_alias(int x) __attribute__((alias("elf_target")));

static __attribute__((noinline)) int elf_static_helper(int x) { return x + 1 + elf_hidden_counter; }

__attribute__((weak)) int elf_weak(int x) { return elf_static_helper(x); }

static int elf_impl(int x) { return -x; }
static int (*elf_resolver(void))(int) { return elf_impl; }
int elf_ifunc(int x) __attribute__((ifunc("elf_resolver")));

int elf_string_one(void) { return 1; }
int elf_string_two(void) { return 2; }

int main(int argc, char **argv)
{
    const unsigned char *code = (const unsigned char *)elf_target;
    printf("%p %p\n", (void *)elf_target, dlsym(RTLD_DEFAULT, "getpid"));
    for (int i = 0; i < 16; i++)
        printf("%02x", code[i]);
    printf("\n");
    fflush(stdout);
    char c;
    if (read(0, &c, 1) < 0)
        return 1;
    return elf_weak(argc) + elf_ifunc(argc) + elf_alias(argc) + elf_string_one()
        + elf_string_two() + elf_table[argc];
}
