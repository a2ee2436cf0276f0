/* Promise: a MAP_PRIVATE read-only mapping shows the file's bytes, page by
 * page, in any order. */
#include <fcntl.h>
#include <unistd.h>
#include "util.h"

int main(void)
{
    const size_t pages = 257;
    int fd = tmpfile_make(pages * PAGE, 3, O_RDONLY, NULL);
    unsigned char *p = umm_mmap(NULL, pages * PAGE, PROT_READ, MAP_PRIVATE, fd, 0);
    ok(p != MAP_FAILED, "umm_mmap MAP_PRIVATE PROT_READ");
    int bad = 0;
    /* Touch pages in a scrambled order. */
    for (size_t k = 0; k < pages; k++) {
        size_t pg = (k * 97) % pages;
        for (size_t i = 0; i < PAGE; i += 511)
            bad += p[pg * PAGE + i] != pattern(pg * PAGE + i, 3);
    }
    is_int(bad, 0, "scattered touches see the file's bytes");
    is_int(stat_get("resident"), pages, "every page is resident once touched");
    is_int(umm_munmap(p, pages * PAGE), 0, "umm_munmap");
    close(fd);
    check_released();
    return tap_done();
}
