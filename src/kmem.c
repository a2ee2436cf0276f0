/*
 * kmem.c: libumm's own memory, in a region of its own.
 *
 * The kernel keeps its page tables and VMAs out of the process's address
 * space.  libumm lives inside it, and it refuses MAP_FIXED over memory it
 * does not own (README difference 3), so its own memory must never be
 * where the program may map again.  Left to the host, it would be: a page
 * table mapped with mmap(NULL, ...) goes into the first hole that fits,
 * which is very often the range the program has just unmapped, and the
 * program's MAP_FIXED there -- which the kernel grants -- fails with
 * EEXIST.  malloc is no better: glibc maps blocks above 128 KiB with mmap
 * (libumm's array of VMAs grows past that), and a thread's first malloc
 * maps an arena.
 *
 * So everything libumm keeps comes from here: page tables, VMAs and their
 * array, private ranges, objects and their extents, and the threads'
 * signal stacks.  The region is reserved once, at start-up, right after
 * the RAM's direct map (init.c), so the host places both before and above
 * the program's own mappings; afterwards libumm never asks the host for
 * address space for itself, only for the program's mappings.  (The family's
 * shared tables -- frame descriptors, the extent index -- are mapped once
 * at start-up too, and never given back.)
 *
 * The region is mapped read-write without reserve: pages cost memory only
 * once written, so a page table of millions of entries costs what its
 * written entries do, as when each had its own NORESERVE mapping.  Its
 * size is address space only: 256 GiB holds the page tables (8 bytes a
 * page) of every mapping the 128 TiB of user space can hold; under
 * Valgrind, whose client address space is far smaller, 128 MiB (tables
 * for 64 GiB of mappings), so as not to take the program's.  Where the host
 * will not give that much, it halves, as the direct map does.
 *
 * Allocation: a bitmap of the region's pages (in its first pages), lowest
 * fit, for anything above 2 KiB, in whole pages; a freed run's memory goes
 * back to the host (MADV_DONTNEED), so the next user finds zeros and the
 * host only what is in use.  Below that, blocks of 16 to 2048 bytes (powers
 * of two) carved from 64 KiB slabs, a free list per size; slabs stay.
 * Callers say the size when they free (they all know it).  Memory comes
 * zeroed.
 *
 * One lock (a futex bit lock), innermost: nothing is taken under it, and
 * it is held only for the bitmap and the lists, never across a system call
 * but madvise.  It is taken with signals blocked -- under the address-space
 * lock (umm__enter), or by the caller (signals.c) -- so that no handler of
 * the program runs on a thread that holds it.  Never from the trap.  fork
 * holds it across (handlers registered at start, so that fork.c's, which
 * take the address-space lock, run outside them: the lock order).
 *
 * For the Valgrind tools (vg.h): under memcheck the region is no-access
 * but for what is allocated, so the leak check scans only that, and
 * libumm's own use of freed memory is reported; helgrind and drd are told
 * that allocated memory is new (and the region comes in PROT_NONE, then
 * mprotect'ed, so helgrind keeps no state for the rest of it).
 */
#include "umm-int.h"
#include "vg.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#define REGION_SIZE ((uint64_t)256 << 30)
/* Under Valgrind the client's address space is small, and the RAM's
 * direct map has taken most of it: with 1 GiB here Valgrind had no room
 * left to grow a forked child's main stack for a signal frame (tests/
 * test-sqlite under make check-valgrind died in the start-up self-check,
 * "Can't extend stack").  128 MiB holds the page tables of 64 GiB of
 * mappings, more than Valgrind's RAM. */
#define REGION_SIZE_VALGRIND ((uint64_t)128 << 20)
#define REGION_MIN ((uint64_t)16 << 20)
#define SLAB_PAGES 16u
#define NCLASSES 8 /* 16, 32, ... 2048 bytes */
#define SMALL_MAX ((size_t)16 << (NCLASSES - 1))

static struct {
    _Atomic uint32_t lock;
    char *base;
    uint64_t npages;
    uint64_t *bitmap;        /* one bit per page of the region: 1 = in use */
    uint64_t low;            /* every page below it is in use */
    void *free[NCLASSES];    /* free blocks of each size, linked through their first word */
    char *cur[NCLASSES], *end[NCLASSES]; /* the slab being carved */
} km;

static pthread_once_t once = PTHREAD_ONCE_INIT;
static int init_errno;

/* ------------------------------------------------------------ the pages */

static void bits(uint64_t p, uint64_t n, int used)
{
    while (n > 0) {
        uint64_t off = p % 64, k = 64 - off < n ? 64 - off : n;
        uint64_t mask = (k == 64 ? ~(uint64_t)0 : (((uint64_t)1 << k) - 1)) << off;
        if (used)
            km.bitmap[p / 64] |= mask;
        else
            km.bitmap[p / 64] &= ~mask;
        p += k;
        n -= k;
    }
}

/* First run of n free pages in [from, to), or UINT64_MAX: a word of the
 * bitmap at a time, free pages counted up to the next page in use. */
static uint64_t find_run(uint64_t from, uint64_t to, uint64_t n)
{
    uint64_t run = 0, p = from;
    while (p < to) {
        unsigned off = (unsigned)(p % 64);
        uint64_t m = 64 - off < to - p ? 64 - off : to - p; /* pages of this word from p */
        uint64_t w = km.bitmap[p / 64] >> off;
        if (m < 64)
            w &= ((uint64_t)1 << m) - 1;
        uint64_t k = w ? (uint64_t)__builtin_ctzll(w) : m; /* free from p */
        if (run + k >= n)
            return p - run;
        run = w ? 0 : run + m;
        p += w ? k + 1 : m;
    }
    return UINT64_MAX;
}

/* n pages, with the lock held; NULL if the region is full.  The lowest
 * run that fits: pages freed are used again first, so the region's pages
 * that the host ever backed (and its page tables for them) stay those of
 * libumm's peak use, however long the program runs. */
static char *pages_get(uint64_t n)
{
    uint64_t p = find_run(km.low, km.npages, n);
    if (p == UINT64_MAX)
        return NULL;
    bits(p, n, 1);
    if (p == km.low)
        km.low = p + n;
    return km.base + (p << UMM_PAGE_SHIFT);
}

static void pages_put(uint64_t p, uint64_t n)
{
    bits(p, n, 0);
    if (p < km.low)
        km.low = p;
}

static uint64_t pages_of(size_t n)
{
    return ((uint64_t)n + UMM_PAGE_SIZE - 1) >> UMM_PAGE_SHIFT;
}

/* ---------------------------------------------------------------- fork */

static void fork_prepare(void)
{
    umm__bitlock(&km.lock, 0);
}

static void fork_parent(void)
{
    umm__bitunlock(&km.lock, 0);
}

static void fork_child(void)
{
    /* The forking thread held it; no other thread is left to wait. */
    atomic_store(&km.lock, 0);
}

/* ---------------------------------------------------------- the region */

/*
 * The address space the program's RLIMIT_AS leaves now: the limit less the
 * process's size (VmSize), UINT64_MAX without a limit.  The kernel keeps
 * its page tables and page cache outside the process; libumm's count
 * against the program's limit, so at start-up it takes only a small share
 * of this room for them (here and frame.c), and the program's mappings the
 * rest (README, "Limits").
 */
uint64_t umm__as_room(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_AS, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY)
        return UINT64_MAX;
    char buf[4096];
    const char *at = umm__slurp("/proc/self/status", buf, sizeof buf) > 0 ? strstr(buf, "\nVmSize:") : NULL;
    unsigned long kb = at ? strtoul(at + sizeof "\nVmSize:" - 1, NULL, 10) : 0;
    uint64_t used = (uint64_t)kb << 10;
    return rl.rlim_cur > used ? rl.rlim_cur - used : 0;
}

static void init_once(void)
{
    /* Under helgrind and drd mapped PROT_NONE first: helgrind then keeps
     * no state for the region but what is allocated (frame.c does the
     * same with the direct map). */
    int hg = umm__vg_not_memcheck();
    uint64_t size = umm__vg_running() ? REGION_SIZE_VALGRIND : REGION_SIZE;
    uint64_t min = REGION_MIN;
    /* Under RLIMIT_AS, 1/64 of the room: page tables for all the mappings
     * the rest of the room can hold take 1/512 of it (8 bytes a page). */
    uint64_t room = umm__as_room();
    if (room != UINT64_MAX && room / 64 < size) {
        size = (room / 64) & ~(uint64_t)(UMM_PAGE_SIZE - 1);
        min = (uint64_t)1 << 20;
        if (size < min)
            size = min;
    }
    for (;; size /= 2) {
        if (size < min) {
            init_errno = ENOMEM;
            return;
        }
        void *m = mmap(NULL, size, hg ? PROT_NONE : PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (m == MAP_FAILED)
            continue;
        if (hg && mprotect(m, size, PROT_READ | PROT_WRITE) != 0) {
            munmap(m, size);
            continue;
        }
        km.base = m;
        km.npages = size >> UMM_PAGE_SHIFT;
        break;
    }
    uint64_t bm = pages_of((km.npages + 7) / 8);
    km.bitmap = (uint64_t *)km.base;
    umm__vg_noaccess(km.base + (bm << UMM_PAGE_SHIFT), (km.npages - bm) << UMM_PAGE_SHIFT);
    bits(0, bm, 1);
    km.low = bm;
    umm__vg_racy(&km.lock, sizeof km.lock); /* a lock word: vg.h */
    if (pthread_atfork(fork_prepare, fork_parent, fork_child) != 0)
        init_errno = ENOMEM;
}

int umm__kmem_init(void)
{
    pthread_once(&once, init_once);
    if (init_errno) {
        errno = init_errno;
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------------- blocks */

static int class_of(size_t n)
{
    int c = 0;
    while (((size_t)16 << c) < n)
        c++;
    return c;
}

/* A small block of class c, with the lock held; NULL if the region is full. */
static char *block_get(int c)
{
    size_t sz = (size_t)16 << c;
    char *b = km.free[c];
    if (b) {
        umm__vg_defined(b, sizeof(void *)); /* the link kfree wrote */
        km.free[c] = *(void **)b;
        return b;
    }
    if (km.cur[c] == km.end[c]) {
        char *slab = pages_get(SLAB_PAGES);
        if (!slab)
            return NULL;
        km.cur[c] = slab;
        km.end[c] = slab + SLAB_PAGES * UMM_PAGE_SIZE;
    }
    b = km.cur[c];
    km.cur[c] += sz;
    return b;
}

void *umm__kalloc(size_t n)
{
    if (umm__kmem_init() != 0)
        return NULL;
    if (n == 0)
        n = 1;
    char *p;
    umm__bitlock(&km.lock, 0);
    p = n > SMALL_MAX ? pages_get(pages_of(n)) : block_get(class_of(n));
    umm__bitunlock(&km.lock, 0);
    if (!p) {
        errno = ENOMEM;
        return NULL;
    }
    umm__vg_undefined(p, n);
    if (n <= SMALL_MAX)
        memset(p, 0, n); /* pages come zeroed: fresh, or given back when freed */
    else
        umm__vg_defined(p, n);
    umm__vg_forget(p, n); /* helgrind and drd: new memory, whoever had it before */
    return p;
}

void umm__kfree(void *ptr, size_t n)
{
    char *p = ptr;
    if (!p)
        return;
    if (n == 0)
        n = 1;
    if (n > SMALL_MAX) {
        uint64_t np = pages_of(n);
        /* Zeros for the next user, and the memory back to the host,
         * before the pages can be handed out again. */
        umm__vg_undefined(p, np << UMM_PAGE_SHIFT);
        if (madvise(p, np << UMM_PAGE_SHIFT, MADV_DONTNEED) != 0)
            memset(p, 0, np << UMM_PAGE_SHIFT);
        umm__vg_noaccess(p, np << UMM_PAGE_SHIFT);
        umm__bitlock(&km.lock, 0);
        pages_put((uint64_t)(p - km.base) >> UMM_PAGE_SHIFT, np);
        umm__bitunlock(&km.lock, 0);
        return;
    }
    int c = class_of(n);
    umm__bitlock(&km.lock, 0);
    umm__vg_undefined(p, (size_t)16 << c);
    *(void **)p = km.free[c];
    km.free[c] = p;
    /* Under the lock: once it is let go, the block may be someone else's.
     * block_get makes the link addressable again to read it. */
    umm__vg_noaccess(p, (size_t)16 << c);
    umm__bitunlock(&km.lock, 0);
}

void *umm__krealloc(void *ptr, size_t old, size_t n)
{
    if (!ptr)
        return umm__kalloc(n);
    void *q = umm__kalloc(n);
    if (!q)
        return NULL;
    memcpy(q, ptr, old < n ? old : n);
    umm__kfree(ptr, old);
    return q;
}

/* ------------------------------------------------- which pages were written */

/*
 * A page table of a huge mapping (a 4 TiB MAP_NORESERVE one has a billion
 * entries, 8 GiB of them) costs only the pages of it that were written:
 * the rest was never given by the host, and every entry there is zero.  A
 * walk over such a table (munmap, mprotect, the map count's weighing)
 * must not read those pages: on a host without a shared zero page (as the
 * machines this was measured on) each read fault takes a fresh page, and
 * munmap of 4 TiB took 70 s and 8 GiB; with one, the walk still costs a
 * second per TiB.  The host says which pages it gave in /proc/self/pagemap
 * (bit 63: present, bit 62: swapped; no privilege needed for those), so a
 * walk asks it, 512 pages at a time, and skips the rest without a touch.
 *
 * The descriptor is opened for one walk and closed after it: a descriptor
 * kept open would be the program's to close (close_range) and to reuse,
 * and a child of fork would read its parent's table through it.  Where
 * pagemap cannot be read, every page counts as written (the walk reads all,
 * as before).  Only for tables larger than a few pages: the open costs
 * about as much as walking 16,384 entries.
 */
#define KSCAN_MIN ((uint64_t)128 << 10)

void umm__kscan_begin(struct umm__kscan *s, uint64_t bytes)
{
    s->fd = -1;
    s->lo = s->hi = 0;
    if (bytes < KSCAN_MIN)
        return;
    s->fd = (int)syscall(SYS_openat, AT_FDCWD, "/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
    umm__fd_own_number(s->fd); /* not closed under the walk by another thread's closefrom */
}

void umm__kscan_end(struct umm__kscan *s)
{
    if (s->fd >= 0)
        umm__fd_close_own(s->fd);
    s->fd = -1;
}

int umm__kscan_written(struct umm__kscan *s, uintptr_t addr)
{
    if (s->fd < 0)
        return 1;
    uintptr_t page = addr >> UMM_PAGE_SHIFT;
    if (page < s->lo || page >= s->hi) {
        uint64_t pm[512];
        long r = syscall(SYS_pread64, s->fd, pm, sizeof pm, (off_t)(page * sizeof(uint64_t)));
        if (r < (long)sizeof(uint64_t)) { /* the host would not say: read them all */
            umm__kscan_end(s);
            return 1;
        }
        uint64_t n = (uint64_t)r / sizeof(uint64_t);
        memset(s->used, 0, sizeof s->used);
        for (uint64_t i = 0; i < n; i++)
            if (pm[i] & ((uint64_t)3 << 62))
                s->used[i / 64] |= (uint64_t)1 << (i % 64);
        s->lo = page;
        s->hi = page + n;
    }
    uint64_t i = page - s->lo;
    return (s->used[i / 64] >> (i % 64)) & 1;
}
