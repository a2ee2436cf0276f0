/* Run by test-memcheck.sh under memcheck: the program's first mapping,
 * mapped, unmapped, then a store to its byte 0, which memcheck must report
 * inside the program's own block (alloc'd at its umm_mmap, free'd at its
 * umm_munmap), not inside a block libumm made for itself at start-up. */
#include "vg-prog.h"

int main(void)
{
    unsigned char *p = umm_mmap(NULL, 2 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return 2;
    p[0] = 1;
    p[PAGE] = 2;
    umm_munmap(p, 2 * PAGE);
    return write_gone(p) ? 0 : 4; /* the bug */
}
