/* A shared library with a soname: exported, hidden, static and ifunc
 * functions, an exported object, and a function with two versions
 * (elf_lib_ver@VER_1, elf_lib_ver@@VER_2: built with elf_lib.map), for
 * ElfImage's library cases. */
int elf_lib_data = 42;

int elf_lib_add(int a, int b) { return a + b + elf_lib_data; }
__attribute__((visibility("hidden"))) int elf_lib_hidden(int a) { return a * 3; }
static __attribute__((noinline)) int elf_lib_static(int a) { return a - 1; }
int elf_lib_calls_static(int a) { return elf_lib_static(a) + elf_lib_hidden(a); }

static int elf_lib_impl(int a) { return a; }
static int (*elf_lib_resolver(void))(int) { return elf_lib_impl; }
int elf_lib_ifunc(int a) __attribute__((ifunc("elf_lib_resolver")));

int elf_lib_ver_old(int a) { return a; }
int elf_lib_ver_new(int a) { return a + 1; }
__asm__(".symver elf_lib_ver_old, elf_lib_ver@VER_1");
__asm__(".symver elf_lib_ver_new, elf_lib_ver@@VER_2");
