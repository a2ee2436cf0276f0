/*
 * host.c: what libumm takes from the host, at the bottom of every piece:
 * the C library's own functions (not the wrappers libumm puts in front of
 * them), the descriptors libumm holds, futex bit locks, sizes from the
 * environment, and the panic that ends a broken invariant.
 *
 * Every other piece calls down to here and nothing here calls up, so a
 * piece low in the house (frames, swap, kmem) can read a file or close a
 * descriptor without passing through the system-call layer: libumm's own
 * I/O through fileio.c's read() would cache the bytes twice, and its own
 * close() through fdtable.c's would be refused for a descriptor that is
 * libumm's (tests/test-layers checks that the calls point one way).
 */
#include "umm-int.h"
#include "vg.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <linux/futex.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

void umm__panic(const char *file, int line, const char *what)
{
    char buf[512];
    int n = snprintf(buf, sizeof buf, "libumm: panic: %s:%d: %s\n", file, line, what);
    if (n > 0)
        (void)!umm__sys_write(2, buf, (size_t)n < sizeof buf ? (size_t)n : sizeof buf - 1);
    abort();
}

/* ------------------------------------------------ the C library's own */

struct umm__libc umm__libc;

#define LOOKUP(field, name, alt)                                                                  \
    do {                                                                                          \
        *(void **)&umm__libc.field = dlsym(RTLD_NEXT, name);                                           \
        if (!umm__libc.field)                                                                          \
            *(void **)&umm__libc.field = dlsym(RTLD_NEXT, alt);                                        \
    } while (0)

/* Looked up once, before main (the wrappers may run in signal handlers,
 * where dlsym may not); again on first use if a library's constructor
 * calls in before this one ran. */
__attribute__((constructor)) void umm__libc_init(void)
{
    if (umm__libc.read)
        return;
    LOOKUP(pread, "pread64", "pread");
    LOOKUP(preadv, "preadv64", "preadv");
    LOOKUP(preadv2, "preadv64v2", "preadv2");
    LOOKUP(pwrite, "pwrite64", "pwrite");
    LOOKUP(pwritev, "pwritev64", "pwritev");
    LOOKUP(pwritev2, "pwritev64v2", "pwritev2");
    LOOKUP(readv, "readv", "readv");
    LOOKUP(write, "write", "write");
    LOOKUP(writev, "writev", "writev");
    LOOKUP(ftruncate, "ftruncate64", "ftruncate");
    LOOKUP(truncate, "truncate64", "truncate");
    LOOKUP(fallocate, "fallocate64", "fallocate");
    LOOKUP(fsync, "fsync", "fsync");
    LOOKUP(fdatasync, "fdatasync", "fdatasync");
    LOOKUP(sync_file_range, "sync_file_range", "sync_file_range");
    LOOKUP(syncfs, "syncfs", "syncfs");
    LOOKUP(sync, "sync", "sync");
    LOOKUP(copy_file_range, "copy_file_range", "copy_file_range");
    LOOKUP(sendfile, "sendfile64", "sendfile");
    LOOKUP(splice, "splice", "splice");
    LOOKUP(open, "open64", "open");
    LOOKUP(openat, "openat64", "openat");
    LOOKUP(mkostemp, "mkostemp64", "mkostemp");
    /* A sanitizer that keeps state per thread (AddressSanitizer) must see
     * libumm's threads start: its interceptor, where there is one (the
     * program's own pthread_create comes to it first anyway). */
    *(void **)&umm__libc.pthread_create = dlsym(RTLD_DEFAULT, "__interceptor_pthread_create");
    if (!umm__libc.pthread_create)
        LOOKUP(pthread_create, "pthread_create", "pthread_create");
    LOOKUP(read, "read", "read"); /* last: it says the rest is done */
}

ssize_t umm__sys_pread(int fd, void *buf, size_t n, off_t off)
{
    return UMM__LIBC(pread)(fd, buf, n, off);
}
ssize_t umm__sys_pwrite(int fd, const void *buf, size_t n, off_t off)
{
    return UMM__LIBC(pwrite)(fd, buf, n, off);
}
ssize_t umm__sys_read(int fd, void *buf, size_t n)
{
    return UMM__LIBC(read)(fd, buf, n);
}
ssize_t umm__sys_write(int fd, const void *buf, size_t n)
{
    return UMM__LIBC(write)(fd, buf, n);
}
int umm__sys_fallocate(int fd, int mode, off_t off, off_t len)
{
    return UMM__LIBC(fallocate)(fd, mode, off, len);
}
int umm__sys_fdatasync(int fd)
{
    return UMM__LIBC(fdatasync)(fd);
}
int umm__sys_ftruncate(int fd, off_t len)
{
    return UMM__LIBC(ftruncate)(fd, len);
}

int umm__sys_open(const char *path, int flags, mode_t mode)
{
    return UMM__LIBC(open)(path, flags, mode);
}

int umm__sys_close(int fd)
{
    return (int)syscall(SYS_close, fd);
}

int umm__sys_fcntl(int fd, int cmd, long arg)
{
    return (int)syscall(SYS_fcntl, fd, cmd, arg);
}

int umm__sys_memfd_create(const char *name, unsigned flags)
{
    return (int)syscall(SYS_memfd_create, name, flags);
}

int umm__sys_mkostemp(char *tmpl, int flags)
{
    return UMM__LIBC(mkostemp)(tmpl, flags);
}

/* A thread of libumm's own (the pager's): no alternate signal stack from
 * signals.c's pthread_create, which it does not need (it runs with every
 * signal blocked and never touches a mapping). */
int umm__sys_pthread_create(pthread_t *t, void *(*fn)(void *), void *arg)
{
    return UMM__LIBC(pthread_create)(t, NULL, fn, arg);
}

/* A small file read whole, NUL-terminated (a /proc or /sys file): no
 * stdio, whose buffer is malloc'ed -- a thread's first malloc maps an
 * arena, perhaps where the program just unmapped (kmem.c) -- and
 * async-signal-safe.  Returns its length, or -1. */
ssize_t umm__slurp(const char *path, char *buf, size_t n)
{
    int fd = umm__sys_open(path, O_RDONLY | O_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    ssize_t len = umm__sys_read(fd, buf, n - 1);
    umm__sys_close(fd);
    if (len >= 0)
        buf[len] = 0;
    return len;
}

/* ------------------------------------------------- libumm's own numbers */

/*
 * libumm holds descriptors of its own for as long as the process lives:
 * its memory (the frames' memfd and their descriptors'), the swap file,
 * the SIGBUS page, the files it maps (reopened: pagecache.c), and the
 * daemon's event loop (libuv's epoll and eventfd).  A program that closes
 * "every descriptor but 0, 1 and 2" -- closefrom(3), close_range(3, ~0U,
 * 0), a loop of close() up to the limit, as daemons and spawners do --
 * would close them under libumm: the next fork aborted in libuv, and a
 * mapped file's number, handed out again, would have taken its write-back.
 * The kernel's own descriptors for a mapping are not numbers at all, so
 * under the kernel the program cannot close them; here libumm's close,
 * close_range, closefrom, dup2 and dup3 leave them alone, and close or
 * dup2 onto one fails with EBADF, as for a number that is not open
 * (Valgrind does the same for its own).  One bit per number below
 * OWN_SLOTS, in zero pages until used.
 */
#define OWN_SLOTS (1u << 20)
static _Atomic uint64_t own_bits[OWN_SLOTS / 64];
static _Atomic unsigned own_top; /* one past the highest number ever held */

int umm__fd_is_own(int fd)
{
    if (fd < 0 || (unsigned)fd >= OWN_SLOTS)
        return 0;
    return (atomic_load_explicit(&own_bits[fd / 64], memory_order_relaxed) >> (fd % 64)) & 1;
}

/* The first of libumm's numbers at or above fd, or -1. */
int umm__fd_own_next(unsigned fd)
{
    unsigned top = atomic_load_explicit(&own_top, memory_order_relaxed);
    for (unsigned w = fd / 64; w * 64 < top; w++) {
        uint64_t bits = atomic_load_explicit(&own_bits[w], memory_order_relaxed);
        if (w == fd / 64)
            bits &= ~(uint64_t)0 << (fd % 64);
        if (bits)
            return (int)(w * 64 + (unsigned)__builtin_ctzll(bits));
    }
    return -1;
}

/*
 * fd is libumm's from now on; returns its number, moved above 2 (a program
 * that started with 0, 1 or 2 closed puts its own there, and expects
 * open() to hand them out), or fd itself if moving fails.  Close it with
 * umm__fd_close_own.
 */
int umm__fd_own(int fd)
{
    if (fd >= 0 && fd <= 2) {
        int moved = (int)syscall(SYS_fcntl, fd, F_DUPFD_CLOEXEC, 3);
        if (moved >= 0) {
            syscall(SYS_close, fd);
            fd = moved;
        }
    }
    umm__fd_own_number(fd);
    return fd;
}

/* Number fd is libumm's, where it is (libuv's, which cannot move). */
void umm__fd_own_number(int fd)
{
    if (fd < 0 || (unsigned)fd >= OWN_SLOTS)
        return;
    atomic_fetch_or_explicit(&own_bits[fd / 64], (uint64_t)1 << (fd % 64), memory_order_relaxed);
    unsigned top = atomic_load_explicit(&own_top, memory_order_relaxed);
    while ((unsigned)fd + 1 > top &&
           !atomic_compare_exchange_weak_explicit(&own_top, &top, (unsigned)fd + 1, memory_order_relaxed,
                                                  memory_order_relaxed))
        ;
}

/* Number fd is no longer libumm's (it is about to be closed by libumm, or
 * already was by a library that closes with a system call). */
void umm__fd_disown(int fd)
{
    if (fd >= 0 && (unsigned)fd < OWN_SLOTS)
        atomic_fetch_and_explicit(&own_bits[fd / 64], ~((uint64_t)1 << (fd % 64)), memory_order_relaxed);
}

/* Close one of libumm's numbers: the bit goes first, so that the number,
 * once the kernel hands it out again, is the program's. */
int umm__fd_close_own(int fd)
{
    umm__fd_disown(fd);
    return (int)syscall(SYS_close, fd);
}

/* ------------------------------------------------------------ bit locks */

static long futex(_Atomic uint32_t *word, int op, uint32_t val, int shared)
{
    return syscall(SYS_futex, word, op | (shared ? 0 : FUTEX_PRIVATE_FLAG), val, NULL, NULL, 0);
}

int umm__bittrylock(_Atomic uint32_t *word)
{
    uint32_t v = atomic_load_explicit(word, memory_order_relaxed);
    if (v & UMM__F_LOCKED ||
        !atomic_compare_exchange_strong_explicit(word, &v, v | UMM__F_LOCKED, memory_order_acquire,
                                                 memory_order_relaxed))
        return 0;
    umm__vg_hb_after(word); /* for helgrind and drd: see vg.h */
    return 1;
}

/* Take the lock bit of *word; sleep on the futex while another holds it.
 * Bits other than LOCKED and WAITERS are left alone. */
void umm__bitlock(_Atomic uint32_t *word, int shared)
{
    int spins = 0;
    for (;;) {
        uint32_t v = atomic_load_explicit(word, memory_order_relaxed);
        if (!(v & UMM__F_LOCKED)) {
            if (atomic_compare_exchange_weak_explicit(word, &v, v | UMM__F_LOCKED, memory_order_acquire,
                                                      memory_order_relaxed)) {
                umm__vg_hb_after(word);
                return;
            }
            continue;
        }
        if (spins++ < 64)
            continue;
        if (!(v & UMM__F_WAITERS)) {
            if (!atomic_compare_exchange_weak_explicit(word, &v, v | UMM__F_WAITERS, memory_order_relaxed,
                                                       memory_order_relaxed))
                continue;
            v |= UMM__F_WAITERS;
        }
        futex(word, FUTEX_WAIT, v, shared);
    }
}

void umm__bitunlock(_Atomic uint32_t *word, int shared)
{
    umm__vg_hb_before(word);
    uint32_t v = atomic_fetch_and_explicit(word, ~(UMM__F_LOCKED | UMM__F_WAITERS), memory_order_release);
    if (v & UMM__F_WAITERS)
        futex(word, FUTEX_WAKE, INT_MAX, shared);
}

/* ---------------------------------------------------------- owned locks */

/*
 * A lock the fork family shares whose holder may die holding it: a
 * process of the family ends with _exit() (or a signal) while one of its
 * threads -- the daemon, working on its own -- is inside.  A bit lock
 * would then stop every process of the family for good.  The word holds
 * the holder's process id (and OWN_WAITERS); a waiter that slept for a
 * while looks whether that process is still there, and takes the lock
 * over if not, as the kernel's robust futexes do for the threads that
 * registered them (glibc keeps the one robust list a thread has).  What
 * the dead holder was changing is left half-done; the callers keep their
 * critical sections such that this loses at most chunks, never hands out
 * one twice (frame.c).
 */
#define OWN_WAITERS 0x80000000u

/* Is process pid gone (or a zombie: it will never let go of anything)? */
int umm__pid_gone(uint32_t pid)
{
    if (kill((pid_t)pid, 0) != 0)
        return errno == ESRCH;
    /* "/proc/<pid>/stat", without stdio: this may run in the trap. */
    char path[32] = "/proc/", buf[256], digits[12];
    int nd = 0, at = 6;
    do
        digits[nd++] = (char)('0' + pid % 10);
    while ((pid /= 10) != 0);
    while (nd > 0)
        path[at++] = digits[--nd];
    memcpy(path + at, "/stat", 6);
    int fd = (int)syscall(SYS_openat, AT_FDCWD, path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    ssize_t n = syscall(SYS_read, fd, buf, sizeof buf - 1);
    syscall(SYS_close, fd);
    if (n <= 0)
        return 0;
    buf[n] = 0;
    const char *st = strrchr(buf, ')'); /* "pid (comm) S ...", comm may hold ')' */
    return st && st[1] == ' ' && (st[2] == 'Z' || st[2] == 'X');
}

void umm__ownlock(_Atomic uint32_t *word, uint32_t self)
{
    int spins = 0;
    for (;;) {
        uint32_t v = atomic_load_explicit(word, memory_order_relaxed);
        if (v == 0) {
            if (atomic_compare_exchange_weak_explicit(word, &v, self, memory_order_acquire, memory_order_relaxed)) {
                umm__vg_hb_after(word);
                return;
            }
            continue;
        }
        if (spins++ < 64)
            continue;
        if (!(v & OWN_WAITERS)) {
            if (!atomic_compare_exchange_weak_explicit(word, &v, v | OWN_WAITERS, memory_order_relaxed,
                                                       memory_order_relaxed))
                continue;
            v |= OWN_WAITERS;
        }
        struct timespec ts = { 0, 100 * 1000 * 1000 };
        if (syscall(SYS_futex, word, FUTEX_WAIT, v, &ts, NULL, 0) == 0 || errno != ETIMEDOUT)
            continue;
        uint32_t owner = v & ~OWN_WAITERS;
        if (owner != self && umm__pid_gone(owner) &&
            atomic_compare_exchange_strong_explicit(word, &v, self | OWN_WAITERS, memory_order_acquire,
                                                    memory_order_relaxed)) {
            umm__vg_hb_after(word);
            return;
        }
    }
}

void umm__ownunlock(_Atomic uint32_t *word)
{
    umm__vg_hb_before(word);
    if (atomic_exchange_explicit(word, 0, memory_order_release) & OWN_WAITERS)
        syscall(SYS_futex, word, FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
}

/* UMM_ZEROCOPY=1: file mappings are zero-copy unless they say UMM_MAP_COPY
 * (umm.h).  Read once. */
int umm__zerocopy_default(void)
{
    static _Atomic int v = -1;
    int r = atomic_load_explicit(&v, memory_order_relaxed);
    if (r < 0) {
        const char *e = getenv("UMM_ZEROCOPY");
        r = e && *e && strcmp(e, "0") != 0;
        atomic_store_explicit(&v, r, memory_order_relaxed);
    }
    return r;
}

/* A size from the environment ("512M", "2G", "16T"); dflt if unset or 0. */
uint64_t umm__parse_size(const char *s, uint64_t dflt)
{
    char *end;
    if (!s || !*s)
        return dflt;
    unsigned long long v = strtoull(s, &end, 0);
    switch (*end) {
    case 't': case 'T': v <<= 10; /* fall through */
    case 'g': case 'G': v <<= 10; /* fall through */
    case 'm': case 'M': v <<= 10; /* fall through */
    case 'k': case 'K': v <<= 10; break;
    default: break;
    }
    return v ? v : dflt;
}
