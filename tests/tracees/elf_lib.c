/* A shared library with a soname: exported, hidden, static and ifunc
 * functions and an exported object, for ElfImage's library cases. */
int elf_lib_data = 42;

int elf_lib_add(int a, int b) { return a + b + elf_lib_data; }
__attribute__((visibility("hidden"))) int elf_lib_hidden(int a) { return a * 3; }
static __attribute__((noinline)) int elf_lib_static(int a) { return a - 1; }
int elf_lib_calls_static(int a) { return elf_lib_static(a) + elf_lib_hidden(a); }

static int elf_lib_impl(int a) { return a; }
static int (*elf_lib_resolver(void))(int) { return elf_lib_impl; }
int elf_lib_ifunc(int a) __attribute__((ifunc("elf_lib_resolver")));
