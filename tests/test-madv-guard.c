/* Promise: MADV_GUARD_INSTALL and MADV_GUARD_REMOVE (Linux 6.13) work as
 * the kernel's.  A guarded page raises SIGSEGV (SEGV_MAPERR) at any touch;
 * installing a guard drops the page's contents (anonymous memory reads
 * zeros after the guard is removed, a private file page the file, a shared
 * page what its page cache holds); the guard stays through MADV_DONTNEED,
 * mprotect, msync and fork, makes MADV_POPULATE_(READ|WRITE) fail with
 * EFAULT, and after MADV_GUARD_REMOVE the page faults in as any other.  A
 * guard cannot be installed in a MAP_LOCKED mapping (EINVAL; removing is
 * allowed), and the usual checks apply (unaligned address, holes).  Every
 * step runs on the kernel and on libumm, on anonymous and file mappings,
 * private and shared: same result, same errno, and every page then as
 * readable, writable and with the same bytes. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdint.h>
#include <sys/wait.h>
#include <unistd.h>
#include "kcmp.h"

#ifndef MADV_GUARD_INSTALL
#define MADV_GUARD_INSTALL 102
#define MADV_GUARD_REMOVE 103
#endif
#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22
#define MADV_POPULATE_WRITE 23
#endif

#define SEED 65
#define N 4
#define BASE KCMP_BASE
#define RW (PROT_READ | PROT_WRITE)
#define MAXSTEPS 16

static int fd;

struct kind {
    const char *name;
    int flags, prot;
};

static const struct kind kinds[] = {
    { "private anonymous", MAP_PRIVATE | MAP_ANONYMOUS, RW },
    { "shared anonymous", MAP_SHARED | MAP_ANONYMOUS, RW },
    { "private file", MAP_PRIVATE, RW },
    { "shared file", MAP_SHARED, RW },
    { "private anonymous PROT_NONE", MAP_PRIVATE | MAP_ANONYMOUS, PROT_NONE },
};

struct step {
    struct outcome o;
    struct pageview v[N];
};

struct scenario {
    int nsteps;
    const char *name[MAXSTEPS];
    struct step s[MAXSTEPS];
};

static void reset_file(void)
{
    unsigned char buf[N * PAGE];
    for (size_t i = 0; i < sizeof buf; i++)
        buf[i] = pattern(i, SEED);
    if (ftruncate(fd, N * PAGE) != 0 || pwrite(fd, buf, sizeof buf, 0) != (ssize_t)sizeof buf)
        tap_bail("resetting the file: %s", strerror(errno));
}

/* One step: its name, the call's outcome, then every page. */
static void record(const struct mm_ops *ops, struct scenario *sc, const char *name, long rc)
{
    struct step *st = &sc->s[sc->nsteps];
    sc->name[sc->nsteps++] = name;
    st->o = outcome_of(rc);
    if (!ops->is_umm)
        vg_quiet(0);
    snap(BASE, N, st->v, 1);
}

#define STEP(name, call)                                                                                          \
    do {                                                                                                           \
        if (!ops->is_umm)                                                                                          \
            vg_quiet(1);                                                                                           \
        errno = 0;                                                                                                 \
        long rc_ = (long)(call);                                                                                   \
        record(ops, sc, name, rc_);                                                                                \
    } while (0)

/* The child of fork looks at every page and says what it saw. */
static void forked_view(const struct mm_ops *ops, struct scenario *sc)
{
    int pfd[2];
    if (pipe(pfd) != 0)
        tap_bail("pipe: %s", strerror(errno));
    fflush(stdout);
    pid_t pid = ops->is_umm ? umm_fork() : fork();
    if (pid == 0) {
        tap_quiet();
        struct pageview v[N];
        snap(BASE, N, v, 0);
        _exit(write(pfd[1], v, sizeof v) == (ssize_t)sizeof v ? 0 : 1);
    }
    close(pfd[1]);
    struct step *st = &sc->s[sc->nsteps];
    sc->name[sc->nsteps++] = "in a child of fork";
    memset(st, 0, sizeof *st);
    if (read(pfd[0], st->v, sizeof st->v) != (ssize_t)sizeof st->v)
        st->o.rc = -2;
    close(pfd[0]);
    waitpid(pid, NULL, 0);
}

static void run(const struct mm_ops *ops, const struct kind *k, struct scenario *sc)
{
    int anon = (k->flags & MAP_ANONYMOUS) != 0;
    int writable = (k->prot & PROT_WRITE) != 0;
    char *b = (char *)BASE;
    sc->nsteps = 0;
    reset_file();
    kcmp_require_free(BASE, N * PAGE);
    if (ops->mmap(b, N * PAGE, k->prot, k->flags | MAP_FIXED_NOREPLACE, anon ? -1 : fd, 0) != b)
        tap_bail("%s: %s: %s", ops->name, k->name, strerror(errno));
    for (int i = 0; writable && i < N; i++)
        b[i * PAGE + 11] = (char)(0x50 + i);
    STEP("MADV_GUARD_INSTALL of page 1", ops->madvise(b + PAGE, PAGE, MADV_GUARD_INSTALL));
    STEP("MADV_GUARD_INSTALL again", ops->madvise(b + PAGE, PAGE, MADV_GUARD_INSTALL));
    STEP("MADV_DONTNEED over it", ops->madvise(b, N * PAGE, MADV_DONTNEED));
    STEP("mprotect(PROT_READ) over it", ops->mprotect(b, N * PAGE, PROT_READ));
    STEP("mprotect back", ops->mprotect(b, N * PAGE, k->prot));
    STEP("msync(MS_SYNC|MS_INVALIDATE) over it", ops->msync(b, N * PAGE, MS_SYNC | MS_INVALIDATE));
    STEP("MADV_POPULATE_READ over it", ops->madvise(b, N * PAGE, MADV_POPULATE_READ));
    STEP("MADV_POPULATE_WRITE over it", ops->madvise(b, N * PAGE, MADV_POPULATE_WRITE));
    STEP("MADV_WILLNEED over it", ops->madvise(b, N * PAGE, MADV_WILLNEED));
    forked_view(ops, sc);
    STEP("MADV_GUARD_REMOVE of everything", ops->madvise(b, N * PAGE, MADV_GUARD_REMOVE));
    STEP("MADV_GUARD_INSTALL of pages 2-3", ops->madvise(b + 2 * PAGE, 2 * PAGE, MADV_GUARD_INSTALL));
    STEP("munmap of page 3, then MADV_GUARD_REMOVE over the hole",
         (ops->munmap(b + 3 * PAGE, PAGE), ops->madvise(b, N * PAGE, MADV_GUARD_REMOVE)));
    STEP("MADV_GUARD_INSTALL over the hole", ops->madvise(b, N * PAGE, MADV_GUARD_INSTALL));
    STEP("MADV_GUARD_INSTALL, unaligned", ops->madvise(b + 1, PAGE, MADV_GUARD_INSTALL));
    STEP("MADV_GUARD_REMOVE, length 0", ops->madvise(b, 0, MADV_GUARD_REMOVE));
    if (ops->munmap(b, N * PAGE) != 0)
        tap_bail("%s: munmap: %s", ops->name, strerror(errno));
}

static void compare(const char *what, const struct scenario *k, const struct scenario *u)
{
    for (int i = 0; i < k->nsteps; i++) {
        const struct step *ks = &k->s[i], *us = &u->s[i];
        int same = ks->o.rc == us->o.rc && ks->o.err == us->o.err;
        ok(same, "%s: %s: %s, as the kernel", what, k->name[i], ks->o.rc ? strerror(ks->o.err) : "success");
        if (!same)
            tap_diag("kernel: %d %s; libumm: %d %s", ks->o.rc, strerror(ks->o.err), us->o.rc, strerror(us->o.err));
        ok(same_views(ks->v, us->v, N), "%s: %s: every page as the kernel leaves it", what, k->name[i]);
    }
}

int main(void)
{
    fd = tmpfile_make(N * PAGE, SEED, O_RDWR, NULL);
    static struct scenario ks, us;
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
        run(&kernel_ops, &kinds[i], &ks);
        run(&umm_ops, &kinds[i], &us);
        if (i == 0) {
            is_int(ks.s[0].o.rc, 0, "kernel: MADV_GUARD_INSTALL is known here (the test is right)");
            is_int(ks.s[0].v[1].read, ACC_MAPERR, "kernel: a guarded page is SEGV_MAPERR (the test is right)");
            is_int(ks.s[6].o.err, EFAULT, "kernel: MADV_POPULATE_READ over a guard is EFAULT (the test is right)");
        }
        compare(kinds[i].name, &ks, &us);
    }

    /* A locked mapping: no guard may be installed, removing is allowed. */
    const struct mm_ops *sides[2] = { &kernel_ops, &umm_ops };
    struct outcome lk[2][2];
    for (int s = 0; s < 2; s++) {
        char *p = sides[s]->mmap(NULL, N * PAGE, RW, MAP_PRIVATE | MAP_ANONYMOUS | MAP_LOCKED, -1, 0);
        errno = 0;
        lk[s][0] = outcome_of(sides[s]->madvise(p + PAGE, PAGE, MADV_GUARD_INSTALL));
        errno = 0;
        lk[s][1] = outcome_of(sides[s]->madvise(p + PAGE, PAGE, MADV_GUARD_REMOVE));
        sides[s]->munmap(p, N * PAGE);
    }
    is_int(lk[0][0].err, EINVAL, "kernel: MADV_GUARD_INSTALL on a locked mapping: EINVAL (the test is right)");
    ok(lk[1][0].rc == lk[0][0].rc && lk[1][0].err == lk[0][0].err,
       "libumm: MADV_GUARD_INSTALL on a locked mapping: as the kernel");
    is_int(lk[0][1].err, 0, "kernel: MADV_GUARD_REMOVE on a locked mapping succeeds (the test is right)");
    ok(lk[1][1].rc == lk[0][1].rc && lk[1][1].err == lk[0][1].err,
       "libumm: MADV_GUARD_REMOVE on a locked mapping: as the kernel");

    close(fd);
    check_released();
    return tap_done();
}
