/* Promise: umm_mmap answers MAP_HUGETLB as the kernel does on this machine
 * when it has no huge pages to give: a huge-page size the machine lacks
 * (the size bits, flags >> MAP_HUGE_SHIFT, naming one not under
 * /sys/kernel/mm/hugepages; 0 is the default size) is EINVAL, for anonymous
 * and file mappings alike; a size it has makes the call a mapping of a
 * hugetlbfs file, checked as one (length, type, offset and address aligned
 * to the huge page), and refused with ENOMEM only at the end, where the
 * kernel finds no huge page to reserve.  A table of cases is run against
 * the kernel and against libumm: same result, same errno.  Where the
 * kernel succeeds (MAP_NORESERVE, or huge pages reserved on this machine)
 * libumm cannot follow: the point is skipped, naming README difference 7. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdint.h>
#include <unistd.h>
#include "kcmp.h"

#ifndef MAP_HUGETLB
#define MAP_HUGETLB 0x40000
#endif
#ifndef MAP_HUGE_SHIFT
#define MAP_HUGE_SHIFT 26
#endif
#ifndef MAP_SYNC
#define MAP_SYNC 0x80000
#endif

#define SEED 61
#define HUGE(bits) ((bits) << MAP_HUGE_SHIFT)
#define HT MAP_HUGETLB
#define ANON MAP_ANONYMOUS
#define PRIV MAP_PRIVATE
#define SHR MAP_SHARED
#define P PAGE
#define M2 ((size_t)2 << 20)
#define BASE KCMP_BASE /* 2 MiB aligned, free */
#define UNKNOWN_FLAG 0x800000

enum { FD_NONE, FD_FILE, FD_RDONLY, FD_BAD, FD_N };
static int fds[FD_N];

struct hcase {
    const char *name;
    uintptr_t addr;
    size_t len;
    int flags;
    int fd;
    off_t off;
    int expect; /* the kernel's errno as the issue names it, -1: whatever it says */
};

static const struct hcase cases[] = {
    /* the size bits */
    { "anonymous, size bits 16 (64 KiB)", 0, P, PRIV | ANON | HT | HUGE(16), FD_NONE, 0, EINVAL },
    { "anonymous, size bits 63", 0, P, PRIV | ANON | HT | HUGE(63), FD_NONE, 0, EINVAL },
    { "shared anonymous, size bits 16", 0, P, SHR | ANON | HT | HUGE(16), FD_NONE, 0, EINVAL },
    { "shared anonymous, size bits 63", 0, P, SHR | ANON | HT | HUGE(63), FD_NONE, 0, EINVAL },
    { "anonymous, size bits 0 (the default size)", 0, P, PRIV | ANON | HT, FD_NONE, 0, -1 },
    { "anonymous, size bits 21 (2 MiB)", 0, P, PRIV | ANON | HT | HUGE(21), FD_NONE, 0, -1 },
    { "anonymous, size bits 30 (1 GiB)", 0, P, PRIV | ANON | HT | HUGE(30), FD_NONE, 0, -1 },
    { "anonymous, size bits 12 (the base page)", 0, P, PRIV | ANON | HT | HUGE(12), FD_NONE, 0, -1 },
    { "anonymous, size bits 1", 0, P, PRIV | ANON | HT | HUGE(1), FD_NONE, 0, EINVAL },
    { "anonymous, size bits 20 (1 MiB)", 0, P, PRIV | ANON | HT | HUGE(20), FD_NONE, 0, -1 },
    { "shared anonymous, size bits 0", 0, P, SHR | ANON | HT, FD_NONE, 0, -1 },
    /* a file: never, whatever the size */
    { "file, size bits 0", 0, P, PRIV | HT, FD_FILE, 0, EINVAL },
    { "file, size bits 16", 0, P, PRIV | HT | HUGE(16), FD_FILE, 0, EINVAL },
    { "file, size bits 21", 0, P, SHR | HT | HUGE(21), FD_FILE, 0, EINVAL },
    { "file, size bits 63", 0, P, SHR | HT | HUGE(63), FD_FILE, 0, EINVAL },
    { "file O_RDONLY, shared writable, size bits 16", 0, P, SHR | HT | HUGE(16), FD_RDONLY, 0, EINVAL },
    { "no descriptor, size bits 16", 0, P, PRIV | HT | HUGE(16), FD_BAD, 0, EBADF },
    /* the checks before: offset, descriptor */
    { "offset not page aligned, size bits 16", 0, P, PRIV | ANON | HT | HUGE(16), FD_NONE, 1, EINVAL },
    { "offset not page aligned, size bits 0", 0, P, PRIV | ANON | HT, FD_NONE, 1, EINVAL },
    /* a size the machine has: a hugetlbfs file's checks, in the kernel's order */
    { "length 0, size bits 0", 0, 0, PRIV | ANON | HT, FD_NONE, 0, EINVAL },
    { "length 0, size bits 16", 0, 0, PRIV | ANON | HT | HUGE(16), FD_NONE, 0, EINVAL },
    { "length wraps when rounded to the huge page", 0, (size_t)-P, PRIV | ANON | HT, FD_NONE, 0, EINVAL },
    { "length beyond the address space", 0, (size_t)1 << 48, PRIV | ANON | HT, FD_NONE, 0, ENOMEM },
    { "length just below 2^64 rounded", 0, (size_t)0 - M2 - 1, PRIV | ANON | HT, FD_NONE, 0, ENOMEM },
    { "neither MAP_SHARED nor MAP_PRIVATE", 0, P, ANON | HT, FD_NONE, 0, EINVAL },
    { "mapping type 0xf", 0, P, 0xf | ANON | HT, FD_NONE, 0, EINVAL },
    { "mapping type 0x8 (MAP_DROPPABLE)", 0, P, 0x8 | ANON | HT, FD_NONE, 0, -1 },
    { "MAP_SHARED_VALIDATE", 0, P, MAP_SHARED_VALIDATE | ANON | HT, FD_NONE, 0, -1 },
    { "MAP_SHARED_VALIDATE with an unknown flag", 0, P, MAP_SHARED_VALIDATE | ANON | HT | UNKNOWN_FLAG, FD_NONE,
      0, -1 },
    { "MAP_SHARED ignores an unknown flag", 0, P, SHR | ANON | HT | UNKNOWN_FLAG, FD_NONE, 0, -1 },
    { "MAP_SHARED_VALIDATE with MAP_SYNC", 0, P, MAP_SHARED_VALIDATE | ANON | HT | MAP_SYNC, FD_NONE, 0, -1 },
    { "MAP_PRIVATE with MAP_SYNC", 0, P, PRIV | ANON | HT | MAP_SYNC, FD_NONE, 0, -1 },
    { "MAP_GROWSDOWN", 0, P, PRIV | ANON | HT | MAP_GROWSDOWN, FD_NONE, 0, -1 },
    { "offset one page", 0, P, PRIV | ANON | HT, FD_NONE, P, -1 },
    { "offset one huge page", 0, P, PRIV | ANON | HT, FD_NONE, (off_t)M2, -1 },
    { "MAP_FIXED at an address not huge-page aligned", BASE + P, P, PRIV | ANON | HT | MAP_FIXED, FD_NONE, 0, -1 },
    { "MAP_FIXED, not aligned, size bits 16", BASE + P, P, PRIV | ANON | HT | HUGE(16) | MAP_FIXED, FD_NONE, 0,
      EINVAL },
    { "MAP_FIXED_NOREPLACE, not aligned", BASE + P, P, PRIV | ANON | HT | MAP_FIXED_NOREPLACE, FD_NONE, 0, EINVAL },
    { "MAP_FIXED, aligned", BASE, P, PRIV | ANON | HT | MAP_FIXED, FD_NONE, 0, -1 },
    { "MAP_FIXED_NOREPLACE, aligned", BASE, P, PRIV | ANON | HT | MAP_FIXED_NOREPLACE, FD_NONE, 0, ENOMEM },
    { "MAP_FIXED at the top of the address space, aligned", ((uintptr_t)1 << 47) - M2, 2 * M2,
      PRIV | ANON | HT | MAP_FIXED, FD_NONE, 0, -1 },
    { "MAP_FIXED at the top, not aligned", ((uintptr_t)1 << 47) - P, 2 * M2, PRIV | ANON | HT | MAP_FIXED,
      FD_NONE, 0, -1 },
    { "a hint not aligned", BASE + P, P, PRIV | ANON | HT, FD_NONE, 0, -1 },
    { "MAP_LOCKED", 0, P, PRIV | ANON | HT | MAP_LOCKED, FD_NONE, 0, -1 },
    { "MAP_POPULATE", 0, P, SHR | ANON | HT | MAP_POPULATE, FD_NONE, 0, -1 },
    { "MAP_NORESERVE, size bits 16", 0, P, PRIV | ANON | HT | MAP_NORESERVE | HUGE(16), FD_NONE, 0, EINVAL },
    { "MAP_NORESERVE, offset one page", 0, P, PRIV | ANON | HT | MAP_NORESERVE, FD_NONE, P, -1 },
    { "MAP_NORESERVE", 0, P, PRIV | ANON | HT | MAP_NORESERVE, FD_NONE, 0, -1 },
    { "shared, MAP_NORESERVE", 0, 3 * P, SHR | ANON | HT | MAP_NORESERVE, FD_NONE, 0, -1 },
};

/* Under Valgrind the kernel's side is Valgrind's own mmap, which answers
 * some cases before Linux would: the reason for those, or NULL.  libumm
 * is then held to what Linux answers (the case's expect). */
static const char *valgrind_differs(const struct hcase *c)
{
    if (c->len >= ((size_t)1 << 47) && c->expect == ENOMEM)
        return "Valgrind's mmap answers EINVAL, not ENOMEM, to a length its address-space manager cannot place";
    if (c->flags & MAP_FIXED_NOREPLACE)
        return "Valgrind's mmap (3.19) answers MAP_FIXED_NOREPLACE itself (EEXIST here), before Linux's checks";
    return NULL;
}

static struct outcome run(const struct mm_ops *ops, const struct hcase *c)
{
    /* Nothing of the test's may be where MAP_FIXED maps (at the top of the
     * address space both fail before they look: the range does not fit). */
    if (c->addr && c->addr < ((uintptr_t)1 << 46))
        kcmp_require_free(c->addr & ~(M2 - 1), 4 * M2);
    if (!ops->is_umm)
        vg_quiet(1);
    errno = 0;
    void *p = ops->mmap((void *)c->addr, c->len, PROT_READ | PROT_WRITE, c->flags, fds[c->fd], c->off);
    struct outcome o = outcome_of(p == MAP_FAILED ? -1 : 0);
    if (!ops->is_umm)
        vg_quiet(0);
    /* A huge page mapping is unmapped in whole huge pages (2 MiB, the only
     * size the kernel could have mapped here without being asked for one). */
    if (p != MAP_FAILED && ops->munmap(p, (c->len + M2 - 1) & ~(M2 - 1)) != 0)
        tap_bail("%s: %s: munmap: %s", ops->name, c->name, strerror(errno));
    return o;
}

int main(void)
{
    fds[FD_NONE] = -1;
    fds[FD_BAD] = -1;
    char path[512];
    fds[FD_FILE] = tmpfile_make(4 * PAGE, SEED, O_RDWR, path);
    fds[FD_RDONLY] = open(path, O_RDONLY);
    unlink(path);
    if (fds[FD_RDONLY] < 0)
        tap_bail("reopening the file: %s", strerror(errno));
    struct umm_stats s0, s1;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const struct hcase *c = &cases[i];
        struct outcome k = run(&kernel_ops, c);
        umm_stats(&s0);
        struct outcome u = run(&umm_ops, c);
        umm_stats(&s1);
        const char *vg = under_valgrind() ? valgrind_differs(c) : NULL;
        if (vg) {
            tap_skip(vg, "kernel: %s: %s (the test is right)", c->name, strerror(c->expect));
            ok(u.rc == -1 && u.err == c->expect, "libumm: %s: %s, as Linux (Valgrind's own mmap does not)", c->name,
               strerror(c->expect));
            continue;
        }
        if (c->expect >= 0)
            is_int(k.err, c->expect, "kernel: %s: %s (the test is right)", c->name, strerror(c->expect));
        if (k.rc == 0) {
            tap_skip("the kernel maps it (huge pages reserved, or MAP_NORESERVE: SIGBUS at the touch); libumm has "
                     "no huge pages (README difference 7)",
                     "libumm: %s", c->name);
            continue;
        }
        int same = u.rc == k.rc && u.err == k.err;
        ok(same, "libumm: %s: %s, as the kernel", c->name, strerror(k.err));
        if (!same)
            tap_diag("kernel: %s; libumm: %s", strerror(k.err), u.rc ? strerror(u.err) : "success");
        ok(s1.mappings == s0.mappings && s1.frames == s0.frames, "libumm: %s: changes nothing", c->name);
        if (c->addr && c->addr < ((uintptr_t)1 << 46))
            ok(kcmp_is_free(c->addr & ~(M2 - 1), P), "libumm: %s: the address space is left free", c->name);
    }
    close(fds[FD_FILE]);
    close(fds[FD_RDONLY]);
    check_released();
    return tap_done();
}
