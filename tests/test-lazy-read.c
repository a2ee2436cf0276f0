/* Promise: nothing is read at umm_mmap; the first touch of a page traps,
 * reads that page from the file, and the access sees the file's bytes. */
#include <fcntl.h>
#include <string.h>
#include <unistd.h>
#include "util.h"

int main(void)
{
    const size_t size = 64 * PAGE;
    int fd = tmpfile_make(size, 1, O_RDONLY, NULL);
    uint64_t f0 = stat_get("faults"), r0 = stat_get("pages_read");
    unsigned char *p = umm_mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    ok(p != MAP_FAILED, "umm_mmap of a 64-page file");
    is_int(stat_get("pages_read") - r0, 0, "nothing is read at mmap");
    is_int(stat_get("resident"), 0, "nothing is resident at mmap");

    is_int(p[5 * PAGE + 17], pattern(5 * PAGE + 17, 1), "first touch of page 5 sees the file's byte");
    is_int(stat_get("faults") - f0, 1, "that touch was one trap");
    is_int(stat_get("pages_read") - r0, 1, "and read one page");
    is_int(p[5 * PAGE + 4000], pattern(5 * PAGE + 4000, 1), "a second touch of the page needs no trap");
    is_int(stat_get("faults") - f0, 1, "still one trap");

    int bad = 0;
    for (size_t i = 0; i < size; i++)
        bad += p[i] != pattern(i, 1);
    is_int(bad, 0, "every byte of the mapping equals the file");
    ok(stat_get("pages_read") - r0 <= 64, "no page was read twice (%llu reads)",
       (unsigned long long)(stat_get("pages_read") - r0));
    is_int(umm_munmap(p, size), 0, "umm_munmap");
    close(fd);
    check_released();
    return tap_done();
}
