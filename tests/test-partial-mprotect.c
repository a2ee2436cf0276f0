/* Promise: umm_mprotect of the head, the tail or a hole in the middle of a
 * mapping, or of a range spanning several mappings, splits them as the
 * kernel does: the pages in the range take the new protection, the others
 * keep theirs, no bytes change; a write to a page made read-only raises
 * SIGSEGV with SEGV_ACCERR at the address, and a read of a PROT_NONE page
 * too.  Dirty tracking survives: pages written before a change of
 * protection and after it are written back by msync, and only those.  The
 * same steps run against the kernel and libumm; after each step every page
 * (readable, writable, bytes) and in the end the file must agree. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <unistd.h>
#include "kcmp.h"

#define SEED 47
#define NP 17 /* the layout (16 pages) and 1 after it */
#define B KCMP_BASE
#define RW (PROT_READ | PROT_WRITE)

/* Layout: M1 pages 0-7 shared file, M2 pages 8-11 private anonymous, M3
 * pages 12-15 private file. */
struct step {
    const char *name;
    int first, n, prot;
};
static const struct step steps[] = {
    { "the head of a mapping read-only", 0, 2, PROT_READ },
    { "the tail of a mapping PROT_NONE", 6, 2, PROT_NONE },
    { "a hole in the middle of a mapping read-only", 3, 2, PROT_READ },
    { "a range spanning three mappings read-only", 7, 6, PROT_READ },
    { "a range inside a mapping already split, PROT_NONE", 4, 1, PROT_NONE },
    { "everything back to read-write", 0, 16, RW },
};
#define NSTEPS (int)(sizeof steps / sizeof steps[0])

struct trace {
    int rc[NSTEPS];
    struct pageview view[NSTEPS][NP];
    int sig_ro, sig_none;  /* a write to a read-only page, a read of a PROT_NONE page */
    int msync_rc;
    unsigned char file[8 * PAGE];
};

static void scenario(const struct mm_ops *ops, struct trace *t)
{
    int fd = tmpfile_make(8 * PAGE, SEED, O_RDWR, NULL);
    int pfd = tmpfile_make(4 * PAGE, SEED + 1, O_RDONLY, NULL);
    kcmp_require_free(B, NP * PAGE);
    unsigned char *m1 = ops->mmap((void *)B, 8 * PAGE, RW, MAP_SHARED | MAP_FIXED_NOREPLACE, fd, 0);
    unsigned char *m2 = ops->mmap((void *)(B + 8 * PAGE), 4 * PAGE, RW, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE,
                                  -1, 0);
    unsigned char *m3 = ops->mmap((void *)(B + 12 * PAGE), 4 * PAGE, RW, MAP_PRIVATE | MAP_FIXED_NOREPLACE, pfd, 0);
    if (m1 != (void *)B || m2 != (void *)(B + 8 * PAGE) || m3 != (void *)(B + 12 * PAGE))
        tap_bail("%s: layout: %s", ops->name, strerror(errno));
    m1[0 * PAGE + 10] = 0xa0; /* dirty before: pages 0, 4, 7 */
    m1[4 * PAGE + 10] = 0xa4;
    m1[7 * PAGE + 10] = 0xa7;
    memset(m2 + PAGE, 0x29, 100);
    m3[12] = 0x3c;
    (void)m1[5 * PAGE]; /* resident, clean */

    for (int s = 0; s < NSTEPS; s++) {
        const struct step *st = &steps[s];
        t->rc[s] = ops->mprotect((void *)(B + (uintptr_t)st->first * PAGE), (size_t)st->n * PAGE, st->prot);
        if (s == 0)
            t->sig_ro = probe_write(m1 + 9);
        if (s == 1)
            t->sig_none = probe_read(m1 + 6 * PAGE + 3);
        snap(B, NP, t->view[s], 1);
    }
    /* After everything is read-write again: more writes, then msync. */
    m1[1 * PAGE + 11] = 0xb1;
    m1[4 * PAGE + 11] = 0xb4;
    t->msync_rc = ops->msync(m1, 8 * PAGE, MS_SYNC);
    ops->munmap((void *)B, NP * PAGE);
    file_bytes(fd, t->file, sizeof t->file);
    close(fd);
    close(pfd);
}

int main(void)
{
    static struct trace k, u;
    scenario(&kernel_ops, &k);
    scenario(&umm_ops, &u);
    for (int s = 0; s < NSTEPS; s++) {
        const struct step *st = &steps[s];
        is_int(k.rc[s], 0, "kernel: mprotect of %s (the test is right)", st->name);
        is_int(u.rc[s], k.rc[s], "mprotect of %s returns as the kernel", st->name);
        ok(same_views(k.view[s], u.view[s], NP), "mprotect of %s: every page as in the kernel", st->name);
    }
    is_int(k.sig_ro, ACC_ACCERR, "kernel: a write to a read-only page is SEGV_ACCERR (the test is right)");
    is_int(u.sig_ro, ACC_ACCERR, "a write to a page made read-only raises SIGSEGV SEGV_ACCERR at the address");
    is_int(u.sig_none, ACC_ACCERR, "a read of a page made PROT_NONE raises SIGSEGV SEGV_ACCERR at the address");
    is_int(u.msync_rc, k.msync_rc, "msync returns as the kernel");
    ok(memcmp(u.file, k.file, sizeof k.file) == 0, "the file ends with the kernel's twin's bytes");

    /* Dirty tracking across mprotect, counted. */
    int fd = tmpfile_make(4 * PAGE, SEED, O_RDWR, NULL);
    unsigned char *p = umm_mmap(NULL, 4 * PAGE, RW, MAP_SHARED, fd, 0);
    for (int i = 0; i < 4; i++)
        (void)p[i * PAGE];
    p[PAGE] = 1;                                  /* dirty */
    is_int(umm_mprotect(p, 2 * PAGE, PROT_READ), 0, "a dirty page made read-only");
    is_int(probe_write(p + PAGE), ACC_ACCERR, "cannot be written");
    is_int(umm_mprotect(p, 4 * PAGE, RW), 0, "made writable again");
    p[3 * PAGE] = 3;                              /* dirty after */
    uint64_t w = stat_get("pages_written");
    is_int(umm_msync(p, 4 * PAGE, MS_SYNC), 0, "msync");
    is_int(stat_get("pages_written") - w, 2, "writes back the page dirtied before and the one after, only those");
    is_int(umm_mprotect(p + PAGE, PAGE, PROT_READ), 0, "a clean page made read-only");
    is_int(umm_mprotect(p + PAGE, PAGE, RW), 0, "and writable again");
    p[PAGE + 1] = 2;
    w = stat_get("pages_written");
    is_int(umm_msync(p, 4 * PAGE, MS_SYNC), 0, "msync");
    is_int(stat_get("pages_written") - w, 1, "the write after mprotect was caught");
    unsigned char c[4];
    read_file(fd, &c[0], 1, PAGE);
    read_file(fd, &c[1], 1, PAGE + 1);
    read_file(fd, &c[3], 1, 3 * PAGE);
    ok(c[0] == 1 && c[1] == 2 && c[3] == 3, "the file has every write");
    umm_munmap(p, 4 * PAGE);
    close(fd);
    check_released();
    return tap_done();
}
