/* Promise: sequential access is read ahead (fewer traps than pages, one
 * pread per run), while random access reads only the pages touched. */
#include <fcntl.h>
#include <unistd.h>
#include "util.h"

int main(void)
{
    const size_t pages = 1024;
    int fd = tmpfile_make(pages * PAGE, 9, O_RDONLY, NULL);
    unsigned char *p = umm_mmap(NULL, pages * PAGE, PROT_READ, MAP_PRIVATE, fd, 0);
    uint64_t f0 = stat_get("faults");
    int bad = 0;
    for (size_t i = 0; i < pages * PAGE; i += 64)
        bad += p[i] != pattern(i, 9);
    is_int(bad, 0, "sequential read sees the file");
    uint64_t traps = stat_get("faults") - f0;
    ok(traps < pages / 8, "sequential read of %zu pages took %llu traps", pages, (unsigned long long)traps);
    is_int(stat_get("pages_read"), pages, "every page read exactly once");

    /* MADV_RANDOM: one page per trap. */
    unsigned char *q = umm_mmap(NULL, pages * PAGE, PROT_READ, MAP_PRIVATE, fd, 0);
    ok(q != MAP_FAILED, "second mapping");
    is_int(umm_madvise(q, pages * PAGE, MADV_RANDOM), 0, "MADV_RANDOM");
    f0 = stat_get("faults");
    for (size_t i = 0; i < 64 * PAGE; i += PAGE)
        bad += q[i] != pattern(i, 9);
    is_int(bad, 0, "random-advised read sees the file");
    is_int(stat_get("faults") - f0, 64, "one trap per page under MADV_RANDOM");
    is_int(umm_munmap(p, pages * PAGE), 0, "unmap");
    is_int(umm_munmap(q, pages * PAGE), 0, "unmap");
    close(fd);
    check_released();
    return tap_done();
}
