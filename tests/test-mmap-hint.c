/* Promise: a hint address (no MAP_FIXED) is honoured when the range is
 * free, as by the kernel; when it is taken (by a libumm mapping or by
 * memory libumm does not own) the mapping goes elsewhere, and what was
 * there is left alone.  An unaligned hint is placed as the kernel places
 * it. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <unistd.h>
#include "kcmp.h"

#define SEED 32

struct trace {
    long free_delta, unaligned_delta;
    int taken_elsewhere, taken_works, taken_intact;
    int foreign_elsewhere, foreign_intact;
};

/* Valgrind's own mmap refuses an unaligned address with EINVAL, a hint
 * too, and so does the host's mmap libumm hands the hint to: under
 * Valgrind neither side can place an unaligned hint. */
#define VG_UNALIGNED "Valgrind's mmap refuses every unaligned address with EINVAL, a hint too"

static void scenario(const struct mm_ops *ops, int fd, struct trace *t)
{
    /* A free hint. */
    kcmp_require_free(KCMP_BASE, 8 * PAGE);
    unsigned char *p = ops->mmap((void *)KCMP_BASE, 4 * PAGE, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED)
        tap_bail("%s: mmap: %s", ops->name, strerror(errno));
    t->free_delta = (long)((uintptr_t)p - KCMP_BASE);

    /* The same hint again: taken by the first mapping. */
    unsigned char *q = ops->mmap((void *)KCMP_BASE, 2 * PAGE, PROT_READ, MAP_PRIVATE, fd, 2 * PAGE);
    if (q == MAP_FAILED)
        tap_bail("%s: mmap: %s", ops->name, strerror(errno));
    t->taken_elsewhere = q != p && (q + 2 * PAGE <= p || q >= p + 4 * PAGE);
    t->taken_works = diff_pattern(q, 2 * PAGE, 2 * PAGE, SEED) == 0;
    t->taken_intact = diff_pattern(p, 4 * PAGE, 0, SEED) == 0;
    ops->munmap(q, 2 * PAGE);
    ops->munmap(p, 4 * PAGE);

    /* A hint taken by memory that is not this side's. */
    kcmp_require_free(KCMP_BASE, 8 * PAGE);
    unsigned char *foreign = mmap((void *)KCMP_BASE, PAGE, PROT_READ | PROT_WRITE,
                                  MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
    if (foreign != (void *)KCMP_BASE)
        tap_bail("foreign page: %s", strerror(errno));
    memset(foreign, 0x5c, PAGE);
    q = ops->mmap(foreign, PAGE, PROT_READ, MAP_SHARED, fd, 0);
    if (q == MAP_FAILED)
        tap_bail("%s: mmap: %s", ops->name, strerror(errno));
    t->foreign_elsewhere = q != foreign;
    t->foreign_intact = foreign[0] == 0x5c && foreign[PAGE - 1] == 0x5c && q[9] == pattern(9, SEED);
    ops->munmap(q, PAGE);
    munmap(foreign, PAGE);

    /* An unaligned hint. */
    if (under_valgrind())
        return;
    kcmp_require_free(KCMP_BASE, 8 * PAGE);
    p = ops->mmap((void *)(KCMP_BASE + 123), 2 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        tap_bail("%s: mmap: %s", ops->name, strerror(errno));
    t->unaligned_delta = (long)((uintptr_t)p - KCMP_BASE);
    ops->munmap(p, 2 * PAGE);
}

int main(void)
{
    struct trace k, u;
    int fd = tmpfile_make(4 * PAGE, SEED, O_RDONLY, NULL);
    scenario(&kernel_ops, fd, &k);
    scenario(&umm_ops, fd, &u);
    is_int(k.free_delta, 0, "kernel: a free hint is honoured (the test is right)");
    is_int(u.free_delta, 0, "libumm: a free hint is honoured");
    ok(k.taken_elsewhere, "kernel: a taken hint goes elsewhere (the test is right)");
    ok(u.taken_elsewhere, "libumm: a hint taken by a libumm mapping goes elsewhere");
    ok(u.taken_works, "that mapping shows its file");
    ok(u.taken_intact, "the mapping at the hint is untouched");
    ok(u.foreign_elsewhere, "a hint taken by memory libumm does not own goes elsewhere");
    ok(u.foreign_intact, "that memory is untouched, the new mapping works");
    if (under_valgrind())
        tap_skip(VG_UNALIGNED, "an unaligned hint is placed as the kernel places it");
    else
        is_int(u.unaligned_delta, k.unaligned_delta, "an unaligned hint is placed as the kernel places it");
    close(fd);
    check_released();
    return tap_done();
}
