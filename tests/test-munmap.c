/* Promise: umm_munmap of whole mappings releases their pages, and an
 * access afterwards raises SIGSEGV (SEGV_MAPERR) at the address, as after
 * the kernel's munmap. */
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>
#include "util.h"

int main(void)
{
    int fd = tmpfile_make(4 * PAGE, 5, O_RDONLY, NULL);
    unsigned char *p = umm_mmap(NULL, 4 * PAGE, PROT_READ, MAP_PRIVATE, fd, 0);
    ok(p != MAP_FAILED, "umm_mmap");
    is_int(p[PAGE], pattern(PAGE, 5), "touch a page");
    is_int(stat_get("mappings"), 1, "one mapping");
    is_int(umm_munmap(p, 4 * PAGE), 0, "umm_munmap");
    is_int(stat_get("mappings"), 0, "no mapping");
    int code;
    void *addr;
    int sig = catch_signal(touch_read, p + PAGE + 5, &code, &addr);
    is_int(sig, SIGSEGV, "reading after munmap raises SIGSEGV");
    is_int(code, SEGV_MAPERR, "with SEGV_MAPERR");
    ok(addr == p + PAGE + 5, "at the address touched");
    errno = 0;
    is_int(umm_munmap(p, 4 * PAGE), 0, "unmapping it again succeeds, as in the kernel");
    is_int(umm_munmap(p + 1, PAGE), -1, "an unaligned address fails");
    is_int(errno, EINVAL, "with EINVAL");
    close(fd);
    check_released();
    return tap_done();
}
