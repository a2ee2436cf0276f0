/* Run by test-memcheck.sh under memcheck: a read after umm_munmap, which
 * memcheck reports inside a block free'd at umm_munmap, alloc'd at
 * umm_mmap.  The pages' first touches before are not reported. */
#include <fcntl.h>
#include <unistd.h>
#include "vg-prog.h"

int main(void)
{
    int fd = tmpfile_make(3 * PAGE, 7, O_RDONLY, NULL);
    unsigned char *p = umm_mmap(NULL, 3 * PAGE, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED)
        return 2;
    for (int i = 0; i < 3; i++)
        if (p[i * PAGE + 1] != pattern((uint64_t)i * PAGE + 1, 7))
            return 3;
    umm_munmap(p, 3 * PAGE);
    close(fd);
    return read_gone(p + PAGE + 10) ? 0 : 4; /* the bug */
}
