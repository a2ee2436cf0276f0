/*
 * umm-int.h: libumm's internal structures and the prototypes that tie the
 * pieces together.  Every internal name starts with umm__.
 *
 * The pieces (doc/DESIGN.md) and their files, top to bottom: a piece calls
 * only pieces below it (tests/test-layers.sh).
 *   fileio.c     the program's read()/write(): one truth with the mappings
 *   softdirty.c  umm_dirty: pages written since the last clear
 *   mman.c       system-call layer: argument checks, locks, errno
 *   init.c       start-up, statistics, write-back at exit
 *   trap.c       the SIGSEGV handler: decode, ask fault.c, return or chain
 *   signals.c    the program's signal handlers, crash write-back
 *   fork.c       fork's copy-on-write bookkeeping (atfork handlers)
 *   daemon.c     the background loop (libuv): write-back, kswapd
 *   kvma.c       the kernel's VMAs, as /proc/self/maps would show them
 *   fault.c      the state machine of a page
 *   vmscan.c     reclaim: the memory budget and the host's map count
 *   pagecache.c  one object per file; fill (pread) and write-back (pwrite)
 *   pager.c      the program's pagers, on a thread of libumm's
 *   locks.c      libumm's descriptors never drop the program's POSIX locks
 *   vma.c        the address space: VMAs, software page tables, rmap
 *   mapcount.c   the host's map count, kept exactly
 *   fdtable.c    which file each descriptor is
 *   trace.c      the trace ring
 *   frame.c      physical memory: the memfd, the direct map, descriptors
 *   swap.c       the swap file
 *   kmem.c       libumm's own memory: a region of its own for its structures
 *   mm.c         the address-space lock, the daemon's doorbells
 *   host.c       the C library's own calls, libumm's descriptors, bit locks
 *
 * Lock order: umm__mm.lock (rwlock; faults read, calls write) -> a PTE's
 * lock bit -> a frame's lock bit -> the RAM allocator's lock.  The map
 * count's lock (mapcount.c) and kmem.c's are innermost too: nothing is
 * taken under them.
 * Nothing that holds one of these touches a program's mapped page: libumm
 * reads and writes frames only through the direct map, so it can never
 * fault on its own memory while holding a lock.
 */
#ifndef UMM_INT_H
#define UMM_INT_H

#include "config.h"

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/types.h>

#include "umm.h"

#define UMM_PAGE_SHIFT 12
#define UMM_PAGE_SIZE ((size_t)1 << UMM_PAGE_SHIFT)
#define UMM_PAGE_MASK (~(uintptr_t)(UMM_PAGE_SIZE - 1))
#define UMM_PAGE_ALIGNED(x) ((((uintptr_t)(x)) & (UMM_PAGE_SIZE - 1)) == 0)

/* A broken invariant stops everything: it is a bug in libumm. */
#define umm__assert(cond)                                                    \
    do {                                                                     \
        if (!(cond))                                                         \
            umm__panic(__FILE__, __LINE__, #cond);                           \
    } while (0)
void umm__panic(const char *file, int line, const char *what) __attribute__((noreturn));

/* ---------------------------------------------------------------- trace.c */
uint64_t umm__now_ns(void);
int umm__tracing(void);
/* The trap handled a fault at addr from t0 on: what umm__note says. */
void umm__trace_fault(uintptr_t addr, uint64_t t0);
/* Reclaim took pages [addr, addr + pages) away (addr 0: page-cache pages
 * no mapping showed, at file page fpage): a trace event if tracing. */
void umm__trace_reclaim(uintptr_t addr, uint64_t fpage, uint64_t pages);
/* The process is ending: the trace ring's addresses are not pointers any
 * more, for memcheck's leak check (vg.h). */
void umm__trace_vg_exit(void);
/* UMM_TRACE_FILE: record from start-up (init.c), write the file at exit
 * (its header names the memory budget). */
void umm__trace_file_init(void);
void umm__trace_file_write(uint64_t budget);

/* ------------------------------------------------------------------- mm.c */
struct umm__mm {
    pthread_rwlock_t lock;
    struct umm__vma **vmas;       /* sorted by start, disjoint */
    size_t nvmas, capvmas;
    struct umm__object *objects;
    _Atomic uint64_t faults, pages_read, pages_written, resident, cow_copies, signals;
    _Atomic uint64_t nobjects;
    int forked;                   /* this process forked, or was forked (fork.c) */
    int let_go;                   /* dying, it let go of what it shares (fork.c): nothing more to do */
    pid_t pid;                    /* whose structures these are (not a vfork child's) */
    _Atomic(void *) bell[4];      /* the daemon's uv_async_t handles while it runs (daemon.c) */
    uintptr_t vg_next_hint;       /* under Valgrind, where mman.c places the next mapping */
};
extern struct umm__mm umm__mm;

/* Enter and leave a call: block signals (so a handler of the program that
 * touches a mapping cannot fault in while this thread holds the lock) and
 * take the address-space lock for writing. */
void umm__enter(sigset_t *saved);
void umm__leave(const sigset_t *saved);

/* Wake the daemon (mm.c): write back soon (msync MS_ASYNC, a parked
 * descriptor to retry), or reclaim in the background (vmscan.c). */
enum umm__bell { UMM__BELL_FLUSH, UMM__BELL_RECLAIM, UMM__BELL_ZERO, UMM__BELL_READAHEAD };
void umm__ring(enum umm__bell b);
int umm__bell_ready(enum umm__bell b); /* is the daemon there to hear it? */

/* ----------------------------------------------------------------- host.c */
/* The C library's own functions, looked up once (dlsym RTLD_NEXT) before
 * main, again on first use if a constructor calls in earlier: fileio.c's
 * wrappers call through them, and every piece's own I/O uses umm__sys_*. */
struct umm__libc {
    ssize_t (*read)(int, void *, size_t);
    ssize_t (*pread)(int, void *, size_t, off_t);
    ssize_t (*readv)(int, const struct iovec *, int);
    ssize_t (*preadv)(int, const struct iovec *, int, off_t);
    ssize_t (*preadv2)(int, const struct iovec *, int, off_t, int);
    ssize_t (*write)(int, const void *, size_t);
    ssize_t (*pwrite)(int, const void *, size_t, off_t);
    ssize_t (*writev)(int, const struct iovec *, int);
    ssize_t (*pwritev)(int, const struct iovec *, int, off_t);
    ssize_t (*pwritev2)(int, const struct iovec *, int, off_t, int);
    int (*ftruncate)(int, off_t);
    int (*truncate)(const char *, off_t);
    int (*fallocate)(int, int, off_t, off_t);
    int (*fsync)(int);
    int (*fdatasync)(int);
    int (*sync_file_range)(int, off_t, off_t, unsigned int);
    int (*syncfs)(int);
    void (*sync)(void);
    ssize_t (*copy_file_range)(int, off_t *, int, off_t *, size_t, unsigned int);
    ssize_t (*sendfile)(int, int, off_t *, size_t);
    ssize_t (*splice)(int, off_t *, int, off_t *, size_t, unsigned int);
    int (*open)(const char *, int, ...);
    int (*openat)(int, const char *, int, ...);
    int (*mkostemp)(char *, int);
    int (*pthread_create)(pthread_t *, const pthread_attr_t *, void *(*)(void *), void *);
};
extern struct umm__libc umm__libc;
void umm__libc_init(void);
#define UMM__LIBC(f) (umm__libc.f ? umm__libc.f : (umm__libc_init(), umm__libc.f))
ssize_t umm__sys_pread(int fd, void *buf, size_t n, off_t off);
ssize_t umm__sys_pwrite(int fd, const void *buf, size_t n, off_t off);
ssize_t umm__sys_read(int fd, void *buf, size_t n);
ssize_t umm__sys_write(int fd, const void *buf, size_t n);
int umm__sys_fallocate(int fd, int mode, off_t off, off_t len);
int umm__sys_fdatasync(int fd);
int umm__sys_ftruncate(int fd, off_t len);
int umm__sys_open(const char *path, int flags, mode_t mode);
int umm__sys_close(int fd);
int umm__sys_fcntl(int fd, int cmd, long arg);
int umm__sys_memfd_create(const char *name, unsigned flags);
int umm__sys_mkostemp(char *tmpl, int flags);
int umm__sys_pthread_create(pthread_t *t, void *(*fn)(void *), void *arg);
ssize_t umm__slurp(const char *path, char *buf, size_t n);
/* A size from the environment ("512M", "2G"); dflt if unset or 0. */
uint64_t umm__parse_size(const char *s, uint64_t dflt);
int umm__zerocopy_default(void);
/* Futex-backed bit locks, usable from the trap (no malloc, no stdio). */
void umm__bitlock(_Atomic uint32_t *word, int shared);
int umm__bittrylock(_Atomic uint32_t *word);
void umm__bitunlock(_Atomic uint32_t *word, int shared);
/* A lock of the fork family's that a dead holder does not keep (host.c):
 * the word holds the holder's process id. */
void umm__ownlock(_Atomic uint32_t *word, uint32_t self);
void umm__ownunlock(_Atomic uint32_t *word);
int umm__pid_gone(uint32_t pid);
/* libumm's own descriptors (host.c): the program's close, close_range,
 * closefrom, dup2 and dup3 leave them alone.  umm__fd_own marks fd (moved
 * above 2) and returns its number; umm__fd_own_number marks one that
 * cannot move; umm__fd_close_own unmarks and closes; umm__fd_disown
 * unmarks one another library closes. */
int umm__fd_own(int fd);
void umm__fd_own_number(int fd);
void umm__fd_disown(int fd);
int umm__fd_close_own(int fd);
int umm__fd_is_own(int fd);
/* The first of libumm's numbers at or above fd, or -1. */
int umm__fd_own_next(unsigned fd);

/* ----------------------------------------------------------------- kmem.c */

/*
 * Memory for libumm's own structures, from a region reserved at start-up
 * and never from the host's free address space or the program's heap, so
 * that none of it lands in a range the program unmapped and may map again
 * with MAP_FIXED (kmem.c).  Zeroed; the caller says the size again to free
 * or grow it.  NULL (ENOMEM) when the region is full.  Callers hold the
 * address-space lock or block signals themselves; never in the trap.
 */
int umm__kmem_init(void);
uint64_t umm__as_room(void); /* what RLIMIT_AS leaves, UINT64_MAX without one */
void *umm__kalloc(size_t n);
void umm__kfree(void *p, size_t n);
void *umm__krealloc(void *p, size_t old, size_t n);
/* Which pages of the region the host ever gave (kmem.c): a walk over a
 * large page table skips those it never did (their entries are all zero)
 * without reading them.  begin with the bytes the walk may cover (small
 * walks do not ask); written() is 1 for a page that may hold a nonzero
 * byte, and for every page where the host will not say. */
struct umm__kscan {
    int fd;
    uintptr_t lo, hi; /* the pages used[] covers */
    uint64_t used[8];
};
void umm__kscan_begin(struct umm__kscan *s, uint64_t bytes);
int umm__kscan_written(struct umm__kscan *s, uintptr_t addr);
void umm__kscan_end(struct umm__kscan *s);

/* ---------------------------------------------------------------- frame.c */

/* A frame is one page of libumm's RAM, the memfd; its number is its page
 * index there.  Frames of one file (or of one private mapping) are
 * allocated as one contiguous range so that neighbouring pages are
 * neighbours in the memfd and the host kernel merges their mappings. */
typedef uint32_t umm__pfn;

/* A frame's descriptor lives in memory shared by every process forked from
 * the program, so that reference counts and page-cache state stay exact
 * across fork. */
struct umm__frame {
    _Atomic uint32_t flags; /* F_* below; the lock bit doubles as futex word */
    /* Private frames: the page-table entries using it, in every process.
     * Page-cache frames: the entries that let the host write it, in every
     * process (kept by umm__mc_update): write-back may call a page clean
     * only when no process can write it without a fault. */
    _Atomic uint32_t ref;
    /* Entries that map it (PRESENT, in every process; umm__mc_update
     * keeps it): reclaim takes a frame's bytes away only at zero. */
    _Atomic uint32_t mapped;
};
#define UMM__F_LOCKED   0x1u /* someone is filling or changing the frame */
#define UMM__F_WAITERS  0x2u /* someone sleeps on the lock (futex) */
#define UMM__F_UPTODATE 0x4u /* page cache: holds the file's bytes */
#define UMM__F_DIRTY    0x8u /* page cache: written, not yet written back */
#define UMM__F_BLOCK    0x10u /* page cache: the file has its blocks (reserved at first write) */
#define UMM__F_SWAPPED  0x20u /* its bytes are in the swap file (vmscan.c), not in RAM */
#define UMM__F_WRITEBACK 0x40u /* page cache: being written to the file outside the mm lock (pagecache.c) */
#define UMM__F_REFAULT  0x80u /* page cache: reclaim evicted this page once (the kernel's workingset
                               * shadow): fault-around mapping it is no read-around hit (fault.c) */

struct umm__ram {
    int fd;                     /* the memfd */
    char *direct;               /* the direct map: the whole memfd, RW (NULL: kmap windows) */
    uint64_t npages;            /* its size in frames */
    struct umm__frame *desc;    /* descriptors, one per frame (shared) */
    struct umm__ramshared *sh;  /* allocator and counters (shared) */
    _Atomic uint32_t *chunkref; /* per chunk: pins + live private frames (shared) */
    uint64_t *host;             /* per chunk, a bit: zero-copy (frame.c's HOST bitmap, shared) */
};
extern struct umm__ram umm__ram;
extern int umm__vg_hg; /* under helgrind or drd: vg.h, frame.c */

int umm__ram_init(void);
/* Reserve a contiguous run of npages frame numbers (holes until touched),
 * pinned once for the caller.  Returns 0 and the first frame in *out, or -1
 * (ENOMEM). */
int umm__ram_alloc(uint64_t npages, umm__pfn *out);
int umm__ram_alloc_filled(uint64_t npages, umm__pfn *out); /* frames a fill overwrites whole */
int umm__ram_warm(umm__pfn first, uint64_t npages); /* taken from the pool, host pages still there */
/* Holders of a run: a forked child pins what its parent held; each process
 * unpins when it lets go (cache: page-cache frames, scrubbed at the last). */
void umm__ram_pin(umm__pfn first, uint64_t npages);
uint32_t umm__ram_unpin(umm__pfn first, uint64_t npages, int cache);
/* Between these two, on one thread, runs that unpin lets go of are given
 * back (punched and freed) together with their neighbours, at the latest
 * at umm__ram_batch_end. */
void umm__ram_batch_begin(void);
void umm__ram_batch_end(void);
/* A private frame's reference count went 0 -> 1 (live) or 1 -> 0 (dead,
 * discarded by the caller): it keeps its chunk while it lives. */
void umm__ram_frames_live(umm__pfn first, uint64_t n);
void umm__ram_frames_dead(umm__pfn first, uint64_t n);
/* Give frames' memory back to the host (they read as zeros afterwards). */
void umm__ram_discard(umm__pfn first, uint64_t npages);
uint64_t umm__ram_frames_in_use(void);
void umm__ram_count(int64_t delta);
void umm__ram_count_cache(umm__pfn pfn, int64_t delta);
/* The pool: page-cache chunks let go are kept (not punched) and handed out
 * again first, zeroed (frame.c).  Drain punches pooled pages (reclaim's
 * first resort; returns how many); zero is the daemon's work; the limit
 * (set by vmscan.c) bounds frames in use plus pooled pages. */
uint64_t umm__ram_pool_drain(uint64_t pages);
int umm__ram_pool_zero(void);
void umm__ram_pool_age(void);
void umm__ram_pool_limit(uint64_t pages);
uint64_t umm__ram_pool_pages(void);

/*
 * kmap: where libumm reads and writes the bytes of frames [pfn, pfn+n).
 * Normally the direct map (no cost).  Under RLIMIT_AS (or UMM_KMAP=1)
 * there is no direct map, whose size would count against the program's
 * limit: frames are mapped into a small window for the time of the access
 * (frame.c), as a 32-bit kernel's kmap does for high memory.  A window
 * holds at most UMM__KMAP_PAGES: callers map long runs in pieces of
 * umm__kmap_span(n) pages.  Every kmap is paired with a kunmap, and the
 * window may not be kept across anything that can fault on libumm memory.
 */
#define UMM__KMAP_PAGES 16u
char *umm__kmap_window(umm__pfn pfn, uint64_t n);
void umm__kunmap_window(char *p, uint64_t n);
void umm__kmap_fork_child(void); /* fork.c: the child's windows are all free */
static inline uint64_t umm__kmap_span(uint64_t n)
{
    return umm__ram.direct || n <= UMM__KMAP_PAGES ? n : UMM__KMAP_PAGES;
}
static inline char *umm__kmap(umm__pfn pfn, uint64_t n)
{
    if (umm__ram.direct)
        return umm__ram.direct + ((uint64_t)pfn << UMM_PAGE_SHIFT);
    return umm__kmap_window(pfn, n);
}
static inline void umm__kunmap(char *p, uint64_t n)
{
    if (!umm__ram.direct)
        umm__kunmap_window(p, n);
}
static inline struct umm__frame *umm__frame(umm__pfn pfn)
{
    return &umm__ram.desc[pfn];
}
/* Is pfn a zero-copy page-cache frame (the file's own page, not memfd
 * bytes)?  Stable while its extent lives.  One bit per 16-frame chunk. */
static inline int umm__frame_host(umm__pfn pfn)
{
    uint64_t c = pfn / 16;
    return (__atomic_load_n(&umm__ram.host[c / 64], __ATOMIC_RELAXED) >> (c % 64)) & 1;
}
void umm__ram_host_set(umm__pfn first, uint64_t npages);
/* Walks over many frames' descriptors: the first frame at or after pfn
 * (below end) whose descriptor may be nonzero.  Descriptors never written
 * are holes of their memfd, zero, and skipped unread (frame.c): reading
 * them would cost the host a page each. */
struct umm__fscan {
    int on;
    umm__pfn lo, hi; /* frames known to lie in data */
};
void umm__fscan_begin(struct umm__fscan *s, uint64_t nframes);
umm__pfn umm__frame_next_used(struct umm__fscan *s, umm__pfn pfn, umm__pfn end);
void umm__frame_lock(umm__pfn pfn);
int umm__frame_trylock(umm__pfn pfn);
void umm__frame_unlock(umm__pfn pfn);

/* Pin a frame while about to map it or while reading it outside its lock:
 * reclaim takes a frame's bytes only when nothing maps or pins it. */
static inline void umm__frame_pin(umm__pfn pfn)
{
    atomic_fetch_add_explicit(&umm__frame(pfn)->mapped, 1, memory_order_relaxed);
}
static inline void umm__frame_unpin(umm__pfn pfn)
{
    atomic_fetch_sub_explicit(&umm__frame(pfn)->mapped, 1, memory_order_release);
}

/* ----------------------------------------------------------------- swap.c */
/* libumm's swap file, indexed by frame number (swap.c). */
int umm__swap_init(void);
int umm__swap_reserve(umm__pfn pfn, uint64_t n);
int umm__swap_rw(int write, char *mem, uint64_t len, uint64_t off);
/* Frames to and from their slots (frame.c: through kmap windows). */
int umm__swap_out(umm__pfn pfn, uint64_t n);
int umm__swap_in(umm__pfn pfn);
void umm__swap_forget(umm__pfn pfn, uint64_t n);
uint64_t umm__swap_used(void);

/* ------------------------------------------------------------ pagecache.c */

/* A run of a file's pages placed contiguously in RAM. */
struct umm__extent {
    uint64_t fpage;  /* first file page */
    uint64_t npages;
    umm__pfn base;   /* frame of fpage */
};

/* One per file (device, inode), shared by every mapping of it; also one per
 * MAP_SHARED|MAP_ANONYMOUS mapping, which is a file without a name. */
struct umm__object {
    struct umm__object *next;     /* umm__mm.objects list */
    dev_t dev;
    ino_t ino;
    int fd;                       /* libumm's own reference; -1 if anonymous */
    int fd_writable;              /* fd may be written (write-back possible) */
    int anon;                     /* shared anonymous memory */
    uint64_t anon_pages;          /* anon: its size, as made (pages past it: SIGBUS, mremap) */
    int multi_move;               /* mremap may move it with other VMAs: 0 unknown, 1 yes, 2 no (mman.c) */
    int refs;                     /* VMAs using the object */
    struct umm__extent *ext;      /* sorted by fpage, disjoint */
    size_t nex, capex;
    struct umm__vma *rmap;        /* VMAs mapping it (reverse map) */
    _Atomic int64_t ndirty;       /* dirty pages (to skip clean objects) */
    _Atomic uint64_t hole_from;   /* no hole in the file before this byte (as far as seen) */
    _Atomic int no_falloc;        /* the file system cannot reserve blocks (fallocate) */
    _Atomic int wb_inflight;      /* write-backs writing outside the mm lock (UMM__WB_UNLOCK) */
    int wb_holds;                 /* references those hold (in refs), under the mm lock */
    _Atomic uint32_t mmap_miss;   /* read-around's misses less hits (fault.c read_around) */
    _Atomic uint64_t size_seen;   /* the file's size as last seen by a fault (umm__object_filepages_hint) */
    _Atomic uint64_t size_gen;    /* the family's size generation then, + 1; 0: not known */
    struct umm__pager *pager;     /* the program's pager (pager.c): I/O through its callbacks; fd -1 */
};

struct umm__object *umm__object_get(int fd, int anon, uint64_t fpage, uint64_t npages, int host, int *err);
/* Make sure frames are placed for [fpage, fpage+npages). */
int umm__object_cover(struct umm__object *obj, uint64_t fpage, uint64_t npages, int host);
void umm__object_put(struct umm__object *obj);
/* Which extent holds file page fpage (-1: none): the object's index of
 * its frames, read by the address space and the map count as well, so
 * here rather than in pagecache.c (calls point down). */
static inline int umm__extent_index(const struct umm__object *obj, uint64_t fpage)
{
    size_t lo = 0, hi = obj->nex;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        const struct umm__extent *e = &obj->ext[mid];
        if (fpage < e->fpage)
            hi = mid;
        else if (fpage >= e->fpage + e->npages)
            lo = mid + 1;
        else
            return (int)mid;
    }
    return -1;
}
/* Frame of a file page; the page must be covered. */
static inline umm__pfn umm__object_pfn(const struct umm__object *obj, uint64_t fpage)
{
    int i = umm__extent_index(obj, fpage);
    umm__assert(i >= 0);
    return obj->ext[i].base + (umm__pfn)(fpage - obj->ext[i].fpage);
}
/* Length of the contiguous run of frames starting at fpage (at most max). */
static inline uint64_t umm__object_run(const struct umm__object *obj, uint64_t fpage, uint64_t max)
{
    int i = umm__extent_index(obj, fpage);
    umm__assert(i >= 0);
    uint64_t left = obj->ext[i].fpage + obj->ext[i].npages - fpage;
    return left < max ? left : max;
}
/* Number of pages of the file (rounded up); anonymous objects: unlimited. */
uint64_t umm__object_filepages(struct umm__object *obj, uint64_t *size_out);
/* The same as last seen, without an fstat while nothing in the family
 * shrank a file since (the fault path: a page at or past that end, or a
 * short read, asks the file again); write-back keeps the exact one. */
uint64_t umm__object_filepages_hint(struct umm__object *obj, uint64_t *size_out);
/* A file of the family shrank (or moved its bytes): every size seen goes. */
void umm__pagecache_size_changed(void);
/* Fill [fpage, fpage+n) whose frames the caller has locked; returns 0 or
 * an errno.  Bytes past the end of the file read as zeros. */
int umm__object_read(struct umm__object *obj, uint64_t fpage, uint64_t n, uint64_t fsize);
/* A shared page is about to become dirty: make sure the file has its
 * blocks, as the kernel's page_mkwrite does, so that a full file system
 * fails the store (0, or ENOSPC / EDQUOT: SIGBUS) and not the write-back. */
int umm__object_reserve(struct umm__object *obj, uint64_t fpage, umm__pfn pfn);
/* Write back dirty pages in [fpage, fpage+n): write-protect them in every
 * mapping, then pwrite runs.  Returns 0 or the first errno. */
int umm__object_writeback(struct umm__object *obj, uint64_t fpage, uint64_t n, int how);
/* how: UMM__WB_SYNC fdatasyncs after; UMM__WB_UNLOCK lets umm__mm.lock
 * (held for writing) go around each pwrite, so that faults elsewhere go on
 * (the kernel's msync lets mmap_lock go around the I/O too).  With
 * UMM__WB_UNLOCK the caller must look its VMAs up again afterwards, and
 * obj itself may be gone (its last mapping unmapped meanwhile) unless the
 * caller holds a reference of its own. */
#define UMM__WB_SYNC 1
#define UMM__WB_UNLOCK 2
/* A truncation is about to change the file: wait (lock held for writing)
 * until no write-back of obj is in flight outside the lock. */
void umm__object_writeback_quiesce(struct umm__object *obj);
/* munmap: wait (the lock let go meanwhile) until no object that lost its
 * last mapping is kept alive by another thread's write-back. */
void umm__object_wait_unmapped(void);
/* In a forked child: drop the holds of write-backs left in the parent. */
void umm__object_fork_child(void);
/* Reclaim: the frames of [fpage, fpage+n), up to date, locked by the
 * caller, mapped and pinned by nobody: write the dirty ones back, then
 * give their memory back (discard 0: the caller does, before it lets the
 * frames' locks go).  Returns 0, or an errno (nothing dropped). */
int umm__object_evict(struct umm__object *obj, uint64_t fpage, uint64_t n, int discard);
/* Drop clean pages in [fpage, fpage+n) from every mapping and the cache. */
void umm__object_drop(struct umm__object *obj, uint64_t fpage, uint64_t n);
/* The same for msync(MS_INVALIDATE): files only. */
void umm__object_invalidate(struct umm__object *obj, uint64_t fpage, uint64_t n);
/* MADV_REMOVE's zeros, after fork (the frames may be mapped elsewhere). */
void umm__object_punch(struct umm__object *obj, uint64_t fpage, uint64_t n);
/* Every dirty page of obj, or of every file. */
int umm__object_writeback_all(struct umm__object *obj, int how);
int umm__writeback_all(int how);
/* The same at exit or on a fatal signal: a file whose pages could not be
 * written is named on stderr (async-signal-safe). */
void umm__writeback_final(void);
/* A hole was punched at byte off: blocks from there need reserving again. */
void umm__object_hole(struct umm__object *obj, uint64_t off);
int umm__object_may_be_dirty(const struct umm__object *obj);
/* The family's index of page-cache extents (shared memory, made at start). */
int umm__pagecache_init(void);
/* Let go of one of obj's extents (the last process out frees it). */
void umm__extent_release(struct umm__object *obj, struct umm__extent *e);

/* A page-cache object whose store is the program's pager (pager.c): made
 * by umm_mmap_pager, shared by mappings of the same ops and cookie. */
struct umm__object *umm__object_pager(const struct umm_pager_ops *ops, void *cookie, uint64_t fpage,
                                      uint64_t npages, int *err);

/* ----------------------------------------------------------------- pager.c */
/* The program's pager: its callbacks, run on the pager thread with the
 * caller waiting.  Each returns 0 or an errno (fill zero-fills what the
 * store did not give). */
struct umm__pager {
    struct umm_pager_ops ops;
    void *cookie;
    uint64_t size; /* bytes, from ops.size; at most (no end): */
    pid_t owner;   /* the process that mapped it: only its write-back cleans pages */
};
#define UMM__PAGER_NOEND ((uint64_t)1 << 60) /* far enough, and no sum with it wraps */
int umm__pager_fill(struct umm__pager *pg, uint64_t off, void *buf, uint64_t len);
int umm__pager_write(struct umm__pager *pg, uint64_t off, const void *buf, uint64_t len);
int umm__pager_sync(struct umm__pager *pg);
void umm__pager_resize(struct umm__pager *pg);
void umm__pager_release(struct umm__pager *pg);
/* Is obj a pager of another process of the family (a copy made by fork)?
 * Its write-back then keeps pages dirty for the owner's store, and its
 * reclaim does not drop dirty pages (pagecache.c). */
int umm__pager_foreign(const struct umm__object *obj);
int umm__pager_running(void); /* the pager thread runs (one more thread, fork.c) */
/* At exit: the pager thread ends (joined); callbacks then run in the caller. */
void umm__pager_stop(void);
/* A pager's ops and cookie, handed from umm_mmap_pager to umm_mmap (mman.c). */
struct umm__pager_map { const struct umm_pager_ops *ops; void *cookie; };
/* Start the pager thread (outside libumm's locks); 0 or an errno. */
int umm__pager_start(void);

/* ---------------------------------------------------------------- locks.c */
/* Close libumm's descriptor of a file, or keep it open (parked) while the
 * process may hold a POSIX lock there: closing would drop the lock. */
void umm__file_close(int fd, int writable, dev_t dev, ino_t ino);
/* A parked descriptor of the file (writable if asked), or -1. */
int umm__file_unpark(dev_t dev, ino_t ino, int writable, int *was_writable);
/* Close the parked descriptors whose files hold no lock of ours now. */
void umm__file_retry(void);

/* The program's file I/O on a file libumm caches (fileio.c): writes go
 * into the frames holding the file's bytes, reads get dirty frames' bytes,
 * bytes changed behind the cache are read again, truncation takes pages
 * past the end out of this process's mappings.  umm__mm.lock held (for
 * writing: umm__cache_truncated).  obj: this process's object, or NULL
 * (after fork the family's frames are found by dev and ino). */
struct iovec;
int umm__pagecache_files(void);
int umm__pagecache_maybe(dev_t dev, ino_t ino);
struct umm__object *umm__object_find(dev_t dev, ino_t ino);
void umm__cache_write(struct umm__object *obj, dev_t dev, ino_t ino, uint64_t off, const struct iovec *iov,
                      int iovcnt, uint64_t len);
void umm__cache_read(struct umm__object *obj, dev_t dev, ino_t ino, uint64_t off, const struct iovec *iov,
                     int iovcnt, uint64_t len);
void umm__cache_reread(struct umm__object *obj, dev_t dev, ino_t ino, int fd, uint64_t off, uint64_t len);
void umm__cache_truncated(struct umm__object *obj, dev_t dev, ino_t ino, uint64_t size);

/* -------------------------------------------------------------- fdtable.c */
/* The identity of fd's file: 1 (regular, *dev and *ino), 0 (not a regular
 * file) or -1 (fstat failed), remembered while the number stays the same
 * description; umm__fd_changed: a call closed or handed out number fd. */
int umm__fd_identity(int fd, dev_t *dev, ino_t *ino);
void umm__fd_changed(int fd);
/* O_APPEND of fd, kept with its identity (fdtable.c); the fcntl wrapper
 * calls umm__fd_flags_changed after every F_SETFL. */
int umm__fd_append(int fd);
void umm__fd_flags_changed(void);

/* --------------------------------------------------------------- fileio.c */

/* ------------------------------------------------------------------ vma.c */

/* A software page-table entry.  flags holds the lock bit (a futex word);
 * pfn is the frame when P_PRESENT. */
struct umm__pte {
    _Atomic uint32_t flags;
    umm__pfn pfn;
};
#define UMM__P_LOCKED  0x1u  /* a fault is working on this page */
#define UMM__P_WAITERS 0x2u
#define UMM__P_PRESENT 0x4u  /* installed: the host maps pfn here */
#define UMM__P_WRITE   0x8u  /* the host may write (dirty, or private and ours) */
#define UMM__P_ANON    0x10u /* pfn is a private frame counted in its ref */
#define UMM__P_SIGBUS  0x20u /* beyond EOF: host maps the empty memfd (trap.c) */
#define UMM__P_NOSPACE 0x40u /* armed for a store the file system had no room for:
                              * the next SIGBUS is the program's (trap.c) */
#define UMM__P_GUARD   0x80u /* MADV_GUARD_INSTALL: never present, every touch SIGSEGV */
#define UMM__P_OLD     0x100u /* present, but the host's access taken away to see whether
                               * it is used again (reclaim's reference bit, vmscan.c) */
#define UMM__P_SOFTDIRTY 0x200u /* written since the program's last umm_dirty(CLEAR): set
                                 * when WRITE is taken away (mapcount.c; softdirty.c) */

/* Page tables are allocated with the mapping (never in the trap), from
 * libumm's own region (kmem.c: memory only for the entries written), and
 * shared by the halves of a split VMA. */
struct umm__ptes {
    int refs;
    uint64_t n;
    struct umm__pte *pte;
};

/* Private frames of a private mapping: a contiguous range of RAM, page i of
 * the mapping at base + i, shared by the halves of a split VMA. */
struct umm__anon {
    int refs;
    uint64_t npages;
    umm__pfn base;
    int fork_resv;            /* fork_base holds fresh ranges for a fork */
    umm__pfn fork_base[2];    /* the parent's and the child's (fork.c) */
    int let_go;               /* a dying process gave it up (fork.c) */
};

#define UMM__V_SHARED   0x1  /* MAP_SHARED */
#define UMM__V_MAYWRITE 0x2  /* PROT_WRITE may be granted (fd mode) */
#define UMM__V_MAYEXEC  0x4  /* PROT_EXEC may be granted (not noexec) */
#define UMM__V_DEVZERO  0x8  /* MAP_PRIVATE of /dev/zero: anonymous, yet it has a file */
#define UMM__V_DONTFORK 0x10 /* MADV_DONTFORK: not in a child of fork */
#define UMM__V_WIPEONFORK 0x20 /* MADV_WIPEONFORK: zeros in a child of fork */
#define UMM__V_OWN 0x40      /* libumm's own (umm__own_mmap): no memcheck block */
#define UMM__V_LOCKED 0x80    /* MAP_LOCKED: resident from the start, never released (VM_LOCKED) */
/* Advice libumm has no use for but that the kernel keeps in the VMA's flags
 * (VM_DONTDUMP, VM_HUGEPAGE, VM_NOHUGEPAGE, VM_MERGEABLE): it splits VMAs
 * there, and mremap may not cross such a split (same_mapping, mman.c). */
#define UMM__V_DONTDUMP 0x100
#define UMM__V_HUGEPAGE 0x200
#define UMM__V_NOHUGEPAGE 0x400
#define UMM__V_MERGEABLE 0x800
/* Flags of the kernel's VMAs that only tell VMAs apart (kvma.c): VM_ACCOUNT
 * (charged to the commit limit) and VM_NORESERVE (MAP_NORESERVE). */
#define UMM__V_ACCOUNT 0x1000
#define UMM__V_NORESERVE 0x2000
/* Zero-copy (UMM_MAP_ZEROCOPY, UMM_ZEROCOPY=1): extents this VMA places are
 * the host's page cache of the file (umm__frame_host). */
#define UMM__V_ZEROCOPY 0x4000

/* A stream of sequential faults in a VMA, for read-ahead (fault.c): the
 * page its next fault is expected at, and the window it has grown to.
 * Several per VMA, as threads (or one program's cursors) read different
 * parts of one mapping; written by faults without a lock (a lost update
 * costs a smaller window). */
#define UMM__RA_STREAMS 4
struct umm__ra {
    _Atomic uint64_t next;        /* page expected next; UINT64_MAX: none */
    _Atomic uint32_t win;         /* current window, in pages */
    _Atomic uint32_t used;        /* ra_clock when a fault last matched or started it */
};

struct umm__vma {
    uintptr_t start, end;
    int prot;                     /* as the program asked (PROT_*) */
    int vflags;                   /* UMM__V_* */
    struct umm__object *obj;      /* file or shared anonymous; NULL: private anon */
    uint64_t fpage;               /* object page of start */
    struct umm__anon *anon;       /* private mappings: where copies go */
    uint64_t anon_off;            /* page of start within anon */
    struct umm__ptes *ptes;
    uint64_t pte_off;             /* entry of start within ptes */
    struct umm__vma *rnext, *rprev; /* object's reverse map */
    uintptr_t block;              /* memcheck: where the block this VMA is part of starts (vg.h); 0 if V_OWN */
    int advice;                   /* MADV_NORMAL, _RANDOM, _SEQUENTIAL */
    struct umm__ra ra[UMM__RA_STREAMS]; /* read-ahead, a state per stream (fault.c) */
    _Atomic uint32_t ra_clock;    /* read-ahead: ticks at each fault that asks, for ra[].used */
    /* The kernel's VMA this one is part of (kvma.c): neighbours with the
     * same kid are one VMA to the kernel. */
    uint64_t kid;
    _Atomic uint64_t kanon;       /* its anon_vma: 0 none (set at a fault, under the lock for reading) */
    uint64_t kpg;                 /* private anonymous: its vm_pgoff, less anon_off */
    int kfile;                    /* the descriptor mapped (the kernel's struct file), or -1 */
    int kold_prot, kold_vflags, kold_advice; /* before a change of flags */
};

/* No stream yet: a new VMA, or one whose pages were renumbered (a split). */
static inline void umm__vma_ra_reset(struct umm__vma *v)
{
    for (int i = 0; i < UMM__RA_STREAMS; i++) {
        atomic_store(&v->ra[i].next, UINT64_MAX);
        atomic_store(&v->ra[i].win, 1);
        atomic_store(&v->ra[i].used, 0);
    }
    atomic_store(&v->ra_clock, 0);
}

static inline uint64_t umm__vma_pages(const struct umm__vma *v)
{
    return (v->end - v->start) >> UMM_PAGE_SHIFT;
}
static inline struct umm__pte *umm__vma_pte(const struct umm__vma *v, uint64_t page)
{
    return &v->ptes->pte[v->pte_off + page];
}
/* Walks over many entries: the first page at or after p (below to) whose
 * entry may be nonzero -- entries whose page-table memory the host never
 * gave are zero, and are skipped unread (kmem.c).  Asked where p starts a
 * page of entries, or at a walk's first entry. */
static inline int umm__pte_page_start(const struct umm__vma *v, uint64_t page)
{
    return ((uintptr_t)umm__vma_pte(v, page) & (UMM_PAGE_SIZE - 1)) == 0;
}
static inline uint64_t umm__pte_next(const struct umm__vma *v, uint64_t p, uint64_t to, struct umm__kscan *s)
{
    while (p < to && s->fd >= 0) {
        uintptr_t a = (uintptr_t)umm__vma_pte(v, p);
        if (umm__kscan_written(s, a))
            return p;
        p += (UMM_PAGE_SIZE - (a & (UMM_PAGE_SIZE - 1))) / sizeof(struct umm__pte);
    }
    return p < to ? p : to;
}
static inline umm__pfn umm__vma_anon_pfn(const struct umm__vma *v, uint64_t page)
{
    return v->anon->base + (umm__pfn)(v->anon_off + page);
}
/* Does an entry with flags f let the host write a page-cache frame?  Such
 * entries are counted in the frame's ref in every process (struct
 * umm__frame): what write-back asks before it calls a page clean. */
static inline int umm__pte_writes_cache(const struct umm__vma *v, uint32_t f)
{
    return v->obj && (f & (UMM__P_PRESENT | UMM__P_WRITE | UMM__P_ANON | UMM__P_SIGBUS)) ==
                         (UMM__P_PRESENT | UMM__P_WRITE);
}
/* The protection the host should give a page of v whose entry has flags f
 * now (the map count reads it too: inline, calls point down). */
static inline int umm__host_prot(const struct umm__vma *v, uint32_t f)
{
    if (!(f & UMM__P_PRESENT) || (f & UMM__P_OLD)) /* OLD: reclaim watches for a touch */
        return PROT_NONE;
    int prot = v->prot & (PROT_READ | PROT_WRITE | PROT_EXEC);
    if (prot & PROT_WRITE)
        prot |= PROT_READ; /* as on x86: write implies read */
    if (!(f & UMM__P_WRITE))
        prot &= ~PROT_WRITE;
    return prot;
}

/* The set of VMAs, sorted by start (umm__mm.vmas), looked up under the
 * address-space lock: first index whose VMA ends after addr. */
static inline size_t umm__vma_index(uintptr_t addr)
{
    size_t lo = 0, hi = umm__mm.nvmas;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (umm__mm.vmas[mid]->end <= addr)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}
static inline struct umm__vma *umm__vma_find(uintptr_t addr)
{
    size_t i = umm__vma_index(addr);
    return i < umm__mm.nvmas && umm__mm.vmas[i]->start <= addr ? umm__mm.vmas[i] : NULL;
}
/* First VMA that ends after addr, or NULL. */
static inline struct umm__vma *umm__vma_next(uintptr_t addr, size_t *index)
{
    size_t i = umm__vma_index(addr);
    if (index)
        *index = i;
    return i < umm__mm.nvmas ? umm__mm.vmas[i] : NULL;
}
static inline struct umm__vma *umm__vma_at(size_t index)
{
    return index < umm__mm.nvmas ? umm__mm.vmas[index] : NULL;
}
static inline size_t umm__vma_count(void)
{
    return umm__mm.nvmas;
}
struct umm__vma *umm__vma_new(uintptr_t start, uintptr_t end);
int umm__vma_insert(struct umm__vma *v);
/* Might [p, p+len) meet a libumm VMA?  0 is sure; lock not needed. */
int umm__vma_maybe_ours(const void *p, size_t len);
/* Give v a private frame range of its own (private mappings). */
int umm__vma_new_anon(struct umm__vma *v);
/* mremap: move v to start at to (free of VMAs, reserved on the host). */
int umm__vma_move(struct umm__vma *v, uintptr_t to);
/* Host-map all of v as its entries say (resident pages to their frames). */
int umm__vma_host_map_entries(struct umm__vma *v);
/* Free a VMA that was never inserted. */
void umm__vma_discard(struct umm__vma *v);
/* Split the VMA containing addr so that a VMA starts at addr. */
int umm__vma_split(uintptr_t addr);
/* Release the pages [from, to) of v: frames, resident counts; no I/O. */
void umm__vma_release_pages(struct umm__vma *v, uint64_t from, uint64_t to);
/* Let go of a private range's frames (vma.c; fork.c when a process dies). */
void umm__anon_unpin(struct umm__anon *a);
/* Remove v from the set, free it (pages must be released). */
void umm__vma_destroy(struct umm__vma *v);
/* Re-apply host protections to every page of v (after prot changes). */
int umm__vma_reprotect(struct umm__vma *v, uint64_t from, uint64_t to);
/* Host-map [start, end) of v to its frames, PROT_NONE (nothing resident). */
int umm__vma_host_map(struct umm__vma *v, uintptr_t start, uintptr_t end);
void umm__rmap_add(struct umm__object *obj, struct umm__vma *v);
void umm__rmap_del(struct umm__object *obj, struct umm__vma *v);
/* Give v protection prot (PROT_*) and re-apply host protections. */
int umm__vma_set_prot(struct umm__vma *v, int prot);
/* mprotect(2) of pages whose entries the caller holds; when the host's map
 * count is full (ENOMEM), release pages elsewhere and try again. */
int umm__host_mprotect(void *addr, size_t len, int prot);
/* mmap(2) frames pfn.. at addr (MAP_FIXED, shared), likewise. */
int umm__host_map_frames(void *addr, size_t len, int prot, umm__pfn pfn);
/* ... and populate them in the same call (pages about to be touched). */
int umm__host_map_frames_now(void *addr, size_t len, int prot, umm__pfn pfn);
/* The same for any file (the SIGBUS memfd): see vma.c. */
int umm__host_map(void *addr, size_t len, int prot, int fd, off_t off);

/* Map page `page` of v to an empty memfd, so that the program's next access
 * raises a real SIGBUS; 0 or -1.  The page's entry is held.  The memfd is
 * made at start-up (umm__sigbus_init). */
int umm__arm_sigbus(struct umm__vma *v, uint64_t page);
int umm__sigbus_init(void);
/* The process is ending: under Valgrind, hand the mappings still alive to
 * memcheck's leak check (vg.h).  Nothing may use them afterwards but the
 * retry of a fatal fault at fault (0: none). */
void umm__vg_exit(uintptr_t fault);

/* --------------------------------------------------------------- vmscan.c */
/* Reclaim: keep libumm's frames under the memory budget (vmscan.c). */
void umm__vmscan_init(void);
uint64_t umm__budget(void);
/* The largest read-ahead window, in pages: a 64th of the budget, 32 to 512. */
uint64_t umm__window_max(void);
/* Room for n more frames below the daemon's wake-up mark? */
int umm__reclaim_room(uint64_t n);
/* A fault is about to take up to n new frames: reclaim first if that
 * would pass the budget.  The mm lock is held (read or write). */
void umm__reclaim_before(uint64_t n);
/* The daemon's share: age and reclaim ahead of need.  mm lock held. */
int umm__reclaim_background(void); /* 1: run it again a little later */
/* MADV_COLD (deactivate) and MADV_PAGEOUT (reclaim now) on pages
 * [from, to) of v.  mm lock held. */
void umm__reclaim_range(struct umm__vma *v, uint64_t from, uint64_t to, int pageout);
struct umm__reclaim_stats {
    uint64_t budget, high_water, reclaimed, written, swapped_out, swapped_in, swap_used;
};
void umm__reclaim_stats(struct umm__reclaim_stats *s);
void umm__reclaim_note_swapin(void);

/* The host's map count as a budget (vmscan.c, mapcount.c releasing): 1 if
 * the count is below the budget afterwards. */
int umm__reclaim_host_maps(void);
void umm__reclaim_host_maps_over(void);

/* ------------------------------------------------------------- mapcount.c */

/*
 * The host kernel's map count is a budget (DESIGN.md).  libumm counts the
 * host mappings its pages take, exactly: a page starts a host mapping
 * unless the page before it is libumm's too, with the same host protection
 * and the next frame of the memfd.  So every change of an entry's PRESENT,
 * WRITE, ANON or SIGBUS bit, and of a VMA's protection, goes through here,
 * under the count's lock; frames follow from the bits (an ANON page, or any
 * page of a private anonymous mapping, is on its private frame; any other
 * on its object's frame).
 */
#define UMM__MC_NOLIMIT UINT64_MAX
/* Entries [from, to) of v: clear bits, then set bits, if that leaves the
 * count at most limit (or does not raise it).  Returns 0, or -1 having
 * changed nothing. */
int umm__mc_update(struct umm__vma *v, uint64_t from, uint64_t to, uint32_t set, uint32_t clear,
                   uint64_t limit);
/* Would setting bits of [from, to) leave the floor (the count with every
 * page-cache page released) at most limit (or not raise it)? */
int umm__mc_floor_fits(struct umm__vma *v, uint64_t from, uint64_t to, uint32_t set, uint64_t limit);
void umm__mc_set_prot(struct umm__vma *v, int prot);
void umm__mc_vma_added(struct umm__vma *v);    /* just inserted, nothing resident */
void umm__mc_vma_removing(struct umm__vma *v); /* about to leave the set */
/* Release resident page-cache pages from host mappings, in the count's own
 * clock order, until the count is at most target (reclaim decides when:
 * vmscan.c's umm__reclaim_host_maps). */
void umm__mc_release(uint64_t target);
/* The host refused a mapping (ENOMEM): release all that can be released.
 * Returns 1 if anything was. */
int umm__mc_squeeze(void);
uint64_t umm__mc_count(void);
/* Count again from the entries (fork moved private pages' frames). */
/* fork.c: private entries lose WRITE, the count left to umm__mc_recount. */
void umm__mc_write_protect_forking(struct umm__vma *v, uint64_t from, uint64_t to);
void umm__mc_recount(void);
uint64_t umm__mc_budget(void);

/* ---------------------------------------------------------------- fault.c */

enum umm__fault_result {
    UMM__FAULT_DONE,     /* handled: run the instruction again */
    UMM__FAULT_NOTOURS,  /* no libumm mapping here */
    UMM__FAULT_SEGV,     /* the mapping forbids this access: SIGSEGV (*err
                          * EFAULT: a guard page, SEGV_MAPERR) */
    UMM__FAULT_SIGBUS,   /* beyond the end of the file, or I/O error: the
                          * page is armed, the retry raises SIGBUS */
};
#define UMM__ACC_READ  0
#define UMM__ACC_WRITE 1
#define UMM__ACC_EXEC  2
#define UMM__ACC_GUESS (-1) /* the platform cannot tell */

/* Handle a fault at addr; the caller holds umm__mm.lock for reading. */
enum umm__fault_result umm__fault(uintptr_t addr, int access, int *err);
/* Asynchronous read-ahead (fault.c): the daemon reads the windows streams
 * posted (mm lock held for reading); a fork's child forgets posts half
 * made. */
void umm__readahead_run(void);
void umm__readahead_fork_child(void);
/* Make [start, end) of v resident (and writable if write); mm lock held. */
int umm__populate(struct umm__vma *v, uintptr_t start, uintptr_t end, int write);

/* ----------------------------------------------------------------- kvma.c */
/* Where the kernel's VMAs begin and end: which of libumm's VMAs it would
 * have merged (mremap may not cross the end of one).  The address-space
 * lock is held for writing unless said otherwise. */
int umm__kvma_joined(const struct umm__vma *v, const struct umm__vma *w); /* one kernel VMA? */
/* v is made by mmap (fd: the descriptor, -1 for anonymous memory; flags,
 * offset: mmap's), not inserted yet. */
void umm__kvma_new(struct umm__vma *v, int fd, int flags, uint64_t pgoff);
/* v, just inserted, is a new mapping: merge it as the kernel's mmap would. */
void umm__kvma_mapped(struct umm__vma *v);
/* The kernel split its VMA at addr (what is before addr went away). */
void umm__kvma_cut(uintptr_t addr);
/* Around a change of protection or flags of [start, end) (VMAs split
 * there): before, and after it, as mprotect_fixup and madvise_update_vma. */
void umm__kvma_snapshot(uintptr_t start, uintptr_t end);
void umm__kvma_changed(uintptr_t start, uintptr_t end, int mprotect);
/* The vm_pgoff of v at addr. */
uint64_t umm__kvma_pgoff(const struct umm__vma *v, uintptr_t addr);
/* v (not inserted) continues t's kernel VMA, at vm_pgoff pg. */
void umm__kvma_like(struct umm__vma *v, const struct umm__vma *t, uint64_t pg);
/* v, inserted, grew its kernel VMA in place (vma_merge_extend). */
void umm__kvma_grown(struct umm__vma *v);
/* [start, end) is now a kernel VMA of its own, moved there (copy_vma). */
void umm__kvma_moved(uintptr_t start, uintptr_t end);
/* MREMAP_DONTUNMAP moved [start, end) of the kernel VMA [ks, ke). */
void umm__kvma_dontunmap(uintptr_t start, uintptr_t end, uintptr_t ks, uintptr_t ke);
void umm__kvma_init(void); /* asks the host how read faults behave (init.c) */
/* A fault (write: for writing) was handled in v; the lock is held for
 * reading or writing.  The kernel's anon_vma_prepare(). */
void umm__kvma_faulted(struct umm__vma *v, int write);
/* umm__populate(), and what its faults tell the kernel's VMAs. */
int umm__kvma_populate(struct umm__vma *v, uintptr_t start, uintptr_t end, int write);
/* In a child of fork, as the kernel's anon_vma_fork(). */
void umm__kvma_forked(void);

/* ----------------------------------------------------------------- trap.c */
int umm__trap_init(void);
/* Under Valgrind: are restarted instructions' registers exact?  Says so
 * on stderr, once, when not.  page: two pages of libumm's own (mman.c). */
void umm__trap_selfcheck(char *page);

/* -------------------------------------------------------------- signals.c */
int umm__signals_init(void (*trap)(int, siginfo_t *, void *));
/* The program's own disposition of a signal libumm stands in front of. */
struct sigaction *umm__program_action(int sig);
void umm__signal_default(int sig);
/* Write back every dirty shared page from a fatal signal's handler. */
void umm__crash_writeback(void);
/* From a libumm handler: write back, then let sig's default action end the
 * process (refaults: the fault at fault happens again by itself). */
void umm__signal_die(int sig, int refaults, uintptr_t fault);
/* From a libumm handler: call the program's handler p as the kernel would. */
void umm__signal_deliver(int sig, siginfo_t *si, void *uctx, const struct sigaction *p);
void umm__altstack_ensure(void);
/* fileio.c's section under the address-space lock without blocking signals:
 * 1 if no handler of the program can run (then umm__io_leave() after), 0
 * if the caller must block signals itself. */
int umm__io_enter(void);
void umm__io_leave(void);

/* What the fault stages did, for the tracer: set by fault.c, read by the
 * trap on the same thread (initial-exec TLS: no allocation in the trap). */
struct umm__note {
    int kind;          /* enum umm_trace_kind */
    int write;
    uint64_t fpage;
    uint32_t pages;
};
extern __thread struct umm__note umm__note __attribute__((tls_model("initial-exec")));
/* This thread's file I/O is libumm's own and goes straight to the C
 * library (fileio.c does not stand in front of it): set on the pager
 * thread (pager.c), where the program's callbacks run while the thread
 * that asked may hold the address-space lock, and for a moment while any
 * thread rings the daemon (umm__ring, mm.c: libuv's write() to its
 * eventfd, under the lock held for writing). */
extern __thread int umm__own_io __attribute__((tls_model("initial-exec")));
static inline void umm__noted(int kind, int write, uint64_t fpage, uint64_t pages)
{
    umm__note.kind = kind;
    umm__note.write = write;
    umm__note.fpage = fpage;
    umm__note.pages = (uint32_t)pages;
}

/* ------------------------------------------------------------------ fork.c */
int umm__fork_init(void);
/* umm_fork: reserve what the child needs (0 or -1). */
int umm__fork_reserve(void);
/* Is this the process's only thread (besides libumm's own)? */
int umm__fork_only_thread(void);
/* A process of a fork family dying of a signal lets go of what it shares. */
void umm__fork_let_go(void);
/* ----------------------------------------------------------------- mman.c */
/* A private anonymous read-write mapping of len bytes that is libumm's own
 * (trap.c's start-up check): its pages trap like any other, but memcheck
 * is told of no block for it (vg.h).  NULL if there is no room. */
void *umm__own_mmap(size_t len);
void umm__own_munmap(void *p, size_t len);
/* Start libumm on a call of the program's (init.c, and under Valgrind
 * trap.c's check of its options); 0 or -1 with errno. */
int umm__start(void);

/* --------------------------------------------------------------- daemon.c */
int umm__daemon_start(void);
void umm__daemon_stop(void);
/* Around fork (fork.c): the thread ends before, and starts again after,
 * in the child on a loop given its own kernel objects (uv_loop_fork). */
void umm__daemon_pause(void);
void umm__daemon_resume(int child);
int umm__daemon_running(void);

/* ----------------------------------------------------------------- init.c */

/* ----------------------------------------------------------------- init.c */
/* Start libumm once; returns 0 or -1 with errno. */
int umm__init(void);

#endif
