/* Promise: one page cache per file.  Two mappings of the same file, made
 * through different descriptors, share frames: a page read through one is
 * not read again through the other. */
#include <fcntl.h>
#include <unistd.h>
#include "util.h"

int main(void)
{
    char path[512];
    int fd = tmpfile_make(8 * PAGE, 4, O_RDONLY, path);
    int fd2 = open(path, O_RDONLY);
    unsigned char *a = umm_mmap(NULL, 8 * PAGE, PROT_READ, MAP_SHARED, fd, 0);
    unsigned char *b = umm_mmap(NULL, 8 * PAGE, PROT_READ, MAP_PRIVATE, fd2, 0);
    ok(a != MAP_FAILED && b != MAP_FAILED, "two mappings of one file");
    is_int(stat_get("files"), 1, "one file in the page cache");
    uint64_t r0 = stat_get("pages_read");
    is_int(a[3 * PAGE + 1], pattern(3 * PAGE + 1, 4), "read page 3 through the first");
    is_int(b[3 * PAGE + 2], pattern(3 * PAGE + 2, 4), "read page 3 through the second");
    is_int(stat_get("pages_read") - r0, 1, "page 3 was read from the file once");
    is_int(stat_get("frames"), 1, "one frame holds it");
    is_int(umm_munmap(a, 8 * PAGE), 0, "unmap the first");
    is_int(b[3 * PAGE + 3], pattern(3 * PAGE + 3, 4), "the second still reads");
    is_int(umm_munmap(b, 8 * PAGE), 0, "unmap the second");
    close(fd);
    close(fd2);
    unlink(path);
    check_released();
    return tap_done();
}
