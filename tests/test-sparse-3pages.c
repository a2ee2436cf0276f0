/* Promise (issue 2): mapping a 1 GiB sparse file and reading 3 scattered
 * bytes reads exactly 3 pages. */
#include <fcntl.h>
#include <unistd.h>
#include "util.h"

int main(void)
{
    const uint64_t size = (uint64_t)1 << 30;
    int fd = tmpfile_sparse(size, O_RDWR, NULL);
    unsigned char *p = umm_mmap(NULL, size, PROT_READ, MAP_SHARED, fd, 0);
    ok(p != MAP_FAILED, "umm_mmap of a 1 GiB sparse file");
    uint64_t r0 = stat_get("pages_read");
    unsigned sum = p[12345] + p[size / 2 + 7] + p[size - 1];
    is_int(sum, 0, "the three bytes of a sparse file read as zeros");
    is_int(stat_get("pages_read") - r0, 3, "exactly 3 pages were read");
    is_int(stat_get("resident"), 3, "exactly 3 pages are resident");
    is_int(stat_get("frames"), 3, "exactly 3 frames are in use");
    is_int(umm_munmap(p, size), 0, "umm_munmap");
    close(fd);
    check_released();
    return tap_done();
}
