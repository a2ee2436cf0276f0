/*
 * frame.c: physical memory.
 *
 * libumm's RAM is one memfd.  A frame is a page of it; its number is its
 * page index.  The memfd is sized once (sparse: a page costs memory only
 * when written) and mapped whole, read-write, at the "direct map", through
 * which libumm fills, copies and writes back frames without touching the
 * program's protections.  A page is installed in the program by mapping
 * its frame at the page's address (vma.c) and granting access (fault.c).
 *
 * Frames are handed out in contiguous runs (one run per file, one per
 * private mapping) so that neighbouring pages of a mapping are neighbours
 * in the memfd and the host kernel merges their mappings.  The allocator is
 * a bitmap of 16-page chunks; it, the frame descriptors and the counters
 * live in MAP_SHARED memory so that every process forked from the program
 * sees the same ones.
 *
 * After fork, parent and child hold the same runs (page-cache extents,
 * private ranges) and the same private frames, and either may be the last
 * to let go.  So each chunk counts what keeps it: one pin per process that
 * holds a run covering it, plus one per live private frame in it (a frame
 * whose reference count is above zero).  A chunk returns to the allocator
 * when its count falls to zero, whoever drops it (fork.c).
 */
#include "umm-int.h"
#include "vg.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <linux/futex.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define CHUNK_PAGES 16u /* allocation granule: 64 KiB */

struct umm__ramshared {
    _Atomic uint32_t lock;
    _Atomic int64_t frames_in_use;
    uint64_t nchunks;
    uint64_t hint; /* next-fit: where the last search ended */
    /* The pool (below): chunks let go but not punched. */
    _Atomic int64_t pool_pages;  /* pages of pooled chunks, zeroed or not */
    _Atomic uint64_t pool_cap;   /* frames in use + pooled kept at most this (pages) */
    uint64_t pool_hint;          /* the last run pooled: the warmest */
    uint64_t pool_lo, pool_hi;   /* pooled chunks lie in [pool_lo, pool_hi) */
    _Atomic uint64_t pool_events; /* runs pooled and taken, for the daemon's ageing */
    uint64_t zero_lo, zero_hi;   /* the pooled run a daemon is zeroing now (lo == hi: none) */
    _Atomic uint32_t zero_seq;   /* runs zeroed: a futex for allocations that took part of one */
    int32_t zero_pid;            /* the process whose daemon is zeroing it */
    uint64_t words;              /* 64-bit words of each bitmap */
    /* Four bitmaps of `words` words each, one bit per chunk (the fourth,
     * WARM, below): allocated
     * (pooled chunks count as allocated: the free-run search skips them),
     * pooled, and (for pooled chunks, and for a run just taken from the
     * pool until its new owner zeroed it) holding old bytes. */
    uint64_t bitmap[];
};

/* The allocator's lock, shared by the family: a process that dies holding
 * it (its daemon inside while the program calls _exit) does not keep it
 * (host.c, owned locks).  Its sections change bitmaps and counters only,
 * so one cut short loses chunks at worst: a chunk is marked free only
 * after it is no longer used. */
static void ram_lock(struct umm__ramshared *sh)
{
    umm__ownlock(&sh->lock, (uint32_t)umm__mm.pid);
}

static void ram_unlock(struct umm__ramshared *sh)
{
    umm__ownunlock(&sh->lock);
}

#define POOLED(sh) ((sh)->bitmap + (sh)->words)
#define DIRTY(sh) ((sh)->bitmap + 2 * (sh)->words)
/* A fourth: chunks taken from the pool whose every page the host still
 * holds, mapped in the direct map (a fill need not have it populate
 * them); cleared when any page of the chunk is punched. */
#define WARM(sh) ((sh)->bitmap + 3 * (sh)->words)
/* A fifth: chunks of zero-copy extents (pagecache.c), whose frames stand
 * for the host's pages of a file and never hold bytes here; set when the
 * extent is placed, cleared when it is scrubbed.  One bit a chunk, not a
 * flag in each descriptor: a huge sparse mapping writes no descriptor it
 * does not use (doc/DESIGN.md, "a mapping costs what is used"). */
#define HOST(sh) ((sh)->bitmap + 4 * (sh)->words)

static int bit_get(const uint64_t *bm, uint64_t c)
{
    return (__atomic_load_n(&bm[c / 64], __ATOMIC_RELAXED) >> (c % 64)) & 1;
}

/* Bits [c, c+n) of bm set or cleared atomically: DIRTY and WARM are
 * written outside the allocator's lock by a chunk's owner (the allocation
 * that took it, the daemon zeroing it, a punch), while neighbours in the
 * same word change.  A bit already as asked is not written (most
 * clears). */
static void bits_atomic(uint64_t *bm, uint64_t c, uint64_t n, int on)
{
    for (uint64_t i = c; i < c + n; i++) {
        uint64_t m = (uint64_t)1 << (i % 64);
        if (!bit_get(bm, i) == !on)
            continue;
        if (on)
            __atomic_fetch_or(&bm[i / 64], m, __ATOMIC_RELAXED);
        else
            __atomic_fetch_and(&bm[i / 64], ~m, __ATOMIC_RELAXED);
    }
}

/* Frames [first, first+npages) (whole chunks: an extent) are zero-copy. */
void umm__ram_host_set(umm__pfn first, uint64_t npages)
{
    bits_atomic(HOST(umm__ram.sh), first / CHUNK_PAGES, (npages + CHUNK_PAGES - 1) / CHUNK_PAGES, 1);
}

static void dirty_set(uint64_t c, uint64_t n, int on)
{
    bits_atomic(DIRTY(umm__ram.sh), c, n, on);
}

static void warm_set(uint64_t c, uint64_t n, int on)
{
    bits_atomic(WARM(umm__ram.sh), c, n, on);
}

/* Do frames [first, first+npages) all lie in chunks taken warm from the
 * pool, with the direct map's entries for them still there?  Then a fill
 * need not ask the host to populate them (pagecache.c).  A hint: the host
 * may have swapped a page out since, and the fill's own fault brings it
 * back. */
int umm__ram_warm(umm__pfn first, uint64_t npages)
{
    if (!umm__ram.direct || npages == 0)
        return 0;
    for (uint64_t c = first / CHUNK_PAGES; c <= (first + npages - 1) / CHUNK_PAGES; c++)
        if (!bit_get(WARM(umm__ram.sh), c))
            return 0;
    return 1;
}

struct umm__ram umm__ram = { .fd = -1 };
int umm__vg_hg; /* under helgrind or drd (a Valgrind tool but memcheck): vg.h */

void umm__frame_lock(umm__pfn pfn)
{
    umm__bitlock(&umm__frame(pfn)->flags, 1);
}

int umm__frame_trylock(umm__pfn pfn)
{
    return umm__bittrylock(&umm__frame(pfn)->flags);
}

void umm__frame_unlock(umm__pfn pfn)
{
    umm__bitunlock(&umm__frame(pfn)->flags, 1);
}

/* ------------------------------------------------------------ the memfd */

static void *map_shared_anon(size_t len)
{
    return mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
}

static int ram_truncate(int fd, uint64_t *size);

/*
 * The frame descriptors live in a memfd of their own, not anonymous shared
 * memory: its holes say which descriptors were never written (lseek
 * SEEK_DATA, which counts pages the host swapped out as data, where
 * mincore would not), so freeing a run of frames of a huge sparse mapping
 * scrubs only the descriptors in use, and gives their memory back.
 */
static int desc_fd = -1;

static void *map_desc(size_t len)
{
    uint64_t size = len;
    desc_fd = umm__sys_memfd_create("libumm-frames", MFD_CLOEXEC);
    if (desc_fd >= 0)
        desc_fd = umm__fd_own(desc_fd);
    if (desc_fd < 0 || ram_truncate(desc_fd, &size) != 0 || size < len)
        return MAP_FAILED;
    return mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE, desc_fd, 0);
}

/*
 * Size the memfd without meeting the program's RLIMIT_FSIZE, which
 * applies to a memfd as to any file: past it ftruncate raises SIGXFSZ
 * (and kills, by default).  The soft limit is raised to the hard one for
 * the call when that is enough; otherwise libumm's RAM is made as large as
 * the limit allows (*size shrinks; README).  Returns 0 or -1.
 */
static int ram_truncate(int fd, uint64_t *size)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_FSIZE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur >= *size)
        return umm__sys_ftruncate(fd, (off_t)*size);
    struct rlimit raised = rl;
    raised.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > *size ? *size : rl.rlim_max;
    if (raised.rlim_cur < *size)
        *size = raised.rlim_cur & ~(uint64_t)(CHUNK_PAGES * UMM_PAGE_SIZE - 1);
    if (*size == 0 || setrlimit(RLIMIT_FSIZE, &raised) != 0) {
        errno = EFBIG;
        return -1;
    }
    int rc = umm__sys_ftruncate(fd, (off_t)*size);
    setrlimit(RLIMIT_FSIZE, &rl);
    return rc;
}

/* ------------------------------------------------------ kmap windows */

/*
 * Without a direct map, frames are reached through KMAP_SLOTS windows of
 * UMM__KMAP_PAGES pages each, reserved once (so that an access never needs
 * address space the program's limit may refuse): a kmap takes a free
 * window and maps the frames there (MAP_FIXED over whatever it showed
 * before), a kunmap gives it back and leaves the mapping (a punched frame
 * is not kept alive by it).  Windows are this process's: after fork the
 * child, alone, starts with all of them free.
 */
#define KMAP_SLOTS 32u

static char *kmap_base;
static _Atomic uint32_t kmap_busy; /* one bit per window */

static int kmap_init(void)
{
    if (kmap_base)
        return 0;
    void *m = mmap(NULL, (size_t)KMAP_SLOTS * UMM__KMAP_PAGES * UMM_PAGE_SIZE, PROT_NONE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (m == MAP_FAILED)
        return -1;
    kmap_base = m;
    umm__vg_racy(&kmap_busy, sizeof kmap_busy);
    return 0;
}

void umm__kmap_fork_child(void)
{
    atomic_store(&kmap_busy, 0);
}

char *umm__kmap_window(umm__pfn pfn, uint64_t n)
{
    umm__assert(n >= 1 && n <= UMM__KMAP_PAGES);
    off_t off = (off_t)((uint64_t)pfn << UMM_PAGE_SHIFT);
    size_t len = (size_t)n << UMM_PAGE_SHIFT;
    for (;;) {
        uint32_t v = atomic_load(&kmap_busy);
        if (v == UINT32_MAX) {
            /* Every window is taken (threads, or a signal handler that
             * interrupted a holder): a mapping of its own if the limit
             * allows, else wait a little for a window. */
            void *m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, umm__ram.fd, off);
            if (m != MAP_FAILED)
                return m;
            struct timespec ts = { 0, 1000000 };
            syscall(SYS_futex, &kmap_busy, FUTEX_WAIT_PRIVATE, UINT32_MAX, &ts, NULL, 0);
            continue;
        }
        unsigned slot = (unsigned)__builtin_ctz(~v);
        if (!atomic_compare_exchange_weak(&kmap_busy, &v, v | (1u << slot)))
            continue;
        char *w = kmap_base + (size_t)slot * UMM__KMAP_PAGES * UMM_PAGE_SIZE;
        /* Cannot fail for want of address space: the window is there. */
        void *m = mmap(w, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, umm__ram.fd, off);
        umm__assert(m == w);
        return w;
    }
}

void umm__kunmap_window(char *p, uint64_t n)
{
    size_t whole = (size_t)KMAP_SLOTS * UMM__KMAP_PAGES * UMM_PAGE_SIZE;
    if (p < kmap_base || p >= kmap_base + whole) { /* a mapping of its own */
        munmap(p, (size_t)n << UMM_PAGE_SHIFT);
        return;
    }
    unsigned slot = (unsigned)((size_t)(p - kmap_base) / (UMM__KMAP_PAGES * UMM_PAGE_SIZE));
    uint32_t old = atomic_fetch_and(&kmap_busy, ~(1u << slot));
    umm__assert(old & (1u << slot));
    if (old == UINT32_MAX)
        syscall(SYS_futex, &kmap_busy, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0);
}

/* UMM_FRAME_POOL: the most pages the pool (below) keeps; 0 turns it off. */
static uint64_t pool_max;

static void pool_max_env(void)
{
    const char *e = getenv("UMM_FRAME_POOL");
    pool_max = e && *e ? umm__parse_size(e, 0) >> UMM_PAGE_SHIFT : UINT64_MAX;
}

/*
 * Create the memfd and map it.  Its size is virtual, the frame numbers
 * there are (UMM_FRAME_SPACE in the environment, default 16 TiB, as far
 * as 32-bit frame numbers go): a frame costs memory only while it holds
 * bytes, and reclaim (vmscan.c) keeps those under the memory budget.
 * Where the host will not give that much address space (Valgrind limits
 * it), halve until it does.
 */
int umm__ram_init(void)
{
    uint64_t size = umm__parse_size(getenv("UMM_FRAME_SPACE"), (uint64_t)1 << 44);
    /* Halving stops here, or at the size asked for if smaller: a small
     * frame space is the program's choice (one chunk at the least). */
    uint64_t min = (uint64_t)256 << 20;
    /* Under RLIMIT_AS, by default 1/32 of the room it leaves (kmem.c):
     * the direct map counts against the program's limit, the kernel's
     * page cache does not (README, "Limits"). */
    uint64_t room = umm__as_room();
    /* Under RLIMIT_AS there is no direct map (kmap windows instead, below):
     * frame numbers then cost only their descriptors (12 bytes a page,
     * which count against the limit).  Four times the room: the program's
     * private mappings, which take frame numbers of their size, fit in the
     * room, and a fork takes numbers for both sides' copies. */
    int windows = room != UINT64_MAX || umm__parse_size(getenv("UMM_KMAP"), 0) != 0;
    if (!getenv("UMM_FRAME_SPACE") && room != UINT64_MAX && room < size / 4)
        size = room * 4;
    if (size < (uint64_t)CHUNK_PAGES * UMM_PAGE_SIZE)
        size = (uint64_t)CHUNK_PAGES * UMM_PAGE_SIZE;
    if (size < min)
        min = size & ~(uint64_t)(CHUNK_PAGES * UMM_PAGE_SIZE - 1);
    if (size > ((uint64_t)1 << 44) - CHUNK_PAGES * UMM_PAGE_SIZE) /* frame numbers are 32 bits, */
        size = ((uint64_t)1 << 44) - CHUNK_PAGES * UMM_PAGE_SIZE; /* and one past the last too */
    size &= ~(uint64_t)(CHUNK_PAGES * UMM_PAGE_SIZE - 1);

    umm__vg_hg = umm__vg_not_memcheck();
    int fd = umm__sys_memfd_create("libumm-ram", MFD_CLOEXEC);
    if (fd < 0)
        return -1;
    fd = umm__fd_own(fd); /* the program's closefrom(3) leaves it (fdtable.c) */
    for (;; size /= 2) {
        if (size < min) {
            umm__fd_close_own(fd);
            errno = ENOMEM;
            return -1;
        }
        if (ram_truncate(fd, &size) != 0)
            continue;
        /* Under helgrind and drd mapped PROT_NONE first: helgrind then
         * leaves the direct map out of its race checks (it would otherwise
         * keep state for all of it, gigabytes, from the start; races are
         * found at the program's addresses).  Not under memcheck, which
         * takes minutes and gigabytes to mprotect that much, and is told
         * below. */
        void *direct = NULL;
        if (windows) {
            /* Without a limit (UMM_KMAP=1), the frame space the host would
             * give a direct map, no more: under Valgrind that keeps the
             * descriptors as small as with one. */
            if (room == UINT64_MAX) {
                void *probe = mmap(NULL, size, PROT_NONE, MAP_SHARED | MAP_NORESERVE, fd, 0);
                if (probe == MAP_FAILED)
                    continue;
                munmap(probe, size);
            }
            if (kmap_init() != 0)
                continue;
        } else {
            direct = mmap(NULL, size, umm__vg_hg ? PROT_NONE : PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE, fd, 0);
            if (direct == MAP_FAILED)
                continue;
            if (umm__vg_hg && mprotect(direct, size, PROT_READ | PROT_WRITE) != 0) {
                munmap(direct, size);
                continue;
            }
        }
        uint64_t npages = size >> UMM_PAGE_SHIFT;
        uint64_t nchunks = npages / CHUNK_PAGES;
        size_t shlen = sizeof(struct umm__ramshared) + 5 * ((nchunks + 63) / 64 * 8);
        void *desc = map_desc(npages * sizeof(struct umm__frame));
        void *sh = map_shared_anon(shlen);
        void *cref = map_shared_anon(nchunks * sizeof(uint32_t));
        if (desc == MAP_FAILED || sh == MAP_FAILED || cref == MAP_FAILED) {
            if (direct)
                munmap(direct, size);
            if (desc != MAP_FAILED)
                munmap(desc, npages * sizeof(struct umm__frame));
            if (desc_fd >= 0)
                umm__fd_close_own(desc_fd);
            desc_fd = -1;
            if (sh != MAP_FAILED)
                munmap(sh, shlen);
            if (cref != MAP_FAILED)
                munmap(cref, nchunks * sizeof(uint32_t));
            continue;
        }
        umm__ram.chunkref = cref;
        umm__ram.fd = fd;
        umm__ram.direct = direct;
        umm__ram.npages = npages;
        umm__ram.desc = desc;
        umm__ram.sh = sh;
        umm__ram.sh->nchunks = nchunks;
        umm__ram.sh->words = (nchunks + 63) / 64;
        pool_max_env();
        umm__ram.sh->pool_cap = 0; /* until the budget is known (umm__ram_pool_limit) */
        umm__vg_racy(&umm__ram.sh->pool_pages, sizeof umm__ram.sh->pool_pages);
        umm__vg_racy(&umm__ram.sh->pool_cap, sizeof umm__ram.sh->pool_cap);
        umm__vg_racy(&umm__ram.sh->pool_events, sizeof umm__ram.sh->pool_events);
        umm__vg_racy(&umm__ram.sh->zero_seq, sizeof umm__ram.sh->zero_seq);
        umm__vg_racy(DIRTY(umm__ram.sh), umm__ram.sh->words * 8);
        umm__vg_racy(WARM(umm__ram.sh), umm__ram.sh->words * 8);
        umm__vg_racy(HOST(umm__ram.sh), umm__ram.sh->words * 8);
        umm__ram.host = HOST(umm__ram.sh);
        if (direct)
            umm__vg_noaccess(direct, size);
        /* Lock words, and words changed atomically (vg.h). */
        umm__vg_racy(desc, npages * sizeof(struct umm__frame));
        umm__vg_racy(cref, nchunks * sizeof(uint32_t));
        umm__vg_racy(&umm__ram.sh->lock, sizeof umm__ram.sh->lock);
        umm__vg_racy(&umm__ram.sh->frames_in_use, sizeof umm__ram.sh->frames_in_use);
        return 0;
    }
}

/* ------------------------------------------------------- the allocator */

static int chunk_used(const uint64_t *bm, uint64_t c)
{
    return (bm[c / 64] >> (c % 64)) & 1;
}

static void chunks_set(uint64_t *bm, uint64_t c, uint64_t n, int used)
{
    for (uint64_t i = c; i < c + n; i++) {
        if (used)
            bm[i / 64] |= (uint64_t)1 << (i % 64);
        else
            bm[i / 64] &= ~((uint64_t)1 << (i % 64));
    }
}

/* First run of n chunks whose bit in bm is `set` in [from, to), or
 * UINT64_MAX: free chunks in the allocator's bitmap, pooled ones in the
 * pool's. */
static uint64_t find_run(const uint64_t *bm, uint64_t from, uint64_t to, uint64_t n, int set)
{
    const uint64_t none = set ? 0 : ~(uint64_t)0; /* a word with no chunk of the kind */
    uint64_t run = 0, c = from;
    while (c < to) {
        if (c % 64 == 0 && bm[c / 64] == none && c + 64 <= to) {
            run = 0;
            c += 64;
            continue;
        }
        if (chunk_used(bm, c) != set) {
            run = 0;
        } else if (++run == n) {
            return c + 1 - n;
        }
        c++;
    }
    return UINT64_MAX;
}

static uint64_t pool_take(struct umm__ramshared *sh, uint64_t n);
static void pool_zero_taken(uint64_t c, uint64_t n);
static int meets_zeroing(const struct umm__ramshared *sh, uint64_t c, uint64_t n);
static void pool_wait_zeroing(uint32_t seq);
static int zeroing_stale(struct umm__ramshared *sh);

static int ram_alloc(uint64_t npages, umm__pfn *out, int filled);

int umm__ram_alloc(uint64_t npages, umm__pfn *out)
{
    return ram_alloc(npages, out, 0);
}

/* For a file's page-cache extent: every frame of it is filled whole (the
 * file's bytes, zeros past its end) before any mapping, read or reclaim
 * looks at it (UPTODATE, pagecache.c), so frames taken from the pool need
 * not be zeroed first -- the fill would only write over the zeros. */
int umm__ram_alloc_filled(uint64_t npages, umm__pfn *out)
{
    return ram_alloc(npages, out, 1);
}

static int ram_alloc(uint64_t npages, umm__pfn *out, int filled)
{
    struct umm__ramshared *sh = umm__ram.sh;
    uint64_t n = (npages + CHUNK_PAGES - 1) / CHUNK_PAGES;
    if (n == 0)
        n = 1;
    for (int drained = 0;; drained = 1) {
        ram_lock(sh);
        uint64_t c = pool_take(sh, n);
        int pooled = c != UINT64_MAX, wait = pooled && meets_zeroing(sh, c, n);
        uint32_t seq = atomic_load(&sh->zero_seq);
        if (!pooled) {
            c = find_run(sh->bitmap, sh->hint, sh->nchunks, n, 0);
            if (c == UINT64_MAX)
                c = find_run(sh->bitmap, 0, sh->nchunks, n, 0);
            if (c != UINT64_MAX) {
                chunks_set(sh->bitmap, c, n, 1);
                sh->hint = c + n;
            }
        }
        if (c != UINT64_MAX) {
            for (uint64_t i = c; i < c + n; i++) /* the caller's pin */
                atomic_store_explicit(&umm__ram.chunkref[i], 1, memory_order_relaxed);
            warm_set(c, n, pooled);
        }
        ram_unlock(sh);
        if (c != UINT64_MAX) {
            if (wait)
                pool_wait_zeroing(seq);
            if (pooled && filled)
                dirty_set(c, n, 0); /* its old bytes are the fill's to overwrite */
            else if (pooled)
                pool_zero_taken(c, n);
            *out = (umm__pfn)(c * CHUNK_PAGES);
            return 0;
        }
        /* No run of free chunks: pooled ones are in the way, or there
         * is no room at all. */
        if (drained || umm__ram_pool_drain(UINT64_MAX) == 0)
            break;
    }
    errno = ENOMEM;
    return -1;
}

static uint64_t chunks_of(uint64_t npages)
{
    uint64_t n = (npages + CHUNK_PAGES - 1) / CHUNK_PAGES;
    return n ? n : 1;
}

/* Return chunks [c, c+n) to the allocator: nothing holds them any more. */
static void chunks_free(uint64_t c, uint64_t n)
{
    struct umm__ramshared *sh = umm__ram.sh;
    if (n == 0)
        return;
    ram_lock(sh);
    for (uint64_t i = 0; i < n; i++)
        umm__assert(chunk_used(sh->bitmap, c + i));
    chunks_set(sh->bitmap, c, n, 0);
    ram_unlock(sh);
    warm_set(c, n, 0);
}

/* A page-cache chunk nobody holds: forget its frames' state (the caller
 * gives their memory back, a run of chunks at once: each punch of the
 * memfd costs every CPU running the process a TLB flush).  Returns how
 * many held a file's bytes. */
static int64_t chunk_scrub(uint64_t c)
{
    int64_t n = 0;
    for (uint64_t k = 0; k < CHUNK_PAGES; k++) {
        uint32_t old = atomic_exchange(&umm__ram.desc[c * CHUNK_PAGES + k].flags, 0);
        umm__assert(!(old & UMM__F_LOCKED));
        n += (old & UMM__F_UPTODATE) != 0;
        if (old & UMM__F_SWAPPED) /* shared anonymous memory, swapped out */
            umm__swap_forget((umm__pfn)(c * CHUNK_PAGES + k), 1);
        atomic_store(&umm__ram.desc[c * CHUNK_PAGES + k].ref, 0);
        umm__assert(atomic_load(&umm__ram.desc[c * CHUNK_PAGES + k].mapped) == 0);
    }
    return n;
}

/* One more holder (a forked child) for every chunk of a run. */
void umm__ram_pin(umm__pfn first, uint64_t npages)
{
    uint64_t c = first / CHUNK_PAGES, n = chunks_of(npages);
    for (uint64_t i = c; i < c + n; i++) {
        uint32_t old = atomic_fetch_add_explicit(&umm__ram.chunkref[i], 1, memory_order_relaxed);
        umm__assert(old > 0);
    }
}

/* A walk over many descriptors (scrubbing a freed run, write-back of a
 * huge range) asks their memfd which of them were ever written
 * (map_desc): the pages of descriptors never written are holes, and are
 * skipped unread.  Only for long walks: a seek costs about what reading a
 * thousand descriptors does. */
void umm__fscan_begin(struct umm__fscan *s, uint64_t nframes)
{
    s->on = nframes >= 1024 && desc_fd >= 0;
    s->lo = s->hi = 0;
}

umm__pfn umm__frame_next_used(struct umm__fscan *s, umm__pfn pfn, umm__pfn end)
{
    const off_t sz = sizeof(struct umm__frame);
    if (!s->on || pfn >= end || (pfn >= s->lo && pfn < s->hi))
        return pfn;
    off_t at = ((off_t)pfn * sz) & ~(off_t)(UMM_PAGE_SIZE - 1);
    off_t d = lseek(desc_fd, at, SEEK_DATA);
    if (d < 0 && errno == ENXIO)
        return end; /* no descriptor written from here on */
    off_t h = d < 0 ? -1 : lseek(desc_fd, d, SEEK_HOLE);
    if (d < 0 || h < 0) { /* cannot tell: read them all */
        s->on = 0;
        return pfn;
    }
    /* Frames whose bytes meet the data [d, h). */
    uint64_t lo = (uint64_t)d / (uint64_t)sz, hi = ((uint64_t)h + (uint64_t)sz - 1) / (uint64_t)sz;
    s->lo = (umm__pfn)(lo < UINT32_MAX ? lo : UINT32_MAX);
    s->hi = (umm__pfn)(hi < UINT32_MAX ? hi : UINT32_MAX);
    if (s->lo <= pfn)
        return pfn;
    return s->lo < end ? s->lo : end;
}

/* Scrub the page-cache chunks [c, c+n), which nothing holds: their
 * descriptors back to zero.  Returns how many frames held a file's bytes.
 * A long run scrubs only the chunks whose descriptors were ever written
 * (umm__frame_next_used), and punches the descriptor pages wholly inside
 * the run (zeros, as scrubbed) so their memory goes back to the host. */
static int64_t run_scrub(uint64_t c, uint64_t n)
{
    int64_t up = 0;
    struct umm__fscan fs;
    umm__fscan_begin(&fs, n * CHUNK_PAGES);
    int long_run = fs.on; /* punched, even where the memfd would not say which were written */
    umm__pfn end = (umm__pfn)((c + n) * CHUNK_PAGES);
    for (uint64_t i = c; i < c + n; i++) {
        uint64_t u = umm__frame_next_used(&fs, (umm__pfn)(i * CHUNK_PAGES), end) / CHUNK_PAGES;
        if (u >= c + n)
            break;
        if (u > i)
            i = u;
        int64_t k = chunk_scrub(i);
        if (!bit_get(HOST(umm__ram.sh), i)) /* zero-copy frames were never counted (umm__ram_count_cache) */
            up += k;
    }
    bits_atomic(HOST(umm__ram.sh), c, n, 0);
    if (long_run) {
        const uint64_t per = CHUNK_PAGES * sizeof(struct umm__frame); /* bytes of descriptors a chunk */
        off_t from = (off_t)(c * per), to = (off_t)((c + n) * per);
        off_t p0 = (from + UMM_PAGE_SIZE - 1) & ~(off_t)(UMM_PAGE_SIZE - 1), p1 = to & ~(off_t)(UMM_PAGE_SIZE - 1);
        if (p1 > p0)
            umm__sys_fallocate(desc_fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, p0, p1 - p0);
    }
    return up;
}

/*
 * Released runs kept back by one thread between umm__ram_batch_begin and
 * umm__ram_batch_end, so that neighbours go back as one: a file that grew
 * a chunk at a time has an extent per chunk, one after the other in frame
 * space, and freeing it punched the memfd once per extent (150 calls, each
 * a TLB flush on every CPU the process runs on, when SQLite closed its
 * database).  The punch and the return to the allocator are deferred
 * together: a chunk is never handed out again before its memory is gone.
 */
static __thread struct {
    int on;
    int cache;
    uint64_t c, n;
} batch __attribute__((tls_model("initial-exec")));

static void cache_run_free(uint64_t c, uint64_t n);

static void run_free(uint64_t c, uint64_t n, int cache)
{
    if (n == 0)
        return;
    if (cache)
        cache_run_free(c, n); /* pooled or punched (the pool, below) */
    else
        chunks_free(c, n); /* private frames were discarded as each died */
}

void umm__ram_batch_begin(void)
{
    batch.on = 1;
    batch.n = 0;
}

void umm__ram_batch_end(void)
{
    batch.on = 0;
    run_free(batch.c, batch.n, batch.cache);
    batch.n = 0;
}

/* The run [c, c+n) of chunks nobody holds goes back to the allocator. */
static int64_t run_release(uint64_t c, uint64_t n, int cache)
{
    int64_t up = 0;
    if (n == 0)
        return 0;
    if (cache)
        up = run_scrub(c, n);
    if (!batch.on) {
        run_free(c, n, cache);
        return up;
    }
    if (batch.n && batch.cache == cache && batch.c + batch.n == c) {
        batch.n += n;
        return up;
    }
    run_free(batch.c, batch.n, batch.cache);
    batch.c = c;
    batch.n = n;
    batch.cache = cache;
    return up;
}

/*
 * Drop this process's hold on a run.  Chunks nothing else holds go back to
 * the allocator; with cache (page-cache extents) their frames are scrubbed
 * first (private frames were discarded when their last reference went).
 * Returns what is left of the first chunk's count (for an extent, whose
 * chunks are held together: 0 when it is gone; the caller serialises).
 */
uint32_t umm__ram_unpin(umm__pfn first, uint64_t npages, int cache)
{
    uint64_t c = first / CHUNK_PAGES, n = chunks_of(npages), run = 0;
    int64_t uptodate = 0;
    uint32_t left = atomic_load(&umm__ram.chunkref[c]) - 1; /* the first chunk's, after */
    umm__assert(first % CHUNK_PAGES == 0);
    for (uint64_t i = c; i < c + n; i++) {
        uint32_t old = atomic_fetch_sub_explicit(&umm__ram.chunkref[i], 1, memory_order_acq_rel);
        umm__assert(old > 0);
        if (old == 1) {
            run++;
            continue;
        }
        uptodate += run_release(i - run, run, cache);
        run = 0;
    }
    uptodate += run_release(c + n - run, run, cache);
    umm__ram_count(-uptodate);
    return left;
}

/* Count private frames [first, first+n) in (live) or out of their chunks;
 * a chunk nothing keeps any more goes back to the allocator. */
static void frames_count(umm__pfn first, uint64_t n, int live)
{
    while (n > 0) {
        uint64_t c = first / CHUNK_PAGES, k = CHUNK_PAGES - first % CHUNK_PAGES;
        if (k > n)
            k = n;
        if (live) {
            atomic_fetch_add_explicit(&umm__ram.chunkref[c], (uint32_t)k, memory_order_relaxed);
        } else {
            uint32_t old = atomic_fetch_sub_explicit(&umm__ram.chunkref[c], (uint32_t)k, memory_order_acq_rel);
            umm__assert(old >= k);
            if (old == k)
                chunks_free(c, 1);
        }
        first += (umm__pfn)k;
        n -= k;
    }
}

/* Private frames [first, first+n) came to life (reference 0 -> 1): they
 * keep their chunks, even after the range they were made in is dropped. */
void umm__ram_frames_live(umm__pfn first, uint64_t n)
{
    frames_count(first, n, 1);
}

/* Private frames [first, first+n) died (reference 1 -> 0; the caller
 * discarded them). */
void umm__ram_frames_dead(umm__pfn first, uint64_t n)
{
    frames_count(first, n, 0);
}

/* Zeros over frames [first, first+n) (a run only its caller can reach). */
static void frames_zero(umm__pfn first, uint64_t npages)
{
    for (uint64_t done = 0, k; done < npages; done += k) {
        k = umm__kmap_span(npages - done);
        char *p = umm__kmap(first + (umm__pfn)done, k);
        umm__vg_defined(p, k << UMM_PAGE_SHIFT);
        memset(p, 0, k << UMM_PAGE_SHIFT);
        umm__vg_noaccess(p, k << UMM_PAGE_SHIFT);
        umm__kunmap(p, k);
    }
}

/* Give the memory of frames back to the host: they read as zeros after. */
void umm__ram_discard(umm__pfn first, uint64_t npages)
{
    if (npages == 0)
        return;
    warm_set(first / CHUNK_PAGES, (first + npages - 1) / CHUNK_PAGES + 1 - first / CHUNK_PAGES, 0);
    if (umm__sys_fallocate(umm__ram.fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                  (off_t)((uint64_t)first << UMM_PAGE_SHIFT), (off_t)(npages << UMM_PAGE_SHIFT)) != 0)
        frames_zero(first, npages);
}

void umm__ram_count(int64_t delta)
{
    atomic_fetch_add_explicit(&umm__ram.sh->frames_in_use, delta, memory_order_relaxed);
}

/* Page-cache frames of one extent from pfn on that came to hold (delta >
 * 0) or stopped holding (< 0) a file's bytes.  The one place that knows
 * zero-copy frames hold none of the budget: their bytes are the host's. */
void umm__ram_count_cache(umm__pfn pfn, int64_t delta)
{
    if (!umm__frame_host(pfn))
        umm__ram_count(delta);
}

uint64_t umm__ram_frames_in_use(void)
{
    return umm__ram.sh ? (uint64_t)atomic_load(&umm__ram.sh->frames_in_use) : 0;
}

/* ------------------------------------------------------------ the pool */

/*
 * Page-cache chunks nothing holds any more are pooled, not punched, while
 * frames in use plus pooled pages stay under a cap (the budget's low
 * watermark, which vmscan.c sets with umm__ram_pool_limit; UMM_FRAME_POOL
 * in the environment bounds the pool itself, 0 turns it off), and the
 * next allocation takes them first, the most recently pooled first.  Why:
 * a punched frame handed out again is a fresh host page, and on a
 * virtualised host the first touch of a fresh page, through each mapping
 * and in each mode, is most of what a fill costs (doc/PERFORMANCE.md,
 * session 11: a pread into fresh memfd pages 7.4 us a page, into pages
 * written before 0.55).  A pooled chunk keeps its host pages and the
 * direct map's entries for them, as the kernel's free lists keep struct
 * pages with their direct-map entries.
 *
 * A pooled chunk still holds the bytes of its last use, and every user of
 * a fresh run counts on zeros.  The daemon zeroes pooled chunks off the
 * fault path (umm__ram_pool_zero, rung when chunks are pooled); a run
 * taken before it got there is zeroed by its new owner (pool_zero_taken).  Reclaim punches pooled
 * chunks before it takes any page (umm__ram_pool_drain): they are the
 * cheapest memory to give back.  Pooled chunks count as allocated in the
 * allocator's bitmap, so the search for free runs passes them by.
 */

/* Chunks [c, c+n) were let go: pool as many of them as there is room
 * for, from the first.  Returns how many were pooled. */
/* Pages the pool may take now: under the cap with the frames in use, and
 * under UMM_FRAME_POOL. */
static uint64_t pool_room(void)
{
    struct umm__ramshared *sh = umm__ram.sh;
    uint64_t pool = (uint64_t)atomic_load_explicit(&sh->pool_pages, memory_order_relaxed);
    uint64_t used = (uint64_t)atomic_load_explicit(&sh->frames_in_use, memory_order_relaxed);
    uint64_t cap = atomic_load_explicit(&sh->pool_cap, memory_order_relaxed);
    uint64_t room = cap > used + pool ? cap - used - pool : 0;
    uint64_t left = pool_max > pool ? pool_max - pool : 0;
    return room < left ? room : left;
}

static uint64_t pool_put(uint64_t c, uint64_t n)
{
    struct umm__ramshared *sh = umm__ram.sh;
    uint64_t room = pool_room();
    if (n > room / CHUNK_PAGES)
        n = room / CHUNK_PAGES;
    if (n == 0)
        return 0;
    dirty_set(c, n, 1);
    ram_lock(sh);
    chunks_set(POOLED(sh), c, n, 1);
    if (atomic_load_explicit(&sh->pool_pages, memory_order_relaxed) == 0) {
        sh->pool_lo = c; /* an empty pool's bounds start afresh */
        sh->pool_hi = c + n;
    }
    if (c < sh->pool_lo)
        sh->pool_lo = c;
    if (c + n > sh->pool_hi)
        sh->pool_hi = c + n;
    sh->pool_hint = c;
    atomic_fetch_add_explicit(&sh->pool_pages, (int64_t)(n * CHUNK_PAGES), memory_order_relaxed);
    atomic_fetch_add_explicit(&sh->pool_events, 1, memory_order_relaxed);
    ram_unlock(sh);
    umm__ring(UMM__BELL_ZERO);
    return n;
}

/*
 * The page-cache chunks [c, c+n), which nothing holds, go back: those
 * that hold memory (the host says which: SEEK_DATA on the memfd; reclaim
 * may have punched most of a large file's) into the pool while it has
 * room, the rest punched, chunks that are holes straight to the
 * allocator.
 */
static void cache_run_free(uint64_t c, uint64_t n)
{
    const off_t per = (off_t)CHUNK_PAGES << UMM_PAGE_SHIFT;
    const off_t end = (off_t)(c + n) * per;
    uint64_t i = c;
    while (i < c + n) {
        /* No room in the pool (or it is off): the rest in one punch, as
         * before there was a pool; and where the host cannot tell. */
        int full = pool_room() < CHUNK_PAGES;
        off_t d = full ? -1 : lseek(umm__ram.fd, (off_t)i * per, SEEK_DATA);
        if (full || (d < 0 && errno != ENXIO)) {
            umm__ram_discard((umm__pfn)(i * CHUNK_PAGES), (c + n - i) * CHUNK_PAGES);
            chunks_free(i, c + n - i);
            return;
        }
        uint64_t dc = d < 0 || d >= end ? c + n : (uint64_t)(d / per);
        if (dc > i) { /* holes: nothing to punch */
            chunks_free(i, dc - i);
            i = dc;
        }
        if (i >= c + n)
            break;
        off_t h = lseek(umm__ram.fd, d, SEEK_HOLE);
        uint64_t hc = h < 0 || h >= end ? c + n : (uint64_t)((h + per - 1) / per);
        if (hc <= i)
            hc = i + 1;
        uint64_t k = pool_put(i, hc - i);
        if (k < hc - i) {
            umm__ram_discard((umm__pfn)((i + k) * CHUNK_PAGES), (hc - i - k) * CHUNK_PAGES);
            chunks_free(i + k, hc - i - k);
        }
        i = hc;
    }
}

/* Under the allocator's lock: take a run of n pooled chunks (the most
 * recently pooled first), or UINT64_MAX.  Its dirty bits stay until its
 * new owner zeroed it. */
static uint64_t pool_take(struct umm__ramshared *sh, uint64_t n)
{
    if (atomic_load_explicit(&sh->pool_pages, memory_order_relaxed) < (int64_t)(n * CHUNK_PAGES))
        return UINT64_MAX;
    uint64_t c = find_run(POOLED(sh), sh->pool_hint, sh->pool_hi, n, 1);
    if (c == UINT64_MAX)
        c = find_run(POOLED(sh), sh->pool_lo, sh->pool_hi, n, 1);
    if (c == UINT64_MAX)
        return UINT64_MAX;
    chunks_set(POOLED(sh), c, n, 0);
    sh->pool_hint = c + n;
    atomic_fetch_add_explicit(&sh->pool_events, 1, memory_order_relaxed);
    atomic_fetch_sub_explicit(&sh->pool_pages, (int64_t)(n * CHUNK_PAGES), memory_order_relaxed);
    return c;
}

/* A run just taken from the pool: zeros where the daemon did not write them yet. */
static void pool_zero_taken(uint64_t c, uint64_t n)
{
    const uint64_t *d = DIRTY(umm__ram.sh);
    for (uint64_t i = c; i < c + n;) {
        if (!bit_get(d, i)) {
            i++;
            continue;
        }
        uint64_t j = i + 1;
        while (j < c + n && bit_get(d, j))
            j++;
        frames_zero((umm__pfn)(i * CHUNK_PAGES), (j - i) * CHUNK_PAGES);
        dirty_set(i, j - i, 0);
        i = j;
    }
}

/* Under the lock: does [c, c+n) meet the run the daemon is zeroing? */
static int meets_zeroing(const struct umm__ramshared *sh, uint64_t c, uint64_t n)
{
    return sh->zero_hi > sh->zero_lo && c < sh->zero_hi && sh->zero_lo < c + n;
}

/* Under the lock: the first run of pooled chunks in [pool_lo, pool_hi),
 * holding old bytes if dirty, of at most max chunks, outside the run being
 * zeroed; its length in *n, or UINT64_MAX. */
static uint64_t pool_find(struct umm__ramshared *sh, int dirty, uint64_t max, uint64_t *n)
{
    const uint64_t *pb = POOLED(sh), *db = DIRTY(sh);
    for (uint64_t c = sh->pool_lo; c < sh->pool_hi; c++) {
        /* Whole words with nothing to find: a daemon zeroing a large pool
         * a megabyte a call would otherwise walk every clean chunk again
         * each call. */
        if (c % 64 == 0 && (pb[c / 64] & (dirty ? db[c / 64] : ~(uint64_t)0)) == 0) {
            c += 63;
            continue;
        }
        if (!chunk_used(pb, c) || (dirty && !bit_get(db, c)) || meets_zeroing(sh, c, 1))
            continue;
        uint64_t e = c + 1;
        while (e < sh->pool_hi && e - c < max && chunk_used(pb, e) && (!dirty || bit_get(db, e)) &&
               !meets_zeroing(sh, e, 1))
            e++;
        *n = e - c;
        return c;
    }
    return UINT64_MAX;
}

/* Punch pooled chunks until `pages` pages went back to the host or the
 * pool is empty (reclaim: before any page is taken).  Returns the pages. */
uint64_t umm__ram_pool_drain(uint64_t pages)
{
    struct umm__ramshared *sh = umm__ram.sh;
    uint64_t done = 0;
    while (done < pages && atomic_load_explicit(&sh->pool_pages, memory_order_relaxed) > 0) {
        uint64_t n = 0, want = (pages - done + CHUNK_PAGES - 1) / CHUNK_PAGES;
        ram_lock(sh);
        uint64_t c = pool_find(sh, 0, want, &n);
        if (c == UINT64_MAX && zeroing_stale(sh))
            c = pool_find(sh, 0, want, &n);
        if (c != UINT64_MAX) {
            chunks_set(POOLED(sh), c, n, 0);
            atomic_fetch_sub_explicit(&sh->pool_pages, (int64_t)(n * CHUNK_PAGES), memory_order_relaxed);
        }
        ram_unlock(sh);
        if (c == UINT64_MAX)
            break; /* what is left is being zeroed */
        umm__ram_discard((umm__pfn)(c * CHUNK_PAGES), n * CHUNK_PAGES);
        dirty_set(c, n, 0);
        chunks_free(c, n); /* free only once its memory is gone */
        done += n * CHUNK_PAGES;
    }
    return done;
}

/* Under the lock: a zeroing run whose process is gone (killed while its
 * daemon zeroed) is given up, or nothing would zero, punch or wait past
 * it again.  Its chunks are still marked dirty: whoever takes them zeroes
 * them.  Waiters see zero_seq move (they poll: the dead cannot wake). */
static int zeroing_stale(struct umm__ramshared *sh)
{
    if (sh->zero_hi > sh->zero_lo && sh->zero_pid != umm__mm.pid && umm__pid_gone((uint32_t)sh->zero_pid)) {
        sh->zero_lo = sh->zero_hi = 0;
        atomic_fetch_add(&sh->zero_seq, 1);
        return 1;
    }
    return 0;
}

/* The run being zeroed is done: wake allocations that took part of it. */
static void zeroing_done(struct umm__ramshared *sh)
{
    ram_lock(sh);
    sh->zero_lo = sh->zero_hi = 0;
    atomic_fetch_add(&sh->zero_seq, 1);
    ram_unlock(sh);
    syscall(SYS_futex, &sh->zero_seq, FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
}

/* The daemon: zero pooled chunks that still hold old bytes, 16 chunks
 * (1 MiB) a call; returns 0 when there were none (or another process's
 * daemon is at it).  They stay in the pool meanwhile: an allocation that
 * takes one waits for the run to be done (pool_wait_zeroing), a short
 * wait, where taking them out would have sent a large allocation past the
 * whole pool.  One zeroing run at a time in the fork family. */
int umm__ram_pool_zero(void)
{
    struct umm__ramshared *sh = umm__ram.sh;
    uint64_t n = 0, c = UINT64_MAX;
    ram_lock(sh);
    zeroing_stale(sh);
    if (sh->zero_hi == sh->zero_lo) {
        c = pool_find(sh, 1, 16, &n);
        if (c != UINT64_MAX) {
            sh->zero_lo = c;
            sh->zero_hi = c + n;
            sh->zero_pid = (int32_t)umm__mm.pid;
        }
    }
    ram_unlock(sh);
    if (c == UINT64_MAX)
        return 0;
    frames_zero((umm__pfn)(c * CHUNK_PAGES), n * CHUNK_PAGES);
    dirty_set(c, n, 0);
    zeroing_done(sh);
    return 1;
}

/* An allocation took pooled chunks that the daemon was zeroing (seq: the
 * zeroing count it saw, under the lock): wait until that run is done --
 * the daemon's memset must not land on what the new owner writes.  A
 * process of the family killed while its daemon zeroed never finishes:
 * once it is gone, the run is given up (its chunks are still marked
 * dirty, so the new owner zeroes them itself). */
static void pool_wait_zeroing(uint32_t seq)
{
    struct umm__ramshared *sh = umm__ram.sh;
    while (atomic_load(&sh->zero_seq) == seq) {
        struct timespec ts = { 0, 20 * 1000 * 1000 };
        if (syscall(SYS_futex, &sh->zero_seq, FUTEX_WAIT, seq, &ts, NULL, 0) == 0 || errno != ETIMEDOUT)
            continue;
        ram_lock(sh);
        if (atomic_load(&sh->zero_seq) == seq)
            zeroing_stale(sh);
        ram_unlock(sh);
    }
}

/* The daemon's timer (every flush interval): a pool nothing was put in or
 * taken from for a whole interval is given back to the host, so that a
 * program done with its mappings does not keep their memory for ever. */
void umm__ram_pool_age(void)
{
    static uint64_t last; /* this process's daemon's view */
    uint64_t now = atomic_load_explicit(&umm__ram.sh->pool_events, memory_order_relaxed);
    if (now == last)
        umm__ram_pool_drain(UINT64_MAX);
    last = now;
}

/* vmscan.c: frames in use plus pooled pages stay at most this. */
void umm__ram_pool_limit(uint64_t pages)
{
    atomic_store_explicit(&umm__ram.sh->pool_cap, pages, memory_order_relaxed);
}

uint64_t umm__ram_pool_pages(void)
{
    return umm__ram.sh ? (uint64_t)atomic_load_explicit(&umm__ram.sh->pool_pages, memory_order_relaxed) : 0;
}

/* ------------------------------------------------------------------ swap */

/*
 * Frames [pfn, pfn + n) out to their slots in the swap file (swap.c, which
 * is indexed by frame number), or frame pfn back in, through kmap
 * windows.  Out: the slots are reserved first and let go again if the
 * write fails.  In: the slot is let go once the frame has its bytes.
 * 0 or an errno.
 */
int umm__swap_out(umm__pfn pfn, uint64_t n)
{
    int err = umm__swap_reserve(pfn, n);
    for (uint64_t done = 0, k; !err && done < n; done += k) {
        k = umm__kmap_span(n - done);
        char *mem = umm__kmap(pfn + (umm__pfn)done, k);
        err = umm__swap_rw(1, mem, k << UMM_PAGE_SHIFT, (uint64_t)(pfn + done) << UMM_PAGE_SHIFT);
        umm__kunmap(mem, k);
        if (err)
            umm__swap_forget(pfn, n);
    }
    return err;
}

int umm__swap_in(umm__pfn pfn)
{
    char *mem = umm__kmap(pfn, 1);
    int err = umm__swap_rw(0, mem, UMM_PAGE_SIZE, (uint64_t)pfn << UMM_PAGE_SHIFT);
    umm__kunmap(mem, 1);
    if (!err)
        umm__swap_forget(pfn, 1);
    return err;
}
