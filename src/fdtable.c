/*
 * fdtable.c: which file each of the program's descriptors is, remembered
 * (the kernel's files_struct, as far as the file I/O layer needs it).
 *
 * The file I/O layer (fileio.c) must know, for every read or write a
 * program makes while libumm has files mapped, whether the descriptor's
 * file is one libumm caches: that took an fstat() a call.  SQLite makes
 * about 57,000 of them in a bench-sqlite run (42,000 on its rollback
 * journal, which nothing maps), and on a paravirtualised machine a system
 * call is dear: they were 6 % of the run's time (doc/PERFORMANCE.md).
 *
 * A descriptor names one open file description from the call that made it
 * to the call that closes it, and a description's file (device, inode)
 * never changes.  So the answer of one fstat() is kept per descriptor
 * number, with the number's generation: every call that can close a
 * number, or hand one out, that libumm stands in front of bumps it --
 * close, close_range, closefrom, dup, dup2, dup3, fcntl(F_DUPFD*),
 * open*, creat (fileio.c's open), fopen*, freopen, fdopen, tmpfile, fclose, fcloseall,
 * opendir, fdopendir, closedir, popen, pclose, mkstemp and its kin,
 * memfd_create, daemon, login_tty -- and an answer kept under an older generation is
 * no answer.  The generation is read before the fstat() and the answer
 * kept with it, so a close racing with the fstat() leaves nothing stale.
 * Whether the file has a page-cache object is asked afresh every call (a
 * load, pagecache.c): only the file's identity is kept.
 *
 * What this cannot see: a descriptor closed by a raw system call
 * (syscall(SYS_close), io_uring) whose number is then handed out again by
 * one (or by a C library function not listed above) for a file libumm
 * maps.  The file I/O layer would then take the descriptor for the file
 * it was before.  README difference 1 says so; UMM_FDCACHE=0 in the
 * environment asks fstat() every time, as before.
 *
 * Descriptors up to FDT_SLOTS are kept; others are asked every time.
 */
#include "umm-int.h"

#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <linux/close_range.h>
#include <utmp.h>

#define FDT_SLOTS 1024

/* An answer: key = generation << 32 | REG | VALID, or BUSY while one is
 * written (a sequence lock: readers check the key before and after). */
#define K_VALID 1u
#define K_REG 2u
#define K_BUSY 4u
#define K_FLAGS 8u   /* K_APPEND is known, under the F_SETFL epoch in bits 8-31 */
#define K_APPEND 16u
#define K_EPOCH(k) ((uint32_t)((k) >> 8) & 0xffffffu)
struct fdt_entry {
    _Atomic uint64_t key;
    uint64_t dev, ino; /* read and written with __atomic, relaxed */
};
static struct fdt_entry fdt[FDT_SLOTS];
static _Atomic uint32_t fdt_gen[FDT_SLOTS];
static int fdt_off = -1; /* UMM_FDCACHE=0; -1: not asked yet */

static int fdt_enabled(void)
{
    int off = __atomic_load_n(&fdt_off, __ATOMIC_RELAXED);
    if (off < 0) {
        const char *e = getenv("UMM_FDCACHE");
        off = e && strcmp(e, "0") == 0;
        __atomic_store_n(&fdt_off, off, __ATOMIC_RELAXED);
    }
    return !off;
}

void umm__fd_changed(int fd)
{
    if (fd >= 0 && fd < FDT_SLOTS)
        atomic_fetch_add_explicit(&fdt_gen[fd], 1, memory_order_acq_rel);
}

static void changed_from(int lo, int hi)
{
    if (lo < 0)
        lo = 0;
    for (int fd = lo; fd <= hi && fd < FDT_SLOTS; fd++)
        umm__fd_changed(fd);
}

/*
 * The identity of fd's file: 1 and *dev, *ino for a regular file, 0 for
 * anything else, -1 with errno if fstat fails.  From the kept answer when
 * fd's number has not changed since it was kept.
 */
int umm__fd_identity(int fd, dev_t *dev, ino_t *ino)
{
    int keep = fd >= 0 && fd < FDT_SLOTS && fdt_enabled();
    uint32_t gen = 0;
    if (keep) {
        struct fdt_entry *e = &fdt[fd];
        gen = atomic_load_explicit(&fdt_gen[fd], memory_order_acquire);
        uint64_t k = atomic_load_explicit(&e->key, memory_order_acquire);
        if ((k & K_VALID) && !(k & K_BUSY) && (uint32_t)(k >> 32) == gen) {
            uint64_t d = __atomic_load_n(&e->dev, __ATOMIC_RELAXED), i = __atomic_load_n(&e->ino, __ATOMIC_RELAXED);
            atomic_thread_fence(memory_order_acquire);
            if (atomic_load_explicit(&e->key, memory_order_relaxed) == k) {
                *dev = (dev_t)d;
                *ino = (ino_t)i;
                return (k & K_REG) != 0;
            }
        }
    }
    struct stat st;
    if (fstat(fd, &st) != 0)
        return -1;
    int reg = S_ISREG(st.st_mode);
    *dev = st.st_dev;
    *ino = st.st_ino;
    if (keep) {
        /* Kept under the generation read before the fstat: a close since
         * has bumped it, and the answer is no answer.  One writer at a
         * time; another one's answer is as good. */
        struct fdt_entry *e = &fdt[fd];
        uint64_t k = atomic_load_explicit(&e->key, memory_order_relaxed);
        if (!(k & K_BUSY) && atomic_compare_exchange_strong(&e->key, &k, (uint64_t)K_BUSY)) {
            atomic_thread_fence(memory_order_release);
            __atomic_store_n(&e->dev, (uint64_t)st.st_dev, __ATOMIC_RELAXED);
            __atomic_store_n(&e->ino, (uint64_t)st.st_ino, __ATOMIC_RELAXED);
            atomic_store_explicit(&e->key, (uint64_t)gen << 32 | (reg ? K_REG : 0) | K_VALID, memory_order_release);
        }
    }
    return reg;
}

/*
 * Does fd write at the end of its file (O_APPEND)?  1, 0, or -1 with
 * errno.  Kept with fd's identity (asked after umm__fd_identity), under
 * the F_SETFL epoch: O_APPEND belongs to the open file description, which
 * dup'd numbers and the processes of a fork family share, so any F_SETFL
 * one of them makes through fcntl() forgets every kept answer (the epoch
 * is in memory the family shares).  What cannot be seen: a raw
 * syscall(SYS_fcntl), or a process outside the family that was handed the
 * description (an exec'd child, a descriptor passed over a socket).
 */
static _Atomic uint32_t *setfl_epoch; /* shared by the fork family; NULL: ask every time */

void umm__fd_flags_changed(void)
{
    if (setfl_epoch)
        atomic_fetch_add_explicit(setfl_epoch, 1, memory_order_acq_rel);
}

int umm__fd_append(int fd)
{
    int keep = fd >= 0 && fd < FDT_SLOTS && setfl_epoch && fdt_enabled();
    uint32_t gen = 0, ep = 0;
    uint64_t k = 0;
    struct fdt_entry *e = keep ? &fdt[fd] : NULL;
    if (keep) {
        ep = atomic_load_explicit(setfl_epoch, memory_order_acquire) & 0xffffffu;
        gen = atomic_load_explicit(&fdt_gen[fd], memory_order_acquire);
        k = atomic_load_explicit(&e->key, memory_order_acquire);
        if ((k & K_VALID) && !(k & K_BUSY) && (uint32_t)(k >> 32) == gen && (k & K_FLAGS) && K_EPOCH(k) == ep)
            return (k & K_APPEND) != 0;
    }
    int fl = umm__sys_fcntl(fd, F_GETFL, 0);
    if (fl < 0)
        return -1;
    int append = (fl & O_APPEND) != 0;
    /* Kept only on the identity's entry of this generation; a close or an
     * F_SETFL since the loads above leaves an answer nobody takes. */
    if (keep && (k & K_VALID) && !(k & K_BUSY) && (uint32_t)(k >> 32) == gen) {
        uint64_t nk = (k & ~(uint64_t)0xffffff18u) | K_FLAGS | (append ? K_APPEND : 0) | (uint64_t)ep << 8;
        atomic_compare_exchange_strong(&e->key, &k, nk);
    }
    return append;
}

/* ----------------------------------- calls that close or hand out numbers */

/* The C library's functions, looked up on first use (dlsym is not called
 * from a signal handler here: close() in one finds them looked up by the
 * constructor below).  Bumping a generation is an atomic add: errno is
 * the C library's call's, untouched. */
static struct {
    int (*close)(int);
    int (*close_range)(unsigned, unsigned, int);
    int (*dup)(int);
    int (*dup2)(int, int);
    int (*dup3)(int, int, int);
    FILE *(*fopen)(const char *, const char *);
    FILE *(*freopen)(const char *, const char *, FILE *);
    FILE *(*fdopen)(int, const char *);
    FILE *(*tmpfile)(void);
    int (*fclose)(FILE *);
    int (*fcloseall)(void);
    DIR *(*opendir)(const char *);
    DIR *(*fdopendir)(int);
    int (*closedir)(DIR *);
    FILE *(*popen)(const char *, const char *);
    int (*pclose)(FILE *);
    int (*mkstemp)(char *);
    int (*mkostemp)(char *, int);
    int (*mkstemps)(char *, int);
    int (*mkostemps)(char *, int, int);
    int (*memfd_create)(const char *, unsigned);
    int (*daemon)(int, int);
    int (*login_tty)(int);
} next;

#define NEXT(f, name)                                                                             \
    (next.f ? next.f : (*(void **)&next.f = dlsym(RTLD_NEXT, name), next.f))

__attribute__((constructor)) static void fdtable_init(void)
{
    fdt_enabled();
    void *ep = mmap(NULL, sizeof *setfl_epoch, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (ep != MAP_FAILED)
        setfl_epoch = ep;
    NEXT(close, "close");
    NEXT(dup2, "dup2");
    NEXT(fclose, "fclose");
}

/* A stream's number (-1 for no stream). */
static int stream_fd(FILE *f)
{
    return f ? fileno(f) : -1;
}

/* Number fd was handed out (or closed): fd is passed on. */
static int made(int fd)
{
    umm__fd_changed(fd);
    return fd;
}

static FILE *made_stream(FILE *f)
{
    umm__fd_changed(stream_fd(f));
    return f;
}

/* A call's result rc, after it closed number fd: after the close, so that
 * an fstat racing with it keeps the old generation. */
static int closed(int rc, int fd)
{
    umm__fd_changed(fd);
    return rc;
}

static int closed_from(int rc, int lo, int hi)
{
    changed_from(lo, hi);
    return rc;
}

/* A number libumm holds is not the program's: closing it, or making it a
 * copy of another, fails as for a number that is not open. */
static int not_yours(void)
{
    errno = EBADF;
    return -1;
}

int close(int fd)
{
    if (umm__fd_is_own(fd))
        return not_yours();
    return closed(NEXT(close, "close")(fd), fd);
}
int dup(int fd) { return made(NEXT(dup, "dup")(fd)); }
int dup2(int fd, int to)
{
    if (umm__fd_is_own(to))
        return not_yours();
    return closed(NEXT(dup2, "dup2")(fd, to), to);
}
int dup3(int fd, int to, int flags)
{
    if (umm__fd_is_own(to))
        return not_yours();
    return closed(NEXT(dup3, "dup3")(fd, to, flags), to);
}

/* The kernel's close_range over [first, last], around libumm's numbers. */
static int close_around(unsigned first, unsigned last, int flags)
{
    if (!NEXT(close_range, "close_range")) {
        errno = ENOSYS;
        return -1;
    }
    /* Setting close-on-exec harms nothing of libumm's (its numbers have it). */
    if (flags & CLOSE_RANGE_CLOEXEC)
        return next.close_range(first, last, flags);
    unsigned from = first;
    for (int o = umm__fd_own_next(first); o >= 0 && (unsigned)o <= last; o = umm__fd_own_next((unsigned)o + 1)) {
        if ((unsigned)o > from && next.close_range(from, (unsigned)o - 1, flags) != 0)
            return -1;
        from = (unsigned)o + 1;
        if (from == 0) /* o was UINT_MAX */
            return 0;
    }
    return from <= last ? next.close_range(from, last, flags) : 0;
}

int close_range(unsigned first, unsigned last, int flags)
{
    if (first > last) {
        errno = EINVAL;
        return -1;
    }
    return closed_from(close_around(first, last, flags), first > INT32_MAX ? INT32_MAX : (int)first,
                       last > INT32_MAX ? INT32_MAX : (int)last);
}

/* The C library's closefrom is the kernel's close_range to the end (and
 * a walk of /proc/self/fd on a kernel without it): the same here, around
 * libumm's numbers. */
void closefrom(int lo)
{
    if (lo < 0)
        lo = 0;
    if (close_around((unsigned)lo, ~0u, 0) != 0) {
        long max = sysconf(_SC_OPEN_MAX);
        for (int fd = lo; fd < max; fd++)
            if (!umm__fd_is_own(fd))
                NEXT(close, "close")(fd);
    }
    changed_from(lo, FDT_SLOTS - 1);
}

FILE *fopen(const char *path, const char *mode) { return made_stream(NEXT(fopen, "fopen64")(path, mode)); }
FILE *fopen64(const char *path, const char *mode) __attribute__((alias("fopen")));

FILE *freopen(const char *path, const char *mode, FILE *f)
{
    int old = stream_fd(f); /* closed inside */
    FILE *r = NEXT(freopen, "freopen64")(path, mode, f);
    umm__fd_changed(old);
    return made_stream(r);
}
FILE *freopen64(const char *path, const char *mode, FILE *f) __attribute__((alias("freopen")));

FILE *fdopen(int fd, const char *mode)
{
    FILE *f = NEXT(fdopen, "fdopen")(fd, mode);
    umm__fd_changed(fd);
    return f;
}

FILE *tmpfile(void) { return made_stream(NEXT(tmpfile, "tmpfile64")()); }
FILE *tmpfile64(void) __attribute__((alias("tmpfile")));

int fclose(FILE *f)
{
    int fd = stream_fd(f);
    return closed(NEXT(fclose, "fclose")(f), fd);
}

int fcloseall(void) { return closed_from(NEXT(fcloseall, "fcloseall")(), 0, FDT_SLOTS - 1); }

DIR *opendir(const char *path)
{
    DIR *d = NEXT(opendir, "opendir")(path);
    if (d)
        umm__fd_changed(dirfd(d));
    return d;
}

DIR *fdopendir(int fd)
{
    DIR *d = NEXT(fdopendir, "fdopendir")(fd);
    umm__fd_changed(fd);
    return d;
}

int closedir(DIR *d)
{
    int fd = dirfd(d);
    return closed(NEXT(closedir, "closedir")(d), fd);
}

FILE *popen(const char *cmd, const char *mode) { return made_stream(NEXT(popen, "popen")(cmd, mode)); }

int pclose(FILE *f)
{
    int fd = stream_fd(f);
    return closed(NEXT(pclose, "pclose")(f), fd);
}

int mkstemp(char *tmpl) { return made(NEXT(mkstemp, "mkstemp64")(tmpl)); }
int mkstemp64(char *tmpl) __attribute__((alias("mkstemp")));
int mkostemp(char *tmpl, int flags) { return made(NEXT(mkostemp, "mkostemp64")(tmpl, flags)); }
int mkostemp64(char *tmpl, int flags) __attribute__((alias("mkostemp")));
int mkstemps(char *tmpl, int suffixlen) { return made(NEXT(mkstemps, "mkstemps64")(tmpl, suffixlen)); }
int mkstemps64(char *tmpl, int suffixlen) __attribute__((alias("mkstemps")));
int mkostemps(char *tmpl, int suffixlen, int flags)
{
    return made(NEXT(mkostemps, "mkostemps64")(tmpl, suffixlen, flags));
}
int mkostemps64(char *tmpl, int suffixlen, int flags) __attribute__((alias("mkostemps")));
int memfd_create(const char *name, unsigned flags) { return made(NEXT(memfd_create, "memfd_create")(name, flags)); }

/* daemon() puts /dev/null on 0, 1 and 2 from inside the C library;
 * login_tty() puts fd there and closes it. */
int daemon(int nochdir, int noclose) { return closed_from(NEXT(daemon, "daemon")(nochdir, noclose), 0, 2); }

int login_tty(int fd)
{
    int rc = closed_from(NEXT(login_tty, "login_tty")(fd), 0, 2);
    return closed(rc, fd);
}
