/* Promise: one page cache per file.  A write through one MAP_SHARED
 * mapping is visible at once through another MAP_SHARED mapping of the
 * same file (made through another descriptor) and through a MAP_PRIVATE
 * mapping whose page has not been written yet, resident or not; once a
 * private page is written (copy-on-write) it no longer follows the file.
 * A file closed and unlinked after mapping keeps working, and its writes
 * still reach it.  The same sequence runs against the kernel. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <unistd.h>
#include "kcmp.h"

#define SEED 45
#define N 6

struct trace {
    unsigned char b_sees, c_sees, c_fresh_sees, a_sees_b;
    unsigned char c_own, c_after, c_old_byte, b_after;
    int after_unlink_ok, msync_rc;
    unsigned char file_after[N * PAGE];
};

static void scenario(const struct mm_ops *ops, struct trace *t)
{
    char path[512];
    int fd1 = tmpfile_make(N * PAGE, SEED, O_RDWR, path);
    int fd2 = open(path, O_RDWR);
    int keep = open(path, O_RDONLY); /* the test's own look at the file */
    unsigned char *a = ops->mmap(NULL, N * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd1, 0);
    unsigned char *b = ops->mmap(NULL, N * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd2, 0);
    unsigned char *c = ops->mmap(NULL, N * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd2, 0);
    if (a == MAP_FAILED || b == MAP_FAILED || c == MAP_FAILED)
        tap_bail("%s: mmap: %s", ops->name, strerror(errno));
    /* Pages 0-3 resident everywhere; 4-5 not yet touched in c. */
    for (int i = 0; i < 4; i++)
        if (a[i * PAGE] != b[i * PAGE] || b[i * PAGE] != c[i * PAGE])
            tap_bail("%s: the mappings disagree", ops->name);

    a[PAGE + 10] = 0x61;
    t->b_sees = b[PAGE + 10];
    t->c_sees = c[PAGE + 10];
    a[4 * PAGE + 10] = 0x64;
    t->c_fresh_sees = c[4 * PAGE + 10];
    b[2 * PAGE + 20] = 0x62;
    t->a_sees_b = a[2 * PAGE + 20];

    c[3 * PAGE + 30] = 0x63;       /* copy-on-write */
    a[3 * PAGE + 31] = 0x65;       /* the file changes after the copy */
    a[3 * PAGE + 30] = 0x66;
    t->c_own = c[3 * PAGE + 30];
    t->c_after = c[3 * PAGE + 31];
    t->b_after = b[3 * PAGE + 30];
    t->c_old_byte = c[3 * PAGE + 32];

    /* Close and unlink: the mappings keep working. */
    close(fd1);
    close(fd2);
    unlink(path);
    a[5 * PAGE + 5] = 0x55;
    t->after_unlink_ok = b[5 * PAGE + 5] == 0x55 && diff_pattern(c, PAGE, 0, SEED) == 0 &&
                         c[5 * PAGE + 5] == 0x55;
    t->msync_rc = ops->msync(a, N * PAGE, MS_SYNC);
    ops->munmap(c, N * PAGE);
    ops->munmap(b, N * PAGE);
    ops->munmap(a, N * PAGE);
    read_file(keep, t->file_after, sizeof t->file_after, 0);
    close(keep);
}

int main(void)
{
    static struct trace k, u;
    scenario(&kernel_ops, &k);
    scenario(&umm_ops, &u);
    ok(k.b_sees == 0x61 && k.c_sees == 0x61 && k.c_own == 0x63 && k.c_after == pattern(3 * PAGE + 31, SEED),
       "kernel: behaves as the test expects (the test is right)");
    is_int(u.b_sees, k.b_sees, "a write through one shared mapping is seen at once through another");
    is_int(u.a_sees_b, k.a_sees_b, "and the other way round");
    is_int(u.c_sees, k.c_sees, "and through a private mapping whose page was not written");
    is_int(u.c_fresh_sees, k.c_fresh_sees, "and through a private page not yet touched");
    is_int(u.c_own, k.c_own, "a written private page keeps its own write");
    is_int(u.c_after, k.c_after, "and no longer follows the file");
    is_int(u.c_old_byte, k.c_old_byte, "its other bytes are those of the moment it was copied");
    is_int(u.b_after, k.b_after, "the shared mappings do not see the private write");
    ok(u.after_unlink_ok, "closed and unlinked: the mappings keep working");
    is_int(u.msync_rc, k.msync_rc, "msync after unlink returns as the kernel");
    ok(memcmp(u.file_after, k.file_after, sizeof k.file_after) == 0,
       "the unlinked file ends with the kernel's twin's bytes");
    check_released();
    return tap_done();
}
