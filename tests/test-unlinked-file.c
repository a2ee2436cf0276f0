/* Promise: a file closed and unlinked after mapping keeps working:
 * libumm holds its own reference. */
#include <fcntl.h>
#include <unistd.h>
#include "util.h"

int main(void)
{
    char path[512];
    int fd = tmpfile_make(6 * PAGE, 7, O_RDONLY, path);
    unsigned char *p = umm_mmap(NULL, 6 * PAGE, PROT_READ, MAP_SHARED, fd, 0);
    ok(p != MAP_FAILED, "umm_mmap");
    close(fd);
    unlink(path);
    int bad = 0;
    for (size_t i = 0; i < 6 * PAGE; i++)
        bad += p[i] != pattern(i, 7);
    is_int(bad, 0, "every byte readable after close and unlink");
    is_int(umm_munmap(p, 6 * PAGE), 0, "umm_munmap");
    check_released();
    return tap_done();
}
