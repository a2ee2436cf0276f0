/* Promise: umm_stats counts traps, pages read and resident pages, and
 * rejects a NULL pointer with EFAULT. */
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>
#include "util.h"

int main(void)
{
    errno = 0;
    is_int(umm_stats(NULL), -1, "umm_stats(NULL) fails");
    is_int(errno, EFAULT, "with EFAULT");
    /* Two touches 160 KiB apart: neither read-ahead (not sequential) nor
     * read-around (not the same 128 KiB cluster) reads more. */
    int fd = tmpfile_make(64 * PAGE, 6, O_RDONLY, NULL);
    unsigned char *p = umm_mmap(NULL, 64 * PAGE, PROT_READ, MAP_SHARED, fd, 0);
    struct umm_stats a, b;
    is_int(umm_stats(&a), 0, "umm_stats");
    volatile unsigned char c = p[0];
    c = p[40 * PAGE];
    (void)c;
    is_int(umm_stats(&b), 0, "umm_stats again");
    is_int(b.faults - a.faults, 2, "two traps counted");
    is_int(b.pages_read - a.pages_read, 2, "two pages read");
    is_int(b.resident - a.resident, 2, "two more pages resident");
    is_int(b.mappings, 1, "one mapping");
    is_int(b.files, 1, "one file");
    is_int(umm_munmap(p, 64 * PAGE), 0, "umm_munmap");
    close(fd);
    check_released();
    return tap_done();
}
