/* Promise: fork keeps the kernel's promises for libumm memory, whether the
 * program calls umm_fork() or a plain fork() (libumm's pthread_atfork
 * handlers).  MAP_SHARED mappings stay shared between parent and child,
 * files and anonymous memory alike, and a child's writes reach the file at
 * its exit; MAP_PRIVATE mappings are copied on write in both directions and
 * over three generations; frames come back to where they were; and fork is
 * one instant even while another thread is faulting pages in.
 *
 * Every scenario runs twice with the same assertions: first on the kernel's
 * own mmap, munmap, msync and fork, which proves the test itself right, then
 * on libumm.  A child never speaks TAP: it exits 0 when all its checks held,
 * else the number of the first one that failed (the table below), and the
 * parent turns that into one TAP point.  Every child runs under alarm() and
 * every wait for it is bounded, so a hang fails instead of blocking
 * `make check`. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "kcmp.h"

#define RW (PROT_READ | PROT_WRITE)
#define CHILD_SECONDS 10 /* a child's own alarm */
#define WAIT_SECONDS 15  /* the parent's bound on a child (beyond its alarm) */
#define HEAR_SECONDS 5   /* the bound on one message through a pipe */

/* ------------------------------------------------------------ the worlds */

/* Where a scenario runs: the mmap family and the fork it uses. */
struct world {
    const char *label; /* names the TAP points */
    const struct mm_ops *mm;
    pid_t (*fork)(void);
};

static const struct world kernel_world = { "kernel/fork()", &kernel_ops, fork };
static const struct world umm_world = { "libumm/umm_fork()", &umm_ops, umm_fork };
/* libumm's memory, the C library's fork: libumm must follow through its
 * pthread_atfork handlers. */
static const struct world umm_plain_world = { "libumm/fork()", &umm_ops, fork };

/* ----------------------------------------------- what a child reports */

/* A child's exit status: 0, or the first check that failed. */
#define CHECKS(X)                                                                                       \
    X(CK_SYNC, "the other process never sent its message through the pipe")                           \
    X(CK_FORK, "a fork inside the child failed")                                                       \
    X(CK_XV6_BYTES, "a shared mapping's bytes differ from the file's in the child")                    \
    X(CK_XV6_MUNMAP, "munmap of one page failed in the child")                                         \
    X(CK_AT_FORK, "the child's bytes differ from the parent's at the fork")                            \
    X(CK_OWN, "the child does not read back its own writes")                                           \
    X(CK_PARENT_LEAK, "the child sees a private write the parent made after the fork")                 \
    X(CK_GRAND_AT_FORK, "the grandchild's bytes differ from the child's at its fork")                  \
    X(CK_GRAND_OWN, "the grandchild does not read back its own writes")                                \
    X(CK_GRAND_DIED, "the grandchild died or hung")                                                    \
    X(CK_GRAND_LEAK, "the child sees a private write its own child (the grandchild) made")             \
    X(CK_COUNT, "a shared counter holds fewer than the child's own adds")                              \
    X(CK_SHARED_MISS, "the child does not see the parent's writes to a shared page")                   \
    X(CK_MSYNC, "msync failed in the child")                                                           \
    X(CK_INVAL, "the child does not see what the file was given by write(2) and MS_INVALIDATE")       \
    X(CK_RACE_DONE, "a page finished before the fork differs in the child")                            \
    X(CK_RACE_INFLIGHT, "the page being written at the fork holds a word neither old nor new")         \
    X(CK_RACE_FRESH, "a page not yet written at the fork is not zero in the child")                    \
    X(CK_RACE_FILE, "the private file mapping's bytes differ in the child")
#define CK_ENUM(id, text) id,
#define CK_TEXT(id, text) text,
enum { CK_NONE, CHECKS(CK_ENUM) CK_MAX };
static const char *const check_text[] = { "", CHECKS(CK_TEXT) };
_Static_assert(CK_MAX < 100, "check numbers must fit an exit status");

/* Results that are not a child's check. */
#define RES_NOFORK (-1) /* the fork itself failed (fork_errno) */
#define RES_HUNG (-2)   /* still running at the bound: killed */
#define RES_LOST (-3)   /* waitpid failed, or no report came */
#define RES_SIGNAL 1000 /* + the signal that killed it */

static int fork_errno;

/* The world's fork, with stdio flushed first so that the child's exit does
 * not write the parent's buffered TAP a second time. */
static pid_t spawn(const struct world *w)
{
    fflush(NULL);
    pid_t pid = w->fork();
    if (pid < 0)
        fork_errno = errno;
    return pid;
}

/* In the child: never TAP, and a hang dies of SIGALRM (alarms are not
 * inherited across fork, so each child sets its own). */
static void child_start(void)
{
    tap_quiet();
    alarm(CHILD_SECONDS);
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Reap pid within `seconds`: 0, a check number, or RES_*. */
static int wait_child(pid_t pid, int seconds)
{
    if (pid < 0)
        return RES_NOFORK;
    double end = now() + seconds;
    int status;
    for (;;) {
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid)
            break;
        if (r < 0 && errno != EINTR)
            return RES_LOST;
        if (now() > end) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            return RES_HUNG;
        }
        struct timespec ms = { 0, 1000000 };
        nanosleep(&ms, NULL);
    }
    if (WIFSIGNALED(status))
        return RES_SIGNAL + WTERMSIG(status);
    return WEXITSTATUS(status);
}

static const char *describe(int res)
{
    static char buf[256];
    if (res == 1 && under_valgrind()) {
        /* Valgrind's --error-exitcode is 1 too. */
        snprintf(buf, sizeof buf, "%s, or memcheck reported errors in the child (--error-exitcode=1: see the log)",
                 check_text[res]);
        return buf;
    }
    if (res > 0 && res < CK_MAX)
        return check_text[res];
    if (res == RES_NOFORK)
        snprintf(buf, sizeof buf, "the fork failed: %s", strerror(fork_errno));
    else if (res == RES_HUNG)
        snprintf(buf, sizeof buf, "hung: killed after %d s", WAIT_SECONDS);
    else if (res == RES_SIGNAL + SIGALRM)
        snprintf(buf, sizeof buf, "hung: its %d s alarm went off", CHILD_SECONDS);
    else if (res > RES_SIGNAL)
        snprintf(buf, sizeof buf, "killed by signal %d (%s)", res - RES_SIGNAL, strsignal(res - RES_SIGNAL));
    else if (res == RES_LOST)
        snprintf(buf, sizeof buf, "lost: no exit status or report");
    else
        snprintf(buf, sizeof buf, "exited with status %d", res);
    return buf;
}

/* One TAP point from a child's result. */
static void report(const struct world *w, int res, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void report(const struct world *w, int res, const char *fmt, ...)
{
    char what[384];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    ok(res == 0, "%s: %s", w->label, what);
    if (res != 0)
        tap_diag("the child: %s", describe(res));
}

/* ------------------------------------------------ pipes for sequencing */

/* c2p: child to parent; p2c: parent to child.  Each side closes the ends
 * it does not use, so that a process that dies is heard as end of file. */
struct chan {
    int c2p[2], p2c[2];
};

static void chan_open(struct chan *c)
{
    if (pipe(c->c2p) != 0 || pipe(c->p2c) != 0)
        tap_bail("pipe: %s", strerror(errno));
}

static void chan_side(struct chan *c, int child)
{
    close(child ? c->c2p[0] : c->c2p[1]);
    close(child ? c->p2c[1] : c->p2c[0]);
}

static void chan_close(struct chan *c, int child)
{
    close(child ? c->c2p[1] : c->c2p[0]);
    close(child ? c->p2c[0] : c->p2c[1]);
}

/* fork with a channel: the child starts as child_start() says and keeps
 * its ends of c, the parent (or a failed fork) keeps the other ends.
 * Returns what spawn() returns. */
static pid_t spawn_chan(const struct world *w, struct chan *c)
{
    chan_open(c);
    pid_t pid = spawn(w);
    if (pid == 0)
        child_start();
    chan_side(c, pid == 0);
    return pid;
}

static int say(int fd)
{
    char b = 1;
    return write(fd, &b, 1) == 1 ? 0 : -1;
}

/* 0 when one message came within HEAR_SECONDS. */
static int hear(int fd)
{
    struct pollfd p = { fd, POLLIN, 0 };
    char b;
    return poll(&p, 1, HEAR_SECONDS * 1000) == 1 && read(fd, &b, 1) == 1 ? 0 : -1;
}

/* ----------------------------------------------------- memory models */

/* Each process keeps a model of a mapping in ordinary memory, which the
 * kernel's fork copies for it: the file's bytes (or zeros), with every
 * write the process made or, for shared mappings, saw made. */
static unsigned char *model_new(size_t len, int anon, unsigned seed)
{
    unsigned char *want = malloc(len);
    if (!want)
        tap_bail("malloc");
    for (size_t i = 0; i < len; i++)
        want[i] = anon ? 0 : pattern(i, seed);
    return want;
}

/* Write a mark into page pg of mapping m (m may be NULL: the model only)
 * and of its model: 48 bytes at a place that depends on the page and the
 * tag, and the page's last byte, so that a copy that loses the rest of the
 * page, or lands in another page, shows. */
static void mark(unsigned char *m, unsigned char *want, size_t pg, unsigned tag)
{
    size_t at = pg * PAGE + (pg * 136 + tag * 8) % (PAGE - 64);
    for (size_t i = 0; i < 48; i++) {
        want[at + i] = (unsigned char)(tag ^ (i * 5));
        if (m)
            m[at + i] = want[at + i];
    }
    want[pg * PAGE + PAGE - 1] = (unsigned char)tag;
    if (m)
        m[pg * PAGE + PAGE - 1] = (unsigned char)tag;
}

static int same(const unsigned char *m, const unsigned char *want, size_t len)
{
    return memcmp(m, want, len) == 0;
}

/* Read one byte of page pg: the page becomes resident, nothing changes. */
static void touch(const unsigned char *m, size_t pg)
{
    (void)*(const volatile unsigned char *)(m + pg * PAGE + 7);
}

static void *xmmap(const struct world *w, size_t len, int flags, int fd)
{
    void *p = w->mm->mmap(NULL, len, RW, flags, fd, 0);
    if (p == MAP_FAILED)
        tap_bail("%s: mmap of %zu bytes: %s", w->label, len, strerror(errno));
    return p;
}

/* The file's bytes equal the model's. */
static int file_is(int fd, const unsigned char *want, size_t len)
{
    unsigned char *buf = malloc(len);
    int r = buf && read_file(fd, buf, len, 0) == 0 && same(buf, want, len);
    free(buf);
    return r;
}

/* ---------------------------------------- 1. xv6's fork_test, extended */

#define XV6_PAGES 6
#define XV6_SEED 61

/* A file opened, unlinked and mapped twice MAP_SHARED, only part of it
 * resident at the fork.  The child checks both mappings whole and unmaps
 * one page of one of them; the parent's mappings must not notice. */
static void xv6_fork_test(const struct world *w)
{
    const size_t len = XV6_PAGES * PAGE;
    int fd = tmpfile_make(len, XV6_SEED, O_RDWR, NULL); /* NULL: unlinked */
    unsigned char *p1 = xmmap(w, len, MAP_SHARED, fd);
    unsigned char *p2 = xmmap(w, len, MAP_SHARED, fd);
    unsigned char *want = model_new(len, 0, XV6_SEED); /* one model: one file */
    /* At the fork: pages 1 and 3 read, page 4 written through p1 (so p2
     * shows it too); pages 0, 2 and 5 not resident. */
    touch(p1, 1);
    touch(p2, 3);
    mark(p1, want, 4, 0x41);

    pid_t pid = spawn(w);
    if (pid == 0) {
        child_start();
        if (!same(p1, want, len) || !same(p2, want, len))
            exit(CK_XV6_BYTES);
        /* The page written before the fork: in libumm its unmapping writes
         * it back and drops this process's hold on a frame the parent
         * still maps. */
        if (w->mm->munmap(p1 + 4 * PAGE, PAGE) != 0)
            exit(CK_XV6_MUNMAP);
        exit(0);
    }
    report(w, wait_child(pid, WAIT_SECONDS),
           "xv6 fork_test: the child sees both MAP_SHARED mappings whole and unmaps one page");
    ok(same(p1, want, len), "%s: the parent's first mapping is intact, the page the child unmapped too", w->label);
    ok(same(p2, want, len), "%s: the parent's second mapping is intact", w->label);
    mark(p2, want, 0, 0x42);
    mark(p1, want, 5, 0x43);
    mark(p1, want, 4, 0x44); /* the page the child unmapped */
    ok(same(p1, want, len) && same(p2, want, len),
       "%s: the parent's writes after the child's exit show through both mappings", w->label);
    int synced = w->mm->msync(p1, len, MS_SYNC) == 0 && w->mm->msync(p2, len, MS_SYNC) == 0;
    ok(synced && file_is(fd, want, len), "%s: after msync the file holds every byte (pread)", w->label);
    w->mm->munmap(p1, len);
    w->mm->munmap(p2, len);
    close(fd);
    free(want);
}

/* ------------------------------- 2. copy-on-write, both directions */

#define COW_PAGES 8
#define COW_SEED 62

/* The child's part: see the fork's bytes, write, see none of the parent's
 * later writes, then fork a grandchild that does the same to it. */
static int cow_child(const struct world *w, unsigned char *m, unsigned char *want, struct chan *c)
{
    const size_t len = COW_PAGES * PAGE;
    if (!same(m, want, len))
        return CK_AT_FORK;
    /* Page 0 read before the fork, 2 written, 4 and 5 never touched. */
    mark(m, want, 0, 0x51);
    mark(m, want, 2, 0x52);
    mark(m, want, 4, 0x53);
    mark(m, want, 5, 0x54);
    if (!same(m, want, len))
        return CK_OWN;
    if (say(c->c2p[1]) != 0 || hear(c->p2c[0]) != 0)
        return CK_SYNC;
    /* The parent has now written pages 1, 3, 5 and 6: none of it here. */
    if (!same(m, want, len))
        return CK_PARENT_LEAK;

    /* A third generation starts from this process's bytes. */
    pid_t pid = spawn(w);
    if (pid == 0) {
        child_start();
        if (!same(m, want, len))
            exit(CK_GRAND_AT_FORK);
        /* 0: written by the child; 3: by the parent before the first fork;
         * 6: by the parent after it; 7: by nobody. */
        mark(m, want, 0, 0x61);
        mark(m, want, 3, 0x62);
        mark(m, want, 6, 0x63);
        mark(m, want, 7, 0x64);
        exit(same(m, want, len) ? 0 : CK_GRAND_OWN);
    }
    if (pid < 0)
        return CK_FORK;
    int r = wait_child(pid, HEAR_SECONDS);
    if (r != 0)
        return r > 0 && r < CK_MAX ? r : CK_GRAND_DIED;
    if (!same(m, want, len))
        return CK_GRAND_LEAK;
    return 0;
}

static void cow(const struct world *w, int anon)
{
    const size_t len = COW_PAGES * PAGE;
    const char *kind = anon ? "MAP_PRIVATE|MAP_ANONYMOUS" : "MAP_PRIVATE file";
    int fd = anon ? -1 : tmpfile_make(len, COW_SEED, O_RDONLY, NULL);
    unsigned char *m = xmmap(w, len, MAP_PRIVATE | (anon ? MAP_ANONYMOUS : 0), fd);
    unsigned char *want = model_new(len, anon, COW_SEED);
    /* At the fork: pages 0 and 1 read, 2 and 3 written, 4 to 7 not
     * resident (first touched after the fork, by one side or both). */
    touch(m, 0);
    touch(m, 1);
    mark(m, want, 2, 0x21);
    mark(m, want, 3, 0x22);

    struct chan c;
    pid_t pid = spawn_chan(w, &c);
    if (pid == 0) {
        exit(cow_child(w, m, want, &c));
    }
    int heard = pid > 0 && hear(c.c2p[0]) == 0;
    ok(heard && same(m, want, len), "%s: %s: the parent does not see the child's writes", w->label, kind);
    if (!heard)
        tap_diag("the child never said it had written");
    /* The parent writes after the fork: page 1 (read before it), 3
     * (written before it), 5 (written by the child too), 6 (never
     * touched); and reads page 7 for the first time. */
    mark(m, want, 1, 0x31);
    mark(m, want, 3, 0x32);
    mark(m, want, 5, 0x33);
    mark(m, want, 6, 0x34);
    touch(m, 7);
    if (pid > 0)
        say(c.p2c[1]);
    report(w, wait_child(pid, WAIT_SECONDS),
           "%s: the child sees the bytes of the fork and its own writes, not the parent's later ones; "
           "so does a grandchild, and the child sees none of the grandchild's writes",
           kind);
    chan_close(&c, 0);
    ok(same(m, want, len), "%s: %s: the parent's bytes are its own after child and grandchild wrote", w->label,
       kind);
    if (!anon) {
        unsigned char *file = model_new(len, 0, COW_SEED);
        ok(file_is(fd, file, len), "%s: %s: the file is unchanged", w->label, kind);
        free(file);
        close(fd);
    }
    w->mm->munmap(m, len);
    free(want);
}

/* --------------------------- 3. shared anonymous memory between processes */

#define ADDS 100000

static void add_both(_Atomic uint64_t *a, _Atomic uint64_t *b)
{
    for (int i = 0; i < ADDS; i++) {
        atomic_fetch_add(a, 1);
        atomic_fetch_add(b, 1);
    }
}

static void shared_counters(const struct world *w)
{
    unsigned char *m = xmmap(w, 2 * PAGE, MAP_SHARED | MAP_ANONYMOUS, -1);
    _Atomic uint64_t *before = (_Atomic uint64_t *)(void *)m;
    _Atomic uint64_t *after = (_Atomic uint64_t *)(void *)(m + PAGE + 128);
    /* Page 0 resident at the fork; page 1 first touched after it, by both
     * processes at once. */
    atomic_store(before, 0);

    struct chan c;
    pid_t pid = spawn_chan(w, &c);
    if (pid == 0) {
        if (hear(c.p2c[0]) != 0)
            exit(CK_SYNC);
        add_both(before, after);
        exit(atomic_load(before) >= ADDS && atomic_load(after) >= ADDS ? 0 : CK_COUNT);
    }
    if (pid > 0)
        say(c.p2c[1]); /* both start together: the adds contend */
    add_both(before, after);
    report(w, wait_child(pid, WAIT_SECONDS), "MAP_SHARED|MAP_ANONYMOUS: the child makes its %d atomic adds",
           ADDS);
    chan_close(&c, 0);
    is_int(atomic_load(before), 2 * ADDS, "%s: a counter in a page touched before the fork holds both processes' adds",
           w->label);
    is_int(atomic_load(after), 2 * ADDS, "%s: so does one in a page first touched after the fork", w->label);
    w->mm->munmap(m, 2 * PAGE);
}

/* ------------------- 3b. MS_INVALIDATE after fork: both processes see it */

/* A write(2) to the file, then msync(MS_INVALIDATE) in the parent: its
 * mapping and the child's, resident in both, show the new bytes (libumm
 * reads the clean page again in place after fork: README difference 6). */
static void invalidate_shared(const struct world *w)
{
    int fd = tmpfile_make(2 * PAGE, 65, O_RDWR, NULL);
    unsigned char *m = xmmap(w, 2 * PAGE, MAP_SHARED, fd);
    touch(m, 0);
    struct chan c;
    pid_t pid = spawn_chan(w, &c);
    if (pid == 0) {
        touch(m, 0);
        if (say(c.c2p[1]) != 0 || hear(c.p2c[0]) != 0)
            exit(CK_SYNC);
        /* Before the parent touches the page again: the page must hold
         * the file's bytes, the new one and the old ones around it. */
        exit(m[10] == 0xd1 && m[100] == pattern(100, 65) ? 0 : CK_INVAL);
    }
    int ok_parent = 0;
    if (pid > 0 && hear(c.c2p[0]) == 0) {
        unsigned char b = 0xd1;
        ok_parent = pwrite(fd, &b, 1, 10) == 1 && w->mm->msync(m, 2 * PAGE, MS_INVALIDATE) == 0;
        say(c.p2c[1]);
    }
    report(w, wait_child(pid, WAIT_SECONDS), "MS_INVALIDATE after a write(2): the child's resident page shows it");
    chan_close(&c, 0);
    ok(ok_parent && m[10] == 0xd1 && m[100] == pattern(100, 65), "%s: and so does the parent's", w->label);
    w->mm->munmap(m, 2 * PAGE);
    close(fd);
}

/* --------------------------------------- 4. shared file writes across fork */

#define SH_PAGES 4
#define SH_SEED 64

static void shared_file(const struct world *w)
{
    const size_t len = SH_PAGES * PAGE;
    struct chan c;

    /* The child writes and exits without msync; the parent reads. */
    int fd = tmpfile_make(len, SH_SEED, O_RDWR, NULL);
    unsigned char *m = xmmap(w, len, MAP_SHARED, fd);
    unsigned char *want = model_new(len, 0, SH_SEED);
    /* At the fork: page 0 clean, page 1 dirty, pages 2 and 3 not resident. */
    touch(m, 0);
    mark(m, want, 1, 0xc1);
    pid_t pid = spawn_chan(w, &c);
    if (pid == 0) {
        mark(m, want, 0, 0xc2);
        mark(m, want, 2, 0xc3);
        /* Stay alive until the parent has looked: "at once" means while
         * the writer still runs, before any exit write-back. */
        if (say(c.c2p[1]) != 0 || hear(c.p2c[0]) != 0)
            exit(CK_SYNC);
        exit(0); /* no msync, no munmap */
    }
    int heard = pid > 0 && hear(c.c2p[0]) == 0;
    if (heard) {
        mark(NULL, want, 0, 0xc2);
        mark(NULL, want, 2, 0xc3);
    }
    ok(heard && same(m, want, len), "%s: MAP_SHARED file: the parent sees the child's writes at once", w->label);
    if (pid > 0)
        say(c.p2c[1]);
    report(w, wait_child(pid, WAIT_SECONDS), "MAP_SHARED file: the child writes two pages and exits without msync");
    chan_close(&c, 0);
    {
        unsigned char *buf = malloc(len);
        int r = buf && read_file(fd, buf, len, 0) == 0 && same(buf, want, PAGE) &&
                same(buf + 2 * PAGE, want + 2 * PAGE, PAGE);
        ok(heard && r, "%s: once the child has exited, the file holds its writes (pread)", w->label);
        free(buf);
    }
    ok(w->mm->msync(m, len, MS_SYNC) == 0 && file_is(fd, want, len),
       "%s: after the parent's msync the file holds every write", w->label);
    w->mm->munmap(m, len);
    close(fd);
    free(want);

    /* The parent writes after the fork; the child sees it, msyncs, exits. */
    fd = tmpfile_make(len, SH_SEED + 1, O_RDWR, NULL);
    m = xmmap(w, len, MAP_SHARED, fd);
    want = model_new(len, 0, SH_SEED + 1);
    touch(m, 0); /* page 0 resident at the fork, page 3 not */
    pid = spawn_chan(w, &c);
    if (pid == 0) {
        if (hear(c.p2c[0]) != 0)
            exit(CK_SYNC);
        mark(NULL, want, 0, 0xd1);
        mark(NULL, want, 3, 0xd2);
        if (!same(m, want, len))
            exit(CK_SHARED_MISS);
        exit(w->mm->msync(m, len, MS_SYNC) == 0 ? 0 : CK_MSYNC);
    }
    mark(m, want, 0, 0xd1);
    mark(m, want, 3, 0xd2);
    if (pid > 0)
        say(c.p2c[1]);
    report(w, wait_child(pid, WAIT_SECONDS),
           "MAP_SHARED file: the child sees the parent's writes made after the fork and msyncs them");
    chan_close(&c, 0);
    ok(pid > 0 && file_is(fd, want, len),
       "%s: the file holds the parent's writes after the child's msync and exit, before the parent's msync",
       w->label);
    w->mm->munmap(m, len);
    close(fd);
    free(want);
}

/* ------------------------------------------- 5. frames back to baseline */

#define FR_PAGES 4
#define FR_SEED 65

static void frames_back(const struct world *w)
{
    const size_t len = FR_PAGES * PAGE;
    const int umm = w->mm->is_umm;
    const uint64_t base = umm ? stat_get("frames") : 0;
    int fdp = tmpfile_make(len, FR_SEED, O_RDONLY, NULL);
    int fds = tmpfile_make(len, FR_SEED + 1, O_RDWR, NULL);
    struct {
        unsigned char *m, *want;
        int shared;
    } v[4] = {
        { xmmap(w, len, MAP_PRIVATE, fdp), model_new(len, 0, FR_SEED), 0 },
        { xmmap(w, len, MAP_PRIVATE | MAP_ANONYMOUS, -1), model_new(len, 1, 0), 0 },
        { xmmap(w, len, MAP_SHARED, fds), model_new(len, 0, FR_SEED + 1), 1 },
        { xmmap(w, len, MAP_SHARED | MAP_ANONYMOUS, -1), model_new(len, 1, 0), 1 },
    };
    /* At the fork: every page read, pages 0 and 1 of each written. */
    for (unsigned i = 0; i < 4; i++) {
        for (size_t pg = 0; pg < FR_PAGES; pg++)
            touch(v[i].m, pg);
        mark(v[i].m, v[i].want, 0, 0x70 + i);
        mark(v[i].m, v[i].want, 1, 0x70 + i);
    }
    pid_t pid = spawn(w);
    if (pid == 0) {
        child_start();
        for (unsigned i = 0; i < 4; i++) {
            for (size_t pg = 0; pg < FR_PAGES; pg++)
                mark(v[i].m, v[i].want, pg, 0x80 + i);
            if (!same(v[i].m, v[i].want, len))
                exit(CK_OWN);
        }
        exit(0);
    }
    report(w, wait_child(pid, WAIT_SECONDS), "frames: the child writes every page of four mappings and exits");
    /* The child's writes reach the parent through the shared mappings only. */
    int all = 1;
    for (unsigned i = 0; i < 4; i++) {
        for (size_t pg = 0; pg < FR_PAGES; pg++) {
            if (v[i].shared && pid > 0)
                mark(NULL, v[i].want, pg, 0x80 + i);
            mark(v[i].m, v[i].want, pg, 0x90 + i);
        }
        all &= same(v[i].m, v[i].want, len);
    }
    ok(all, "%s: the parent's private pages are its own, its shared pages hold both processes' writes", w->label);
    for (unsigned i = 0; i < 4; i++)
        w->mm->munmap(v[i].m, len);
    ok(file_is(fds, v[2].want, len), "%s: after munmap the shared file holds both processes' writes", w->label);
    if (umm)
        is_int(stat_get("frames"), base, "%s: frames back to the baseline once the child exited and all is unmapped",
               w->label);
    for (unsigned i = 0; i < 4; i++)
        free(v[i].want);
    close(fdp);
    close(fds);
}

/* ----------------------- 5b. a child killed while it holds copies */

#define KILL_PAGES 16 /* per mapping; the child copies both: 32 pages */
#define KILL_SEED 66

struct killed_result {
    int child;      /* 0: it wrote, told, and died of SIGKILL; else a result */
    int fork_errno; /* when child is RES_NOFORK */
    int intact;     /* the parent's bytes are its own afterwards */
    int64_t rise;   /* frames that came with the child's copies */
    int64_t excess; /* frames above the baseline once the parent unmapped */
};

/* How the child ends: SIGKILL while it holds its copies, or exec (the
 * new program has no libumm: the memfd is close-on-exec), then SIGKILL. */
static int kill_by_exec;

/* The parent's side, run in a process of its own (see killed()). */
static void killed_run(const struct world *w, struct killed_result *kr)
{
    const size_t len = KILL_PAGES * PAGE;
    const int umm = w->mm->is_umm;
    const int64_t base = umm ? (int64_t)stat_get("frames") : 0;
    int fd = tmpfile_make(len, KILL_SEED, O_RDONLY, NULL);
    unsigned char *pa = xmmap(w, len, MAP_PRIVATE | MAP_ANONYMOUS, -1);
    unsigned char *pf = xmmap(w, len, MAP_PRIVATE, fd);
    unsigned char *wa = model_new(len, 1, 0), *wf = model_new(len, 0, KILL_SEED);
    for (size_t pg = 0; pg < KILL_PAGES; pg++) {
        mark(pa, wa, pg, 0xa1);
        touch(pf, pg);
    }
    const int64_t at_fork = umm ? (int64_t)stat_get("frames") : 0;
    struct chan c;
    int ex[2]; /* close-on-exec: the parent reads its end's EOF at the exec */
    if (pipe2(ex, O_CLOEXEC) != 0)
        tap_bail("pipe2: %s", strerror(errno));
    pid_t pid = spawn_chan(w, &c);
    if (pid == 0) {
        close(ex[0]);
        for (size_t pg = 0; pg < KILL_PAGES; pg++) {
            mark(pa, wa, pg, 0xb1);
            mark(pf, wf, pg, 0xb2);
        }
        if (!same(pa, wa, len) || !same(pf, wf, len))
            exit(CK_OWN);
        say(c.c2p[1]);
        if (kill_by_exec) {
            execl("/bin/sleep", "sleep", "60", (char *)NULL);
            exit(CK_SYNC);
        }
        for (;;)
            pause(); /* holding its copies until SIGKILL (or its alarm) */
    }
    close(ex[1]);
    kr->child = RES_NOFORK;
    kr->fork_errno = fork_errno;
    if (pid > 0) {
        int heard = hear(c.c2p[0]) == 0;
        if (kill_by_exec) { /* wait for the exec itself: EOF on ex[0] */
            struct pollfd e = { ex[0], POLLIN, 0 };
            char b;
            heard = heard && poll(&e, 1, HEAR_SECONDS * 1000) == 1 && read(ex[0], &b, 1) == 0;
        }
        /* Frames are counted for every process forked from this one. */
        kr->rise = umm ? (int64_t)stat_get("frames") - at_fork : 0;
        kill(pid, SIGKILL);
        int r = wait_child(pid, WAIT_SECONDS);
        kr->child = heard && r == RES_SIGNAL + SIGKILL ? 0 : r == RES_SIGNAL + SIGKILL ? CK_SYNC : r;
    }
    chan_close(&c, 0);
    close(ex[0]);
    /* The models are this process's own: the child's marks are not in them. */
    kr->intact = same(pa, wa, len) && same(pf, wf, len);
    w->mm->munmap(pa, len);
    w->mm->munmap(pf, len);
    close(fd);
    free(wa);
    free(wf);
    kr->excess = umm ? (int64_t)stat_get("frames") - base : 0;
}

/* Is libumm started in this process (its RAM mapped)? */
static int libumm_started(void)
{
    FILE *f = fopen("/proc/self/maps", "re");
    char line[4096];
    int started = 0;
    while (f && fgets(line, sizeof line, f))
        started |= strstr(line, "memfd:libumm") != NULL;
    if (f)
        fclose(f);
    return started;
}

/* A SIGKILLed child cannot let go of its frames, and frames are counted
 * for the whole family of processes: what it leaves would stay in this
 * process's count to the end (and fail the leak oracle).  So the parent's
 * side runs in a sandbox, a process forked before this one has started
 * libumm, whose libumm is its own; it reports through a pipe. */
static void killed(const struct world *w)
{
    if (w->mm->is_umm && libumm_started())
        tap_bail("test-fork: libumm already started before the SIGKILL sandbox; run it first");
    struct killed_result kr;
    memset(&kr, 0, sizeof kr); /* padding too: the struct goes through a pipe */
    kr.child = RES_LOST;
    kr.rise = -1;
    kr.excess = -1;
    int p[2];
    if (pipe(p) != 0)
        tap_bail("pipe: %s", strerror(errno));
    fflush(NULL);
    pid_t sb = fork(); /* the kernel's fork: the sandbox is not under test */
    if (sb == 0) {
        tap_quiet();
        alarm(2 * CHILD_SECONDS);
        close(p[0]);
        killed_run(w, &kr);
        exit(write(p[1], &kr, sizeof kr) == sizeof kr ? 0 : 1);
    }
    close(p[1]);
    struct pollfd pf = { p[0], POLLIN, 0 };
    int got = sb > 0 && poll(&pf, 1, 3 * WAIT_SECONDS * 1000) == 1 && read(p[0], &kr, sizeof kr) == sizeof kr;
    int sbr = wait_child(sb, WAIT_SECONDS);
    close(p[0]);
    if (!got)
        tap_diag("the SIGKILL sandbox did not report: %s", describe(sbr));
    fork_errno = kr.fork_errno;
    const char *how = kill_by_exec ? "exec" : "SIGKILL";
    report(w, kr.child, "%s: a child holding copies of %d private pages %s", how, 2 * KILL_PAGES,
           kill_by_exec ? "calls exec" : "is killed");
    ok(got && kr.intact, "%s: the parent's private pages are its own after the child's %s", w->label, how);
    if (w->mm->is_umm) {
        if (got && kr.child != RES_NOFORK)
            tap_diag("a child ended by %s while holding %d private pages: %lld frames came with its copies, "
                 "%lld stayed above the baseline once the parent had unmapped everything",
                 how, 2 * KILL_PAGES, (long long)kr.rise, (long long)kr.excess);
        /* The README's bound: what it had resident, its private copies
         * and its share of the page cache (the file's pages stay cached
         * while its pin on their extent lives). */
        ok(got && kr.excess > 0 && kr.excess <= 3 * KILL_PAGES,
           "%s: frames left by the child (%s): more than 0, at most its %d private pages and the "
           "%d pages of the file it had cached", w->label, how, 2 * KILL_PAGES, KILL_PAGES);
    }
}

/* ---------------------- 6. fork while another thread is faulting */

#define RACE_ANON 16384 /* pages: a 64 MiB mapping, its first 2016 written */
#define RACE_FILE 2048  /* pages: an 8 MiB file */
#define RACE_STEP 96    /* pages the writer may run ahead per fork */
#define RACE_FORKS 20
#define RACE_SEED 67

static struct {
    unsigned char *anon, *file;
    _Atomic size_t done;  /* pages finished: anonymous page and file page */
    _Atomic size_t limit; /* how far the writer may go */
    _Atomic int stop;
} race;

static uint64_t anon_word(size_t off)
{
    return (off | 1) * 0x9e3779b97f4a7c15ull; /* odd: never zero */
}
static size_t stamp_off(size_t pg)
{
    return (pg * 8) % PAGE;
}
static uint64_t stamp(size_t pg)
{
    return 0x5a5a5a5a00000000ull | pg;
}

/* The faulting thread: page after page, it fills a fresh anonymous page
 * and reads a fresh page of the private file mapping (writing a word into
 * every other one), then publishes how far it got.  Its next write comes
 * after the count, so a fork that copies the count also copies every page
 * below it (a fork is one instant). */
static void *race_writer(void *arg)
{
    (void)arg;
    for (size_t pg = 0; pg < RACE_FILE; pg++) {
        while (pg >= atomic_load(&race.limit))
            if (atomic_load(&race.stop))
                return NULL;
            else
                sched_yield();
        uint64_t *a = (uint64_t *)(void *)(race.anon + pg * PAGE);
        for (size_t i = 0; i < PAGE / 8; i++)
            a[i] = anon_word(pg * PAGE + i * 8);
        volatile unsigned char *f = race.file + pg * PAGE;
        (void)f[100];
        if (pg % 2)
            *(volatile uint64_t *)(void *)(f + stamp_off(pg)) = stamp(pg);
        atomic_store(&race.done, pg + 1);
        atomic_thread_fence(memory_order_seq_cst);
    }
    return NULL;
}

/* Check both mappings against the writer's progress `done`: finished
 * pages hold its bytes, the page it was on holds a mix of old and new
 * words, later pages are untouched.  0, or the check that failed. */
static int race_verify(size_t done)
{
    size_t top = done + 8 < RACE_ANON ? done + 8 : RACE_ANON;
    for (size_t pg = 0; pg < top; pg++) {
        const uint64_t *a = (const uint64_t *)(const void *)(race.anon + pg * PAGE);
        for (size_t i = 0; i < PAGE / 8; i++) {
            uint64_t got = a[i], exp = anon_word(pg * PAGE + i * 8);
            if (pg < done && got != exp)
                return CK_RACE_DONE;
            if (pg == done && got != exp && got != 0)
                return CK_RACE_INFLIGHT;
            if (pg > done && got != 0)
                return CK_RACE_FRESH;
        }
    }
    top = done + 8 < RACE_FILE ? done + 8 : RACE_FILE;
    for (size_t pg = 0; pg < top; pg++) {
        uint64_t st = stamp(pg);
        for (size_t i = 0; i < PAGE; i++) {
            unsigned char got = race.file[pg * PAGE + i], file = pattern(pg * PAGE + i, RACE_SEED);
            size_t k = i - stamp_off(pg);
            if (pg % 2 && i >= stamp_off(pg) && k < 8) {
                unsigned char s = ((const unsigned char *)&st)[k];
                if (pg < done ? got != s : pg == done ? got != s && got != file : got != file)
                    return CK_RACE_FILE;
            } else if (got != file) {
                return CK_RACE_FILE;
            }
        }
    }
    return 0;
}

/* Wait (bounded) until the writer has finished `pages` pages.  A spin, not
 * sched_yield(): a yield would hand this CPU to the writer, which then
 * finishes its batch before the fork comes; spinning leaves the writer
 * the other CPU, running while the fork happens. */
static int race_reaches(size_t pages)
{
    double end = now() + WAIT_SECONDS;
    /* Yielding: under Valgrind threads take turns, and a spin without it
     * kept the writer from running long enough to count as stuck (seen in
     * make check-valgrind on a loaded machine). */
    for (unsigned n = 0; atomic_load(&race.done) < pages; n++) {
        if (n % 1024 == 0 && now() > end)
            return 0;
        sched_yield();
    }
    return 1;
}

static void *fork_from_thread(void *arg)
{
    const struct world *w = arg;
    pid_t pid = spawn(w);
    if (pid == 0) {
        child_start();
        exit(race_verify(atomic_load(&race.done)));
    }
    return (void *)(intptr_t)wait_child(pid, WAIT_SECONDS);
}

static void fork_race(const struct world *w)
{
    int fd = tmpfile_make((uint64_t)RACE_FILE * PAGE, RACE_SEED, O_RDONLY, NULL);
    race.anon = xmmap(w, (size_t)RACE_ANON * PAGE, MAP_PRIVATE | MAP_ANONYMOUS, -1);
    race.file = xmmap(w, (size_t)RACE_FILE * PAGE, MAP_PRIVATE, fd);
    /* Forks copy them while the writer is in the middle of a page: the
     * race is the test (helgrind and drd need not report it). */
    vg_racy(race.anon, (size_t)RACE_ANON * PAGE);
    vg_racy(race.file, (size_t)RACE_FILE * PAGE);
    atomic_store(&race.done, 0);
    atomic_store(&race.limit, 0);
    atomic_store(&race.stop, 0);
    pthread_t writer;
    if (pthread_create(&writer, NULL, race_writer, NULL) != 0)
        tap_bail("pthread_create");

    /* Fork k comes when the writer is half-way through its k-th batch of
     * pages, so that it is faulting while the fork happens. */
    int first = 0, first_at = -1, busy = 0, moved = 0, stuck = 0;
    for (int k = 0; k < RACE_FORKS && !first; k++) {
        atomic_store(&race.limit, (size_t)(k + 1) * RACE_STEP);
        if (!race_reaches((size_t)k * RACE_STEP + RACE_STEP / 2)) {
            stuck = 1;
            break;
        }
        size_t pre = atomic_load(&race.done);
        pid_t pid = spawn(w);
        if (pid == 0) {
            child_start();
            exit(race_verify(atomic_load(&race.done)));
        }
        busy += pre < (size_t)(k + 1) * RACE_STEP;
        moved += atomic_load(&race.done) > pre;
        int r = wait_child(pid, WAIT_SECONDS);
        if (r != 0) { /* stop at the first: a broken fork must not cost 20 bounds */
            first = r;
            first_at = k;
        }
    }
    report(w, stuck ? RES_LOST : first,
           "%d forks while another thread faults fresh pages in: each child sees every page written before its fork, "
           "and untouched pages untouched",
           RACE_FORKS);
    if (first)
        tap_diag("at fork %d of %d", first_at + 1, RACE_FORKS);
    if (stuck)
        tap_diag("the faulting thread stopped making progress at page %zu", atomic_load(&race.done));
    tap_diag("%d of %d forks began while the other thread had pages left to fault in; during %d it faulted some in",
             busy, RACE_FORKS, moved);

    /* Now from a thread that is not the main one, the writer still going. */
    intptr_t r = RES_LOST;
    atomic_store(&race.limit, (size_t)(RACE_FORKS + 1) * RACE_STEP);
    if (!stuck && race_reaches((size_t)RACE_FORKS * RACE_STEP + RACE_STEP / 2)) {
        pthread_t t;
        void *res;
        if (pthread_create(&t, NULL, fork_from_thread, (void *)w) != 0)
            tap_bail("pthread_create");
        pthread_join(t, &res);
        r = (intptr_t)res;
    }
    report(w, (int)r, "fork from a thread other than the main one: the child sees both mappings' bytes");

    atomic_store(&race.stop, 1);
    pthread_join(writer, NULL);
    ok(race_verify(atomic_load(&race.done)) == 0, "%s: the parent's pages hold what its thread wrote", w->label);
    w->mm->munmap(race.anon, (size_t)RACE_ANON * PAGE);
    w->mm->munmap(race.file, (size_t)RACE_FILE * PAGE);
    close(fd);
}

/* ------------------------------------------------------- 7. repeated forks */

#define REP_PAGES 1024 /* 4 MiB */
#define REP_CYCLES 50

static uint64_t gen_word(unsigned g, size_t i)
{
    return (((uint64_t)g << 40) ^ i) * 0x9e3779b97f4a7c15ull | 1;
}

static void rep_fill(uint64_t *a, unsigned g)
{
    for (size_t i = 0; i < REP_PAGES * PAGE / 8; i++)
        a[i] = gen_word(g, i);
}

static size_t rep_bad(const uint64_t *a, unsigned g)
{
    size_t bad = 0;
    for (size_t i = 0; i < REP_PAGES * PAGE / 8; i++)
        bad += a[i] != gen_word(g, i);
    return bad;
}

/* The child of cycle g: it sees generation g-1, then writes every fourth
 * page over and reads that back. */
static int rep_child(uint64_t *a, unsigned g)
{
    if (rep_bad(a, g) != 0)
        return CK_AT_FORK;
    const size_t words = PAGE / 8;
    for (size_t pg = 0; pg < REP_PAGES; pg += 4)
        for (size_t i = 0; i < words; i += 64)
            a[pg * words + i] = ~gen_word(g, pg * words + i);
    for (size_t i = 0; i < REP_PAGES * words; i++) {
        int mine = (i / words) % 4 == 0 && i % 64 == 0;
        if (a[i] != (mine ? ~gen_word(g, i) : gen_word(g, i)))
            return CK_OWN;
    }
    return 0;
}

static void repeated(const struct world *w)
{
    const size_t len = REP_PAGES * PAGE;
    const int umm = w->mm->is_umm;
    const int64_t base = umm ? (int64_t)stat_get("frames") : 0;
    uint64_t *a = xmmap(w, len, MAP_PRIVATE | MAP_ANONYMOUS, -1);
    rep_fill(a, 0);
    int fail = 0, fail_at = 0;
    size_t parent_bad = 0;
    int64_t most = 0;
    for (unsigned g = 1; g <= REP_CYCLES && !fail; g++) {
        pid_t pid = spawn(w);
        if (pid == 0) {
            child_start();
            exit(rep_child(a, g - 1));
        }
        /* The parent rewrites all of it while the child reads and writes
         * its copy. */
        rep_fill(a, g);
        fail = wait_child(pid, WAIT_SECONDS);
        fail_at = (int)g;
        parent_bad += rep_bad(a, g);
        if (umm) {
            int64_t over = (int64_t)stat_get("frames") - base;
            most = over > most ? over : most;
        }
    }
    report(w, fail, "%d fork cycles, 4 MiB rewritten by the parent each time: every child sees its fork's bytes "
                    "and its own writes",
           REP_CYCLES);
    if (fail)
        tap_diag("at cycle %d of %d", fail_at, REP_CYCLES);
    is_int(parent_bad, 0, "%s: the parent's bytes are always its own", w->label);
    w->mm->munmap(a, len);
    if (umm) {
        tap_diag("at most %lld frames above the baseline after a cycle (the mapping is %d pages)", (long long)most,
                 REP_PAGES);
        is_int(stat_get("frames"), base, "%s: frames back to the baseline after %d forks and munmap", w->label,
               REP_CYCLES);
    }
}

/* ------------------------------------------------------------------ main */

static void scenarios(const struct world *w)
{
    xv6_fork_test(w);
    cow(w, 0);
    cow(w, 1);
    shared_counters(w);
    invalidate_shared(w);
    shared_file(w);
    frames_back(w);
    fork_race(w);
    repeated(w);
}

int main(void)
{
    /* No background write-back: a file holds a write only after msync,
     * munmap or the writer's exit, so a check after a child's exit sees
     * what that exit wrote. */
    setenv("UMM_FLUSH_INTERVAL_MS", "0", 1);

    /* The kernel first: it proves every assertion, and runs before this
     * process starts libumm (the SIGKILL sandbox needs that). */
    for (kill_by_exec = 0; kill_by_exec < 2; kill_by_exec++)
        killed(&kernel_world);
    scenarios(&kernel_world);

    for (kill_by_exec = 0; kill_by_exec < 2; kill_by_exec++)
        killed(&umm_world);
    scenarios(&umm_world);
    /* A plain fork() of a program using libumm: the atfork handlers. */
    cow(&umm_plain_world, 0);
    cow(&umm_plain_world, 1);
    shared_counters(&umm_plain_world);
    shared_file(&umm_plain_world);
    fork_race(&umm_plain_world);

    check_released();
    return tap_done();
}
