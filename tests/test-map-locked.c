/* Promise: MAP_LOCKED has the kernel's semantics.  Its pages are resident
 * from the call on (populated, private writable ones for write, as the
 * kernel's mlock does; a PROT_NONE mapping has none), an mprotect that
 * makes a private locked mapping writable copies its pages at once, and
 * what a locked range refuses is refused with the kernel's errno:
 * msync(MS_INVALIDATE) is EBUSY, MADV_DONTNEED, MADV_FREE, MADV_REMOVE,
 * MADV_COLD and MADV_PAGEOUT are EINVAL (MADV_DONTNEED_LOCKED is allowed),
 * a range that is only partly locked is handled up to the locked part.  A
 * partial mprotect or munmap leaves every piece locked; a child of fork
 * gets its mappings unlocked.  Without CAP_IPC_LOCK, RLIMIT_MEMLOCK bounds
 * the locked memory: EPERM when it is 0, EAGAIN beyond it, checked where
 * the kernel checks it (after EEXIST, before the type and file checks).
 * Every point runs the same calls on the kernel and on libumm and compares
 * results, errno, and what each page then allows and holds. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <linux/capability.h>
#include <stdint.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include "kcmp.h"

#ifndef MADV_DONTNEED_LOCKED
#define MADV_DONTNEED_LOCKED 24
#endif
#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22
#define MADV_POPULATE_WRITE 23
#endif
#ifndef MADV_COLD
#define MADV_COLD 20
#define MADV_PAGEOUT 21
#endif

#define SEED 63
#define N 4
#define BASE KCMP_BASE
#define RW (PROT_READ | PROT_WRITE)

static int fd;
static char path[512];

/* The file back to its pattern (a shared case may have written it). */
static void reset_file(void)
{
    unsigned char buf[2 * N * PAGE];
    for (size_t i = 0; i < sizeof buf; i++)
        buf[i] = pattern(i, SEED);
    if (ftruncate(fd, N * PAGE) != 0 || pwrite(fd, buf, N * PAGE, 0) != (ssize_t)(N * PAGE))
        tap_bail("resetting the file: %s", strerror(errno));
}

struct kind {
    const char *name;
    int flags; /* MAP_SHARED or MAP_PRIVATE, | MAP_ANONYMOUS */
    int prot;
};

static const struct kind kinds[] = {
    { "private anonymous", MAP_PRIVATE | MAP_ANONYMOUS, RW },
    { "shared anonymous", MAP_SHARED | MAP_ANONYMOUS, RW },
    { "private file", MAP_PRIVATE, RW },
    { "shared file", MAP_SHARED, RW },
    { "private file, read-only", MAP_PRIVATE, PROT_READ },
    { "private anonymous PROT_NONE", MAP_PRIVATE | MAP_ANONYMOUS, PROT_NONE },
};
#define NKINDS (sizeof kinds / sizeof kinds[0])

static void *map_kind(const struct mm_ops *ops, uintptr_t at, const struct kind *k, int extra)
{
    int anon = (k->flags & MAP_ANONYMOUS) != 0;
    return ops->mmap((void *)at, N * PAGE, k->prot, k->flags | extra | (at ? MAP_FIXED_NOREPLACE : 0),
                     anon ? -1 : fd, 0);
}

/* Write something of the mapping's own in every page it lets be written. */
static void scribble(uintptr_t base, const struct kind *k)
{
    if (!(k->prot & PROT_WRITE))
        return;
    for (int i = 0; i < N; i++)
        ((volatile unsigned char *)base)[(uintptr_t)i * PAGE + 9] = (unsigned char)(0xa0 + i);
}

/* ------------------------------------------------- errno of each call */

enum { MSYNC, MADVISE };
struct call {
    int op, arg;
    const char *name;
    int expect; /* the kernel's errno on a locked range as the issue names it, -1: whatever */
};

static const struct call calls[] = {
    { MSYNC, MS_INVALIDATE, "msync(MS_INVALIDATE)", EBUSY },
    { MSYNC, MS_SYNC | MS_INVALIDATE, "msync(MS_SYNC|MS_INVALIDATE)", EBUSY },
    { MSYNC, MS_ASYNC | MS_INVALIDATE, "msync(MS_ASYNC|MS_INVALIDATE)", EBUSY },
    { MSYNC, MS_SYNC, "msync(MS_SYNC)", 0 },
    { MSYNC, MS_ASYNC, "msync(MS_ASYNC)", 0 },
    { MADVISE, MADV_DONTNEED, "MADV_DONTNEED", EINVAL },
    { MADVISE, MADV_FREE, "MADV_FREE", EINVAL },
    { MADVISE, MADV_REMOVE, "MADV_REMOVE", EINVAL },
    { MADVISE, MADV_COLD, "MADV_COLD", EINVAL },
    { MADVISE, MADV_PAGEOUT, "MADV_PAGEOUT", EINVAL },
    { MADVISE, MADV_DONTNEED_LOCKED, "MADV_DONTNEED_LOCKED", 0 },
    { MADVISE, MADV_WILLNEED, "MADV_WILLNEED", 0 },
    { MADVISE, MADV_RANDOM, "MADV_RANDOM", 0 },
    { MADVISE, MADV_DONTFORK, "MADV_DONTFORK", 0 },
    { MADVISE, MADV_WIPEONFORK, "MADV_WIPEONFORK", -1 },
    { MADVISE, MADV_POPULATE_READ, "MADV_POPULATE_READ", -1 },
    { MADVISE, MADV_POPULATE_WRITE, "MADV_POPULATE_WRITE", -1 },
};
#define NCALLS (sizeof calls / sizeof calls[0])

struct after {
    struct outcome o;
    struct pageview v[N];
};

static void run_call(const struct mm_ops *ops, const struct kind *k, const struct call *c, struct after *a)
{
    reset_file();
    kcmp_require_free(BASE, N * PAGE);
    if (map_kind(ops, BASE, k, MAP_LOCKED) != (void *)BASE)
        tap_bail("%s: %s, MAP_LOCKED: %s", ops->name, k->name, strerror(errno));
    scribble(BASE, k);
    /* memcheck need not check the kernel's calls (libumm's, it must): it
     * may still know the range as a libumm block free'd by the last run. */
    if (!ops->is_umm)
        vg_quiet(1);
    errno = 0;
    long rc = c->op == MSYNC ? ops->msync((void *)(BASE + PAGE), 2 * PAGE, c->arg)
                             : ops->madvise((void *)(BASE + PAGE), 2 * PAGE, c->arg);
    a->o = outcome_of(rc);
    if (!ops->is_umm)
        vg_quiet(0);
    snap(BASE, N, a->v, 1);
    if (ops->munmap((void *)BASE, N * PAGE) != 0)
        tap_bail("%s: munmap: %s", ops->name, strerror(errno));
}

static void errno_table(void)
{
    for (size_t ki = 0; ki < NKINDS; ki++)
        for (size_t ci = 0; ci < NCALLS; ci++) {
            const struct kind *k = &kinds[ki];
            const struct call *c = &calls[ci];
            struct after kr, ur;
            run_call(&kernel_ops, k, c, &kr);
            run_call(&umm_ops, k, c, &ur);
            if (c->expect >= 0)
                is_int(kr.o.err, c->expect, "kernel: %s, locked: %s: %s (the test is right)", k->name, c->name,
                       c->expect ? strerror(c->expect) : "success");
            int same = kr.o.rc == ur.o.rc && kr.o.err == ur.o.err;
            ok(same, "libumm: %s, locked: %s: %s, as the kernel", k->name, c->name,
               kr.o.rc ? strerror(kr.o.err) : "success");
            if (!same)
                tap_diag("kernel: %s; libumm: %s", kr.o.rc ? strerror(kr.o.err) : "success",
                         ur.o.rc ? strerror(ur.o.err) : "success");
            ok(same_views(kr.v, ur.v, N), "libumm: %s, locked: %s: the pages as the kernel leaves them", k->name,
               c->name);
        }
}

/* ------------------------------------- a range only partly locked */

static void partly(const struct mm_ops *ops, int locked_first, int op, struct after *a)
{
    const struct kind *k = &kinds[0]; /* private anonymous: a zapped page reads zeros */
    kcmp_require_free(BASE, 2 * N * PAGE);
    if (map_kind(ops, BASE, k, locked_first ? MAP_LOCKED : 0) != (void *)BASE ||
        map_kind(ops, BASE + N * PAGE, k, locked_first ? 0 : MAP_LOCKED) != (void *)(BASE + N * PAGE))
        tap_bail("%s: two mappings: %s", ops->name, strerror(errno));
    scribble(BASE, k);
    scribble(BASE + N * PAGE, k);
    if (!ops->is_umm)
        vg_quiet(1);
    errno = 0;
    a->o = outcome_of(op == MSYNC ? ops->msync((void *)BASE, 2 * N * PAGE, MS_INVALIDATE)
                                  : ops->madvise((void *)BASE, 2 * N * PAGE, MADV_DONTNEED));
    if (!ops->is_umm)
        vg_quiet(0);
    struct pageview v[2 * N];
    snap(BASE, 2 * N, v, 1);
    memcpy(a->v, v, sizeof a->v); /* the first mapping's pages */
    int zeroed_second = 0;
    for (int i = N; i < 2 * N; i++)
        zeroed_second += *(volatile unsigned char *)(BASE + (uintptr_t)i * PAGE + 9) == 0;
    a->v[0].hash ^= (uint64_t)zeroed_second << 56; /* and whether the second's were zapped */
    ops->munmap((void *)BASE, 2 * N * PAGE);
}

static void partly_locked(void)
{
    for (int first = 0; first < 2; first++)
        for (int op = 0; op < 2; op++) {
            struct after kr, ur;
            partly(&kernel_ops, first, op, &kr);
            partly(&umm_ops, first, op, &ur);
            const char *what = first ? "locked, then unlocked" : "unlocked, then locked";
            const char *opn = op == MSYNC ? "msync(MS_INVALIDATE)" : "MADV_DONTNEED";
            is_int(kr.o.err, op == MSYNC ? EBUSY : EINVAL, "kernel: %s over %s (the test is right)", opn, what);
            ok(kr.o.rc == ur.o.rc && kr.o.err == ur.o.err, "libumm: %s over %s: %s, as the kernel", opn, what,
               strerror(kr.o.err));
            ok(same_views(kr.v, ur.v, N), "libumm: %s over %s: what was done before the locked part, as the kernel",
               opn, what);
        }
}

/* --------------------------------------------------------- residency */

static int kernel_resident(void *p, size_t n)
{
    unsigned char vec[2 * N];
    if (mincore(p, n * PAGE, vec) != 0)
        return -1;
    int r = 0;
    for (size_t i = 0; i < n; i++)
        r += vec[i] & 1;
    return r;
}

/* The "Anonymous:" kB of the kernel mapping that starts at p (smaps):
 * private copies. */
static long smaps_anon_kb(void *p)
{
    FILE *f = fopen("/proc/self/smaps", "r");
    char line[512];
    int in = 0;
    long kb = -1;
    if (!f)
        return -1;
    while (fgets(line, sizeof line, f)) {
        unsigned long s, e;
        if (sscanf(line, "%lx-%lx ", &s, &e) == 2 && strchr(line, '-') < strchr(line, ' ')) {
            in = s == (unsigned long)p;
            continue;
        }
        if (in && sscanf(line, "Anonymous: %ld kB", &kb) == 1)
            break;
    }
    fclose(f);
    return kb;
}

static void residency(void)
{
    struct umm_stats s0, s1;
    for (size_t ki = 0; ki < NKINDS; ki++) {
        const struct kind *k = &kinds[ki];
        reset_file();
        void *kp = map_kind(&kernel_ops, 0, k, MAP_LOCKED);
        int kres = kernel_resident(kp, N);
        long kcopies = (k->flags & MAP_ANONYMOUS) ? -1 : smaps_anon_kb(kp) / 4;
        munmap(kp, N * PAGE);
        umm_stats(&s0);
        unsigned char *p = map_kind(&umm_ops, 0, k, MAP_LOCKED);
        umm_stats(&s1);
        if (p == MAP_FAILED)
            tap_bail("libumm: %s, MAP_LOCKED: %s", k->name, strerror(errno));
        if (k->prot == PROT_NONE)
            is_int(kres, 0, "kernel: %s, MAP_LOCKED: nothing resident (the test is right)", k->name);
        else
            is_int(kres, N, "kernel: %s, MAP_LOCKED: every page resident at once (the test is right)", k->name);
        is_int(s1.resident - s0.resident, kres, "libumm: %s, MAP_LOCKED: as many pages resident at once", k->name);
        if (kcopies >= 0)
            is_int(s1.cow_copies - s0.cow_copies, kcopies, "libumm: %s, MAP_LOCKED: as many private copies as the kernel",
                   k->name);
        if (k->prot != PROT_NONE) {
            unsigned sum = 0;
            for (int i = 0; i < N; i++)
                sum += p[i * PAGE];
            (void)sum;
            /* A shared file's page is populated for reading, as by the
             * kernel, whose first write to it faults too (to track it
             * dirty): only the others are written. */
            int shared_file = k->flags == MAP_SHARED;
            if ((k->prot & PROT_WRITE) && !shared_file)
                for (int i = 0; i < N; i++)
                    p[i * PAGE + 1] = 1;
            is_int(stat_get("faults") - s1.faults, 0, "libumm: %s, MAP_LOCKED: %s the pages takes no trap", k->name,
                   (k->prot & PROT_WRITE) && !shared_file ? "reading and writing" : "reading");
        }
        umm_munmap(p, N * PAGE);
    }

    /* Locked beyond the end of the file: the file's pages are resident,
     * the call succeeds, the rest raise what the kernel raises. */
    char *k2 = mmap(NULL, 2 * N * PAGE, PROT_READ, MAP_SHARED | MAP_LOCKED, fd, 0);
    int kres = kernel_resident(k2, 2 * N);
    int ksig = probe_read(k2 + (2 * N - 1) * PAGE);
    munmap(k2, 2 * N * PAGE);
    umm_stats(&s0);
    char *u2 = umm_mmap(NULL, 2 * N * PAGE, PROT_READ, MAP_SHARED | MAP_LOCKED, fd, 0);
    umm_stats(&s1);
    ok(u2 != MAP_FAILED, "libumm: MAP_LOCKED beyond the end of the file succeeds");
    is_int(s1.resident - s0.resident, kres, "libumm: MAP_LOCKED beyond the end: as many pages resident as the kernel");
    is_int(probe_read(u2 + (2 * N - 1) * PAGE), ksig, "libumm: a page beyond the end raises what the kernel raises");
    umm_munmap(u2, 2 * N * PAGE);

    /* A private locked mapping made writable: copied at once, as the
     * kernel's mprotect does to spare the faults. */
    reset_file();
    void *kp = mmap(NULL, N * PAGE, PROT_READ, MAP_PRIVATE | MAP_LOCKED, fd, 0);
    mprotect(kp, N * PAGE, RW);
    long kcopies = smaps_anon_kb(kp) / 4;
    munmap(kp, N * PAGE);
    is_int(kcopies, N, "kernel: mprotect(PROT_WRITE) of a private locked mapping copies every page (the test is right)");
    unsigned char *p = umm_mmap(NULL, N * PAGE, PROT_READ, MAP_PRIVATE | MAP_LOCKED, fd, 0);
    umm_stats(&s0);
    ok(umm_mprotect(p, N * PAGE, RW) == 0, "libumm: mprotect(PROT_WRITE) of a private locked mapping");
    umm_stats(&s1);
    is_int(s1.cow_copies - s0.cow_copies, kcopies, "libumm: ... copies as many pages as the kernel");
    for (int i = 0; i < N; i++)
        p[i * PAGE + 3] = 7;
    is_int(stat_get("faults") - s1.faults, 0, "libumm: ... and writing them takes no trap");
    is_int(diff_pattern(p + 4, PAGE - 4, 4, SEED), 0, "libumm: ... the copies hold the file's bytes");
    umm_munmap(p, N * PAGE);
}

/* ------------------------------------------- pieces, and after fork */

/* msync(MS_INVALIDATE) of each page of [BASE, BASE + N pages) after
 * mprotect of page 1 and munmap of page 2: errno of each, packed. */
static void pieces(const struct mm_ops *ops, int errs[N])
{
    kcmp_require_free(BASE, N * PAGE);
    if (map_kind(ops, BASE, &kinds[0], MAP_LOCKED) != (void *)BASE)
        tap_bail("%s: MAP_LOCKED: %s", ops->name, strerror(errno));
    if (ops->mprotect((void *)(BASE + PAGE), PAGE, PROT_READ) != 0 || ops->munmap((void *)(BASE + 2 * PAGE), PAGE) != 0)
        tap_bail("%s: mprotect, munmap: %s", ops->name, strerror(errno));
    if (!ops->is_umm)
        vg_quiet(1);
    for (int i = 0; i < N; i++) {
        errno = 0;
        errs[i] = ops->msync((void *)(BASE + (uintptr_t)i * PAGE), PAGE, MS_INVALIDATE) == 0 ? 0 : errno;
    }
    if (!ops->is_umm)
        vg_quiet(0);
    ops->munmap((void *)BASE, N * PAGE);
}

/* The child of fork: its copy of a locked mapping is not locked. */
static void after_fork(const struct mm_ops *ops, int res[3])
{
    unsigned char *p = map_kind(ops, 0, &kinds[0], MAP_LOCKED);
    scribble((uintptr_t)p, &kinds[0]);
    fflush(stdout);
    pid_t pid = ops->is_umm ? umm_fork() : fork();
    if (pid == 0) {
        vg_abrupt_end(); /* _exit with libumm's daemon running */
        int a = ops->msync(p, PAGE, MS_INVALIDATE) == 0 ? 0 : errno;
        int b = ops->madvise(p, PAGE, MADV_DONTNEED) == 0 ? 0 : errno;
        int zero = p[9] == 0;
        _exit((a ? 1 : 0) | (b ? 2 : 0) | (zero ? 4 : 0));
    }
    int st = 0;
    waitpid(pid, &st, 0);
    res[0] = WIFEXITED(st) ? WEXITSTATUS(st) : 100 + WTERMSIG(st);
    errno = 0;
    res[1] = ops->msync(p, PAGE, MS_INVALIDATE) == 0 ? 0 : errno;
    res[2] = p[9];
    ops->munmap(p, N * PAGE);
}

static void pieces_and_fork(void)
{
    int ke[N], ue[N];
    pieces(&kernel_ops, ke);
    pieces(&umm_ops, ue);
    for (int i = 0; i < N; i++) {
        is_int(ke[i], i == 2 ? ENOMEM : EBUSY, "kernel: after a partial mprotect and munmap, page %d: %s (the test is right)",
               i, strerror(i == 2 ? ENOMEM : EBUSY));
        is_int(ue[i], ke[i], "libumm: after a partial mprotect and munmap, page %d is still locked as in the kernel", i);
    }
    int kf[3], uf[3];
    after_fork(&kernel_ops, kf);
    after_fork(&umm_ops, uf);
    is_int(kf[0], 4, "kernel: the child of fork may MS_INVALIDATE and MADV_DONTNEED its copy (the test is right)");
    is_int(uf[0], kf[0], "libumm: the child's copy is not locked, as in the kernel");
    is_int(uf[1], kf[1], "libumm: the parent's still is (%s)", strerror(kf[1]));
    is_int(uf[2], kf[2], "libumm: the parent's page keeps its bytes");
}

/* ------------------------------------------------- RLIMIT_MEMLOCK */

/* What one side answers, in a child without CAP_IPC_LOCK: the calls of
 * the sequence below, their errnos (0: success) written to the pipe. */
#define NLIMIT 14
static void limit_child(const struct mm_ops *ops, int out)
{
    struct __user_cap_header_struct h = { _LINUX_CAPABILITY_VERSION_3, 0 };
    struct __user_cap_data_struct d[2];
    int res[NLIMIT];
    if (syscall(SYS_capget, &h, d) != 0)
        _exit(90);
    d[0].effective &= ~(1u << CAP_IPC_LOCK);
    if (syscall(SYS_capset, &h, d) != 0)
        _exit(91);
    struct rlimit rl = { 8 * PAGE, 8 * PAGE };
    if (setrlimit(RLIMIT_MEMLOCK, &rl) != 0)
        _exit(92);
    int ro = open(path, O_RDONLY);
    void *held[NLIMIT] = { 0 };
    size_t heldlen[NLIMIT] = { 0 };
    kcmp_require_free(BASE, PAGE);
    void *there = ops->mmap((void *)BASE, PAGE, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
    struct { size_t len; int flags, fd; off_t off; uintptr_t at; int rlim; } seq[NLIMIT] = {
        { 16 * PAGE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0, 0, 8 },       /* beyond the limit: EAGAIN */
        { 4 * PAGE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0, 0, 8 },        /* within it */
        { 8 * PAGE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0, 0, 8 },        /* 4 + 8 > 8: EAGAIN */
        { 4 * PAGE, MAP_SHARED | MAP_ANONYMOUS, -1, 0, 0, 8 },         /* 4 + 4: the limit itself */
        { 1, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0, 0, 8 },               /* one byte more: EAGAIN */
        { 1, MAP_PRIVATE | MAP_ANONYMOUS, -1, 1, 0, 8 },               /* an unaligned offset first: EINVAL */
        { 0, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0, 0, 8 },               /* length 0 first: EINVAL */
        { PAGE, MAP_PRIVATE, 9999, 0, 0, 8 },                          /* a bad descriptor first: EBADF */
        { PAGE, MAP_SHARED, -2, 0, 0, 8 },                             /* before the file's mode: EAGAIN */
        { PAGE, MAP_SHARED_VALIDATE | MAP_ANONYMOUS, -1, 0, 0, 8 },    /* before the type: EAGAIN */
        { PAGE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0, BASE, 8 }, /* EEXIST first */
        { PAGE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0, 0, 0 },            /* limit 0: EPERM */
        { PAGE, MAP_ANONYMOUS, -1, 0, 0, 0 },                          /* EPERM before the type */
        { PAGE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0, BASE, 0 }, /* over a mapping: EPERM */
    };
    for (int i = 0; i < NLIMIT; i++) {
        rl.rlim_cur = (rlim_t)seq[i].rlim * PAGE;
        setrlimit(RLIMIT_MEMLOCK, &rl);
        int f = seq[i].fd == -2 ? ro : seq[i].fd;
        errno = 0;
        void *p = ops->mmap((void *)seq[i].at, seq[i].len, PROT_READ | (seq[i].fd == -2 ? PROT_WRITE : 0),
                            seq[i].flags | MAP_LOCKED, f, seq[i].off);
        res[i] = p == MAP_FAILED ? errno : 0;
        if (p != MAP_FAILED && !seq[i].at) {
            held[i] = p;
            heldlen[i] = seq[i].len;
        }
    }
    for (int i = 0; i < NLIMIT; i++)
        if (held[i])
            ops->munmap(held[i], heldlen[i]);
    if (there != MAP_FAILED)
        ops->munmap(there, PAGE);
    if (write(out, res, sizeof res) != (ssize_t)sizeof res)
        _exit(93);
    _exit(0);
}

static int limit_side(const struct mm_ops *ops, int res[NLIMIT])
{
    int pfd[2];
    if (pipe(pfd) != 0)
        tap_bail("pipe: %s", strerror(errno));
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        tap_quiet();
        close(pfd[0]);
        limit_child(ops, pfd[1]);
    }
    close(pfd[1]);
    ssize_t n = read(pfd[0], res, NLIMIT * sizeof(int));
    close(pfd[0]);
    int st = 0;
    waitpid(pid, &st, 0);
    if (n != (ssize_t)(NLIMIT * sizeof(int)))
        tap_diag("%s: the child said nothing (status %#x)", ops->name, st);
    return n == (ssize_t)(NLIMIT * sizeof(int));
}

static void memlock_limit(void)
{
    static const int expect[NLIMIT] = { EAGAIN, 0, EAGAIN, 0, EAGAIN, EINVAL, EINVAL, EBADF,
                                        EAGAIN, EAGAIN, EEXIST, EPERM, EPERM, EPERM };
    int k[NLIMIT], u[NLIMIT];
    if (!limit_side(&kernel_ops, k) || !limit_side(&umm_ops, u)) {
        ok(0, "RLIMIT_MEMLOCK: both sides ran");
        return;
    }
    for (int i = 0; i < NLIMIT; i++) {
        if (under_valgrind() && expect[i] == EEXIST) {
            tap_skip("Valgrind's mmap (3.19) takes a MAP_FIXED_NOREPLACE address as a hint: over a mapping it maps "
                     "elsewhere", "kernel: RLIMIT_MEMLOCK, call %d: EEXIST (the test is right)", i);
            is_int(u[i], expect[i], "libumm: RLIMIT_MEMLOCK, call %d: EEXIST, as Linux", i);
            continue;
        }
        is_int(k[i], expect[i], "kernel: RLIMIT_MEMLOCK, call %d: %s (the test is right)", i,
               expect[i] ? strerror(expect[i]) : "success");
        is_int(u[i], k[i], "libumm: RLIMIT_MEMLOCK, call %d: as the kernel", i);
    }
}

int main(void)
{
    fd = tmpfile_make(N * PAGE, SEED, O_RDWR, path);
    errno_table();
    partly_locked();
    residency();
    pieces_and_fork();
    memlock_limit();
    unlink(path);
    close(fd);
    check_released();
    return tap_done();
}
