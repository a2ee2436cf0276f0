/* Promise: a MAP_SHARED read-only mapping shows the file's bytes; the
 * partial last page reads as zeros past the end of the file; a mapping at
 * an offset shows the file from that offset. */
#include <fcntl.h>
#include <unistd.h>
#include "util.h"

int main(void)
{
    const size_t size = 10 * PAGE + 123;
    int fd = tmpfile_make(size, 2, O_RDONLY, NULL);
    unsigned char *p = umm_mmap(NULL, size, PROT_READ, MAP_SHARED, fd, 0);
    ok(p != MAP_FAILED, "umm_mmap MAP_SHARED PROT_READ on an O_RDONLY file");
    int bad = 0;
    for (size_t i = 0; i < size; i++)
        bad += p[i] != pattern(i, 2);
    is_int(bad, 0, "every byte equals the file");
    int nz = 0;
    for (size_t i = size; i < 11 * PAGE; i++)
        nz += p[i] != 0;
    is_int(nz, 0, "the rest of the last page reads as zeros");

    unsigned char *q = umm_mmap(NULL, 3 * PAGE, PROT_READ, MAP_SHARED, fd, 4 * PAGE);
    ok(q != MAP_FAILED, "umm_mmap at offset 4 pages");
    bad = 0;
    for (size_t i = 0; i < 3 * PAGE; i++)
        bad += q[i] != pattern(4 * PAGE + i, 2);
    is_int(bad, 0, "the mapping at an offset shows the file from that offset");
    is_int(umm_munmap(q, 3 * PAGE), 0, "umm_munmap the second");
    is_int(umm_munmap(p, size), 0, "umm_munmap the first");
    close(fd);
    check_released();
    return tap_done();
}
