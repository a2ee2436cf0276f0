/*
 * Promise: the contract itself (DESIGN.md, "Linux is the reference
 * implementation"), by experiment.
 *
 * From a seed, this program generates a random sequence of the mmap
 * family's calls -- mmap of files (by O_RDWR, O_RDONLY and O_WRONLY
 * descriptors, at offsets up to and past the end of the file), of
 * anonymous memory and of /dev/zero, shared and private, MAP_FIXED over
 * existing mappings, MAP_FIXED_NOREPLACE, hint addresses, MAP_POPULATE,
 * MAP_LOCKED, MAP_32BIT;
 * partial munmap; mprotect; msync with MS_SYNC, MS_ASYNC, MS_INVALIDATE;
 * mremap (shrinking, growing in place, MREMAP_MAYMOVE, MREMAP_FIXED with
 * its move of several mappings at once, MREMAP_DONTUNMAP, old_size 0 on
 * shared mappings, bad arguments: op_mremap says what it leaves out);
 * madvise DONTNEED, WILLNEED, SEQUENTIAL, RANDOM, NORMAL, REMOVE,
 * POPULATE_READ/WRITE and the hints; bad arguments of every kind among
 * them -- and of byte reads, writes, page sweeps and fills, and applies
 * each step to two "worlds": the kernel's own calls on one copy of a set
 * of files, and libumm's on an identical copy.  Every return value, every
 * errno, every signal (number,
 * si_code, offset of si_addr) and every byte read must agree, and so must
 * the files' bytes wherever the contract says they must.  The same driver
 * also runs with both worlds on the kernel (the "self-check", and
 * --kernel-only), which proves the test itself.
 *
 *   test-differential [--seeds N] [--first S] [--ops N] [--seed S] [--kernel-only] [--forks N | --no-fork]
 *                     [--verbose]
 *
 * Without --seed it runs seeds 1..N against libumm (and, unless
 * --kernel-only, a fifth as many kernel-vs-kernel first); a failing seed
 * prints its operation log as TAP diagnostics, and `--seed S --verbose`
 * replays it.  All seeds run in one process, so one can fail only after
 * another left something behind in libumm (a fork family, say): --first S
 * starts at seed S instead of 1, to find the one.
 *
 * How the worlds line up.  Each world has its own "arena", a run of
 * ARENA_PAGES pages reserved by that world's own mmap (a PROT_NONE private
 * anonymous mapping, so libumm owns it in the libumm world) at an address
 * far below where the kernel places mappings of its own choice: holes that
 * munmap leaves in it stay free, so MAP_FIXED, hints and accesses into them
 * mean the same in both worlds.  Mappings the kernel places (no address, or
 * a hint it does not take) become "floating" regions, each with its own
 * base per world.  Every operation is expressed as region + page offset,
 * so it translates between worlds.
 *
 * The model.  One model of the pages of the regions (mapped or not, prot,
 * shared or private, which file page) serves both worlds; it decides which
 * accesses are legal.  An access the model says faults is made with
 * catch_signal() in both worlds and the signals compared; an access it says
 * is legal runs under a guard, so that an unexpected signal is a reported
 * mismatch rather than a crash.  Pages of floating regions that were
 * unmapped are never touched or named again: the kernel may have put
 * something else there.
 *
 * Files.  Writes through a libumm MAP_SHARED mapping reach the file only at
 * msync(MS_SYNC), munmap (or MAP_FIXED over it), or exit: difference 1 of
 * the contract.  So the model keeps, per file, the pages written through a
 * shared mapping since libumm last had to write them back, and the files'
 * bytes are compared (after every munmap, msync and MAP_FIXED mmap, and at
 * the end of every seed) only when that set is empty.  The test never
 * writes files with write(2) and never hands libumm memory to a system call
 * (difference 2): bytes are compared in user space.
 *
 * Bytes past the end of a file in its last page read as zeros and never
 * reach the file, in both worlds; but once a shared mapping has written
 * there, what later reads of them return is not defined (the kernel keeps
 * them in its page cache, or zeroes them when it writes the page back,
 * depending on the file system and on timing), so from then on those bytes
 * are not compared.
 *
 * Fork.  Before about one operation in 200 (at most MAX_FORKS times a
 * seed, so once in most seeds; --forks N or UMM_TEST_FORKS=N for up to N,
 * --no-fork or 0 for none) the test process forks -- one fork covers both
 * worlds, which live in it -- by umm_fork() in odd seeds and by plain
 * fork() (libumm's pthread_atfork handlers) in even ones.  The child runs
 * 20 to 40 operations of its own on both worlds, comparing as above (its
 * model is the parent's, less the pages under MADV_DONTFORK: holes of the
 * arena in the child), and ends in one of four ways: umm_shutdown() and
 * _exit(); unmapping everything, comparing the files, umm_shutdown() and
 * _exit(); exit(); or _exit() alone.  Each must leave the child's
 * MAP_SHARED writes in libumm's files (the kernel's page cache had them at
 * once).  The parent waits -- the two never run at once -- takes the
 * child's log over (its lines read "parent op>child op"), and compares
 * every page it can read in both worlds: its private pages must not show
 * the child's writes, its shared ones must.  Then the files, as above.
 * What the worlds do to pages under MADV_WIPEONFORK needs no model: the
 * child compares them.  The forks' decisions come from their own stream
 * of randomness, so a seed runs the same operations in the parent with
 * forks and without them.  Should umm_fork() fail with ENOSYS (a libumm
 * without fork), those seeds fork() instead, and say so once.
 *
 * Not covered here: MADV_FREE (the kernel frees lazily, so what a read
 * returns afterwards depends on memory pressure), files changed by write(2)
 * or ftruncate (difference 1 again), threads, a child that forks again or
 * runs alongside its parent, a child killed by SIGKILL or that calls exec
 * (README, difference 6), and the anonymous mapping kinds libumm does
 * not implement (MAP_GROWSDOWN, MAP_DROPPABLE, MAP_HUGETLB).  Under
 * Valgrind the test skips itself: its "kernel" world would be Valgrind's
 * emulation of the mmap family.
 */
#define _GNU_SOURCE
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "util.h"

#ifdef HAVE_VALGRIND_VALGRIND_H
#include <valgrind/valgrind.h>
#endif

#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE 0x100000
#endif
#ifndef MAP_SHARED_VALIDATE
#define MAP_SHARED_VALIDATE 0x03
#endif
#ifndef MAP_SYNC
#define MAP_SYNC 0x80000
#endif
#ifndef MREMAP_DONTUNMAP
#define MREMAP_DONTUNMAP 4
#endif
#ifndef PROT_GROWSUP
#define PROT_GROWSUP 0x02000000
#endif

#define ARENA_PAGES 320   /* pages of each world's arena */
#define MAX_MAP_PAGES 48  /* pages of one mmap at most */
#define MAX_FILE_PAGES 40 /* whole pages of a test file at most (plus a tail) */
#define MAXFILES 4
#define MAXREG 16         /* floating regions (region 0 is the arena) */
#define LOGLINE 256
#define BLOCK 25          /* seeds per TAP test point */
#define FORK_PERMILLE 5   /* chance of a fork before an operation, per mille */
#define MAX_FORKS 1       /* forks in one seed at most, unless --forks says */
#define CHILD_MIN_OPS 20  /* operations a child runs */
#define CHILD_MAX_OPS 40
#define CHILD_LOG (CHILD_MAX_OPS + 8) /* lines of a child's log */

/* The last page of the 47-bit user address space of x86-64 (and the first
 * page above it): no mapping can be there, so calls naming them are safe. */
#define TOP_PAGE ((uintptr_t)0x7ffffffff000ull)
#define ABOVE_TOP ((uintptr_t)0x800000000000ull)

/* Where the arenas go: far below the kernel's own choices (top-down from
 * below the stack), so that nothing else lands in their holes. */
static const uintptr_t arena_at[2] = { 0x200000000000ull, 0x210000000000ull };

/* ------------------------------------------------------------- worlds */

/* A world is a set of the mmap family's calls. */
struct world_ops {
    const char *name;
    void *(*mmap)(void *, size_t, int, int, int, off_t);
    int (*munmap)(void *, size_t);
    int (*msync)(void *, size_t, int);
    int (*mprotect)(void *, size_t, int);
    int (*madvise)(void *, size_t, int);
    void *(*mremap)(void *, size_t, size_t, int, ...);
};
/* The kernel's own mremap: libumm stands in front of the C library's. */
static void *sys_mremap(void *old, size_t old_size, size_t new_size, int flags, ...)
{
    va_list ap;
    va_start(ap, flags);
    void *na = va_arg(ap, void *);
    va_end(ap);
    return (void *)syscall(SYS_mremap, old, old_size, new_size, flags, na);
}
static const struct world_ops kernel_ops = { "kernel", mmap, munmap, msync, mprotect, madvise, sys_mremap };
static const struct world_ops umm_ops = { "libumm", umm_mmap, umm_munmap, umm_msync, umm_mprotect, umm_madvise,
                                          umm_mremap };

enum { FD_RW, FD_RO, FD_WO, FD_MODES };
static const char *const mode_name[FD_MODES] = { "rw", "ro", "wo" };

struct world {
    const struct world_ops *ops;
    int fd[MAXFILES][FD_MODES]; /* this world's copy of each file */
};
static struct world W[2];

/* ---------------------------------------------------------- the model */

struct page {
    uint8_t mapped;   /* 0: a hole (arena) or gone for good (floating) */
    uint8_t prot;     /* PROT_READ | PROT_WRITE | PROT_EXEC */
    uint8_t shared;
    uint8_t maywrite; /* mprotect may add PROT_WRITE */
    uint8_t nofork;   /* MADV_DONTFORK: a child does not have it */
    int8_t file;      /* test file, or -1: anonymous memory */
    uint64_t fpage;   /* page of the file (of the object, for shared anonymous memory) */
    uint32_t id;      /* the mmap that made it */
    uint32_t objpages; /* shared anonymous memory: the pages of its object (past them: SIGBUS) */
    uint8_t zero;     /* a private mapping of /dev/zero (a file of its own to mremap) */
};

struct region {
    int used;
    char *base[2];
    size_t npages;
    struct page pg[ARENA_PAGES];
};
static struct region R[1 + MAXREG];

struct tfile {
    uint64_t size, pages;
    uint64_t dirty;   /* pages written through a shared mapping since libumm last had to write them */
    int changed;      /* written through a shared mapping since the files were last compared */
    int tainted;      /* a shared mapping wrote past the end of the file */
    uint64_t away;    /* (in a child) dirty pages of MADV_DONTFORK mappings it
                         does not have: left to the parent to write back */
};
static struct tfile F[MAXFILES];
static int nfiles;

/* Descriptors that are no test file, shared by both worlds. */
static int zero_fd, dir_fd, pipe_fd[2], bad_fd;
enum { BK_ANON = -1, BK_ZERO = -2, BK_DIR = -3, BK_PIPE_R = -4, BK_PIPE_W = -5, BK_BADFD = -6 };

static int xom;           /* PROT_EXEC alone forbids reads here (protection keys) */

/* What the runs covered, for the summary. */
struct coverage {
    unsigned long ops, calls, errors, bytes_read, bytes_written, pages_swept, signals, file_checks, forks;
};
static struct coverage cov;
static int verbose;
static uint32_t next_id;

/* ---------------------------------------------------------- randomness */

static uint64_t rng;

static uint64_t rnd(void)
{
    uint64_t z = (rng += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static size_t rn(size_t n)
{
    return n ? (size_t)(rnd() % n) : 0;
}

static int chance(unsigned pct)
{
    return rn(100) < pct;
}

/* ---------------------------------------------------------- the op log */

static char (*oplog)[LOGLINE];
void *volatile parent_log; /* the parent's log, in a child (see child_run) */
static int nlog, maxlog;
static char line[LOGLINE];
static size_t linelen;
static int opno;
static unsigned cur_seed;
static int cur_ops;
static int failed;
static char failmsg[1024];

/* Forks.  A child reports to its parent through this page of shared
 * memory (the kernel's, outside both worlds): its log, its verdict, and
 * what the parent's model must learn from it. */
struct fork_report {
    int nlog;                /* lines in log */
    int done;                /* reached its end (not killed on the way) */
    int failed;
    char failmsg[1024];
    int tainted[MAXFILES];   /* a shared mapping of the child wrote past the end of the file */
    struct coverage cov;     /* what the child covered */
    char log[CHILD_LOG][LOGLINE];
};
static struct fork_report *FR;
static int max_forks = MAX_FORKS; /* --forks N, UMM_TEST_FORKS=N; 0: no fork */
static int in_child;            /* this process is a child of op_fork() */
static int fork_at;             /* in a child: the parent's op number at the fork */
static int nforks;              /* forks in this seed */
static volatile pid_t child_pid; /* in the parent: the child running now */
static int umm_fork_enosys;     /* umm_fork() failed with ENOSYS, fork() stood in */

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
    va_list ap;
    if (linelen >= sizeof line - 1)
        return;
    va_start(ap, fmt);
    int n = vsnprintf(line + linelen, sizeof line - linelen, fmt, ap);
    va_end(ap);
    if (n > 0)
        linelen = linelen + (size_t)n < sizeof line ? linelen + (size_t)n : sizeof line - 1;
}

static void begin(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void begin(const char *fmt, ...)
{
    va_list ap;
    if (in_child) /* the parent's op number > the child's */
        linelen = (size_t)snprintf(line, sizeof line, "%4d>%-2d ", fork_at, opno);
    else
        linelen = (size_t)snprintf(line, sizeof line, "%4d ", opno);
    va_start(ap, fmt);
    int n = vsnprintf(line + linelen, sizeof line - linelen, fmt, ap);
    va_end(ap);
    if (n > 0)
        linelen = linelen + (size_t)n < sizeof line ? linelen + (size_t)n : sizeof line - 1;
}

static void commit(void)
{
    if (!linelen)
        return;
    if (nlog < maxlog)
        memcpy(oplog[nlog++], line, LOGLINE);
    if (in_child) /* the parent prints it (with --verbose too) */
        FR->nlog = nlog;
    else if (verbose)
        tap_diag("%s", line);
    linelen = 0;
    line[0] = 0;
}

static void mismatch(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void mismatch(const char *fmt, ...)
{
    va_list ap;
    if (failed)
        return;
    failed = 1;
    va_start(ap, fmt);
    vsnprintf(failmsg, sizeof failmsg, fmt, ap);
    va_end(ap);
    say("  <-- MISMATCH");
}

static void write_str(const char *s)
{
    size_t n = strlen(s);
    while (n) {
        ssize_t r = write(1, s, n);
        if (r <= 0)
            return;
        s += r;
        n -= (size_t)r;
    }
}

/* Print the log of the seed being run (also from a fatal signal). */
static void dump_log(void)
{
    char buf[128];
    snprintf(buf, sizeof buf, "# seed %u, operation log (%d ops):\n", cur_seed, nlog);
    write_str(buf);
    for (int i = 0; i < nlog; i++) {
        write_str("#   ");
        write_str(oplog[i]);
        write_str("\n");
    }
    if (linelen) {
        write_str("#   ");
        write_str(line);
        write_str("   <-- in progress\n");
    }
    if (child_pid > 0) { /* died waiting for a child: what the child did */
        for (int i = 0; i < FR->nlog && i < CHILD_LOG; i++) {
            write_str("#   ");
            write_str(FR->log[i]);
            write_str("\n");
        }
        write_str("#   (the child was still running)\n");
    }
    snprintf(buf, sizeof buf, "# replay: tests/test-differential --seed %u --ops %d --forks %d%s --verbose\n",
             cur_seed, cur_ops, max_forks, W[1].ops == &kernel_ops ? " --kernel-only" : "");
    write_str(buf);
}

static const char *ename(int e)
{
    const char *s = strerrorname_np(e);
    return s ? s : "E?";
}

static const char *rstr(long rc, int err, char *buf)
{
    if (rc == -1)
        snprintf(buf, 32, "-1 %s", ename(err));
    else
        snprintf(buf, 32, "%ld", rc);
    return buf;
}

/* Both worlds returned (rc, errno): say so, and compare. */
static int agree(const char *what, int r0, int e0, int r1, int e1)
{
    char b0[32], b1[32];
    cov.calls++;
    cov.errors += r0 == -1;
    say(" -> %s", rstr(r0, e0, b0));
    if (r0 != r1 || (r0 == -1 && e0 != e1)) {
        say(" / %s", rstr(r1, e1, b1));
        mismatch("%s: %s returned %s, %s returned %s", what, W[0].ops->name, b0, W[1].ops->name, b1);
        return 0;
    }
    return 1;
}

/* --------------------------------------------------------- the guard */

/* Accesses the model calls legal run under this guard: a signal there is a
 * mismatch (or a bug of the model), reported with the log, not a crash. */
static sigjmp_buf guard_jb;
static volatile sig_atomic_t guard_on;
static volatile int guard_sig, guard_code;
static void *volatile guard_addr;

static void child_fatal(const char *what) __attribute__((noreturn));

static void on_fault(int sig, siginfo_t *si, void *uctx)
{
    (void)uctx;
    if (guard_on) {
        guard_on = 0;
        guard_sig = sig;
        guard_code = si->si_code;
        guard_addr = si->si_addr;
        siglongjmp(guard_jb, 1);
    }
    char buf[160];
    snprintf(buf, sizeof buf, "unexpected signal %d (code %d, addr %p) outside any guard", sig, si->si_code,
             si->si_addr);
    if (in_child)
        child_fatal(buf);
    if (child_pid > 0)
        kill(child_pid, SIGKILL);
    write_str("# ");
    write_str(buf);
    write_str("\n");
    dump_log();
    _exit(1);
}

/* Accesses to n bytes at a under the guard: writes of val, or reads into
 * got.  Returns 0, or the signal raised, with the bytes done in *done. */
static int guarded(volatile unsigned char *a, unsigned char *got, const unsigned char *val, size_t n, int write,
                   size_t *done)
{
    static volatile size_t i;
    i = 0;
    guard_on = 1;
    if (sigsetjmp(guard_jb, 1) != 0) {
        *done = i;
        return guard_sig;
    }
    for (i = 0; i < n; i++) {
        if (write)
            a[i] = val[i];
        else
            got[i] = a[i];
    }
    guard_on = 0;
    *done = n;
    return 0;
}

static void on_fatal(int sig)
{
    char buf[96];
    snprintf(buf, sizeof buf, "fatal signal %d (%s) in seed %u", sig, sig == SIGALRM ? "timeout" : strsignal(sig),
             cur_seed);
    if (in_child)
        child_fatal(buf);
    if (child_pid > 0)
        kill(child_pid, SIGKILL);
    write_str("# ");
    write_str(buf);
    write_str("\n");
    dump_log();
    _exit(1);
}

/* A child dies of a signal: the line in progress and the reason go to the
 * parent, which reports them with the rest of the log. */
static void child_fatal(const char *what)
{
    if (linelen && nlog < maxlog) {
        memcpy(oplog[nlog++], line, LOGLINE);
        FR->nlog = nlog;
    }
    snprintf(FR->failmsg, sizeof FR->failmsg, "%s", what);
    FR->failed = 1;
    _exit(3);
}

/* ------------------------------------------------------ model helpers */

static char *addr_of(int w, int r, size_t page)
{
    return R[r].base[w] + page * PAGE;
}

static int fd_of(int w, int b)
{
    switch (b) {
    case BK_ANON: return -1;
    case BK_ZERO: return zero_fd;
    case BK_DIR: return dir_fd;
    case BK_PIPE_R: return pipe_fd[0];
    case BK_PIPE_W: return pipe_fd[1];
    case BK_BADFD: return bad_fd;
    default: return W[w].fd[b / FD_MODES][b % FD_MODES];
    }
}

static const char *bk_name(int b, char *buf)
{
    switch (b) {
    case BK_ANON: return "anon";
    case BK_ZERO: return "/dev/zero";
    case BK_DIR: return "dir";
    case BK_PIPE_R: return "pipe-r";
    case BK_PIPE_W: return "pipe-w";
    case BK_BADFD: return "bad-fd";
    default:
        snprintf(buf, 16, "f%d%s", b / FD_MODES, mode_name[b % FD_MODES]);
        return buf;
    }
}

static const char *prot_name(int prot, char *buf)
{
    snprintf(buf, 32, "%s%s%s%s", prot & PROT_READ ? "R" : "", prot & PROT_WRITE ? "W" : "",
             prot & PROT_EXEC ? "X" : "", (prot & 7) == 0 ? "NONE" : "");
    if (prot & ~7)
        snprintf(buf + strlen(buf), 16, "|%#x", prot & ~7);
    return buf;
}

static const char *flags_name(int flags, char *buf)
{
    int t = flags & MAP_TYPE;
    snprintf(buf, 128, "%s%s%s%s%s%s%s%s%s",
             t == MAP_SHARED ? "SHARED" : t == MAP_PRIVATE ? "PRIVATE" : t == MAP_SHARED_VALIDATE ? "SHARED_VALIDATE" : "TYPE?",
             flags & MAP_ANONYMOUS ? "|ANON" : "", flags & MAP_FIXED ? "|FIXED" : "",
             flags & MAP_FIXED_NOREPLACE ? "|NOREPLACE" : "", flags & MAP_POPULATE ? "|POPULATE" : "",
             flags & MAP_NORESERVE ? "|NORESERVE" : "", flags & MAP_SYNC ? "|SYNC" : "",
             flags & MAP_LOCKED ? "|LOCKED" : "", flags & MAP_32BIT ? "|32BIT" : "");
    if (flags & 0x200000)
        strcat(buf, "|0x200000");
    if (t != MAP_SHARED && t != MAP_PRIVATE && t != MAP_SHARED_VALIDATE)
        snprintf(buf + strlen(buf), 16, "(%#x)", t);
    return buf;
}

static int page_readable(const struct page *pg)
{
    return xom ? (pg->prot & (PROT_READ | PROT_WRITE)) != 0 : (pg->prot & 7) != 0;
}

/* What an access of byte `off` of page `page` of region r does, by the
 * model: 0 (legal), the signal it raises (with its si_code), or -1 when
 * the byte must not be touched (a floating region's page that is gone). */
static int predict(int r, size_t page, int write, int *code)
{
    if (page >= R[r].npages)
        return -1;
    const struct page *pg = &R[r].pg[page];
    if (!pg->mapped) {
        if (r != 0)
            return -1;
        *code = SEGV_MAPERR;
        return SIGSEGV;
    }
    if (write ? !(pg->prot & PROT_WRITE) : !page_readable(pg)) {
        *code = SEGV_ACCERR;
        return SIGSEGV;
    }
    if (pg->file >= 0 && pg->fpage >= F[pg->file].pages) {
        *code = BUS_ADRERR;
        return SIGBUS;
    }
    /* Shared anonymous memory is a file of the mapping's size (shmem): a
     * mapping grown by mremap raises SIGBUS past it. */
    if (pg->file < 0 && pg->shared && pg->fpage >= pg->objpages) {
        *code = BUS_ADRERR;
        return SIGBUS;
    }
    return 0;
}

/* Are the bytes of this page from `off` on past the end of a file whose
 * tail a shared mapping wrote?  Returns the first such offset, or PAGE. */
static size_t tail_unknown_from(const struct page *pg)
{
    if (pg->file < 0 || !F[pg->file].tainted)
        return PAGE;
    const struct tfile *f = &F[pg->file];
    if (pg->fpage * PAGE >= f->size || pg->fpage * PAGE + PAGE <= f->size)
        return PAGE;
    return f->size - pg->fpage * PAGE;
}

/* A byte written at page pg, offset off: what the files must remember. */
static void note_write(const struct page *pg, size_t off)
{
    if (!pg->shared || pg->file < 0)
        return;
    struct tfile *f = &F[pg->file];
    f->dirty |= 1ull << pg->fpage;
    f->changed = 1;
    if (pg->fpage * PAGE + off >= f->size)
        f->tainted = 1;
}

/* Which pages pick_mapped() picks from. */
enum { PICK_ANY, PICK_REAL, PICK_READABLE };

static int pick_ok(int r, size_t p, int what)
{
    const struct page *pg = &R[r].pg[p];
    int code;
    if (!pg->mapped)
        return 0;
    if (what == PICK_ANY)
        return 1;
    if (pg->id == 1) /* the arena's own reservation */
        return 0;
    return what == PICK_REAL || predict(r, p, 0, &code) == 0;
}

/* A random mapped page (of any region), preferably one of the kind asked
 * for; 0 when there is none. */
static int pick_mapped(int *rr, size_t *pp, int what)
{
    for (;; what--) {
        int n = 0;
        for (int r = 0; r <= MAXREG; r++)
            if (R[r].used)
                for (size_t p = 0; p < R[r].npages; p++)
                    n += pick_ok(r, p, what);
        if (!n) {
            if (what == PICK_ANY)
                return 0;
            continue;
        }
        int k = (int)rn((size_t)n);
        for (int r = 0; r <= MAXREG; r++)
            if (R[r].used)
                for (size_t p = 0; p < R[r].npages; p++)
                    if (pick_ok(r, p, what) && k-- == 0) {
                        *rr = r;
                        *pp = p;
                        return 1;
                    }
        return 0;
    }
}

/* A random hole of the arena: its page in *s, the pages free from there
 * in *room; 0 when the arena has no hole. */
static int pick_hole(size_t *s, size_t *room)
{
    size_t n = 0;
    for (size_t p = 0; p < ARENA_PAGES; p++)
        n += !R[0].pg[p].mapped;
    if (!n)
        return 0;
    size_t k = rn(n), p = 0;
    for (;; p++)
        if (!R[0].pg[p].mapped && k-- == 0)
            break;
    size_t e = p;
    while (e < ARENA_PAGES && !R[0].pg[e].mapped)
        e++;
    *s = p;
    *room = e - p;
    return 1;
}

/* A random page still mapped in a floating region; 0 when there is none. */
static int pick_floating(int *rr, size_t *pp)
{
    int n = 0;
    for (int r = 1; r <= MAXREG; r++)
        if (R[r].used)
            for (size_t p = 0; p < R[r].npages; p++)
                n += R[r].pg[p].mapped;
    if (!n)
        return 0;
    int k = (int)rn((size_t)n);
    for (int r = 1; r <= MAXREG; r++)
        if (R[r].used)
            for (size_t p = 0; p < R[r].npages; p++)
                if (R[r].pg[p].mapped && k-- == 0) {
                    *rr = r;
                    *pp = p;
                    return 1;
                }
    return 0;
}

/* The run of mapped pages around page p (of the same mmap if same_id). */
static void run_of(int r, size_t p, int same_id, size_t *a, size_t *b)
{
    const struct page *pg = R[r].pg;
    size_t s = p, e = p + 1;
    while (s > 0 && pg[s - 1].mapped && (!same_id || pg[s - 1].id == pg[p].id))
        s--;
    while (e < R[r].npages && pg[e].mapped && (!same_id || pg[e].id == pg[p].id))
        e++;
    *a = s;
    *b = e;
}

/* A range for munmap, mprotect, msync, madvise: pages [*s, *s + *n) of
 * region *r.  In the arena anything goes (holes, several mappings); in a
 * floating region only pages still mapped. */
static void pick_range(int *r, size_t *s, size_t *n)
{
    size_t p, a, b;
    if (chance(65) && pick_mapped(r, &p, chance(85) ? PICK_REAL : PICK_ANY)) {
        run_of(*r, p, *r == 0 ? chance(70) : chance(30), &a, &b);
        if (!chance(40)) {
            size_t x = a + rn(b - a), y = a + rn(b - a);
            a = x < y ? x : y;
            b = (x < y ? y : x) + 1;
        }
        if (*r == 0 && chance(15)) { /* reach into the neighbours */
            size_t more = rn(8);
            a = a > more ? a - more : 0;
            b = b + rn(8);
            if (b > ARENA_PAGES)
                b = ARENA_PAGES;
        }
        *s = a;
        *n = b - a;
        return;
    }
    *r = 0;
    *s = rn(ARENA_PAGES);
    size_t max = ARENA_PAGES - *s < 64 ? ARENA_PAGES - *s : 64;
    *n = 1 + rn(max);
}

/* A length in bytes for n pages: sometimes not a multiple of the page. */
static size_t bytes_of(size_t n)
{
    return n * PAGE - (chance(25) ? rn(PAGE) : 0);
}

static void region_free_if_empty(int r)
{
    if (r == 0)
        return;
    for (size_t p = 0; p < R[r].npages; p++)
        if (R[r].pg[p].mapped)
            return;
    R[r].used = 0;
}

/* Pages [s, s+n) of region r are unmapped (munmap, or replaced): libumm
 * has written back their dirty shared file pages. */
static void model_unmap_pages(int r, size_t s, size_t n)
{
    for (size_t p = s; p < s + n && p < R[r].npages; p++) {
        struct page *pg = &R[r].pg[p];
        if (pg->mapped && pg->shared && pg->file >= 0 && pg->fpage < 64)
            F[pg->file].dirty &= ~(1ull << pg->fpage);
        memset(pg, 0, sizeof *pg);
        pg->file = -1;
    }
}

static void model_unmap(int r, size_t s, size_t n)
{
    model_unmap_pages(r, s, n);
    region_free_if_empty(r);
}

/* msync(MS_SYNC) succeeded over pages [s, s+n): libumm wrote them back. */
static void model_synced(int r, size_t s, size_t n)
{
    for (size_t p = s; p < s + n && p < R[r].npages; p++) {
        struct page *pg = &R[r].pg[p];
        if (pg->mapped && pg->shared && pg->file >= 0 && pg->fpage < 64)
            F[pg->file].dirty &= ~(1ull << pg->fpage);
    }
}

static void model_map(int r, size_t s, size_t n, int b, int shared, int prot, uint64_t fpage)
{
    model_unmap_pages(r, s, n);
    uint32_t id = ++next_id;
    for (size_t i = 0; i < n; i++) {
        struct page *pg = &R[r].pg[s + i];
        pg->mapped = 1;
        pg->prot = (uint8_t)(prot & 7);
        pg->shared = (uint8_t)shared;
        pg->file = (int8_t)(b >= 0 ? b / FD_MODES : -1);
        pg->maywrite = (uint8_t)(!shared || b < 0 || b % FD_MODES == FD_RW);
        pg->fpage = b >= 0 || shared ? (b >= 0 ? fpage : 0) + i : 0;
        pg->objpages = b < 0 && shared ? (uint32_t)n : 0;
        pg->zero = b == BK_ZERO && !shared;
        pg->id = id;
    }
}

/* ------------------------------------------------------------- files */

/* Compare the files' bytes where both worlds must agree: files with no
 * page left for libumm to write back (all of them at the end, force). */
static void check_files(int force)
{
    static unsigned char *buf[2];
    size_t cap = (MAX_FILE_PAGES + 1) * PAGE;
    for (int w = 0; w < 2; w++)
        if (!buf[w] && !(buf[w] = malloc(cap)))
            tap_bail("malloc");
    for (int f = 0; f < nfiles && !failed; f++) {
        if (F[f].dirty || (!force && !F[f].changed))
            continue;
        F[f].changed = 0;
        for (int w = 0; w < 2; w++) {
            struct stat st;
            if (fstat(W[w].fd[f][FD_RW], &st) != 0 || (uint64_t)st.st_size != F[f].size) {
                say(" [file f%d]", f);
                mismatch("file f%d of the %s world has %lld bytes, not %llu", f, W[w].ops->name,
                         (long long)st.st_size, (unsigned long long)F[f].size);
                return;
            }
            if (read_file(W[w].fd[f][FD_RW], buf[w], F[f].size, 0) != 0)
                tap_bail("pread: %s", strerror(errno));
        }
        cov.file_checks++;
        if (memcmp(buf[0], buf[1], F[f].size) != 0) {
            size_t i = 0;
            while (buf[0][i] == buf[1][i])
                i++;
            say(" [file f%d]", f);
            mismatch("file f%d differs at byte %zu (page %zu): %s has %#x, %s has %#x", f, i, i / PAGE,
                     W[0].ops->name, buf[0][i], W[1].ops->name, buf[1][i]);
            return;
        }
    }
}

/* ----------------------------------------------------------- mmap */

static int pick_prot(void)
{
    static const int tab[] = { PROT_READ, PROT_READ, PROT_READ, PROT_READ, PROT_READ | PROT_WRITE,
                               PROT_READ | PROT_WRITE, PROT_READ | PROT_WRITE, PROT_READ | PROT_WRITE,
                               PROT_READ | PROT_WRITE, PROT_READ | PROT_WRITE, PROT_NONE, PROT_WRITE,
                               PROT_READ | PROT_EXEC, PROT_READ | PROT_WRITE | PROT_EXEC, PROT_EXEC };
    int p = tab[rn(sizeof tab / sizeof tab[0])];
    if (xom && p == PROT_EXEC)
        p |= PROT_READ;
    return p;
}

/* A backing for a mapping that should work: a test file (by one of its
 * descriptors), anonymous memory, or /dev/zero. */
static int pick_backing(void)
{
    unsigned x = (unsigned)rn(100);
    if (x < 22)
        return BK_ANON;
    if (x < 28)
        return BK_ZERO;
    int f = (int)rn((size_t)nfiles);
    x = (unsigned)rn(100);
    return f * FD_MODES + (x < 60 ? FD_RW : x < 96 ? FD_RO : FD_WO);
}

static int free_region(void)
{
    for (int r = 1; r <= MAXREG; r++)
        if (!R[r].used)
            return r;
    return -1;
}

/* Which of the two results of a non-fixed mmap landed in the arena, and
 * where: the page, or -1 (elsewhere). */
static long arena_page(int w, void *p)
{
    uintptr_t a = (uintptr_t)p, base = (uintptr_t)R[0].base[w];
    if (a >= base && a < base + ARENA_PAGES * PAGE)
        return (long)((a - base) / PAGE);
    return -1;
}

enum { MM_FIXED, MM_NOREPLACE, MM_HINT, MM_NULL, MM_FLOATFIXED, MM_BAD };

static void op_mmap(void)
{
    unsigned x = (unsigned)rn(100);
    int kind = x < 48 ? MM_FIXED : x < 56 ? MM_NOREPLACE : x < 68 ? MM_HINT : x < 76 ? MM_NULL
             : x < 84 ? MM_FLOATFIXED : MM_BAD;
    int b = pick_backing(), shared = chance(50), prot = pick_prot(), flags;
    int r = 0, hint_off = 0, bad = -1;
    size_t s = 0, n = 1 + rn(MAX_MAP_PAGES), len;
    off_t off = 0;
    char *addr[2] = { NULL, NULL };
    char nb[16], pb[32], fb[128];

    if ((kind == MM_NULL || kind == MM_HINT) && free_region() < 0)
        kind = MM_FIXED;
    if (kind == MM_FLOATFIXED) {
        size_t p, a, e;
        int fr;
        if (pick_floating(&fr, &p)) {
            run_of(fr, p, 0, &a, &e);
            r = fr;
            s = a + rn(e - a);
            n = 1 + rn(e - s);
        } else {
            kind = MM_FIXED;
        }
    }
    flags = shared ? (chance(8) ? MAP_SHARED_VALIDATE : MAP_SHARED) : MAP_PRIVATE;
    if (b == BK_ANON)
        flags |= MAP_ANONYMOUS;
    else if (b >= 0)
        off = (off_t)((chance(35) ? 0 : rn(F[b / FD_MODES].pages + 3)) * PAGE);
    if (chance(8))
        flags |= MAP_POPULATE;
    if (chance(10))
        flags |= MAP_NORESERVE;
    if (chance(10)) /* populated at once; msync(MS_INVALIDATE) and dropping advice refused */
        flags |= MAP_LOCKED;
    if (kind == MM_NULL && chance(10)) /* placed in the first 2 GiB: a floating region as any other */
        flags |= MAP_32BIT;
    if (kind == MM_FIXED || kind == MM_NOREPLACE || kind == MM_HINT) {
        size_t room;
        if ((kind == MM_FIXED ? chance(20) : chance(60)) && pick_hole(&s, &room)) {
            if (n > room && chance(75)) /* mostly into the hole, sometimes beyond */
                n = room;
        } else {
            s = rn(ARENA_PAGES);
        }
        if (n > ARENA_PAGES - s)
            n = ARENA_PAGES - s;
        if (kind == MM_HINT && chance(15) && s + 1 + n <= ARENA_PAGES)
            hint_off = 1 + (int)rn(PAGE - 1); /* the kernel rounds a hint up */
    }
    if (kind == MM_FIXED || kind == MM_FLOATFIXED)
        flags |= MAP_FIXED;
    if (kind == MM_NOREPLACE)
        flags |= MAP_FIXED_NOREPLACE;
    if (kind != MM_NULL && kind != MM_BAD)
        for (int w = 0; w < 2; w++)
            addr[w] = addr_of(w, r, s) + hint_off;
    len = bytes_of(n);

    if (kind == MM_BAD) {
        bad = (int)rn(11);
        switch (bad) {
        case 0: /* offset not page aligned */
            off = (off_t)(rn(4) * PAGE + 1 + rn(PAGE - 1));
            break;
        case 1: /* no length */
            len = 0;
            break;
        case 2: /* no valid mapping type */
        {
            static const int types[] = { 0, 4, 5, 6, 7, 0xf, MAP_SHARED_VALIDATE };
            int t = types[rn(sizeof types / sizeof types[0])];
            if (t == MAP_SHARED_VALIDATE && b != BK_ANON)
                t = 0;
            flags = (flags & ~MAP_TYPE) | t;
            break;
        }
        case 3: /* MAP_FIXED at an address not page aligned */
            s = rn(ARENA_PAGES - n + 1);
            for (int w = 0; w < 2; w++)
                addr[w] = addr_of(w, 0, s) + 1 + rn(PAGE - 1);
            flags |= MAP_FIXED;
            break;
        case 4: /* a descriptor that cannot be mapped, or that is not open */
        {
            static const int bks[] = { BK_DIR, BK_PIPE_R, BK_PIPE_W, BK_BADFD };
            b = bks[rn(4)];
            flags &= ~MAP_ANONYMOUS;
            off = 0;
            break;
        }
        case 5: /* a flag MAP_SHARED_VALIDATE does not know, MAP_SYNC without DAX */
            if (b < 0)
                b = (int)rn((size_t)nfiles) * FD_MODES + FD_RW;
            {
                static const int types[] = { MAP_SHARED_VALIDATE, MAP_SHARED_VALIDATE, MAP_SHARED, MAP_PRIVATE };
                flags = (flags & ~(MAP_TYPE | MAP_ANONYMOUS)) | types[rn(4)] | (chance(70) ? MAP_SYNC : 0x200000);
            }
            break;
        case 6: /* too long */
            len = chance(50) ? SIZE_MAX - rn(PAGE) : ((size_t)1 << 47) + PAGE * (1 + rn(4));
            break;
        case 7: /* offset overflow */
            if (b < 0)
                b = (int)rn((size_t)nfiles) * FD_MODES + (chance(50) ? FD_RW : FD_RO);
            flags &= ~MAP_ANONYMOUS;
            off = chance(50) ? (off_t)(INT64_MAX & ~(int64_t)(PAGE - 1)) : -(off_t)PAGE * (off_t)(1 + rn(4));
            break;
        case 8: /* MAP_FIXED at the top of the address space and beyond */
        {
            uintptr_t a = chance(50) ? TOP_PAGE - PAGE * rn(n) : ABOVE_TOP + PAGE * rn(4);
            addr[0] = addr[1] = (char *)a;
            flags |= chance(70) ? MAP_FIXED : MAP_FIXED_NOREPLACE;
            break;
        }
        case 9: /* protection bits nobody knows */
            prot |= 0x10;
            break;
        case 10: /* MAP_GROWSDOWN on a file */
            if (b < 0)
                b = (int)rn((size_t)nfiles) * FD_MODES + FD_RW;
            flags = (flags & ~MAP_ANONYMOUS) | MAP_GROWSDOWN;
            break;
        }
    }

    begin("mmap %s", kind == MM_NULL || kind == MM_BAD ? "" : kind == MM_HINT ? "hint " : "at ");
    if (bad == 8)
        say("%p", (void *)addr[0]);
    else if (addr[0])
        say("%s+%zup", r == 0 ? "arena" : "float", s);
    if (hint_off || (bad == 3 && addr[0]))
        say("+%#lx", (unsigned long)((uintptr_t)addr[0] & (PAGE - 1)));
    if (r)
        say("(region %d)", r);
    say(" len=%#zx %s %s %s off=%#llx", len, prot_name(prot, pb), flags_name(flags, fb), bk_name(b, nb),
        (unsigned long long)off);

    void *p[2];
    int e[2];
    for (int w = 0; w < 2; w++) {
        errno = 0;
        p[w] = W[w].ops->mmap(addr[w], len, prot, flags, fd_of(w, b), off);
        e[w] = errno;
    }
    char b0[32], b1[32];
    cov.calls++;
    cov.errors += p[0] == MAP_FAILED;
    if (p[0] == MAP_FAILED || p[1] == MAP_FAILED) {
        say(" -> %s", p[0] == MAP_FAILED ? rstr(-1, e[0], b0) : "ok");
        if (p[0] != MAP_FAILED || p[1] != MAP_FAILED || e[0] != e[1]) {
            say(" / %s", p[1] == MAP_FAILED ? rstr(-1, e[1], b1) : "ok");
            mismatch("mmap: %s %s, %s %s", W[0].ops->name, p[0] == MAP_FAILED ? rstr(-1, e[0], b0) : "succeeded",
                     W[1].ops->name, p[1] == MAP_FAILED ? rstr(-1, e[1], b1) : "succeeded");
            /* Take back what the model cannot follow (MAP_FIXED landed in the
             * world's own region, which the end of the seed unmaps). */
            for (int w = 0; w < 2; w++)
                if (p[w] != MAP_FAILED && !(flags & (MAP_FIXED | MAP_FIXED_NOREPLACE)) && arena_page(w, p[w]) < 0)
                    W[w].ops->munmap(p[w], len);
        }
        commit();
        return;
    }
    /* Both succeeded. */
    if (flags & (MAP_FIXED | MAP_FIXED_NOREPLACE)) {
        say(" -> ok");
        if (p[0] != addr[0] || p[1] != addr[1]) {
            mismatch("mmap MAP_FIXED: %s placed it at %+ld, %s at %+ld from the address asked", W[0].ops->name,
                     (long)((char *)p[0] - addr[0]), W[1].ops->name, (long)((char *)p[1] - addr[1]));
            commit();
            return;
        }
        if (bad >= 0) { /* cannot be: both worlds mapped where nothing may be */
            mismatch("mmap with bad arguments succeeded in both worlds");
            commit();
            return;
        }
    } else {
        long a0 = arena_page(0, p[0]), a1 = arena_page(1, p[1]);
        if (a0 >= 0)
            say(" -> arena+%ldp", a0);
        else
            say(" -> elsewhere");
        if (a0 != a1) {
            if (a1 >= 0)
                say(" / arena+%ldp", a1);
            else
                say(" / elsewhere");
            mismatch("mmap placed the mapping differently: %s %ld, %s %ld (arena page, -1: outside)",
                     W[0].ops->name, a0, W[1].ops->name, a1);
            for (int w = 0; w < 2; w++)
                if (arena_page(w, p[w]) < 0)
                    W[w].ops->munmap(p[w], len);
            commit();
            return;
        }
        int fr = free_region();
        if (bad >= 0 || (a0 < 0 && (fr < 0 || n > MAX_MAP_PAGES))) {
            /* Arguments the model does not follow (or no room): take it back. */
            say(" (unmapped again)");
            for (int w = 0; w < 2; w++)
                W[w].ops->munmap(p[w], len);
            if (a0 >= 0) /* in the arena: a hole there now */
                model_unmap(0, (size_t)a0, n);
            commit();
            return;
        }
        if (a0 >= 0) {
            r = 0;
            s = (size_t)a0;
            for (size_t i = s; i < s + n; i++)
                if (i >= ARENA_PAGES || R[0].pg[i].mapped) {
                    mismatch("model: mmap with a hint placed a mapping over arena page %zu, which the model has mapped", i);
                    commit();
                    return;
                }
        } else {
            r = fr;
            memset(&R[r], 0, sizeof R[r]);
            R[r].used = 1;
            R[r].npages = n;
            R[r].base[0] = p[0];
            R[r].base[1] = p[1];
            s = 0;
            say(" region %d", r);
        }
    }
    model_map(r, s, n, b, (flags & MAP_TYPE) != MAP_PRIVATE, prot, (uint64_t)off / PAGE);
    if (flags & MAP_FIXED)
        check_files(0); /* what it replaced was written back */
    commit();
}

/* ------------------------------------------- munmap, mprotect, msync, madvise */

/* Arguments of a call on a range, maybe bad ones: fills addr[] and len and
 * says in the log what they are; returns the kind of bad argument or -1. */
enum { BA_NONE = -1, BA_UNALIGNED, BA_ZERO, BA_HUGE, BA_TOP };

static int range_args(int r, size_t s, size_t n, char *addr[2], size_t *len, int allow_bad)
{
    int bad = allow_bad && chance(10) ? (int)rn(4) : BA_NONE;
    *len = bytes_of(n);
    for (int w = 0; w < 2; w++)
        addr[w] = addr_of(w, r, s);
    switch (bad) {
    case BA_UNALIGNED: {
        size_t d = 1 + rn(PAGE - 1);
        for (int w = 0; w < 2; w++)
            addr[w] += d;
        break;
    }
    case BA_ZERO:
        *len = 0;
        break;
    case BA_HUGE: /* rounds up to nothing */
        *len = SIZE_MAX - rn(PAGE);
        break;
    case BA_TOP:
        addr[0] = addr[1] = (char *)(chance(50) ? TOP_PAGE : ABOVE_TOP);
        *len = PAGE * (1 + rn(2));
        break;
    }
    if (bad == BA_TOP)
        say(" %p len=%#zx", (void *)addr[0], *len);
    else
        say(" %s+%zup%s len=%#zx", r == 0 ? "arena" : "float", s, bad == BA_UNALIGNED ? "+odd" : "", *len);
    if (r)
        say("(region %d)", r);
    return bad;
}

static void op_munmap(void)
{
    int r;
    size_t s, n, len;
    char *addr[2];
    pick_range(&r, &s, &n);
    begin("munmap");
    int bad = range_args(r, s, n, addr, &len, 1);
    int rc[2], e[2];
    for (int w = 0; w < 2; w++) {
        errno = 0;
        rc[w] = W[w].ops->munmap(addr[w], len);
        e[w] = errno;
    }
    int same = agree("munmap", rc[0], e[0], rc[1], e[1]);
    if (same && bad == BA_NONE && rc[0] == 0)
        model_unmap(r, s, n);
    else if (same && bad == BA_NONE)
        mismatch("model: munmap of a valid range failed");
    check_files(0);
    commit();
}

static void op_mprotect(void)
{
    int r;
    size_t s, n, len;
    char *addr[2], pb[32];
    pick_range(&r, &s, &n);
    int prot = pick_prot(), badprot = 0;
    if (chance(5)) {
        static const int extra[] = { 0x10, PROT_GROWSDOWN | PROT_GROWSUP, PROT_GROWSDOWN, PROT_GROWSUP, 0x8 };
        int k = (int)rn(5);
        prot |= extra[k];
        badprot = k < 4;
    }
    begin("mprotect");
    int bad = range_args(r, s, n, addr, &len, 1);
    say(" %s", prot_name(prot, pb));
    int rc[2], e[2];
    for (int w = 0; w < 2; w++) {
        errno = 0;
        rc[w] = W[w].ops->mprotect(addr[w], len, prot);
        e[w] = errno;
    }
    if (agree("mprotect", rc[0], e[0], rc[1], e[1]) && bad == BA_NONE && !badprot) {
        /* As the kernel: VMA by VMA in address order, until a hole (ENOMEM)
         * or a mapping that may not have the protection (EACCES); what was
         * changed before stays changed. */
        int err = 0;
        for (size_t p = s; p < s + n; p++) {
            struct page *pg = &R[r].pg[p];
            if (!pg->mapped) {
                err = ENOMEM;
                break;
            }
            if ((prot & PROT_WRITE) && !pg->maywrite) {
                err = EACCES;
                break;
            }
            pg->prot = (uint8_t)(prot & 7);
        }
        if ((err ? -1 : 0) != rc[0] || (err && err != e[0]))
            mismatch("model: mprotect should return %s", err ? ename(err) : "0");
    }
    commit();
}

static void op_msync(void)
{
    int r;
    size_t s, n, len;
    char *addr[2];
    static const int tab[] = { MS_SYNC, MS_SYNC, MS_SYNC, MS_SYNC, MS_SYNC, MS_SYNC, MS_SYNC, MS_ASYNC, MS_ASYNC,
                               MS_ASYNC, MS_INVALIDATE, MS_INVALIDATE, MS_SYNC | MS_INVALIDATE,
                               MS_SYNC | MS_INVALIDATE, MS_ASYNC | MS_INVALIDATE, 0, MS_SYNC | MS_ASYNC, 0x8 };
    int flags = tab[rn(sizeof tab / sizeof tab[0])];
    pick_range(&r, &s, &n);
    begin("msync");
    int bad = range_args(r, s, n, addr, &len, 1);
    say(" %s%s%s%s", flags & MS_SYNC ? "SYNC " : "", flags & MS_ASYNC ? "ASYNC " : "",
        flags & MS_INVALIDATE ? "INVALIDATE " : "", flags & 0x8 ? "0x8" : flags ? "" : "0");
    int rc[2], e[2];
    for (int w = 0; w < 2; w++) {
        errno = 0;
        rc[w] = W[w].ops->msync(addr[w], len, flags);
        e[w] = errno;
    }
    /* MS_SYNC writes back every mapped page of the range, holes or not
     * (they only make it return ENOMEM at the end). */
    if (agree("msync", rc[0], e[0], rc[1], e[1]) && bad == BA_NONE && (flags & MS_SYNC) &&
        (rc[0] == 0 || e[0] == ENOMEM))
        model_synced(r, s, n);
    check_files(0);
    commit();
}

/* msync(MS_SYNC) every run of mapped pages of every region, so that no
 * page is left for libumm to write back: then the files must agree. */
static void op_syncall(void)
{
    begin("msync SYNC of every mapping:");
    for (int r = 0; r <= MAXREG && !failed; r++) {
        if (!R[r].used)
            continue;
        for (size_t p = 0; p < R[r].npages && !failed;) {
            if (!R[r].pg[p].mapped) {
                p++;
                continue;
            }
            size_t a, b;
            run_of(r, p, 0, &a, &b);
            int rc[2], e[2];
            for (int w = 0; w < 2; w++) {
                errno = 0;
                rc[w] = W[w].ops->msync(addr_of(w, r, a), (b - a) * PAGE, MS_SYNC);
                e[w] = errno;
            }
            say(" %s+%zup..%zup", r ? "float" : "arena", a, b);
            if (agree("msync", rc[0], e[0], rc[1], e[1]) && rc[0] == 0)
                model_synced(r, a, b - a);
            p = b;
        }
    }
    for (int f = 0; f < nfiles && !failed; f++)
        if (F[f].dirty & ~F[f].away)
            mismatch("model: file f%d has dirty pages after msync of every mapping", f);
    check_files(0);
    commit();
}

static void op_madvise(void)
{
    int r;
    size_t s, n, len;
    char *addr[2];
    static const struct { int advice; const char *name; } tab[] = {
        { MADV_DONTNEED, "DONTNEED" }, { MADV_DONTNEED, "DONTNEED" }, { MADV_DONTNEED, "DONTNEED" },
        { MADV_DONTNEED, "DONTNEED" }, { MADV_DONTNEED, "DONTNEED" }, { MADV_WILLNEED, "WILLNEED" },
        { MADV_WILLNEED, "WILLNEED" }, { MADV_WILLNEED, "WILLNEED" }, { MADV_SEQUENTIAL, "SEQUENTIAL" },
        { MADV_SEQUENTIAL, "SEQUENTIAL" }, { MADV_RANDOM, "RANDOM" }, { MADV_RANDOM, "RANDOM" },
        { MADV_NORMAL, "NORMAL" }, { MADV_NORMAL, "NORMAL" }, { 5, "5(unknown)" }, { 999, "999(unknown)" },
        { -1, "-1(unknown)" }, { MADV_REMOVE, "REMOVE" }, { 22, "POPULATE_READ" }, { 23, "POPULATE_WRITE" },
        { MADV_COLD, "COLD" }, { MADV_PAGEOUT, "PAGEOUT" }, { MADV_DONTFORK, "DONTFORK" },
        { MADV_DOFORK, "DOFORK" }, { MADV_WIPEONFORK, "WIPEONFORK" }, { MADV_KEEPONFORK, "KEEPONFORK" },
        { MADV_HUGEPAGE, "HUGEPAGE" }, { MADV_NOHUGEPAGE, "NOHUGEPAGE" }, { MADV_DONTDUMP, "DONTDUMP" },
        { MADV_DODUMP, "DODUMP" }, { MADV_MERGEABLE, "MERGEABLE" }, { MADV_UNMERGEABLE, "UNMERGEABLE" },
        { 25, "COLLAPSE" },
    };
    int k = (int)rn(sizeof tab / sizeof tab[0]);
    pick_range(&r, &s, &n);
    begin("madvise");
    int bad = range_args(r, s, n, addr, &len, 1);
    say(" %s", tab[k].name);
    int rc[2], e[2];
    for (int w = 0; w < 2; w++) {
        errno = 0;
        rc[w] = W[w].ops->madvise(addr[w], len, tab[k].advice);
        e[w] = errno;
    }
    int same = agree("madvise", rc[0], e[0], rc[1], e[1]);
    if (same && tab[k].advice == MADV_REMOVE) {
        /* The holes punched change the files at once, in both worlds. */
        for (size_t p = s; p < s + n && p < R[r].npages; p++)
            if (R[r].pg[p].mapped && R[r].pg[p].shared && R[r].pg[p].file >= 0)
                F[R[r].pg[p].file].changed = 1;
        check_files(0);
    }
    /* What a child will not have: the kernel marks every mapping of the
     * range (holes only make it return ENOMEM at the end), until DOFORK,
     * or until the pages are mapped anew. */
    if (same && bad == BA_NONE && (rc[0] == 0 || e[0] == ENOMEM) &&
        (tab[k].advice == MADV_DONTFORK || tab[k].advice == MADV_DOFORK))
        for (size_t p = s; p < s + n && p < R[r].npages; p++)
            if (R[r].pg[p].mapped)
                R[r].pg[p].nofork = tab[k].advice == MADV_DONTFORK;
    commit();
}

/* ------------------------------------------------------------- mremap */

/* Pages [s, s+n) of region r left the model without being written back:
 * mremap moved them, and their dirty state went with them. */
static void model_forget(int r, size_t s, size_t n)
{
    for (size_t p = s; p < s + n && p < R[r].npages; p++) {
        memset(&R[r].pg[p], 0, sizeof R[r].pg[p]);
        R[r].pg[p].file = -1;
    }
}

/* A page that grows a mapping after page t: the same mapping, k pages on. */
static struct page page_after(const struct page *t, size_t k)
{
    struct page pg = *t;
    if (pg.file >= 0 || pg.shared)
        pg.fpage += k;
    return pg;
}

/* A random mapped page of the kind asked (shared, or private anonymous
 * memory), in a few tries; 0 if none was found. */
static int pick_kind(int *r, size_t *p, int shared)
{
    for (int tries = 0; tries < 12; tries++) {
        if (!pick_mapped(r, p, PICK_REAL))
            return 0;
        const struct page *pg = &R[*r].pg[*p];
        if (shared ? pg->shared : (!pg->shared && pg->file < 0))
            return 1;
    }
    return 0;
}

enum { MR_SHRINK, MR_GROW, MR_MAYMOVE, MR_FIXED, MR_DONTUNMAP, MR_DUP, MR_BAD };
static const char *const mr_name[] = { "shrink", "grow", "maymove", "fixed", "dontunmap", "dup", "bad" };

/*
 * mremap, in the ways Linux has it: shrinking (the tail unmapped, which
 * may cross mappings), growing in place, MREMAP_MAYMOVE (in place when it
 * can, else to an address the kernel picks: a floating region), and
 * MREMAP_FIXED into the arena -- with the same size, every mapping of the
 * old range moves, holes and all (Linux 6.17's multi-VMA move) --,
 * MREMAP_DONTUNMAP (mostly of private anonymous memory), old_size 0 on
 * shared mappings (a second mapping of the same pages), and bad arguments.
 * The old range is a run of mapped pages, in the arena sometimes across
 * mappings and holes: the kernel's EFAULT for a range that is not one of
 * its VMAs is then the answer to compare, and libumm must know where the
 * kernel's VMAs begin and end (which neighbours it merged).  A floating
 * region never grows in place: what follows it differs between the worlds.
 */
static void op_mremap(void)
{
    unsigned x = (unsigned)rn(100);
    int kind = x < 14 ? MR_SHRINK : x < 30 ? MR_GROW : x < 46 ? MR_MAYMOVE : x < 68 ? MR_FIXED
             : x < 80 ? MR_DONTUNMAP : x < 88 ? MR_DUP : MR_BAD;
    int r, flags = 0, bad = -1, r2 = -1;
    size_t p, a, b, s, on, nn, d = 0;
    char *old[2], *na[2] = { NULL, NULL };

    if (kind == MR_DONTUNMAP && chance(80)) {
        if (!pick_kind(&r, &p, 0) && !pick_mapped(&r, &p, PICK_ANY))
            return;
    } else if (kind == MR_DUP && chance(90)) {
        if (!pick_kind(&r, &p, 1) && !pick_mapped(&r, &p, PICK_ANY))
            return;
    } else if (!pick_mapped(&r, &p, chance(80) ? PICK_REAL : PICK_ANY)) {
        return;
    }
    run_of(r, p, r == 0 ? chance(60) : chance(30), &a, &b);
    s = chance(50) ? p : a + rn(b - a);
    on = 1 + rn(b - s);
    if (r == 0 && chance(12)) { /* across into the neighbours, holes or mappings */
        on += rn(6);
        if (s + on > ARENA_PAGES)
            on = ARENA_PAGES - s;
    }
    if ((kind == MR_GROW || kind == MR_MAYMOVE) && (r != 0 || s + on >= ARENA_PAGES))
        kind = r != 0 && kind == MR_MAYMOVE && chance(50) ? MR_SHRINK : MR_FIXED;
    if ((kind == MR_MAYMOVE || kind == MR_DUP || kind == MR_DONTUNMAP) && free_region() < 0)
        kind = MR_FIXED;
    if (kind == MR_SHRINK && on < 2)
        kind = MR_FIXED;

    nn = on;
    switch (kind) {
    case MR_SHRINK:
        nn = 1 + rn(on - 1);
        flags = chance(30) ? MREMAP_MAYMOVE : 0;
        break;
    case MR_GROW:
    case MR_MAYMOVE:
        nn = on + 1 + rn(12);
        if (s + nn > ARENA_PAGES) /* in place past the arena would be outside the model */
            nn = ARENA_PAGES - s;
        flags = kind == MR_MAYMOVE ? MREMAP_MAYMOVE : 0;
        break;
    case MR_FIXED:
        nn = chance(50) ? on : 1 + rn(on + 8);
        flags = MREMAP_MAYMOVE | MREMAP_FIXED;
        break;
    case MR_DONTUNMAP:
        flags = MREMAP_MAYMOVE | MREMAP_DONTUNMAP | (chance(50) ? MREMAP_FIXED : 0);
        if (!(flags & MREMAP_FIXED) && free_region() < 0)
            flags |= MREMAP_FIXED;
        break;
    case MR_DUP:
        s = p;
        on = 0;
        nn = 1 + rn(10);
        flags = chance(85) ? MREMAP_MAYMOVE | (chance(35) ? MREMAP_FIXED : 0) : 0;
        break;
    case MR_BAD:
        bad = (int)rn(9);
        flags = MREMAP_MAYMOVE;
        nn = 1 + rn(on + 4);
        break;
    }
    if (nn > ARENA_PAGES)
        nn = ARENA_PAGES;
    /* A move of several mappings at once stops with EFAULT at a mapping of
     * a file whose file system places mappings itself (vma_multi_allowed),
     * after moving those before it: the model cannot tell where.  So such
     * a move has none but at its start, and one that starts at a file page
     * resizes too (one mapping only: EFAULT before anything moves). */
    if ((flags & MREMAP_FIXED) && nn == on && R[r].pg[s].mapped && (R[r].pg[s].file >= 0 || R[r].pg[s].zero) &&
        !(flags & MREMAP_DONTUNMAP))
        nn = on + 1;
    else if ((flags & MREMAP_FIXED) && nn == on && R[r].pg[s].mapped && (R[r].pg[s].file >= 0 || R[r].pg[s].zero))
        on = nn = 1; /* MREMAP_DONTUNMAP: no resize, so one page of it */
    if ((flags & MREMAP_FIXED) && nn == on)
        for (size_t i = 1; i < on; i++)
            if (R[r].pg[s + i].mapped && (R[r].pg[s + i].file >= 0 || R[r].pg[s + i].zero)) {
                on = nn = i;
                break;
            }
    /* Shared anonymous memory grown past its object: SIGBUS or not, as
     * shmem has it; not modelled. */
    if (R[r].pg[s].mapped && R[r].pg[s].shared && R[r].pg[s].file < 0) {
        const struct page *pg = &R[r].pg[s];
        size_t max = kind == MR_DUP ? (pg->objpages > pg->fpage ? pg->objpages - pg->fpage : 1) : on;
        if (nn > max && kind != MR_BAD)
            nn = max ? max : 1;
    }
    if (flags & MREMAP_FIXED) { /* into the arena; mostly not onto the old range (EINVAL) */
        for (int tries = 0; tries < 8; tries++) {
            d = rn(ARENA_PAGES - nn + 1);
            if (r != 0 || d + nn <= s || s + on <= d || chance(3))
                break;
        }
    }
    /* Lengths: not whole pages sometimes, but never where the kernel
     * compares them as given (MREMAP_DONTUNMAP, and a move without resize). */
    size_t olen = on * PAGE, nlen = nn * PAGE;
    if (on != nn && chance(20))
        olen -= on ? rn(PAGE) : 0;
    if (on != nn && chance(20))
        nlen -= rn(PAGE);
    for (int w = 0; w < 2; w++) {
        old[w] = addr_of(w, r, s);
        if (flags & MREMAP_FIXED)
            na[w] = addr_of(w, 0, d);
    }
    if (kind == MR_DONTUNMAP && !(flags & MREMAP_FIXED) && chance(25)) { /* a hint: in a hole of the arena */
        size_t h, room;
        if (pick_hole(&h, &room) && room >= nn)
            for (int w = 0; w < 2; w++)
                na[w] = addr_of(w, 0, h);
    }
    switch (bad) {
    case 0: /* old address not page aligned */
        for (int w = 0; w < 2; w++)
            old[w] += 1 + rn(PAGE - 1);
        break;
    case 1: /* a flag nobody knows */
        flags |= chance(50) ? 8 : 0x10;
        break;
    case 2: /* no new size */
        nlen = 0;
        break;
    case 3: /* MREMAP_FIXED without MREMAP_MAYMOVE */
        flags = MREMAP_FIXED;
        d = rn(ARENA_PAGES - nn + 1);
        for (int w = 0; w < 2; w++)
            na[w] = addr_of(w, 0, d);
        break;
    case 4: /* MREMAP_DONTUNMAP with a resize */
        flags = MREMAP_MAYMOVE | MREMAP_DONTUNMAP;
        nlen = olen + PAGE * (1 + rn(3));
        break;
    case 5: /* MREMAP_FIXED at an address not page aligned */
        flags |= MREMAP_FIXED;
        d = rn(ARENA_PAGES - nn + 1);
        for (int w = 0; w < 2; w++)
            na[w] = addr_of(w, 0, d) + 1 + rn(PAGE - 1);
        break;
    case 6: /* nothing mapped at the old address */
    {
        size_t h, room;
        if (pick_hole(&h, &room)) {
            r = 0;
            s = h;
            for (int w = 0; w < 2; w++)
                old[w] = addr_of(w, 0, h);
        } else {
            flags |= 0x10;
        }
        break;
    }
    case 7: /* a new size past the address space */
        nlen = chance(50) ? ((size_t)1 << 47) + PAGE * rn(4) : SIZE_MAX - rn(PAGE);
        break;
    case 8: /* MREMAP_FIXED at the top of the address space and beyond */
        flags |= MREMAP_FIXED;
        na[0] = na[1] = (char *)(chance(50) ? TOP_PAGE : ABOVE_TOP);
        break;
    }

    begin("mremap %s %s+%zup", mr_name[kind], r ? "float" : "arena", s);
    if (bad == 0)
        say("+odd");
    if (r)
        say("(region %d)", r);
    say(" old=%#zx new=%#zx %s%s%s%s", olen, nlen, flags & MREMAP_MAYMOVE ? "MAYMOVE " : "",
        flags & MREMAP_FIXED ? "FIXED " : "", flags & MREMAP_DONTUNMAP ? "DONTUNMAP " : "",
        flags & ~7 ? "0x?" : flags ? "" : "0");
    if (bad == 8)
        say(" to %p", (void *)na[0]);
    else if (na[0] && (flags & MREMAP_FIXED))
        say(" to arena+%zup%s", d, bad == 5 ? "+odd" : "");
    else if (na[0])
        say(" hint arena+%ldp", arena_page(0, na[0]));

    void *res[2];
    int e[2];
    for (int w = 0; w < 2; w++) {
        errno = 0;
        res[w] = W[w].ops->mremap(old[w], olen, nlen, flags, na[w]);
        e[w] = errno;
    }
    char b0[32], b1[32];
    cov.calls++;
    cov.errors += res[0] == MAP_FAILED;
    /* Where each world put it: -2 in place, an arena page, or -1 elsewhere. */
    long at[2];
    for (int w = 0; w < 2; w++)
        at[w] = res[w] == MAP_FAILED ? -3 : (char *)res[w] == old[w] ? -2 : arena_page(w, res[w]);
    if (res[0] == MAP_FAILED || res[1] == MAP_FAILED) {
        say(" -> %s", res[0] == MAP_FAILED ? rstr(-1, e[0], b0) : "ok");
        if (res[0] != MAP_FAILED || res[1] != MAP_FAILED || e[0] != e[1]) {
            say(" / %s", res[1] == MAP_FAILED ? rstr(-1, e[1], b1) : "ok");
            mismatch("mremap: %s %s, %s %s", W[0].ops->name, res[0] == MAP_FAILED ? rstr(-1, e[0], b0) : "succeeded",
                     W[1].ops->name, res[1] == MAP_FAILED ? rstr(-1, e[1], b1) : "succeeded");
            for (int w = 0; w < 2; w++) /* what the model cannot follow, outside the arena */
                if (at[w] == -1)
                    W[w].ops->munmap(res[w], nlen);
        } else if (e[0] == EFAULT && (flags & MREMAP_FIXED) && bad < 0 && r == 0 && s >= d && s < d + nn) {
            /* old_size 0 with the old address in the destination: the
             * destination is unmapped first, then the old mapping is gone. */
            model_unmap(0, d, nn);
            check_files(0);
        }
        commit();
        return;
    }
    if (at[0] == -2)
        say(" -> in place");
    else if (at[0] >= 0)
        say(" -> arena+%ldp", at[0]);
    else
        say(" -> elsewhere");
    if (at[0] != at[1]) {
        if (at[1] == -2)
            say(" / in place");
        else if (at[1] >= 0)
            say(" / arena+%ldp", at[1]);
        else
            say(" / elsewhere");
        mismatch("mremap placed the mapping differently: %s %ld, %s %ld (-2: in place, -1: outside the arena)",
                 W[0].ops->name, at[0], W[1].ops->name, at[1]);
        commit();
        return;
    }
    if (bad >= 0) {
        mismatch("mremap with bad arguments succeeded in both worlds");
        commit();
        return;
    }
    if ((flags & MREMAP_FIXED) && (res[0] != na[0] || res[1] != na[1])) {
        mismatch("mremap MREMAP_FIXED: moved elsewhere than asked");
        commit();
        return;
    }

    /* The model follows. */
    static struct page src[ARENA_PAGES];
    size_t keep = on < nn ? on : nn;
    memcpy(src, &R[r].pg[s], (on ? on : 1) * sizeof src[0]);
    if (at[0] == -2) { /* in place: the tail unmapped, or the mapping grown */
        if (nn < on)
            model_unmap_pages(r, s + nn, on - nn);
        for (size_t i = on; i < nn; i++)
            R[r].pg[s + i] = page_after(&src[on - 1], i - on + 1);
        region_free_if_empty(r);
        check_files(0);
        commit();
        return;
    }
    if (at[0] >= 0) { /* in the arena, where the hint said */
        r2 = 0;
        d = (size_t)at[0];
        for (size_t i = d; i < d + nn; i++)
            if (i >= ARENA_PAGES || (R[0].pg[i].mapped && !(flags & MREMAP_FIXED))) {
                mismatch("model: mremap placed a mapping over arena page %zu, which the model has mapped", i);
                commit();
                return;
            }
    } else {
        r2 = free_region();
        if (r2 < 0) {
            mismatch("model: no floating region left for mremap");
            commit();
            return;
        }
        memset(&R[r2], 0, sizeof R[r2]);
        R[r2].used = 1;
        R[r2].npages = nn;
        R[r2].base[0] = res[0];
        R[r2].base[1] = res[1];
        d = 0;
        say(" region %d", r2);
    }
    int multi = (flags & MREMAP_FIXED) && olen == nlen; /* every mapping of the range, holes left alone */
    int dontunmap = (flags & MREMAP_DONTUNMAP) != 0;
    if (on == 0) { /* a second mapping of the same pages */
        for (size_t i = 0; i < nn; i++) {
            model_unmap_pages(r2, d + i, 1);
            R[r2].pg[d + i] = page_after(&src[0], i);
        }
    } else if (multi) {
        for (size_t i = 0; i < on; i++) {
            if (!src[i].mapped)
                continue;
            model_unmap_pages(r2, d + i, 1);
            R[r2].pg[d + i] = src[i];
            if (!dontunmap)
                model_forget(r, s + i, 1);
        }
    } else {
        if (nn < on) /* shrunk first */
            model_unmap_pages(r, s + nn, on - nn);
        model_unmap_pages(r2, d, nn);
        for (size_t i = 0; i < nn; i++)
            R[r2].pg[d + i] = i < on ? src[i] : page_after(&src[on - 1], i - on + 1);
        if (!dontunmap)
            model_forget(r, s, keep);
    }
    region_free_if_empty(r);
    check_files(0);
    commit();
}

/* ----------------------------------------------------------- accesses */

/* Touch one byte the model says faults, in both worlds, with catch_signal,
 * and compare the signals (and the model's prediction). */
static void faulting_access(int r, size_t page, size_t off, int write, int psig, int pcode)
{
    int sig[2], code[2];
    void *at[2];
    say(" %s p%zu+%#zx: expect %s", write ? "write" : "read", page, off, psig == SIGBUS ? "SIGBUS" : "SIGSEGV");
    for (int w = 0; w < 2; w++) {
        char *a = addr_of(w, r, page) + off;
        sig[w] = catch_signal(write ? touch_write : touch_read, a, &code[w], &at[w]);
        at[w] = (void *)((char *)at[w] - a);
    }
    say(" -> %d/%d", sig[0], sig[0] ? code[0] : 0);
    cov.signals++;
    if (sig[0] != sig[1] || (sig[0] && (code[0] != code[1] || at[0] != at[1]))) {
        say(" / %d/%d", sig[1], sig[1] ? code[1] : 0);
        mismatch("%s of page %zu: %s got signal %d (code %d, si_addr %+ld), %s got %d (code %d, si_addr %+ld)",
                 write ? "write" : "read", page, W[0].ops->name, sig[0], code[0], (long)at[0], W[1].ops->name,
                 sig[1], code[1], (long)at[1]);
        return;
    }
    if (sig[0] != psig || code[0] != pcode || at[0] != NULL)
        mismatch("model: expected signal %d code %d at the byte, both worlds got %d code %d at %+ld", psig, pcode,
                 sig[0], code[0], (long)at[0]);
}

/* Bytes [off, off+count) from page p of region r: read or write them in
 * both worlds as far as the model says is legal, compare what was read,
 * then make the first faulting access (if any) in both worlds. */
static void access_bytes(int r, size_t p, size_t off, size_t count, int write)
{
    unsigned char got[2][64], val[64];
    size_t legal = 0;
    int psig = 0, pcode = 0;
    if (count > sizeof val)
        count = sizeof val;
    for (size_t i = 0; i < count; i++)
        val[i] = (unsigned char)rnd();
    for (; legal < count; legal++) {
        size_t q = p + (off + legal) / PAGE;
        psig = predict(r, q, write, &pcode);
        if (psig)
            break;
    }
    for (int w = 0; w < 2 && !failed; w++) {
        volatile unsigned char *a = (volatile unsigned char *)addr_of(w, r, p) + off;
        size_t i;
        if (guarded(a, got[w], val, legal, write, &i)) {
            say(" !! %s: signal %d code %d at byte %zu", W[w].ops->name, guard_sig, guard_code, i);
            mismatch("%s: %s of page %zu offset %#zx raised signal %d (code %d, si_addr %+ld) where the model "
                     "says it is legal", W[w].ops->name, write ? "write" : "read", p + (off + i) / PAGE,
                     (off + i) % PAGE, guard_sig, guard_code, (long)((char *)guard_addr - (char *)a));
            return;
        }
    }
    if (failed)
        return;
    for (size_t i = 0; i < legal; i++) {
        size_t q = p + (off + i) / PAGE, o = (off + i) % PAGE;
        const struct page *pg = &R[r].pg[q];
        if (write) {
            note_write(pg, o);
        } else if (got[0][i] != got[1][i] && o < tail_unknown_from(pg)) {
            say(" !! p%zu+%#zx: %#x / %#x", q, o, got[0][i], got[1][i]);
            mismatch("read of page %zu offset %#zx: %s read %#x, %s read %#x", q, o, W[0].ops->name, got[0][i],
                     W[1].ops->name, got[1][i]);
            return;
        }
    }
    if (write)
        cov.bytes_written += legal;
    else
        cov.bytes_read += legal;
    if (!write && legal)
        say(" = %02x%02x%02x%02x..", got[0][0], legal > 1 ? got[0][1] : 0, legal > 2 ? got[0][2] : 0,
            legal > 3 ? got[0][3] : 0);
    if (legal < count && psig > 0) {
        size_t q = p + (off + legal) / PAGE, o = (off + legal) % PAGE;
        faulting_access(r, q, o, write, psig, pcode);
    }
}

static void op_access(void)
{
    int r;
    size_t p;
    unsigned y = (unsigned)rn(100);
    if (!(y < 92 && pick_mapped(&r, &p, y < 75 ? PICK_READABLE : PICK_REAL))) {
        r = 0;
        p = rn(ARENA_PAGES);
    }
    const struct page *pg = &R[r].pg[p];
    int write = (pg->mapped && (pg->prot & PROT_WRITE)) ? chance(55) : chance(4);
    size_t off, count = 1 + rn(16);
    unsigned x = (unsigned)rn(100);
    if (x < 20 && pg->mapped && pg->file >= 0 && pg->fpage * PAGE < F[pg->file].size &&
        pg->fpage * PAGE + PAGE > F[pg->file].size) {
        /* around the end of the file */
        size_t eof = F[pg->file].size - pg->fpage * PAGE;
        off = eof > 8 ? eof - 8 + rn(16) : rn(16);
        if (off >= PAGE)
            off = PAGE - 1;
    } else if (x < 35) {
        off = PAGE - 1 - rn(16); /* across into the next page */
    } else {
        off = rn(PAGE);
    }
    begin("%s %zu bytes at %s+%zup+%#zx", write ? "write" : "read", count, r ? "float" : "arena", p, off);
    if (r)
        say("(region %d)", r);
    access_bytes(r, p, off, count, write);
    commit();
}

/* Read every byte of a run of pages that the model says is readable, and
 * compare; or fill a part of every writable page of the run. */
static void op_sweep(void)
{
    int r;
    size_t p, a, b;
    if (!pick_mapped(&r, &p, PICK_READABLE))
        return;
    run_of(r, p, chance(50), &a, &b);
    int write = chance(35);
    int val = (int)rn(256);
    static unsigned char buf[2][PAGE], fillbuf[PAGE];
    memset(fillbuf, val, sizeof fillbuf);
    begin("%s pages %s+%zup..%zup", write ? "fill" : "sweep", r ? "float" : "arena", a, b);
    if (r)
        say("(region %d)", r);
    if (write)
        say(" with %#x", val);
    size_t done = 0;
    for (size_t q = a; q < b && !failed; q++) {
        int code;
        if (predict(r, q, write, &code) != 0)
            continue;
        const struct page *pg = &R[r].pg[q];
        size_t from = write ? rn(PAGE) : 0, to = write ? from + rn(PAGE - from + 1) : PAGE;
        for (int w = 0; w < 2 && !failed; w++) {
            volatile unsigned char *v = (volatile unsigned char *)addr_of(w, r, q);
            size_t i;
            if (guarded(v + from, buf[w] + from, fillbuf, to - from, write, &i)) {
                say(" !! %s: signal %d code %d", W[w].ops->name, guard_sig, guard_code);
                mismatch("%s: %s of page %zu raised signal %d (code %d) where the model says it is legal",
                         W[w].ops->name, write ? "fill" : "sweep", q, guard_sig, guard_code);
            }
        }
        if (failed)
            break;
        if (write) {
            if (to > from)
                note_write(pg, to - 1); /* the last byte: past the end of the file if any is */
        } else {
            size_t lim = tail_unknown_from(pg);
            if (memcmp(buf[0], buf[1], lim) != 0) {
                size_t i = 0;
                while (buf[0][i] == buf[1][i])
                    i++;
                say(" !! p%zu+%#zx: %#x / %#x", q, i, buf[0][i], buf[1][i]);
                mismatch("sweep: page %zu offset %#zx: %s has %#x, %s has %#x", q, i, W[0].ops->name, buf[0][i],
                         W[1].ops->name, buf[1][i]);
                break;
            }
        }
        done++;
    }
    cov.pages_swept += done;
    say(" (%zu pages)", done);
    commit();
}

/* ---------------------------------------------------------- sequences */

/* One operation of the sequence, chosen at random. */
static void one_op(void)
{
    unsigned x = (unsigned)rn(100);
    cov.ops++;
    if (x < 16)
        op_mmap();
    else if (x < 24)
        op_munmap();
    else if (x < 32)
        op_mprotect();
    else if (x < 39)
        op_msync();
    else if (x < 41)
        op_syncall();
    else if (x < 49)
        op_madvise();
    else if (x < 54)
        op_sweep();
    else if (x < 60)
        op_mremap();
    else
        op_access();
}

/* Unmap every mapping of both worlds (the arenas whole, the floating
 * regions run by run); then nothing may be left in the arenas, not even
 * host mappings that the world's own bookkeeping forgot. */
static void unmap_all(void)
{
    for (int r = 0; r <= MAXREG; r++) {
        if (!R[r].used)
            continue;
        size_t p = 0;
        while (p < R[r].npages) {
            if (r != 0 && !R[r].pg[p].mapped) {
                p++;
                continue;
            }
            size_t e = r == 0 ? R[r].npages : p;
            while (r != 0 && e < R[r].npages && R[r].pg[e].mapped)
                e++;
            int rc[2], er[2];
            for (int w = 0; w < 2; w++) {
                errno = 0;
                rc[w] = W[w].ops->munmap(addr_of(w, r, p), (e - p) * PAGE);
                er[w] = errno;
            }
            if (!failed && (rc[0] || rc[1])) {
                char b0[32], b1[32];
                mismatch("final munmap: %s, %s", rstr(rc[0], er[0], b0), rstr(rc[1], er[1], b1));
            }
            model_unmap(r, p, e - p);
            p = e;
        }
    }
    for (int w = 0; w < 2; w++) {
        void *a = mmap(R[0].base[w], ARENA_PAGES * PAGE, PROT_NONE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED_NOREPLACE, -1, 0);
        if (a == MAP_FAILED && !failed)
            mismatch("%s left something mapped in its arena after unmapping everything", W[w].ops->name);
        if (a != MAP_FAILED)
            munmap(a, ARENA_PAGES * PAGE);
    }
}

/* -------------------------------------------------------------- fork */

/* The forks' own stream of randomness: a function of the seed and the
 * operation number only, so that the parent runs the same operations
 * with forks and without them. */
static uint64_t fork_rnd(int op, unsigned what)
{
    uint64_t z = ((uint64_t)cur_seed << 32 | (uint32_t)op) * 0x9e3779b97f4a7c15ull + what * 0xd1b54a32d192ed03ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Does a fork come before operation op? */
static int fork_due(int op)
{
    return !in_child && nforks < max_forks && fork_rnd(op, 1) % 1000 < FORK_PERMILLE;
}

/* How a child ends.  Each way must leave its MAP_SHARED writes in libumm's
 * files, as they are in the kernel's page cache: umm_shutdown() writes
 * back, and so do exit() (libumm's exit handler) and _exit() (libumm
 * stands in front of it: README, difference 4). */
enum { END_SHUTDOWN, END_UNMAP, END_EXIT, END__EXIT, END_WAYS };
static const char *const end_name[END_WAYS] = { "umm_shutdown() and _exit()",
                                                "unmaps everything, umm_shutdown() and _exit()", "exit()",
                                                "_exit() alone" };

/* The child's model at the fork: pages under MADV_DONTFORK are not in its
 * address space, in either world (holes of the arena, pages of floating
 * regions gone).  Their dirty file pages were not written back: they stay
 * dirty, for the parent, out of reach of the child's msync. */
static void child_model(void)
{
    for (int r = 0; r <= MAXREG; r++) {
        if (!R[r].used)
            continue;
        for (size_t p = 0; p < R[r].npages; p++) {
            struct page *pg = &R[r].pg[p];
            if (!pg->mapped || !pg->nofork)
                continue;
            if (pg->shared && pg->file >= 0 && pg->fpage < 64)
                F[pg->file].away |= F[pg->file].dirty & (1ull << pg->fpage);
            memset(pg, 0, sizeof *pg);
            pg->file = -1;
        }
        region_free_if_empty(r);
    }
}

/* The child of op_fork(): nops operations of its own on both worlds, then
 * its end; its log and verdict go to the parent through FR. */
static void child_run(int nops, int end, uint64_t seed, unsigned left) __attribute__((noreturn));
static void child_run(int nops, int end, uint64_t seed, unsigned left)
{
    char b[32];
    in_child = 1;
    tap_quiet();
    if (left) /* alarm() is not inherited: a child that hangs must die too, before its parent */
        alarm(left > 60 ? 60 : left > 1 ? left - 1 : left);
    rng = seed;
    memset(&cov, 0, sizeof cov);
    parent_log = oplog; /* still pointed to: a child that exit()s leaks nothing (LeakSanitizer) */
    oplog = FR->log;
    maxlog = CHILD_LOG;
    nlog = 0;
    linelen = 0;
    fork_at = opno;
    child_model();
    for (opno = 1; opno <= nops && !failed; opno++)
        one_op();
    if (!failed && end == END_UNMAP) {
        begin("end: unmap everything");
        unmap_all();
        for (int f = 0; f < nfiles; f++)
            F[f].changed = 1;
        if (!failed)
            check_files(0); /* all but what the parent has left to write back */
        commit();
    }
    for (int f = 0; f < nfiles; f++)
        FR->tainted[f] = F[f].tainted;
    FR->cov = cov;
    begin("end: %s", end == END_EXIT ? "exit()" : end == END__EXIT ? "_exit()" : "umm_shutdown(), _exit()");
    if (end == END_SHUTDOWN || end == END_UNMAP) {
        errno = 0;
        int rc = umm_shutdown();
        say(" umm_shutdown -> %s", rstr(rc, errno, b));
        if (rc != 0)
            mismatch("umm_shutdown() in the child failed: %s", strerror(errno));
    }
    commit();
    FR->failed = failed;
    snprintf(FR->failmsg, sizeof FR->failmsg, "%s", failmsg);
    FR->done = 1;
    if (end == END_EXIT)
        exit(failed ? 1 : 0);
    _exit(failed ? 1 : 0);
}

static void cov_add(const struct coverage *c)
{
    cov.ops += c->ops;
    cov.calls += c->calls;
    cov.errors += c->errors;
    cov.bytes_read += c->bytes_read;
    cov.bytes_written += c->bytes_written;
    cov.pages_swept += c->pages_swept;
    cov.signals += c->signals;
    cov.file_checks += c->file_checks;
}

/* A page's bytes into buf, under the guard: 0, or the signal raised. */
static int guarded_copy(unsigned char *buf, const void *a)
{
    guard_on = 1;
    if (sigsetjmp(guard_jb, 1) != 0)
        return guard_sig;
    memcpy(buf, a, PAGE);
    guard_on = 0;
    return 0;
}

/* After a child: every page the parent's model says is readable must read
 * the same in both worlds (the child's private writes not there, its
 * shared ones there), and so must the files. */
static void compare_everything(void)
{
    static unsigned char buf[2][PAGE];
    size_t done = 0;
    for (int r = 0; r <= MAXREG && !failed; r++) {
        if (!R[r].used)
            continue;
        for (size_t q = 0; q < R[r].npages && !failed; q++) {
            int code;
            if (predict(r, q, 0, &code) != 0)
                continue;
            for (int w = 0; w < 2 && !failed; w++) {
                if (guarded_copy(buf[w], addr_of(w, r, q))) {
                    say(" !! %s: signal %d code %d", W[w].ops->name, guard_sig, guard_code);
                    mismatch("%s: read of page %zu of %s raised signal %d (code %d) where the model says it "
                             "is legal", W[w].ops->name, q, r ? "a floating region" : "the arena", guard_sig,
                             guard_code);
                }
            }
            if (failed)
                break;
            size_t lim = tail_unknown_from(&R[r].pg[q]);
            if (memcmp(buf[0], buf[1], lim) != 0) {
                size_t i = 0;
                while (buf[0][i] == buf[1][i])
                    i++;
                say(" !! %s+%zup+%#zx: %#x / %#x", r ? "float" : "arena", q, i, buf[0][i], buf[1][i]);
                mismatch("after the child: %s page %zu offset %#zx: %s has %#x, %s has %#x",
                         r ? "floating" : "arena", q, i, W[0].ops->name, buf[0][i], W[1].ops->name, buf[1][i]);
                break;
            }
            done++;
        }
    }
    cov.pages_swept += done;
    if (!failed)
        say(" %zu pages the same", done);
    for (int f = 0; f < nfiles; f++)
        F[f].changed = 1;
    if (!failed)
        check_files(0); /* all but what the parent itself has left to write back */
}

/* Fork: one fork of the test process forks both worlds.  The child runs
 * operations of its own (child_run); the parent waits for it, takes its
 * log over, and compares everything it can see. */
static void op_fork(void)
{
    int nops = CHILD_MIN_OPS + (int)(fork_rnd(opno, 2) % (CHILD_MAX_OPS - CHILD_MIN_OPS + 1));
    int end = (int)(fork_rnd(opno, 3) % END_WAYS);
    int by_umm = cur_seed & 1;
    nforks++;
    cov.forks++;
    begin("fork by %s: the child runs %d ops, then %s", by_umm ? "umm_fork()" : "fork()", nops, end_name[end]);
    memset(FR, 0, sizeof *FR);
    unsigned left = alarm(0);
    alarm(left);
    fflush(stdout); /* or the child's exit() prints it again */
    fflush(stderr);
    pid_t pid;
    int err;
    errno = 0;
    if (by_umm) {
        pid = umm_fork();
        err = errno;
        if (pid < 0 && err == ENOSYS) { /* not there yet: what a program would do */
            say(" (ENOSYS: fork() instead)");
            umm_fork_enosys = 1;
            errno = 0;
            pid = fork();
            err = errno;
        }
    } else {
        pid = fork();
        err = errno;
    }
    if (pid == 0)
        child_run(nops, end, fork_rnd(opno, 4), left);
    if (pid < 0) {
        say(" -> -1 %s", ename(err));
        mismatch("%s failed: %s", by_umm ? "umm_fork()" : "fork()", strerror(err));
        commit();
        return;
    }
    child_pid = pid;
    commit();

    int st = 0;
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR)
            tap_bail("waitpid: %s", strerror(errno));
    child_pid = 0;
    for (int i = 0; i < FR->nlog && i < CHILD_LOG; i++) { /* the child's log joins the parent's */
        memcpy(line, FR->log[i], LOGLINE);
        line[LOGLINE - 1] = 0;
        linelen = strlen(line);
        commit();
    }
    cov_add(&FR->cov);
    for (int f = 0; f < nfiles; f++)
        F[f].tainted |= FR->tainted[f];

    begin("after the fork: the child ");
    if (WIFEXITED(st))
        say("exited with %d;", WEXITSTATUS(st));
    else
        say("died of signal %d;", WIFSIGNALED(st) ? WTERMSIG(st) : -1);
    if (FR->failed)
        mismatch("the child forked before op %d: %s", opno, FR->failmsg);
    else if (!FR->done || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
        mismatch("the child forked before op %d %s %d", opno,
                 WIFEXITED(st) ? (FR->done ? "exited with" : "exited early with") : "died of signal",
                 WIFEXITED(st) ? WEXITSTATUS(st) : WIFSIGNALED(st) ? WTERMSIG(st) : -1);
    else
        compare_everything();
    commit();
}

/* --------------------------------------------------------- one seed */

static int run_seed(unsigned seed, int nops, const struct world_ops *subject, unsigned timeout)
{
    rng = (uint64_t)seed * 0x2545f4914f6cdd1dull + 1;
    cur_seed = seed;
    cur_ops = nops;
    failed = 0;
    failmsg[0] = 0;
    nlog = 0;
    linelen = 0;
    opno = 0;
    next_id = 0;
    if (timeout)
        alarm(timeout);
    W[0].ops = &kernel_ops;
    W[1].ops = subject;
    memset(R, 0, sizeof R);
    memset(F, 0, sizeof F);

    nfiles = 2 + (int)rn(3);
    begin("seed %u: %s vs %s, files", seed, W[0].ops->name, W[1].ops->name);
    for (int f = 0; f < nfiles; f++) {
        uint64_t size = chance(8) ? 0 : rn(MAX_FILE_PAGES + 1) * PAGE + (chance(65) ? rn(PAGE) : 0);
        F[f].size = size;
        F[f].pages = (size + PAGE - 1) / PAGE;
        for (int w = 0; w < 2; w++) {
            int fd = tmpfile_make(size, seed * 16 + (unsigned)f, O_RDWR, NULL);
            char path[64];
            snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
            W[w].fd[f][FD_RW] = fd;
            W[w].fd[f][FD_RO] = open(path, O_RDONLY | O_CLOEXEC);
            W[w].fd[f][FD_WO] = open(path, O_WRONLY | O_CLOEXEC);
            if (W[w].fd[f][FD_RO] < 0 || W[w].fd[f][FD_WO] < 0)
                tap_bail("reopen %s: %s", path, strerror(errno));
        }
        say(" f%d=%llu", f, (unsigned long long)size);
    }
    commit();

    /* The arenas. */
    for (int w = 0; w < 2; w++) {
        void *a = W[w].ops->mmap((void *)arena_at[w], ARENA_PAGES * PAGE, PROT_NONE,
                                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED_NOREPLACE, -1, 0);
        if (a != (void *)arena_at[w])
            tap_bail("%s: cannot reserve the arena at %p: %s", W[w].ops->name, (void *)arena_at[w],
                     strerror(errno));
        R[0].base[w] = a;
    }
    R[0].used = 1;
    R[0].npages = ARENA_PAGES;
    model_map(0, 0, ARENA_PAGES, BK_ANON, 0, PROT_NONE, 0);

    nforks = 0;
    for (opno = 1; opno <= nops && !failed; opno++) {
        if (fork_due(opno)) {
            op_fork();
            if (failed)
                break;
        }
        one_op();
    }

    /* Unmap everything, then the files must agree wholly. */
    begin("end: unmap everything");
    unmap_all();
    for (int f = 0; f < nfiles; f++)
        if (F[f].dirty && !failed)
            mismatch("model: file f%d still has dirty pages after everything was unmapped", f);
    if (!failed)
        check_files(1);
    commit();
    for (int f = 0; f < nfiles; f++)
        for (int w = 0; w < 2; w++)
            for (int m = 0; m < FD_MODES; m++)
                close(W[w].fd[f][m]);
    if (subject == &umm_ops && !failed) {
        struct umm_stats st;
        umm_stats(&st);
        if (st.mappings || st.resident || st.frames || st.files)
            mismatch("libumm holds %llu mappings, %llu resident pages, %llu frames, %llu files after the seed",
                     (unsigned long long)st.mappings, (unsigned long long)st.resident,
                     (unsigned long long)st.frames, (unsigned long long)st.files);
    }
    return !failed;
}

/* ------------------------------------------------------------- main */

static void usage(void)
{
    fprintf(stderr,
            "usage: test-differential [--seeds N] [--first S] [--ops N] [--seed S] [--kernel-only] "
            "[--forks N | --no-fork] [--verbose]\n");
    exit(2);
}

static void setup(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_fault;
    sa.sa_flags = SA_SIGINFO;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGSEGV, &sa, NULL);
    sigaction(SIGBUS, &sa, NULL);
    signal(SIGABRT, on_fatal);
    signal(SIGALRM, on_fatal);

    const char *dir = getenv("UMM_TEST_TMPDIR");
    zero_fd = open("/dev/zero", O_RDWR | O_CLOEXEC);
    dir_fd = open(dir && *dir ? dir : "/tmp", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (zero_fd < 0 || dir_fd < 0 || pipe2(pipe_fd, O_CLOEXEC) != 0)
        tap_bail("setup: %s", strerror(errno));
    bad_fd = fcntl(zero_fd, F_DUPFD_CLOEXEC, 900);
    close(bad_fd);

    /* What a child reports to its parent: shared memory of the kernel's,
     * outside both worlds. */
    FR = mmap(NULL, sizeof *FR, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (FR == MAP_FAILED)
        tap_bail("setup: mmap: %s", strerror(errno));

    /* With protection keys, PROT_EXEC alone is execute-only: reads fault. */
    void *x = mmap(NULL, PAGE, PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (x != MAP_FAILED) {
        xom = catch_signal(touch_read, x, NULL, NULL) != 0;
        munmap(x, PAGE);
    }
}

int main(int argc, char **argv)
{
    int seeds = 400, first_seed = 1, nops = 300, kernel_only = 0;
    long one = -1;
    const char *fk = getenv("UMM_TEST_FORKS");
    if (fk && *fk)
        max_forks = atoi(fk);
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--seeds") && i + 1 < argc)
            seeds = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--first") && i + 1 < argc)
            first_seed = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--ops") && i + 1 < argc)
            nops = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--seed") && i + 1 < argc)
            one = atol(argv[++i]);
        else if (!strcmp(argv[i], "--kernel-only"))
            kernel_only = 1;
        else if (!strcmp(argv[i], "--forks") && i + 1 < argc)
            max_forks = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--no-fork"))
            max_forks = 0;
        else if (!strcmp(argv[i], "--verbose"))
            verbose = 1;
        else
            usage();
    }
    if (seeds < 0 || first_seed < 1 || nops < 0 || max_forks < 0)
        usage();
#ifdef RUNNING_ON_VALGRIND
    /* Under Valgrind the "kernel" world would be Valgrind's own emulation
     * of the mmap family (it moves MAP_FIXED mappings it does not like, and
     * reports every expected fault): the self-check fails there. */
    if (RUNNING_ON_VALGRIND)
        tap_skip_all("the kernel world cannot be compared under Valgrind");
#endif
    /* A timeout per seed, so that a long soak is not killed as a whole. */
    const char *t = getenv("UMM_TEST_TIMEOUT");
    unsigned timeout = t ? (unsigned)atoi(t) : 300;
    alarm(0);

    maxlog = nops + 4 + max_forks * (CHILD_LOG + 2);
    oplog = calloc((size_t)maxlog, sizeof *oplog);
    if (!oplog)
        tap_bail("malloc");
    setup();

    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    const struct world_ops *subject = kernel_only ? &kernel_ops : &umm_ops;
    int shown = 0, total_fail = 0;

    if (one >= 0) {
        int good = run_seed((unsigned)one, nops, subject, timeout);
        if (!good) {
            tap_diag("%s", failmsg);
            dump_log();
        }
        ok(good, "%s vs %s: seed %ld, %d ops", kernel_ops.name, subject->name, one, nops);
    } else {
        /* The self-check first (both worlds on the kernel), then libumm. */
        for (int pass = kernel_only ? 1 : 0; pass < 2; pass++) {
            const struct world_ops *subj = pass == 0 ? &kernel_ops : subject;
            int n = pass == 0 ? (seeds + 4) / 5 : seeds;
            for (int first = first_seed; first <= n; first += BLOCK) {
                int last = first + BLOCK - 1 < n ? first + BLOCK - 1 : n, bad = 0;
                for (int sd = first; sd <= last; sd++) {
                    if (run_seed((unsigned)sd, nops, subj, timeout))
                        continue;
                    bad++;
                    total_fail++;
                    tap_diag("seed %d: %s", sd, failmsg);
                    if (shown++ < 3)
                        dump_log();
                }
                ok(!bad, "%s vs %s: seeds %d..%d, %d ops each%s", kernel_ops.name, subj->name, first, last, nops,
                   bad ? " (some failed, see above)" : "");
                if (total_fail >= 20) {
                    tap_diag("too many failing seeds; stopping");
                    pass = 2;
                    break;
                }
            }
        }
    }
    alarm(timeout);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    tap_diag("%.1f s: %lu ops, %lu calls compared (%lu failing), %lu bytes read, %lu written, %lu pages swept, "
             "%lu signals, %lu file comparisons, %lu forks%s",
             (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9, cov.ops, cov.calls,
             cov.errors, cov.bytes_read, cov.bytes_written, cov.pages_swept, cov.signals, cov.file_checks, cov.forks,
             max_forks ? "" : " (--no-fork)");
    if (umm_fork_enosys)
        tap_diag("umm_fork() failed with ENOSYS: the seeds meant for it forked with fork() instead");
    check_released();
    return tap_done();
}
