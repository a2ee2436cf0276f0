/* Promise (README, difference 1): truncation is a write by other means.
 * After ftruncate shrinks a mapped file, a page past the new end that was
 * not resident raises SIGBUS (as in the kernel); one that was resident stays
 * readable until msync(MS_INVALIDATE), after which it raises SIGBUS too. */
#include <fcntl.h>
#include <unistd.h>
#include "util.h"

int main(void)
{
    char path[512];
    int fd = tmpfile_make(8 * PAGE, 71, O_RDWR, path);
    unsigned char *p = umm_mmap(NULL, 8 * PAGE, PROT_READ, MAP_SHARED, fd, 0);
    ok(p != MAP_FAILED, "a shared mapping of 8 pages");
    is_int(p[6 * PAGE], pattern(6 * PAGE, 71), "page 6 made resident");
    is_int(ftruncate(fd, 4 * PAGE), 0, "the file shrinks to 4 pages");
    int code;
    void *addr;
    is_int(catch_signal(touch_read, p + 5 * PAGE, &code, &addr), SIGBUS,
           "a page past the new end that was not resident: SIGBUS");
    ok(addr == p + 5 * PAGE, "at its address");
    is_int(catch_signal(touch_read, p + 6 * PAGE, &code, &addr), 0,
           "the resident page past the new end still reads (documented difference)");
    is_int(umm_msync(p, 8 * PAGE, MS_INVALIDATE), 0, "msync(MS_INVALIDATE)");
    is_int(catch_signal(touch_read, p + 6 * PAGE, &code, &addr), SIGBUS, "then it raises SIGBUS too");
    is_int(p[3 * PAGE + 1], pattern(3 * PAGE + 1, 71), "pages inside the file still read");
    is_int(umm_munmap(p, 8 * PAGE), 0, "umm_munmap");
    close(fd);
    unlink(path);
    check_released();
    return tap_done();
}
