/*
 * fileio.c: the file I/O layer.  One file, one truth: the program's own
 * read()/write() and its libumm mappings of the same file see the same
 * bytes, as with the kernel's single page cache.
 *
 * libumm stands in front of the C library's calls that read or change a
 * file's bytes (as signals.c does for sigaction).  For a regular file that
 * has frames in libumm's page cache (this process's object, or after fork
 * the family's index):
 *
 *   read, pread, readv, preadv(2)    the kernel reads the file, then the
 *                                    bytes of dirty frames (stores through
 *                                    a mapping not yet written back) are
 *                                    laid over them
 *   write, pwrite, writev, pwritev(2)  written through: the kernel writes
 *                                    the file, then the same bytes go into
 *                                    every frame that holds the file's bytes
 *   ftruncate, truncate, open O_TRUNC  pages past the new end leave this
 *                                    process's mappings (SIGBUS at the next
 *                                    touch), the last page's tail is zeroed
 *   fallocate (punch, zero, collapse, insert)  the frames are read again
 *   fsync, fdatasync, sync_file_range, syncfs, sync  dirty pages are
 *                                    written back first
 *   copy_file_range, sendfile, splice  the source's dirty pages are written
 *                                    back first, the destination's frames
 *                                    read again after
 *
 * Write-through keeps the file always as new as the cache for these
 * writes, so write-back never has to order them; the address-space lock is
 * held for reading across the call and the copy, so a write-back (which
 * holds it for writing) never interleaves with them.
 *
 * And for every descriptor: a buffer in libumm memory that is not resident
 * is made resident (and writable, for reads into it) before the call, so
 * the kernel does not answer EFAULT (README difference 2 is gone for these
 * calls); if a page goes in between, the call is tried again.
 *
 * What is not covered: the C library's stdio writes and reads through its
 * own internal calls (fwrite, fprintf, fread on a FILE), and io_uring or
 * AIO; writers outside the process family (README difference 1).
 *
 * Cost when nothing is mapped: one load.  With files mapped, which file a
 * descriptor is comes from fdtable.c (an fstat() the first time a number
 * is used, not per call: doc/PERFORMANCE.md).  UMM_FILEIO=0 in the
 * environment turns all of this off; umm_pread() and the like do it by
 * name whatever the setting.
 */
#include "umm-int.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

static int enabled = 1;

/*
 * Does libumm stand in front of this thread's file I/O?  Not with
 * UMM_FILEIO=0, and not on libumm's pager thread: a pager's callbacks run
 * there while the thread that needs the pages waits, holding the
 * address-space lock (for writing, in msync's write-back and
 * MS_INVALIDATE's refill), so a read, write or fsync of theirs that took
 * the lock waited for ever (a hiredis read() did).  What they give up: a
 * store file that the program also maps with libumm is not coherent with
 * the callbacks' own calls (umm_pager(3)).
 */
static int active(void)
{
    return enabled && !umm__own_io;
}

extern void __chk_fail(void) __attribute__((noreturn));

/* UMM_FILEIO=0: read once, before main. */
__attribute__((constructor)) static void fileio_init(void)
{
    const char *e = getenv("UMM_FILEIO");
    enabled = !(e && strcmp(e, "0") == 0);
}

#define REAL(f) UMM__LIBC(f)

/* ------------------------------------------------------------ the core */

/* Has libumm started, with anything mapped? (A hint, read without lock.) */
static int mapped(void)
{
    return umm__ram.sh != NULL && __atomic_load_n(&umm__mm.nvmas, __ATOMIC_RELAXED) != 0;
}

/* The address-space lock for reading, with cancellation off (a thread
 * cancelled inside the call would keep it) and no handler of the program
 * able to run (one that called umm_mmap here would wait for itself): while
 * the program has no handler at all, the thread is only marked (no system
 * call; signals.c), else signals are blocked. */
struct held {
    sigset_t mask;
    int cancel, unmasked;
};

static void hold(struct held *h)
{
    pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &h->cancel);
    h->unmasked = umm__io_enter();
    if (!h->unmasked) {
        sigset_t all;
        sigfillset(&all);
        sigdelset(&all, SIGSEGV);
        sigdelset(&all, SIGBUS);
        pthread_sigmask(SIG_BLOCK, &all, &h->mask);
    }
    pthread_rwlock_rdlock(&umm__mm.lock);
}

static void release(struct held *h)
{
    int e = errno;
    pthread_rwlock_unlock(&umm__mm.lock);
    if (h->unmasked)
        umm__io_leave();
    else
        pthread_sigmask(SIG_SETMASK, &h->mask, NULL);
    pthread_setcancelstate(h->cancel, NULL);
    errno = e;
}

/* The same for writing (truncation and syncs change mappings). */
static void hold_write(struct held *h)
{
    pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &h->cancel);
    umm__enter(&h->mask);
}

static void release_write(struct held *h)
{
    umm__leave(&h->mask);
    pthread_setcancelstate(h->cancel, NULL);
}

/* Make the parts of [p, p+n) that are libumm's resident, and writable if
 * write (the kernel will store there).  Lock held for reading. */
/* Make the parts of [p, p+n) that are libumm's resident, and writable if
 * write (the kernel will store there).  Lock held for reading.  Returns 1
 * if part of it is libumm's and all of that is now there (an EFAULT after
 * this is a page gone in between, worth another try), else 0. */
static int prefault(const void *p, size_t n, int write)
{
    uintptr_t a = (uintptr_t)p & UMM_PAGE_MASK, end = (uintptr_t)p + n;
    int ours = 0;
    while (n && a < end) {
        struct umm__vma *v = umm__vma_next(a, NULL);
        if (!v || v->start >= end)
            break;
        uintptr_t s = v->start > a ? v->start : a, e = v->end < end ? v->end : end;
        if (umm__kvma_populate(v, s, (e + UMM_PAGE_SIZE - 1) & UMM_PAGE_MASK, write) != 0)
            return 0; /* not allowed (PROT_NONE, past EOF): the kernel's EFAULT */
        ours = 1;
        a = v->end;
    }
    return ours;
}

enum kind { K_READ, K_PREAD, K_READV, K_PREADV, K_PREADV2, K_WRITE, K_PWRITE, K_WRITEV, K_PWRITEV, K_PWRITEV2 };

struct io {
    enum kind kind;
    int fd;
    const struct iovec *iov;
    int iovcnt;
    off_t off; /* positional calls; -1 in preadv2/pwritev2: the position */
    int flags; /* preadv2/pwritev2 */
};

static int is_write(const struct io *io)
{
    return io->kind >= K_WRITE;
}

static int positional(const struct io *io)
{
    return io->kind == K_PREAD || io->kind == K_PREADV || io->kind == K_PWRITE || io->kind == K_PWRITEV ||
           ((io->kind == K_PREADV2 || io->kind == K_PWRITEV2) && io->off != -1);
}

static ssize_t do_call(const struct io *io)
{
    const struct iovec *v = io->iov;
    switch (io->kind) {
    case K_READ: return REAL(read)(io->fd, v->iov_base, v->iov_len);
    case K_PREAD: return REAL(pread)(io->fd, v->iov_base, v->iov_len, io->off);
    case K_READV: return REAL(readv)(io->fd, v, io->iovcnt);
    case K_PREADV: return REAL(preadv)(io->fd, v, io->iovcnt, io->off);
    case K_PREADV2: return REAL(preadv2)(io->fd, v, io->iovcnt, io->off, io->flags);
    case K_WRITE: return REAL(write)(io->fd, v->iov_base, v->iov_len);
    case K_PWRITE: return REAL(pwrite)(io->fd, v->iov_base, v->iov_len, io->off);
    case K_WRITEV: return REAL(writev)(io->fd, v, io->iovcnt);
    case K_PWRITEV: return REAL(pwritev)(io->fd, v, io->iovcnt, io->off);
    case K_PWRITEV2: return REAL(pwritev2)(io->fd, v, io->iovcnt, io->off, io->flags);
    }
    errno = EINVAL;
    return -1;
}

/* Might a buffer of io be libumm memory?  (No lock: vma.c's coarse map.) */
static int bufs_maybe_ours(const struct io *io)
{
    for (int i = 0; i < io->iovcnt; i++)
        if (umm__vma_maybe_ours(io->iov[i].iov_base, io->iov[i].iov_len))
            return 1;
    return 0;
}

/* Prefault every buffer of io that is libumm's; 1 if any is. */
static int prefault_io(const struct io *io)
{
    int ours = 0;
    for (int i = 0; i < io->iovcnt; i++)
        ours |= prefault(io->iov[i].iov_base, io->iov[i].iov_len, !is_write(io));
    return ours;
}

/* Where in the file did n bytes just go (or come from)?  A write to a
 * descriptor opened O_APPEND (or RWF_APPEND) went to the end, whatever
 * the offset. */
static off_t where(const struct io *io, ssize_t n)
{
    if (is_write(io) && (umm__fd_append(io->fd) != 0 || (io->flags & 0x10 /* RWF_APPEND */))) {
        struct stat st;
        return fstat(io->fd, &st) == 0 ? st.st_size - n : -1;
    }
    if (positional(io))
        return io->off;
    off_t pos = lseek(io->fd, 0, SEEK_CUR);
    return pos < 0 ? -1 : pos - n;
}

#define EFAULT_TRIES 8

/*
 * Run one read or write call.  For a regular file with frames in the page
 * cache: the call and the copy to or from the frames under the lock (for
 * reading).  Otherwise the call alone, with libumm's buffers made resident
 * first (without the lock during the call, which may block: a pipe, a
 * socket).
 */
static ssize_t io_run(const struct io *io, int force)
{
    if (!(active() || force) || umm__ram.sh == NULL)
        return do_call(io);
    int bufs = mapped() && bufs_maybe_ours(io), files = umm__pagecache_files();
    if (!bufs && !files)
        return do_call(io);
    struct stat st; /* its st_dev and st_ino only (fdtable.c) */
    int cached = files && umm__fd_identity(io->fd, &st.st_dev, &st.st_ino) == 1 &&
                 umm__pagecache_maybe(st.st_dev, st.st_ino);
    for (int tries = 0;; tries++) {
        struct held h;
        int ours = 0;
        ssize_t n;
        if (cached) {
            hold(&h);
            struct umm__object *obj = umm__object_find(st.st_dev, st.st_ino);
            ours = bufs && prefault_io(io);
            n = do_call(io);
            off_t at = n > 0 && (obj || umm__mm.forked) ? where(io, n) : -1;
            if (at >= 0 && is_write(io))
                umm__cache_write(obj, st.st_dev, st.st_ino, (uint64_t)at, io->iov, io->iovcnt, (uint64_t)n);
            else if (at >= 0)
                umm__cache_read(obj, st.st_dev, st.st_ino, (uint64_t)at, io->iov, io->iovcnt, (uint64_t)n);
            release(&h);
        } else {
            if (bufs) {
                hold(&h);
                ours = prefault_io(io);
                release(&h);
            }
            n = do_call(io);
        }
        /* A page of the buffer went between the prefault and the call. */
        if (n < 0 && errno == EFAULT && ours && tries < EFAULT_TRIES)
            continue;
        return n;
    }
}

static ssize_t io1(enum kind k, int fd, const void *buf, size_t n, off_t off, int force)
{
    struct iovec v = { (void *)buf, n };
    struct io io = { k, fd, &v, 1, off, 0 };
    return io_run(&io, force);
}

static ssize_t iov_io(enum kind k, int fd, const struct iovec *iov, int cnt, off_t off, int flags, int force)
{
    struct io io = { k, fd, iov, cnt, off, flags };
    return io_run(&io, force);
}

/* ---------------------------------------------- reads and writes in front */

ssize_t read(int fd, void *buf, size_t n) { return io1(K_READ, fd, buf, n, 0, 0); }
ssize_t pread(int fd, void *buf, size_t n, off_t off) { return io1(K_PREAD, fd, buf, n, off, 0); }
ssize_t pread64(int fd, void *buf, size_t n, off_t off) __attribute__((alias("pread")));
ssize_t readv(int fd, const struct iovec *iov, int cnt) { return iov_io(K_READV, fd, iov, cnt, 0, 0, 0); }
ssize_t preadv(int fd, const struct iovec *iov, int cnt, off_t off)
{
    return iov_io(K_PREADV, fd, iov, cnt, off, 0, 0);
}
ssize_t preadv64(int fd, const struct iovec *iov, int cnt, off_t off) __attribute__((alias("preadv")));
ssize_t preadv2(int fd, const struct iovec *iov, int cnt, off_t off, int flags)
{
    return iov_io(K_PREADV2, fd, iov, cnt, off, flags, 0);
}
ssize_t preadv64v2(int fd, const struct iovec *iov, int cnt, off_t off, int flags) __attribute__((alias("preadv2")));

ssize_t write(int fd, const void *buf, size_t n) { return io1(K_WRITE, fd, buf, n, 0, 0); }
ssize_t pwrite(int fd, const void *buf, size_t n, off_t off) { return io1(K_PWRITE, fd, buf, n, off, 0); }
ssize_t pwrite64(int fd, const void *buf, size_t n, off_t off) __attribute__((alias("pwrite")));
ssize_t writev(int fd, const struct iovec *iov, int cnt) { return iov_io(K_WRITEV, fd, iov, cnt, 0, 0, 0); }
ssize_t pwritev(int fd, const struct iovec *iov, int cnt, off_t off)
{
    return iov_io(K_PWRITEV, fd, iov, cnt, off, 0, 0);
}
ssize_t pwritev64(int fd, const struct iovec *iov, int cnt, off_t off) __attribute__((alias("pwritev")));
ssize_t pwritev2(int fd, const struct iovec *iov, int cnt, off_t off, int flags)
{
    return iov_io(K_PWRITEV2, fd, iov, cnt, off, flags, 0);
}
ssize_t pwritev64v2(int fd, const struct iovec *iov, int cnt, off_t off, int flags) __attribute__((alias("pwritev2")));

/* _FORTIFY_SOURCE turns read() into these when it knows the buffer's size;
 * the C library's own call past its check would miss the cache. */
ssize_t __read_chk(int fd, void *buf, size_t n, size_t buflen);
ssize_t __read_chk(int fd, void *buf, size_t n, size_t buflen)
{
    if (n > buflen)
        __chk_fail();
    return read(fd, buf, n);
}
ssize_t __pread_chk(int fd, void *buf, size_t n, off_t off, size_t buflen);
ssize_t __pread_chk(int fd, void *buf, size_t n, off_t off, size_t buflen)
{
    if (n > buflen)
        __chk_fail();
    return pread(fd, buf, n, off);
}
ssize_t __pread64_chk(int fd, void *buf, size_t n, off_t off, size_t buflen) __attribute__((alias("__pread_chk")));

/* By name, whatever UMM_FILEIO says. */
ssize_t umm_read(int fd, void *buf, size_t n) { return io1(K_READ, fd, buf, n, 0, 1); }
ssize_t umm_pread(int fd, void *buf, size_t n, off_t off) { return io1(K_PREAD, fd, buf, n, off, 1); }
ssize_t umm_write(int fd, const void *buf, size_t n) { return io1(K_WRITE, fd, buf, n, 0, 1); }
ssize_t umm_pwrite(int fd, const void *buf, size_t n, off_t off) { return io1(K_PWRITE, fd, buf, n, off, 1); }
ssize_t umm_readv(int fd, const struct iovec *iov, int cnt) { return iov_io(K_READV, fd, iov, cnt, 0, 0, 1); }
ssize_t umm_writev(int fd, const struct iovec *iov, int cnt) { return iov_io(K_WRITEV, fd, iov, cnt, 0, 0, 1); }
ssize_t umm_preadv(int fd, const struct iovec *iov, int cnt, off_t off)
{
    return iov_io(K_PREADV, fd, iov, cnt, off, 0, 1);
}
ssize_t umm_pwritev(int fd, const struct iovec *iov, int cnt, off_t off)
{
    return iov_io(K_PWRITEV, fd, iov, cnt, off, 0, 1);
}

/* ------------------------------------------- calls that change a file */

/* The file behind fd, if libumm caches it: 1 and its identity. */
static int cached_fd(int fd, int force, struct stat *st)
{
    return (active() || force) && umm__pagecache_files() && fstat(fd, st) == 0 && S_ISREG(st->st_mode) &&
           umm__pagecache_maybe(st->st_dev, st->st_ino);
}

/* The file shrank or grew to size: see umm__cache_truncated. */
static void truncated(const struct stat *st, uint64_t size)
{
    struct held h;
    hold_write(&h);
    umm__cache_truncated(umm__object_find(st->st_dev, st->st_ino), st->st_dev, st->st_ino, size);
    umm__pagecache_size_changed();
    release_write(&h);
}

static int do_ftruncate(int fd, off_t len, int force)
{
    struct stat st;
    int cached = cached_fd(fd, force, &st);
    if (!cached)
        return REAL(ftruncate)(fd, len);
    /* Under the lock, and with no write-back in flight outside it (which
     * would write past the new end): the truncation and its effect on the
     * mappings at once, as one step. */
    struct held h;
    hold_write(&h);
    struct umm__object *obj = umm__object_find(st.st_dev, st.st_ino);
    umm__object_writeback_quiesce(obj);
    int rc = REAL(ftruncate)(fd, len);
    if (rc == 0) {
        umm__cache_truncated(obj, st.st_dev, st.st_ino, (uint64_t)len);
        umm__pagecache_size_changed(); /* after the fact: faults' sizes seen (fault.c) */
    }
    release_write(&h);
    return rc;
}
int ftruncate(int fd, off_t len) { return do_ftruncate(fd, len, 0); }
int ftruncate64(int fd, off_t len) __attribute__((alias("ftruncate")));
int umm_ftruncate(int fd, off_t len) { return do_ftruncate(fd, len, 1); }

int truncate(const char *path, off_t len)
{
    struct stat st;
    int cached = active() && umm__pagecache_files() && stat(path, &st) == 0 && S_ISREG(st.st_mode);
    if (!cached)
        return REAL(truncate)(path, len);
    struct held h; /* as do_ftruncate */
    hold_write(&h);
    struct umm__object *obj = umm__object_find(st.st_dev, st.st_ino);
    umm__object_writeback_quiesce(obj);
    int rc = REAL(truncate)(path, len);
    if (rc == 0) {
        umm__cache_truncated(obj, st.st_dev, st.st_ino, (uint64_t)len);
        umm__pagecache_size_changed();
    }
    release_write(&h);
    return rc;
}
int truncate64(const char *path, off_t len) __attribute__((alias("truncate")));

/* open(..., O_TRUNC) of a cached file truncates it too. */
static int opened(int fd, int flags)
{
    struct stat st;
    umm__fd_changed(fd); /* a number handed out: what fdtable.c kept of it is old */
    if (fd >= 0 && (flags & O_TRUNC) && cached_fd(fd, 0, &st))
        truncated(&st, 0);
    return fd;
}

int open(const char *path, int flags, ...)
{
    mode_t mode = 0;
    if (flags & (O_CREAT | __O_TMPFILE)) {
        va_list ap;
        va_start(ap, flags);
        mode = va_arg(ap, mode_t);
        va_end(ap);
    }
    return opened(REAL(open)(path, flags, mode), flags);
}
int open64(const char *path, int flags, ...) __attribute__((alias("open")));

int openat(int dirfd, const char *path, int flags, ...)
{
    mode_t mode = 0;
    if (flags & (O_CREAT | __O_TMPFILE)) {
        va_list ap;
        va_start(ap, flags);
        mode = va_arg(ap, mode_t);
        va_end(ap);
    }
    return opened(REAL(openat)(dirfd, path, flags, mode), flags);
}
int openat64(int dirfd, const char *path, int flags, ...) __attribute__((alias("openat")));

/* _FORTIFY_SOURCE's forms of open() without a mode (the C library's own
 * call past its check would miss the truncation). */
static int no_mode_needed(int flags)
{
    if (flags & (O_CREAT | __O_TMPFILE))
        __chk_fail(); /* a mode was needed: glibc's __open_2 fails the same way */
    return flags;
}

int __open_2(const char *path, int flags);
int __open_2(const char *path, int flags)
{
    return open(path, no_mode_needed(flags));
}
int __open64_2(const char *path, int flags) __attribute__((alias("__open_2")));
int __openat_2(int dirfd, const char *path, int flags);
int __openat_2(int dirfd, const char *path, int flags)
{
    return openat(dirfd, path, no_mode_needed(flags));
}
int __openat64_2(int dirfd, const char *path, int flags) __attribute__((alias("__openat_2")));

int creat(const char *path, mode_t mode)
{
    return open(path, O_CREAT | O_WRONLY | O_TRUNC, mode);
}
int creat64(const char *path, mode_t mode) __attribute__((alias("creat")));

/* Write back the dirty pages of the file behind st (all of them: the
 * range a sync names is a lower bound of what it may write). */
static int flush_file(const struct stat *st)
{
    struct held h;
    hold_write(&h);
    struct umm__object *obj = umm__object_find(st->st_dev, st->st_ino);
    int err = obj ? umm__object_writeback_all(obj, 0) : 0;
    release_write(&h);
    return err;
}

/* The file's bytes in [off, off+len) changed behind the cache (fallocate,
 * a copy into it): the frames holding them read them again. */
static void changed(int fd, const struct stat *st, uint64_t off, uint64_t len)
{
    struct held h;
    hold(&h);
    umm__cache_reread(umm__object_find(st->st_dev, st->st_ino), st->st_dev, st->st_ino, fd, off, len);
    release(&h);
}

int fallocate(int fd, int mode, off_t off, off_t len)
{
    struct stat st;
    const int moves = 0x08 /* COLLAPSE_RANGE */ | 0x20 /* INSERT_RANGE */;
    const int zeroes = 0x02 /* PUNCH_HOLE */ | 0x10 /* ZERO_RANGE */;
    int cached = (mode & (moves | zeroes)) && cached_fd(fd, 0, &st);
    if (cached && (mode & moves) && flush_file(&st) != 0)
        return -1; /* errno from the write-back: the kernel would fail the same */
    int rc;
    if (cached && (mode & moves)) {
        /* The file's end moves: as a truncation (do_ftruncate), under the
         * lock with no write-back in flight; a collapse's new end takes
         * the pages past it out of the mappings (SIGBUS there), as the
         * kernel's truncate_pagecache. */
        struct held h;
        hold_write(&h);
        struct umm__object *obj = umm__object_find(st.st_dev, st.st_ino);
        umm__object_writeback_quiesce(obj);
        rc = REAL(fallocate)(fd, mode, off, len);
        int e = errno;
        struct stat now;
        if (rc == 0 && (mode & 0x08 /* COLLAPSE_RANGE */) && fstat(fd, &now) == 0)
            umm__cache_truncated(obj, st.st_dev, st.st_ino, (uint64_t)now.st_size);
        if (rc == 0)
            umm__pagecache_size_changed();
        release_write(&h);
        errno = e;
    } else {
        rc = REAL(fallocate)(fd, mode, off, len);
    }
    if (rc == 0 && cached)
        changed(fd, &st, (uint64_t)off, (mode & moves) ? (UINT64_MAX >> 2) - (uint64_t)off : (uint64_t)len);
    return rc;
}
int fallocate64(int fd, int mode, off_t off, off_t len) __attribute__((alias("fallocate")));

static int sync_first(int fd, int force)
{
    struct stat st;
    int err = cached_fd(fd, force, &st) ? flush_file(&st) : 0;
    if (err)
        errno = err;
    return err ? -1 : 0;
}

int fsync(int fd) { return sync_first(fd, 0) ? -1 : REAL(fsync)(fd); }
int fdatasync(int fd) { return sync_first(fd, 0) ? -1 : REAL(fdatasync)(fd); }
int umm_fsync(int fd) { return sync_first(fd, 1) ? -1 : REAL(fsync)(fd); }
int umm_fdatasync(int fd) { return sync_first(fd, 1) ? -1 : REAL(fdatasync)(fd); }
int sync_file_range(int fd, off_t off, off_t n, unsigned int flags)
{
    return sync_first(fd, 0) ? -1 : REAL(sync_file_range)(fd, off, n, flags);
}

static void flush_all(void)
{
    if (!active() || !umm__pagecache_files())
        return;
    struct held h;
    hold_write(&h);
    umm__writeback_all(0);
    release_write(&h);
}

int syncfs(int fd)
{
    flush_all();
    return REAL(syncfs)(fd);
}

void sync(void)
{
    flush_all();
    REAL(sync)();
}

/* A copy between descriptors in the kernel: the source's dirty pages go
 * to the file first, the destination's frames read what landed. */
struct copy_side {
    int fd, cached;
    struct stat st;
    off_t *offp, at;
};

static void copy_before(struct copy_side *in, struct copy_side *out)
{
    in->cached = cached_fd(in->fd, 0, &in->st);
    out->cached = cached_fd(out->fd, 0, &out->st);
    if (in->cached)
        flush_file(&in->st);
    out->at = out->offp ? *out->offp : lseek(out->fd, 0, SEEK_CUR);
}

static void copy_after(struct copy_side *out, ssize_t n)
{
    if (n > 0 && out->cached && out->at >= 0)
        changed(out->fd, &out->st, (uint64_t)out->at, (uint64_t)n);
}

ssize_t copy_file_range(int fdin, off_t *offin, int fdout, off_t *offout, size_t len, unsigned int flags)
{
    struct copy_side in = { .fd = fdin, .offp = offin }, out = { .fd = fdout, .offp = offout };
    copy_before(&in, &out);
    ssize_t n = REAL(copy_file_range)(fdin, offin, fdout, offout, len, flags);
    copy_after(&out, n);
    return n;
}

ssize_t sendfile(int fdout, int fdin, off_t *off, size_t count)
{
    struct copy_side in = { .fd = fdin, .offp = off }, out = { .fd = fdout, .offp = NULL };
    copy_before(&in, &out);
    ssize_t n = REAL(sendfile)(fdout, fdin, off, count);
    copy_after(&out, n);
    return n;
}
ssize_t sendfile64(int fdout, int fdin, off_t *off, size_t count) __attribute__((alias("sendfile")));

ssize_t splice(int fdin, off_t *offin, int fdout, off_t *offout, size_t len, unsigned int flags)
{
    struct copy_side in = { .fd = fdin, .offp = offin }, out = { .fd = fdout, .offp = offout };
    copy_before(&in, &out);
    ssize_t n = REAL(splice)(fdin, offin, fdout, offout, len, flags);
    copy_after(&out, n);
    return n;
}
