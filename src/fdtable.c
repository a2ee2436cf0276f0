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
#include <unistd.h>
#include <utmp.h>

#define FDT_SLOTS 1024

/* An answer: key = generation << 32 | REG | VALID, or BUSY while one is
 * written (a sequence lock: readers check the key before and after). */
#define K_VALID 1u
#define K_REG 2u
#define K_BUSY 4u
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

/* ----------------------------------- calls that close or hand out numbers */

/* The C library's functions, looked up on first use (dlsym is not called
 * from a signal handler here: close() in one finds them looked up by the
 * constructor below). */
static struct {
    int (*close)(int);
    int (*close_range)(unsigned, unsigned, int);
    void (*closefrom)(int);
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
    NEXT(close, "close");
    NEXT(dup2, "dup2");
    NEXT(fclose, "fclose");
}

/* A file's number, for a stream that may be NULL. */
static int stream_fd(FILE *f)
{
    return f ? fileno(f) : -1;
}

/* Every number after a call that closed some we cannot name. */
static void changed_all(void)
{
    changed_from(0, FDT_SLOTS - 1);
}

int close(int fd)
{
    int rc = NEXT(close, "close")(fd);
    int e = errno;
    umm__fd_changed(fd); /* after: an fstat racing with the close keeps the old generation */
    errno = e;
    return rc;
}

int close_range(unsigned first, unsigned last, int flags)
{
    if (!NEXT(close_range, "close_range")) {
        errno = ENOSYS;
        return -1;
    }
    int rc = next.close_range(first, last, flags), e = errno;
    changed_from(first > INT32_MAX ? INT32_MAX : (int)first, last > INT32_MAX ? INT32_MAX : (int)last);
    errno = e;
    return rc;
}

void closefrom(int lo)
{
    if (NEXT(closefrom, "closefrom"))
        next.closefrom(lo);
    changed_from(lo, FDT_SLOTS - 1);
}

int dup(int fd)
{
    int rc = NEXT(dup, "dup")(fd), e = errno;
    umm__fd_changed(rc);
    errno = e;
    return rc;
}

int dup2(int fd, int to)
{
    int rc = NEXT(dup2, "dup2")(fd, to), e = errno;
    umm__fd_changed(to);
    errno = e;
    return rc;
}

int dup3(int fd, int to, int flags)
{
    int rc = NEXT(dup3, "dup3")(fd, to, flags), e = errno;
    umm__fd_changed(to);
    errno = e;
    return rc;
}

FILE *fopen(const char *path, const char *mode)
{
    FILE *f = NEXT(fopen, "fopen64")(path, mode);
    int e = errno;
    umm__fd_changed(stream_fd(f));
    errno = e;
    return f;
}
FILE *fopen64(const char *path, const char *mode) __attribute__((alias("fopen")));

FILE *freopen(const char *path, const char *mode, FILE *f)
{
    int old = stream_fd(f);
    FILE *r = NEXT(freopen, "freopen64")(path, mode, f);
    int e = errno;
    umm__fd_changed(old);
    umm__fd_changed(stream_fd(r));
    errno = e;
    return r;
}
FILE *freopen64(const char *path, const char *mode, FILE *f) __attribute__((alias("freopen")));

FILE *fdopen(int fd, const char *mode)
{
    FILE *f = NEXT(fdopen, "fdopen")(fd, mode);
    int e = errno;
    umm__fd_changed(fd);
    errno = e;
    return f;
}

FILE *tmpfile(void)
{
    FILE *f = NEXT(tmpfile, "tmpfile64")();
    int e = errno;
    umm__fd_changed(stream_fd(f));
    errno = e;
    return f;
}
FILE *tmpfile64(void) __attribute__((alias("tmpfile")));

int fclose(FILE *f)
{
    int fd = stream_fd(f);
    int rc = NEXT(fclose, "fclose")(f), e = errno;
    umm__fd_changed(fd);
    errno = e;
    return rc;
}

int fcloseall(void)
{
    int rc = NEXT(fcloseall, "fcloseall")(), e = errno;
    changed_all();
    errno = e;
    return rc;
}

DIR *opendir(const char *path)
{
    DIR *d = NEXT(opendir, "opendir")(path);
    int e = errno;
    if (d)
        umm__fd_changed(dirfd(d));
    errno = e;
    return d;
}

DIR *fdopendir(int fd)
{
    DIR *d = NEXT(fdopendir, "fdopendir")(fd);
    int e = errno;
    umm__fd_changed(fd);
    errno = e;
    return d;
}

int closedir(DIR *d)
{
    int fd = dirfd(d);
    int rc = NEXT(closedir, "closedir")(d), e = errno;
    umm__fd_changed(fd);
    errno = e;
    return rc;
}

FILE *popen(const char *cmd, const char *mode)
{
    FILE *f = NEXT(popen, "popen")(cmd, mode);
    int e = errno;
    umm__fd_changed(stream_fd(f));
    errno = e;
    return f;
}

int pclose(FILE *f)
{
    int fd = stream_fd(f);
    int rc = NEXT(pclose, "pclose")(f), e = errno;
    umm__fd_changed(fd);
    errno = e;
    return rc;
}

#define MADE(call)                                                                                \
    do {                                                                                          \
        int fd_ = (call), e_ = errno;                                                             \
        umm__fd_changed(fd_);                                                                     \
        errno = e_;                                                                               \
        return fd_;                                                                               \
    } while (0)

int mkstemp(char *tmpl) { MADE(NEXT(mkstemp, "mkstemp64")(tmpl)); }
int mkstemp64(char *tmpl) __attribute__((alias("mkstemp")));
int mkostemp(char *tmpl, int flags) { MADE(NEXT(mkostemp, "mkostemp64")(tmpl, flags)); }
int mkostemp64(char *tmpl, int flags) __attribute__((alias("mkostemp")));
int mkstemps(char *tmpl, int suffixlen) { MADE(NEXT(mkstemps, "mkstemps64")(tmpl, suffixlen)); }
int mkstemps64(char *tmpl, int suffixlen) __attribute__((alias("mkstemps")));
int mkostemps(char *tmpl, int suffixlen, int flags)
{
    MADE(NEXT(mkostemps, "mkostemps64")(tmpl, suffixlen, flags));
}
int mkostemps64(char *tmpl, int suffixlen, int flags) __attribute__((alias("mkostemps")));
int memfd_create(const char *name, unsigned flags) { MADE(NEXT(memfd_create, "memfd_create")(name, flags)); }

/* daemon() puts /dev/null on 0, 1 and 2 from inside the C library. */
int daemon(int nochdir, int noclose)
{
    int rc = NEXT(daemon, "daemon")(nochdir, noclose), e = errno;
    changed_from(0, 2);
    errno = e;
    return rc;
}

/* login_tty() puts fd on 0, 1 and 2 and closes it, from inside. */
int login_tty(int fd)
{
    int rc = NEXT(login_tty, "login_tty")(fd), e = errno;
    changed_from(0, 2);
    umm__fd_changed(fd);
    errno = e;
    return rc;
}
