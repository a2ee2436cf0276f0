/* Promise: a file with the append-only attribute (chattr +a), opened
 * O_RDWR | O_APPEND as such a file must be, maps as under the kernel:
 * MAP_PRIVATE with PROT_READ | PROT_WRITE works (copy-on-write, the file
 * never changes), MAP_SHARED with PROT_WRITE is refused with the kernel's
 * errno.  Needs a file system with the attribute and the right to set it
 * (root): skipped elsewhere, saying which. */
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>
#include "util.h"

static int set_append_only(const char *path, int on)
{
    int fd = open(path, O_RDONLY);
    int flags = 0, rc = -1;
    if (fd >= 0 && ioctl(fd, FS_IOC_GETFLAGS, &flags) == 0) {
        flags = on ? flags | FS_APPEND_FL : flags & ~FS_APPEND_FL;
        rc = ioctl(fd, FS_IOC_SETFLAGS, &flags);
    }
    if (fd >= 0)
        close(fd);
    return rc;
}

int main(void)
{
    char path[512];
    int fd0 = tmpfile_make(3 * PAGE, 17, O_RDWR, path);
    close(fd0);
    if (set_append_only(path, 1) != 0) {
        unlink(path);
        tap_skip_all("cannot set the append-only attribute here (needs root and ext4/xfs/btrfs)");
    }
    int fd = open(path, O_RDWR | O_APPEND);
    ok(fd >= 0, "opened O_RDWR | O_APPEND");
    for (int umm = 0; umm < 2; umm++) {
        const char *who = umm ? "libumm" : "kernel";
        unsigned char *p = umm ? umm_mmap(NULL, 3 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0)
                               : mmap(NULL, 3 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
        ok(p != MAP_FAILED, "%s: MAP_PRIVATE read-write mapping made (%s)", who,
           p == MAP_FAILED ? strerror(errno) : "ok");
        if (p != MAP_FAILED) {
            is_int(p[PAGE + 3], pattern(PAGE + 3, 17), "%s: reads the file", who);
            p[PAGE + 3] = 0xEE;
            is_int(p[PAGE + 3], 0xEE, "%s: a private write lands in the mapping", who);
            umm ? umm_munmap(p, 3 * PAGE) : munmap(p, 3 * PAGE);
            unsigned char b[1];
            read_file(fd, b, 1, PAGE + 3);
            is_int(b[0], pattern(PAGE + 3, 17), "%s: the file is unchanged", who);
        }
        errno = 0;
        void *s = umm ? umm_mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)
                      : mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        ok(s == MAP_FAILED && errno == EACCES, "%s: MAP_SHARED read-write refused with EACCES (%s)", who,
           strerror(errno));
    }
    close(fd);
    set_append_only(path, 0);
    unlink(path);
    check_released();
    return tap_done();
}
