/* Promise: umm_munmap of the head, the tail or a hole in the middle of a
 * mapping, or of a range spanning several mappings, splits them as the
 * kernel does: what remains keeps its bytes and stays usable, what is gone
 * raises SIGSEGV with SEGV_MAPERR at the address, dirty shared pages in the
 * range are in the file when umm_munmap returns, and their private frames
 * are freed.  The same steps run against the kernel and libumm, and after
 * each step every page and the file must look the same. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <unistd.h>
#include "kcmp.h"

#define SEED 46
#define NP 18 /* pages looked at: the layout (16) and 2 after it */
#define B KCMP_BASE

/* Layout: M1 pages 0-7 shared file, M2 pages 8-11 private anonymous, M3
 * pages 12-15 private file (its pages 0-3). */
struct step {
    const char *name;
    int first, n;
    int mappings; /* libumm mappings left after it */
};
static const struct step steps[] = {
    { "the head of a mapping", 0, 2, 3 },
    { "the tail of a mapping", 6, 2, 3 },
    { "a hole in the middle of a mapping", 3, 2, 4 },
    { "a range spanning two mappings", 10, 4, 4 },
    { "a range over holes and two pieces of a mapping", 1, 7, 2 },
};
#define NSTEPS (int)(sizeof steps / sizeof steps[0])

struct trace {
    int rc[NSTEPS];
    int file_has_dirty[NSTEPS]; /* the dirty pages in the range were in the file when munmap returned */
    struct pageview view[NSTEPS][NP];
    long mappings[NSTEPS];
    unsigned char file[8 * PAGE];
};

static void scenario(const struct mm_ops *ops, struct trace *t)
{
    int fd = tmpfile_make(8 * PAGE, SEED, O_RDWR, NULL);
    int pfd = tmpfile_make(4 * PAGE, SEED + 1, O_RDONLY, NULL);
    kcmp_require_free(B, NP * PAGE);
    unsigned char *m1 = ops->mmap((void *)B, 8 * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED_NOREPLACE, fd, 0);
    unsigned char *m2 = ops->mmap((void *)(B + 8 * PAGE), 4 * PAGE, PROT_READ | PROT_WRITE,
                                  MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
    unsigned char *m3 = ops->mmap((void *)(B + 12 * PAGE), 4 * PAGE, PROT_READ | PROT_WRITE,
                                  MAP_PRIVATE | MAP_FIXED_NOREPLACE, pfd, 0);
    if (m1 != (void *)B || m2 != (void *)(B + 8 * PAGE) || m3 != (void *)(B + 12 * PAGE))
        tap_bail("%s: layout: %s", ops->name, strerror(errno));
    /* Every page of M1 dirty with a byte of its own; M2 written; M3 partly
     * copied. */
    for (int i = 0; i < 8; i++)
        m1[i * PAGE + 100 + i] = (unsigned char)(0x80 + i);
    for (int i = 0; i < 4; i++)
        memset(m2 + i * PAGE, 0x20 + i, 64);
    m3[1 * PAGE + 5] = 0x35;
    m3[3 * PAGE + 7] = 0x37;
    (void)m3[2 * PAGE]; /* resident, not copied */

    for (int s = 0; s < NSTEPS; s++) {
        const struct step *st = &steps[s];
        t->rc[s] = ops->munmap((void *)(B + (uintptr_t)st->first * PAGE), (size_t)st->n * PAGE);
        int has = 1;
        for (int i = st->first; i < st->first + st->n && i < 8; i++) {
            unsigned char c = 0;
            read_file(fd, &c, 1, i * PAGE + 100 + i);
            has &= c == 0x80 + i;
        }
        t->file_has_dirty[s] = has;
        t->mappings[s] = ops->is_umm ? (long)stat_get("mappings") : -1;
        snap(B, NP, t->view[s], 0);
    }
    ops->munmap((void *)B, NP * PAGE);
    file_bytes(fd, t->file, sizeof t->file);
    close(fd);
    close(pfd);
}

int main(void)
{
    static struct trace k, u;
    scenario(&kernel_ops, &k);
    uint64_t frames0 = stat_get("frames");
    scenario(&umm_ops, &u);
    for (int s = 0; s < NSTEPS; s++) {
        const struct step *st = &steps[s];
        is_int(k.rc[s], 0, "kernel: munmap of %s (the test is right)", st->name);
        is_int(u.rc[s], k.rc[s], "munmap of %s returns as the kernel", st->name);
        ok(u.file_has_dirty[s], "munmap of %s: its dirty shared pages were in the file when it returned", st->name);
        for (int i = st->first; i < st->first + st->n; i++)
            if (u.view[s][i].read != ACC_MAPERR)
                tap_diag("page %d still readable (%d)", i, u.view[s][i].read);
        int gone = 1;
        for (int i = st->first; i < st->first + st->n; i++)
            gone &= u.view[s][i].read == ACC_MAPERR;
        ok(gone, "munmap of %s: its pages raise SIGSEGV SEGV_MAPERR at the address", st->name);
        ok(same_views(k.view[s], u.view[s], NP), "munmap of %s: every page as in the kernel", st->name);
        is_int(u.mappings[s], st->mappings, "munmap of %s: %d libumm mappings left", st->name, st->mappings);
    }
    ok(memcmp(u.file, k.file, sizeof k.file) == 0, "the file ends with the kernel's twin's bytes");
    is_int(stat_get("frames"), frames0, "every frame freed");
    check_released();
    return tap_done();
}
