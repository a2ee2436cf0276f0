/*
 * locks.c: the program's POSIX record locks survive libumm (the kernel's
 * fs/locks.c is where the rule below lives).
 *
 * POSIX drops every fcntl()/lockf() lock a process holds on a file as soon
 * as the process closes *any* descriptor of that file.  The kernel's own
 * mmap never closes a descriptor (a mapping holds the open file, and
 * dropping that is not a close), so under the kernel mapping and unmapping
 * a locked file leaves the locks alone.  libumm holds descriptors of its
 * own (pagecache.c reopens the file), and must close them some time.
 *
 * So libumm never closes one of its descriptors while the process holds a
 * POSIX lock on that file: it asks the kernel (/proc/locks lists every
 * lock with its owner's pid and the inode) and, if a lock of ours is
 * there, parks the descriptor instead.  Parked descriptors are closed
 * later, once the locks are gone (tried again at the next umm_mmap or
 * umm_munmap, at the daemon's flush, and soon after the program unlocks),
 * or taken back when the same file is mapped again.
 *
 * A lock taken by another thread while libumm decides would be dropped by
 * the close, so fcntl() and lockf() stand in front of the C library's: a
 * locking call announces itself (lock_ops) and waits while a close is being
 * decided (closing); a close decided while a locking call is under way
 * parks.  The two flags are read and written in opposite orders (Dekker),
 * so one side always sees the other.  Locking calls pay two atomic
 * operations; other fcntl() commands pay a comparison.
 *
 * What cannot be matched: exec closes libumm's descriptors (they are
 * close-on-exec, so that a new program does not inherit them), which drops
 * the locks a program keeps across exec on a file it had mapped (README).
 */
#include "umm-int.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h> /* sscanf: no allocation */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static _Atomic long lock_ops;   /* locking fcntl()/lockf() calls under way */
static _Atomic int closing;     /* a close is being decided */

struct parked {
    int fd;
    int writable;
    dev_t dev;
    ino_t ino;
};
/* Under umm__mm.lock held for writing. */
static struct parked *parked;
static size_t nparked, capparked;
static _Atomic size_t nparked_hint; /* read without the lock: anything to retry? */

/* ------------------------------------------------------- asking the kernel */

/* Our pid as /proc shows it (the procfs may belong to another pid
 * namespace than getpid()'s). */
static long proc_pid(void)
{
    char buf[32];
    ssize_t n = readlink("/proc/self", buf, sizeof buf - 1);
    if (n <= 0)
        return getpid();
    buf[n] = 0;
    return strtol(buf, NULL, 10);
}

/* One line of /proc/locks: "N: POSIX  ADVISORY  WRITE PID MAJ:MIN:INODE
 * START END".  Is it a POSIX lock held (not waited for: "->") by pid me?
 * Its inode in *ino. */
static int our_posix_lock(const char *line, long me, unsigned long long *ino)
{
    char type[16];
    long pid;
    unsigned maj, min;
    /* Blocked requests ("N: -> POSIX ...") are calls under way: the
     * lock_ops handshake covers them. */
    if (strstr(line, "->") || sscanf(line, "%*d: %15s %*s %*s %ld %x:%x:%llu", type, &pid, &maj, &min, ino) != 5)
        return 0;
    return strcmp(type, "POSIX") == 0 && pid == me;
}

/* Does this process hold a POSIX lock on any of the inodes of parked[]
 * (mark[i] = 1 for each), or on ino (the return value)?  Read with plain
 * system calls, not stdio (whose buffer is malloc'ed: kmem.c says why
 * libumm keeps off the program's heap).  Only the inode number is
 * compared: a device number there is the super block's, which stat() does
 * not always show (btrfs), and a false match only keeps a descriptor open
 * longer.  When the answer cannot be had, everything counts as locked. */
static int posix_locked(ino_t ino, char *mark)
{
    int fd = umm__sys_open("/proc/locks", O_RDONLY | O_CLOEXEC, 0);
    if (fd < 0) {
        if (mark)
            memset(mark, 1, nparked);
        return 1;
    }
    long me = proc_pid();
    int found = 0;
    /* Lines are taken whole from a buffer refilled with read(). */
    char buf[4096];
    size_t len = 0;
    int eof = 0;
    while (!eof || len) {
        if (!eof && len < sizeof buf - 1) {
            ssize_t n = umm__sys_read(fd, buf + len, sizeof buf - 1 - len);
            if (n <= 0)
                eof = 1;
            else
                len += (size_t)n;
        }
        buf[len] = 0;
        char *nl = memchr(buf, '\n', len);
        if (!nl && !eof && len < sizeof buf - 1)
            continue;
        size_t linelen = nl ? (size_t)(nl - buf) + 1 : len;
        if (nl)
            *nl = 0;
        unsigned long long lino;
        if (our_posix_lock(buf, me, &lino)) {
            if ((ino_t)lino == ino)
                found = 1;
            for (size_t i = 0; mark && i < nparked; i++)
                if (parked[i].ino == (ino_t)lino)
                    mark[i] = 1;
        }
        memmove(buf, buf + linelen, len - linelen);
        len -= linelen;
    }
    umm__sys_close(fd);
    return found;
}

/* ----------------------------------------------------------- closing */

static void park(int fd, int writable, dev_t dev, ino_t ino)
{
    if (nparked == capparked) {
        size_t cap = capparked ? capparked * 2 : 8;
        struct parked *p = umm__krealloc(parked, capparked * sizeof *p, cap * sizeof *p);
        if (!p)
            return; /* keep the descriptor open for good: never lose a lock */
        parked = p;
        capparked = cap;
    }
    parked[nparked++] = (struct parked){ fd, writable, dev, ino };
    atomic_store(&nparked_hint, nparked);
}

/*
 * Close libumm's descriptor fd of file (dev, ino), or park it while the
 * process may hold a POSIX lock there.  umm__mm.lock held for writing.
 */
void umm__file_close(int fd, int writable, dev_t dev, ino_t ino)
{
    sigset_t all, saved;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &saved); /* no handler of ours may wait for us here */
    atomic_store(&closing, 1);
    if (atomic_load(&lock_ops) == 0 && !posix_locked(ino, NULL))
        umm__fd_close_own(fd);
    else
        park(fd, writable, dev, ino);
    atomic_store(&closing, 0);
    pthread_sigmask(SIG_SETMASK, &saved, NULL);
}

/*
 * A parked descriptor of (dev, ino), writable if asked, handed back for a
 * new object (so that mapping a locked file again costs no descriptor), or
 * -1.  umm__mm.lock held for writing.
 */
int umm__file_unpark(dev_t dev, ino_t ino, int writable, int *was_writable)
{
    for (size_t i = 0; i < nparked; i++) {
        if (parked[i].dev != dev || parked[i].ino != ino || (writable && !parked[i].writable))
            continue;
        int fd = parked[i].fd;
        *was_writable = parked[i].writable;
        parked[i] = parked[--nparked];
        atomic_store(&nparked_hint, nparked);
        return fd;
    }
    return -1;
}

/* Close the parked descriptors whose files hold no lock of ours any more.
 * umm__mm.lock held for writing. */
void umm__file_retry(void)
{
    if (atomic_load(&nparked_hint) == 0)
        return;
    size_t nmark = nparked;
    char *mark = umm__kalloc(nmark);
    if (!mark)
        return;
    sigset_t all, saved;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &saved);
    atomic_store(&closing, 1);
    if (atomic_load(&lock_ops) == 0) {
        posix_locked(0, mark);
        for (size_t i = nparked; i-- > 0;) {
            if (mark[i])
                continue;
            umm__fd_close_own(parked[i].fd);
            parked[i] = parked[--nparked];
        }
        atomic_store(&nparked_hint, nparked);
    }
    atomic_store(&closing, 0);
    pthread_sigmask(SIG_SETMASK, &saved, NULL);
    umm__kfree(mark, nmark);
}

/* ----------------------------------------- fcntl and lockf in front */

static int (*next_fcntl)(int, int, ...);
static int (*next_lockf)(int, int, off_t);

__attribute__((constructor)) static void locks_init(void)
{
    /* Looked up once, here: the wrappers may run in a signal handler,
     * where dlsym may not. */
    next_fcntl = (int (*)(int, int, ...))dlsym(RTLD_NEXT, "fcntl64");
    if (!next_fcntl)
        next_fcntl = (int (*)(int, int, ...))dlsym(RTLD_NEXT, "fcntl");
    next_lockf = (int (*)(int, int, off_t))dlsym(RTLD_NEXT, "lockf64");
    if (!next_lockf)
        next_lockf = (int (*)(int, int, off_t))dlsym(RTLD_NEXT, "lockf");
}

/* A locking call starts: wait while a close is being decided. */
static void lock_op_begin(void)
{
    atomic_fetch_add(&lock_ops, 1);
    while (atomic_load(&closing))
        sched_yield();
}

/* It ended; an unlock may free parked descriptors: the daemon looks soon. */
static void lock_op_end(int unlocked)
{
    atomic_fetch_sub(&lock_ops, 1);
    if (unlocked && atomic_load(&nparked_hint))
        umm__ring(UMM__BELL_FLUSH);
}

static int fcntl_impl(int fd, int cmd, void *arg)
{
    if (!next_fcntl)
        locks_init();
    if (cmd == F_DUPFD || cmd == F_DUPFD_CLOEXEC) { /* a number handed out (fdtable.c) */
        int rc = next_fcntl(fd, cmd, arg);
        umm__fd_changed(rc); /* an atomic add: errno stays the call's */
        return rc;
    }
    if (cmd == F_SETFL) { /* O_APPEND may have changed (fdtable.c) */
        int rc = next_fcntl(fd, cmd, arg);
        umm__fd_flags_changed();
        return rc;
    }
    if (cmd != F_SETLK && cmd != F_SETLKW)
        return next_fcntl(fd, cmd, arg);
    lock_op_begin();
    int e, rc = next_fcntl(fd, cmd, arg);
    e = errno;
    lock_op_end(rc == 0 && ((struct flock *)arg)->l_type == F_UNLCK);
    errno = e;
    return rc;
}

/* fcntl's third argument is an int or a pointer: passed on as a word, as
 * the C library itself reads it. */
int fcntl(int fd, int cmd, ...)
{
    va_list ap;
    va_start(ap, cmd);
    void *arg = va_arg(ap, void *);
    va_end(ap);
    return fcntl_impl(fd, cmd, arg);
}

int fcntl64(int fd, int cmd, ...);
int fcntl64(int fd, int cmd, ...)
{
    va_list ap;
    va_start(ap, cmd);
    void *arg = va_arg(ap, void *);
    va_end(ap);
    return fcntl_impl(fd, cmd, arg);
}

/* The C library's lockf() calls its fcntl() from inside, past the one
 * above: it needs its own. */
int lockf(int fd, int cmd, off_t len)
{
    if (!next_lockf)
        locks_init();
    if (cmd != F_LOCK && cmd != F_TLOCK && cmd != F_ULOCK)
        return next_lockf(fd, cmd, len);
    lock_op_begin();
    int rc = next_lockf(fd, cmd, len), e = errno;
    lock_op_end(rc == 0 && cmd == F_ULOCK);
    errno = e;
    return rc;
}

int lockf64(int fd, int cmd, off_t len) __attribute__((alias("lockf")));
