/*
 * umm.h: libumm, a virtual-memory kernel inside an ordinary process.
 *
 * libumm gives a program the kernel's mmap family implemented in user space:
 * address space reserved PROT_NONE, a SIGSEGV handler that plays the
 * kernel's trap handler (fills the page from the file, upgrades protection,
 * restarts the instruction), a page cache whose MAP_SHARED pages are written
 * back, and copy-on-write for MAP_PRIVATE.
 *
 * The calls mirror POSIX: same arguments, same constants (PROT_*, MAP_*,
 * MS_*, MADV_* from <sys/mman.h>), MAP_FAILED or -1 with errno on failure.
 * A program ports by renaming mmap to umm_mmap and so on.
 *
 * Differences from the kernel that user space cannot avoid:
 *  1. The page cache is libumm's own, shared by the process and its fork
 *     family, and one truth there: libumm stands in front of the C
 *     library's read/write family, ftruncate, fallocate, fsync and the
 *     copies (umm_read below), so they and the mappings see the same bytes
 *     at once.  Stores through a MAP_SHARED mapping reach the file itself
 *     at msync, munmap, fsync, exit, umm_shutdown, death by a signal left
 *     at its default action (every signal whose default ends the process,
 *     real-time ones included, but SIGKILL) or the background flush
 *     (UMM_FLUSH_INTERVAL_MS, default 5000).  Writers outside the family (another program, raw system calls, stdio's
 *     internal writes) reach pages already resident only after
 *     msync(MS_INVALIDATE), which drops clean resident pages; a truncation
 *     from outside likewise (resident pages past the new end stay readable
 *     until then).
 *  2. A system call libumm does not stand in front of, handed a pointer
 *     into a page that is not resident (or is write-protected for dirty
 *     tracking), fails with EFAULT instead of faulting the page in: the
 *     kernel does not raise SIGSEGV for its own accesses.  Call
 *     umm_prefault() on the buffer first.  (read, write and the calls
 *     listed at umm_read need no such step.)
 *  3. MAP_FIXED may replace only libumm's own mappings or free address
 *     space, never memory that libumm does not own: that fails with EEXIST.
 *     Likewise umm_munmap() leaves memory that libumm does not own alone.
 *     libumm's own structures never take free address space (they live in
 *     a region it reserves at start-up), so MAP_FIXED into a range the
 *     program unmapped succeeds, as under the kernel.
 *  4. SIGKILL cannot be caught: writes not yet written back are lost,
 *     bounded by the flush interval.  So are they after exec: call
 *     umm_shutdown() first.  After fork, see the README ("fork") for what
 *     a process killed by SIGKILL leaves allocated.
 *  5. /proc/self/maps shows libumm's host mappings, not the program's:
 *     every page is a MAP_SHARED mapping of libumm's RAM (a memfd) whose
 *     protection is how libumm traps touches -- ---s until resident, r--s
 *     while a write must trap (copy-on-write, dirty tracking), rw-s once it
 *     may be written -- whatever protection, type and file were asked for.
 *  6. At the host's map-count limit (vm.max_map_count, filled by the
 *     program's own mappings), a first touch that needs a new host mapping
 *     raises SIGSEGV instead of faulting the page in, and umm_munmap()
 *     refuses to split a mapping (ENOMEM) as munmap(2) does, going by the
 *     host's count, which includes libumm's host mappings.
 *  7. RLIMIT_AS counts libumm's own address space, which the kernel keeps
 *     outside the process.  Started under a limit, libumm takes about 5 %
 *     of the room it leaves (no direct map: frames are reached through
 *     small kmap windows); a mapping that needs that last 5 % fails with
 *     ENOMEM.  Started before the limit, libumm's direct map counts.
 *
 * libumm stands in front of the C library's sigaction(), signal() (and
 * bsd_signal, ssignal, sysv_signal, sigset, sigignore, siginterrupt) and
 * pthread_create() (as the JVM's libjsig does): a handler the program
 * installs for SIGSEGV or SIGBUS receives only faults that are not
 * libumm's, delivered as the kernel would (mask, SA_NODEFER, SA_RESETHAND),
 * and a SIGSEGV or SIGBUS sent with kill() gets the program's disposition;
 * a handler for one of the fatal signals above replaces libumm's crash
 * write-back for that signal; and every thread gets an alternate signal
 * stack, so a fault on an almost exhausted stack is still handled.
 *
 * fork(2) keeps the kernel's promises (pthread_atfork handlers): private
 * pages are copy-on-write between parent and child, shared pages stay
 * shared.  umm_fork() is fork() that fails with ENOMEM, instead of
 * aborting, when libumm's RAM has no room for the copies.  _exit(2) and
 * _Exit write dirty pages back as exit() does (libumm stands in front of
 * them); after fork umm_stats() counts frames for the whole family.
 */
#ifndef UMM_H
#define UMM_H

#include <signal.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The mmap family.  Same contract as the kernel's calls of the same name. */
void *umm_mmap(void *addr, size_t length, int prot, int flags, int fd, off_t offset);
int   umm_munmap(void *addr, size_t length);
int   umm_msync(void *addr, size_t length, int flags);
int   umm_mprotect(void *addr, size_t length, int prot);
int   umm_madvise(void *addr, size_t length, int advice);
void *umm_mremap(void *old_address, size_t old_size, size_t new_size, int flags, ... /* void *new_address */);
pid_t umm_fork(void);

/*
 * Zero-copy file pages (umm_mmap's flags; libumm's own, taken out before
 * the kernel's checks, so MAP_SHARED_VALIDATE accepts them).  By default a
 * file's pages live in libumm's page cache: frames of its own, filled with
 * pread and written back with pwrite.  With UMM_MAP_ZEROCOPY (or, for
 * every mapping that does not say UMM_MAP_COPY, UMM_ZEROCOPY=1 in the
 * environment) the clean pages of a regular file are the host's own page
 * cache, mapped from the file over the fault's read-ahead window: nothing
 * is copied.  Pages written through MAP_PRIVATE are copied into libumm's
 * frames, as always.  Stores through MAP_SHARED go into the host's page
 * cache itself, where read(2), other processes and writers outside the
 * fork family see them at once, as under the kernel; msync(MS_SYNC) and
 * fsync sync the file, and dirty tracking (umm_dirty, write-back's write
 * protection) is unchanged.  A file page takes the kind of the mapping
 * that first placed it (a run of the file, per mapping call) and keeps it
 * while any mapping in the family holds it: every mapping of a page sees
 * its one truth, whichever way each asked.  Zero-copy pages are the
 * host's memory: they take none of libumm's budget (UMM_RAM), and the
 * host's reclaim governs them as it does a kernel mapping's.
 */
#define UMM_MAP_ZEROCOPY 0x1000000
#define UMM_MAP_COPY     0x2000000

/*
 * umm_prefault: make [addr, addr+length) resident now, as a touch of every
 * page would.  With PROT_WRITE in prot the pages are also made writable
 * (private pages copied, shared pages marked dirty), as a write would.  Use
 * it before handing libumm memory to a system call such as read(2) or
 * write(2), which would otherwise fail with EFAULT on pages not resident.
 * Returns 0, or -1 with errno: EINVAL (addr not page aligned, or prot has
 * bits other than PROT_READ and PROT_WRITE), ENOMEM (part of the range is not
 * a libumm mapping), EACCES (the mapping does not allow the access), EFAULT
 * (a page lies wholly beyond the end of its file, or is a guard page of
 * MADV_GUARD_INSTALL), or the errno of a failed read of the file.
 */
int   umm_prefault(void *addr, size_t length, int prot);

/*
 * The program's file I/O, by name.  libumm stands in front of the C
 * library's read, write, pread, pwrite, readv, writev, preadv, pwritev (and
 * the 2 and 64 variants), ftruncate, truncate, open with O_TRUNC,
 * fallocate, fsync, fdatasync, sync_file_range, syncfs, sync,
 * copy_file_range, sendfile and splice, so that for a file libumm has
 * mapped they and the mappings see the same bytes, and so that a buffer in
 * libumm memory needs no umm_prefault() (README, "One file, one truth").
 * UMM_FILEIO=0 in the environment turns that off; these calls do the same
 * by name whatever it says.  Same contract as the calls without umm_.
 */
struct iovec;
ssize_t umm_read(int fd, void *buf, size_t n);
ssize_t umm_write(int fd, const void *buf, size_t n);
ssize_t umm_pread(int fd, void *buf, size_t n, off_t offset);
ssize_t umm_pwrite(int fd, const void *buf, size_t n, off_t offset);
ssize_t umm_readv(int fd, const struct iovec *iov, int iovcnt);
ssize_t umm_writev(int fd, const struct iovec *iov, int iovcnt);
ssize_t umm_preadv(int fd, const struct iovec *iov, int iovcnt, off_t offset);
ssize_t umm_pwritev(int fd, const struct iovec *iov, int iovcnt, off_t offset);
int     umm_ftruncate(int fd, off_t length);
int     umm_fsync(int fd);
int     umm_fdatasync(int fd);

/* Counters.  "faults" counts traps libumm handled, "pages_read" pages filled
 * from files, "pages_written" pages written back to files, "resident" pages
 * resident in this process now.  The rest help tests prove nothing leaked. */
struct umm_stats {
    uint64_t faults;        /* traps handled */
    uint64_t pages_read;    /* pages filled from files */
    uint64_t pages_written; /* pages written back to files */
    uint64_t resident;      /* pages resident in this process now */
    uint64_t frames;        /* frames (pages of libumm's RAM) in use */
    uint64_t mappings;      /* libumm mappings (VMAs) in this process */
    uint64_t files;         /* files in the page cache */
    uint64_t cow_copies;    /* copy-on-write copies made */
    uint64_t signals;       /* SIGSEGV/SIGBUS passed on to the program */
    uint64_t host_maps;     /* host kernel mappings libumm's pages take now
                               (kept under UMM_MAP_BUDGET) */
    /* Reclaim (the memory budget, UMM_RAM): */
    uint64_t budget;        /* pages libumm's frames are kept under */
    uint64_t frames_high;   /* the most frames in use seen so far */
    uint64_t reclaimed;     /* frames reclaim gave back (this process) */
    uint64_t reclaim_written; /* of them, dirty pages written back first */
    uint64_t swapped_out;   /* pages written to the swap file (this process) */
    uint64_t swapped_in;    /* pages read back from it (this process) */
    uint64_t swap_used;     /* pages in the swap file now (the fork family) */
    uint64_t frames_pooled; /* pages let go and kept for the next allocation,
                               not given back yet (the fork family) */
};
int   umm_stats(struct umm_stats *out);

/*
 * umm_handle_fault: for programs that install their own SIGSEGV handler
 * after libumm.  Call it first from that handler with the handler's three
 * arguments; it returns non-zero when the fault was libumm's and has been
 * handled (return from your handler and the access runs again), 0 when the
 * fault is not libumm's to handle.
 */
int   umm_handle_fault(int sig, siginfo_t *si, void *uctx);

/*
 * Tracing, to watch the kernel in the process work.  While tracing is on,
 * every trap libumm handles is recorded in a ring of the last 4096 events,
 * which umm_trace_read() drains (oldest first); so is every run of pages
 * reclaim takes away (UMM_TRACE_RECLAIM, not a trap).  Recording costs two
 * clock reads per trap; it is off until umm_trace(1), or from start-up
 * with UMM_TRACE_FILE=path in the environment (the events then go to that
 * file at exit, for umm-trace(1) to draw).
 */
enum umm_trace_kind {
    UMM_TRACE_FILL,     /* read from the file into the page cache, installed */
    UMM_TRACE_CACHED,   /* already in the page cache: installed, no read */
    UMM_TRACE_ZERO,     /* anonymous memory: a zero page installed */
    UMM_TRACE_COW,      /* write to a private page: copied (copy-on-write) */
    UMM_TRACE_DIRTY,    /* first write to a clean shared page: marked dirty */
    UMM_TRACE_SIGBUS,   /* beyond the end of the file: SIGBUS for the program */
    UMM_TRACE_SPURIOUS, /* another thread had already handled it */
    /* Since libtool interface 2 (libumm.so.1.1): */
    UMM_TRACE_SWAPIN,   /* a reclaimed private or shared anonymous page read
                           back from the swap file, installed */
    UMM_TRACE_RECLAIM   /* not a trap: reclaim took pages [addr, addr +
                           pages) away (addr NULL: page-cache pages no
                           mapping showed; file_offset says which) */
};
struct umm_trace_event {
    void *addr;            /* the faulting address */
    int write;             /* 1 for a write access */
    int kind;              /* enum umm_trace_kind */
    uint64_t file_offset;  /* for FILL and CACHED: file offset of the page */
    uint32_t pages;        /* pages installed (read-ahead makes it > 1) */
    uint64_t nsec;         /* time spent handling the trap */
    /* Since libtool interface 2 (libumm.so.1.1): */
    uint64_t when_ns;      /* CLOCK_MONOTONIC when the trap came */
    uint64_t resident;     /* pages resident in this process after it */
    uint64_t frames;       /* libumm's frames in use after it (umm_stats) */
};
int    umm_trace(int on);   /* returns the previous setting */
/* The symbol is umm_trace_read2: programs built against interface 1 call
 * umm_trace_read with the shorter event (no when_ns, resident, frames) and
 * still get that, and only the kinds they knew. */
#define umm_trace_read umm_trace_read2
size_t umm_trace_read(struct umm_trace_event *events, size_t max);

/* umm_shutdown: write back every dirty shared page now (it also happens at
 * exit).  Returns 0, or -1 with errno of the first failed write. */
int   umm_shutdown(void);

/*
 * Pagers: mappings whose pages come from a store the program provides
 * (umm_pager(3)).  The program gives callbacks; libumm gives a mapping whose
 * pages behave as a file's: MAP_SHARED (dirty pages written back through
 * writeback) or MAP_PRIVATE (copy-on-write), msync, madvise, fork, and
 * reclaim under UMM_RAM (dirty pages written back, clean ones dropped and
 * filled again at the next touch), so the mapping may be far larger than
 * the memory budget.  Offsets and lengths are whole pages of the store.
 *
 * The callbacks run on libumm's pager thread, one at a time, while the
 * thread that needs the pages waits.  They may block, allocate, do I/O
 * (their file I/O goes straight to the C library, not through libumm's
 * page cache: do not also map a store file with umm_mmap);
 * they must not touch libumm memory (any umm_mmap mapping), call umm_*
 * functions, or take a lock the program may hold while it touches the
 * mapping.  After fork each process calls its own copy of the callbacks
 * and cookie (README, "Pagers").
 */
struct umm_pager_ops {
    /* Put the store's bytes [off, off+len) in buf.  Returns len, or fewer
     * (the rest reads as zeros, as past the end of a file), or a negative
     * errno: the access that needed the page gets SIGBUS. */
    ssize_t (*fill)(void *cookie, off_t off, void *buf, size_t len);
    /* Store [off, off+len) from buf.  Returns 0 or a negative errno (the
     * pages stay dirty; msync fails with EIO).  NULL: a read-only store
     * (MAP_SHARED with PROT_WRITE fails with EACCES). */
    int (*writeback)(void *cookie, off_t off, const void *buf, size_t len);
    /* Optional: the store's size in bytes, asked at umm_mmap_pager and at
     * msync(MS_INVALIDATE); pages wholly past it raise SIGBUS.  NULL: no end. */
    uint64_t (*size)(void *cookie);
    /* Optional: make what writeback stored durable (msync MS_SYNC).  0 or
     * a negative errno. */
    int (*sync)(void *cookie);
    /* Optional: the last mapping of (ops, cookie) in this process is gone,
     * its dirty pages written back. */
    void (*release)(void *cookie);
};
/* Map [offset, offset+length) of the store (ops, cookie); same flags as
 * umm_mmap (MAP_SHARED or MAP_PRIVATE, MAP_FIXED, MAP_POPULATE...; not
 * MAP_ANONYMOUS).  Mappings of the same ops->fill and cookie share one
 * page cache, as mappings of one file do.  MAP_FAILED with errno: EINVAL
 * (no ops or fill, offset not page aligned, MAP_ANONYMOUS), EACCES
 * (MAP_SHARED, PROT_WRITE, no writeback), or umm_mmap's errors. */
void *umm_mmap_pager(void *addr, size_t length, int prot, int flags, const struct umm_pager_ops *ops,
                     void *cookie, off_t offset);

/*
 * Dirty-page tracking (umm_dirty(3)), the kernel's soft-dirty bits: which
 * pages of [addr, addr+length) were written since the last clear (or since
 * they were mapped).  vec (may be NULL) gets one byte per page, 1 if
 * written.  With UMM_DIRTY_CLEAR the pages are then write-protected, so the
 * next store to each traps once and marks it again.  Never a false
 * negative; a page made writable without a store (a private page first
 * read after a clear, a swapped page brought back) may be reported.
 * Returns the number of pages reported, or -1 with errno: EINVAL (addr not
 * aligned, unknown flags), ENOMEM (part of the range is not a libumm mapping).
 */
#define UMM_DIRTY_CLEAR 1
long umm_dirty(void *addr, size_t length, unsigned char *vec, int flags);

#ifdef __cplusplus
}
#endif

#endif /* UMM_H */
