/* Run by test-memcheck.sh under memcheck: two mappings whose last pointer
 * is lost, one touched and one not, are "definitely lost" at umm_mmap in
 * the leak check, even with libumm's trace ring holding fault addresses;
 * three the program still points to at exit (one with its first page
 * untouched, one not touched at all, one PROT_NONE) are "still
 * reachable".  A block the program made inside one does not make memcheck
 * abort its leak check (the pool is a meta-pool). */
#include "vg-prog.h"
#include "config.h"
#ifdef HAVE_VALGRIND_VALGRIND_H
#include <valgrind/valgrind.h>
#else
#define VALGRIND_MALLOCLIKE_BLOCK(a, n, rz, z) ((void)(a))
#endif

static unsigned char *kept[3], *inner;

__attribute__((noinline)) static void leak(size_t len, int touch)
{
    unsigned char *p = umm_mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p != MAP_FAILED && touch)
        p[0] = p[len - 1] = 1;
}

/* Overwrite the stack the calls above used. */
__attribute__((noinline)) static void scrub(void)
{
    volatile char junk[16384];
    memset((char *)junk, 0, sizeof junk);
}

int main(void)
{
    umm_trace(1);
    /* The kept ones first: the first mapping may land where something
     * before main() had a mapping, and a stale pointer to it left in the
     * dynamic loader's data would find it. */
    kept[0] = umm_mmap(NULL, 2 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    kept[1] = umm_mmap(NULL, 3 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    kept[2] = umm_mmap(NULL, 16 * PAGE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    kept[0][PAGE] = 1;
    /* A block of the program's own inside one (a custom allocator). */
    inner = kept[1] + 64;
    VALGRIND_MALLOCLIKE_BLOCK(inner, 100, 0, 1);
    leak(5 * PAGE, 1);
    leak(7 * PAGE, 0);
    scrub();
    return kept[0] == MAP_FAILED || kept[1] == MAP_FAILED || kept[2] == MAP_FAILED;
}
