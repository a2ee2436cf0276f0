/* Run by test-memcheck.sh under memcheck: umm_munmap of a hole in the
 * middle of a mapping, then a read in the hole, which memcheck reports
 * inside the block free'd at that umm_munmap.  What is left of the mapping
 * on both sides stays usable, unreported. */
#include "vg-prog.h"

int main(void)
{
    unsigned char *p = umm_mmap(NULL, 4 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return 2;
    memset(p, 1, 4 * PAGE);
    umm_munmap(p + PAGE, 2 * PAGE); /* the hole */
    if (p[PAGE - 1] != 1 || p[3 * PAGE] != 1)
        return 3;
    int faulted = read_gone(p + 2 * PAGE + 20); /* the bug */
    umm_munmap(p, 4 * PAGE);
    return faulted ? 0 : 4;
}
