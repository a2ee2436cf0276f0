/* Promise: umm_msync(MS_INVALIDATE) makes a change that write(2) made to
 * the file visible through libumm's mappings (shared, and private pages
 * not yet written), as the kernel shows it (which shows it at once; libumm
 * only after MS_INVALIDATE, a documented difference, so nothing is asserted
 * before it).  Dirty shared pages and private copies survive it.  The same
 * sequence runs against the kernel and libumm and must end with the same
 * bytes in memory and in the file. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <unistd.h>
#include "kcmp.h"

#define SEED 44

struct trace {
    int rc1, rc2;
    unsigned char shared_clean, shared_dirty, private_clean, private_copy;
    unsigned char file[4 * PAGE];
};

static void scenario(const struct mm_ops *ops, struct trace *t)
{
    int fd = tmpfile_make(4 * PAGE, SEED, O_RDWR, NULL);
    unsigned char *s = ops->mmap(NULL, 4 * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    unsigned char *p = ops->mmap(NULL, 4 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    if (s == MAP_FAILED || p == MAP_FAILED)
        tap_bail("%s: mmap: %s", ops->name, strerror(errno));
    /* Everything resident. */
    if (diff_pattern(s, 4 * PAGE, 0, SEED) || diff_pattern(p, 4 * PAGE, 0, SEED))
        tap_bail("%s: the mappings do not show the file", ops->name);
    s[3 * PAGE + 3] = 0xd3;  /* a dirty shared page */
    p[2 * PAGE + 2] = 0xc2;  /* a private copy */
    /* write(2) changes the file in pages 1 and 2 (not in the dirty page 3:
     * libumm writes a dirty page back whole, documented difference 1). */
    unsigned char x = 0xe1;
    if (pwrite(fd, &x, 1, PAGE + 1) != 1 || pwrite(fd, &x, 1, 2 * PAGE + 2) != 1)
        tap_bail("pwrite: %s", strerror(errno));
    t->rc1 = ops->msync(s, 4 * PAGE, MS_INVALIDATE);
    t->rc2 = ops->msync(p, 4 * PAGE, MS_INVALIDATE);
    t->shared_clean = s[PAGE + 1];
    t->private_clean = p[PAGE + 1];
    t->shared_dirty = s[3 * PAGE + 3];
    t->private_copy = p[2 * PAGE + 2];
    ops->munmap(p, 4 * PAGE);
    ops->munmap(s, 4 * PAGE);
    file_bytes(fd, t->file, sizeof t->file);
    close(fd);
}

int main(void)
{
    static struct trace k, u;
    scenario(&kernel_ops, &k);
    scenario(&umm_ops, &u);
    is_int(k.shared_clean, 0xe1, "kernel: the shared mapping shows write(2)'s byte (the test is right)");
    is_int(u.rc1, k.rc1, "msync(MS_INVALIDATE) of the shared mapping returns as the kernel");
    is_int(u.rc2, k.rc2, "msync(MS_INVALIDATE) of the private mapping returns as the kernel");
    is_int(u.shared_clean, k.shared_clean, "after MS_INVALIDATE the shared mapping shows write(2)'s byte");
    is_int(u.private_clean, k.private_clean, "so does a private page not yet written");
    is_int(u.shared_dirty, k.shared_dirty, "a dirty shared page keeps the program's write");
    is_int(u.private_copy, k.private_copy, "a private copy keeps the program's write");
    ok(memcmp(u.file, k.file, sizeof k.file) == 0, "the file ends with the bytes the kernel's twin has");
    check_released();
    return tap_done();
}
