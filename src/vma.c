/*
 * vma.c: the address space.
 *
 * The VMA set is an array of pointers sorted by address: lookups (the trap)
 * are a binary search, and any number of VMAs is allowed.  Each VMA has a
 * software page table, one entry per page, saying which frame is installed
 * and what the host is allowed to do with it; the table's memory comes from
 * libumm's own region (kmem.c, memory only for the entries written), is
 * allocated with the mapping (never in the trap), and is shared by the
 * pieces of a VMA split by a partial munmap or mprotect.  Like every
 * structure of libumm's, none of it comes from the host's free address
 * space, where it could take a range the program unmapped (kmem.c).
 *
 * On the host, a VMA's address range is always mapped to the memfd (never
 * left to foreign memory): to its object's frames for file and shared
 * mappings, to its private range for private anonymous ones.  Pages not
 * resident are PROT_NONE there, so their first touch traps.  What that
 * costs in host mappings is counted by mapcount.c: inserting, removing and
 * changing entries here tell it.
 */
#include "umm-int.h"
#include "vg.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

/* ------------------------------------------------------------ the set */

static int reserve(size_t more)
{
    if (umm__mm.nvmas + more <= umm__mm.capvmas)
        return 0;
    size_t cap = umm__mm.capvmas ? umm__mm.capvmas : 64;
    while (cap < umm__mm.nvmas + more)
        cap *= 2;
    struct umm__vma **a = umm__krealloc(umm__mm.vmas, umm__mm.capvmas * sizeof *a, cap * sizeof *a);
    if (!a) {
        errno = ENOMEM;
        return -1;
    }
    umm__mm.vmas = a;
    umm__mm.capvmas = cap;
    return 0;
}

/* Into the set, uncounted: a fresh VMA is counted by umm__vma_insert, the
 * second half of a split is no change on the host. */
static void vma_insert(struct umm__vma *v)
{
    size_t i = umm__vma_index(v->start);
    umm__assert(i == umm__mm.nvmas || umm__mm.vmas[i]->start >= v->end);
    memmove(&umm__mm.vmas[i + 1], &umm__mm.vmas[i], (umm__mm.nvmas - i) * sizeof v);
    umm__mm.vmas[i] = v;
    umm__mm.nvmas++;
}

/* Insert a VMA host-mapped PROT_NONE with nothing resident. */
/*
 * A coarse map of where libumm's VMAs are, one bit per 64 MiB of address
 * space, read without the lock (fileio.c: is a buffer handed to read(2)
 * libumm memory?  Most are not, and the answer then costs no lock).  Set
 * when a VMA is inserted, cleared when the last VMA of a region goes, both
 * under the lock for writing; a reader may see a bit late, which only
 * matters for a buffer being mapped while the call is made.
 */
#define REGION_SHIFT 26
#define REGION_TOP ((uintptr_t)1 << 47)
static _Atomic uint64_t regions[(REGION_TOP >> REGION_SHIFT) / 64];

static void regions_mark(uintptr_t start, uintptr_t end, int on)
{
    static int vg_told;
    if (!vg_told++)
        umm__vg_racy(regions, sizeof regions); /* read unlocked on purpose */
    for (uintptr_t r = start >> REGION_SHIFT; r <= (end - 1) >> REGION_SHIFT && r < (REGION_TOP >> REGION_SHIFT); r++) {
        uintptr_t rs = r << REGION_SHIFT, re = rs + ((uintptr_t)1 << REGION_SHIFT);
        struct umm__vma *w = on ? NULL : umm__vma_next(rs, NULL);
        if (on)
            atomic_fetch_or(&regions[r / 64], (uint64_t)1 << (r % 64));
        else if (!w || w->start >= re) /* no VMA left in the region */
            atomic_fetch_and(&regions[r / 64], ~((uint64_t)1 << (r % 64)));
    }
}

int umm__vma_maybe_ours(const void *p, size_t len)
{
    uintptr_t a = (uintptr_t)p, end = a + len;
    if (len == 0)
        return 0;
    if (end < a || end > REGION_TOP)
        return 1;
    for (uintptr_t r = a >> REGION_SHIFT; r <= (end - 1) >> REGION_SHIFT; r++)
        if (atomic_load_explicit(&regions[r / 64], memory_order_relaxed) & ((uint64_t)1 << (r % 64)))
            return 1;
    return 0;
}

int umm__vma_insert(struct umm__vma *v)
{
    if (reserve(1) != 0)
        return -1;
    vma_insert(v);
    regions_mark(v->start, v->end, 1);
    umm__mc_vma_added(v);
    return 0;
}

static void vma_remove(struct umm__vma *v)
{
    size_t i = umm__vma_index(v->start);
    umm__assert(i < umm__mm.nvmas && umm__mm.vmas[i] == v);
    memmove(&umm__mm.vmas[i], &umm__mm.vmas[i + 1], (umm__mm.nvmas - i - 1) * sizeof v);
    umm__mm.nvmas--;
}

/* The read-ahead guess is read and written by concurrent faults without a
 * lock on purpose (a wrong guess costs a page or two of reading): not a
 * race for helgrind and drd. */
static void vg_racy_readahead(struct umm__vma *v)
{
    umm__vg_racy(v->ra, sizeof v->ra);
    umm__vg_racy(&v->ra_clock, sizeof v->ra_clock);
}

/* ------------------------------------------------------- page tables */

static struct umm__ptes *ptes_new(uint64_t n)
{
    struct umm__ptes *t = umm__kalloc(sizeof *t);
    if (!t)
        return NULL;
    t->pte = umm__kalloc(n * sizeof(struct umm__pte));
    if (!t->pte) {
        umm__kfree(t, sizeof *t);
        return NULL;
    }
    umm__vg_racy(t->pte, n * sizeof(struct umm__pte)); /* lock words: vg.h */
    t->n = n;
    t->refs = 1;
    return t;
}

static void ptes_put(struct umm__ptes *t)
{
    if (--t->refs > 0)
        return;
    umm__kfree(t->pte, t->n * sizeof(struct umm__pte));
    umm__kfree(t, sizeof *t);
}

/* Drop this process's hold on a's frame ranges: its own, and the two a
 * fork reserved and has not used (umm_fork reserved them, then fork
 * failed; fork.c). */
void umm__anon_unpin(struct umm__anon *a)
{
    umm__ram_unpin(a->base, a->npages, 0);
    if (a->fork_resv) {
        umm__ram_unpin(a->fork_base[0], a->npages, 0);
        umm__ram_unpin(a->fork_base[1], a->npages, 0);
    }
}

static void anon_put(struct umm__anon *a)
{
    if (!a || --a->refs > 0)
        return;
    umm__anon_unpin(a);
    umm__kfree(a, sizeof *a);
}

/*
 * A new VMA for [start, end) with a page table of its own and, for
 * private mappings (anon_pages > 0), a private frame range.  Nothing is
 * inserted or host-mapped yet.
 */
struct umm__vma *umm__vma_new(uintptr_t start, uintptr_t end)
{
    struct umm__vma *v = umm__kalloc(sizeof *v);
    if (!v)
        return NULL;
    v->start = start;
    v->end = end;
    v->advice = MADV_NORMAL;
    umm__vma_ra_reset(v);
    vg_racy_readahead(v);
    v->ptes = ptes_new(umm__vma_pages(v));
    if (!v->ptes) {
        umm__kfree(v, sizeof *v);
        return NULL;
    }
    return v;
}

/* Give v a private frame range of its own (private mappings). */
int umm__vma_new_anon(struct umm__vma *v)
{
    struct umm__anon *a = umm__kalloc(sizeof *a);
    if (!a)
        return -1;
    a->npages = umm__vma_pages(v);
    if (umm__ram_alloc(a->npages, &a->base) != 0) {
        umm__kfree(a, sizeof *a);
        return -1;
    }
    a->refs = 1;
    v->anon = a;
    v->anon_off = 0;
    return 0;
}

void umm__rmap_add(struct umm__object *obj, struct umm__vma *v)
{
    v->rprev = NULL;
    v->rnext = obj->rmap;
    if (obj->rmap)
        obj->rmap->rprev = v;
    obj->rmap = v;
}

void umm__rmap_del(struct umm__object *obj, struct umm__vma *v)
{
    if (v->rprev)
        v->rprev->rnext = v->rnext;
    else
        obj->rmap = v->rnext;
    if (v->rnext)
        v->rnext->rprev = v->rprev;
    v->rnext = v->rprev = NULL;
}

/*
 * Split the VMA containing addr so that a VMA starts at addr.  The two
 * halves share the page table, the private range and the object.  Returns
 * 0, or -1 (ENOMEM) having changed nothing.
 */
int umm__vma_split(uintptr_t addr)
{
    struct umm__vma *v = umm__vma_find(addr);
    if (!v || v->start == addr)
        return 0;
    if (reserve(1) != 0)
        return -1;
    struct umm__vma *w = umm__kalloc(sizeof *w);
    if (!w) {
        errno = ENOMEM;
        return -1;
    }
    *w = *v;
    uint64_t pages = (addr - v->start) >> UMM_PAGE_SHIFT;
    w->start = addr;
    w->fpage += pages;
    w->anon_off += pages;
    w->pte_off += pages;
    umm__vma_ra_reset(w);
    vg_racy_readahead(w);
    v->end = addr;
    w->ptes->refs++;
    if (w->anon)
        w->anon->refs++;
    if (w->obj) {
        w->obj->refs++;
        umm__rmap_add(w->obj, w);
    }
    vma_insert(w);
    return 0;
}

/* ------------------------------------------------------ pages and host */

/* The host protection page p of v needs, and through *next the page after
 * the run known to need it (entries never written: PROT_NONE, unread). */
static int prot_at(const struct umm__vma *v, uint64_t p, uint64_t to, struct umm__kscan *ks, uint64_t *next)
{
    uint64_t q = umm__pte_next(v, p, to, ks);
    if (q > p) {
        *next = q;
        return PROT_NONE;
    }
    *next = p + 1;
    return umm__host_prot(v, atomic_load(&umm__vma_pte(v, p)->flags));
}

/*
 * Set the host protection of pages [from, to) of v from their page-table
 * entries, one mprotect per run of equal protection.  When the host's map
 * count is full, pages are released elsewhere (perhaps some of these:
 * hence the protection is looked at again) and the run tried again.
 */
int umm__vma_reprotect(struct umm__vma *v, uint64_t from, uint64_t to)
{
    int rc = 0;
    uint64_t p = from, q, r;
    struct umm__kscan ks;
    umm__kscan_begin(&ks, (to - from) * sizeof(struct umm__pte));
    while (p < to) {
        int prot = prot_at(v, p, to, &ks, &q);
        while (q < to && prot_at(v, q, to, &ks, &r) == prot)
            q = r;
        if (mprotect((void *)(v->start + (p << UMM_PAGE_SHIFT)), (q - p) << UMM_PAGE_SHIFT, prot) != 0) {
            if (errno == ENOMEM && umm__mc_squeeze())
                continue;
            rc = -1;
        }
        p = q;
    }
    umm__kscan_end(&ks);
    return rc;
}

int umm__vma_set_prot(struct umm__vma *v, int prot)
{
    umm__mc_set_prot(v, prot);
    return umm__vma_reprotect(v, 0, umm__vma_pages(v));
}

int umm__host_mprotect(void *addr, size_t len, int prot)
{
    while (mprotect(addr, len, prot) != 0)
        if (errno != ENOMEM || !umm__mc_squeeze())
            return -1;
    return 0;
}

/*
 * Map [off, off+len) of fd at addr with prot (MAP_SHARED, MAP_FIXED).
 * Under helgrind and drd it comes in PROT_NONE and then gets prot: helgrind
 * takes a mapping that can be touched as written by the thread that made it
 * (here the one that took the fault), and would call every other thread's
 * touch of the page a race with it; after mprotect it keeps what umm_mmap
 * painted (see vg.h).
 */
static int host_map(void *addr, size_t len, int prot, int fd, off_t off, int now)
{
    int twostep = prot != PROT_NONE && umm__vg_hg;
    int flags = MAP_SHARED | MAP_FIXED | (now && !twostep ? MAP_POPULATE : 0);
    while (mmap(addr, len, twostep ? PROT_NONE : prot, flags, fd, off) == MAP_FAILED)
        if (errno != ENOMEM || !umm__mc_squeeze())
            return -1;
    if (!twostep)
        return 0;
    if (umm__host_mprotect(addr, len, prot) != 0)
        return -1;
    if (now)
        madvise(addr, len, prot & PROT_WRITE ? 23 /* MADV_POPULATE_WRITE */ : 22 /* _READ */);
    return 0;
}

int umm__host_map(void *addr, size_t len, int prot, int fd, off_t off)
{
    return host_map(addr, len, prot, fd, off, 0);
}

int umm__host_map_frames(void *addr, size_t len, int prot, umm__pfn pfn)
{
    return host_map(addr, len, prot, umm__ram.fd, (off_t)((uint64_t)pfn << UMM_PAGE_SHIFT), 0);
}

/* The same, with the host's page table filled in the same call (the memfd
 * is shared and needs no write notification, so the populated entries are
 * writable where prot is): a page the program is about to touch, one
 * system call instead of a mmap, a populate and no host fault. */
int umm__host_map_frames_now(void *addr, size_t len, int prot, umm__pfn pfn)
{
    return host_map(addr, len, prot, umm__ram.fd, (off_t)((uint64_t)pfn << UMM_PAGE_SHIFT), 1);
}

/* Map pages [p, p+n) of v with prot on the host, where they show frames
 * pfn.. (one extent of the object, or private frames): the memfd at those
 * frames, or for a zero-copy extent's (umm__frame_host) the file itself at the
 * pages' place in it -- the host's own page cache, shared with read(2) and
 * every other mapping of the file. */
static int map_run(struct umm__vma *v, uint64_t p, uint64_t n, int prot, umm__pfn pfn)
{
    void *at = (void *)(v->start + (p << UMM_PAGE_SHIFT));
    if (v->obj && umm__frame_host(pfn))
        return umm__host_map(at, n << UMM_PAGE_SHIFT, prot, v->obj->fd, (off_t)((v->fpage + p) << UMM_PAGE_SHIFT));
    return umm__host_map_frames(at, n << UMM_PAGE_SHIFT, prot, pfn);
}

/* Host-map [start, end) of v to its frames, PROT_NONE, replacing whatever
 * was there (our own reservation). */
int umm__vma_host_map(struct umm__vma *v, uintptr_t start, uintptr_t end)
{
    uint64_t p = (start - v->start) >> UMM_PAGE_SHIFT, e = (end - v->start) >> UMM_PAGE_SHIFT;
    while (p < e) {
        umm__pfn pfn;
        uint64_t n;
        if (v->obj) {
            pfn = umm__object_pfn(v->obj, v->fpage + p);
            n = umm__object_run(v->obj, v->fpage + p, e - p);
        } else {
            pfn = umm__vma_anon_pfn(v, p);
            n = e - p;
        }
        void *at = (void *)(v->start + (p << UMM_PAGE_SHIFT));
        if (map_run(v, p, n, PROT_NONE, pfn) != 0)
            return -1;
        umm__vg_defined(at, n << UMM_PAGE_SHIFT); /* see vg.h */
        p += n;
    }
    return 0;
}

/* Drop a private frame's reference; returns 1 when it was the last. */
static int anon_frame_put(umm__pfn pfn)
{
    uint32_t old = atomic_fetch_sub(&umm__frame(pfn)->ref, 1);
    umm__assert(old > 0);
    return old == 1;
}

/*
 * Release pages [from, to) of v: drop private frames (discarding their
 * memory when the last reference goes), forget page-cache frames, clear
 * the entries.  No I/O and no host call but discards: the caller unmaps or
 * reprotects the range.
 */
void umm__vma_release_pages(struct umm__vma *v, uint64_t from, uint64_t to)
{
    umm__pfn run = 0;
    uint64_t runlen = 0;
    int64_t freed = 0, unres = 0;
    struct umm__kscan ks;
    umm__kscan_begin(&ks, (to - from) * sizeof(struct umm__pte));
    for (uint64_t p = from; p < to; p++) {
        if (p == from || umm__pte_page_start(v, p)) {
            p = umm__pte_next(v, p, to, &ks);
            if (p == to)
                break;
        }
        struct umm__pte *pte = umm__vma_pte(v, p);
        uint32_t f = atomic_load(&pte->flags);
        if (!(f & (UMM__P_PRESENT | UMM__P_ANON)))
            continue;
        umm__assert(!(f & UMM__P_LOCKED));
        unres += (f & UMM__P_PRESENT) != 0;
        if (!(f & UMM__P_ANON) || !anon_frame_put(pte->pfn))
            continue;
        if (atomic_fetch_and(&umm__frame(pte->pfn)->flags, ~UMM__F_SWAPPED) & UMM__F_SWAPPED) {
            /* Its bytes were in the swap file only (vmscan.c). */
            umm__swap_forget(pte->pfn, 1);
            umm__ram_frames_dead(pte->pfn, 1);
            continue;
        }
        freed++;
        if (runlen && run + runlen == pte->pfn) {
            runlen++;
        } else {
            umm__ram_discard(run, runlen);
            umm__ram_frames_dead(run, runlen);
            run = pte->pfn;
            runlen = 1;
        }
    }
    umm__kscan_end(&ks);
    umm__mc_update(v, from, to, 0, UMM__P_PRESENT | UMM__P_WRITE | UMM__P_ANON | UMM__P_OLD, UMM__MC_NOLIMIT);
    umm__ram_discard(run, runlen);
    umm__ram_frames_dead(run, runlen);
    umm__ram_count(-freed);
    atomic_fetch_sub(&umm__mm.resident, (uint64_t)unres);
}

/* Remove v from the set and free it; its pages must be released. */
void umm__vma_destroy(struct umm__vma *v)
{
    umm__mc_vma_removing(v);
    vma_remove(v);
    regions_mark(v->start, v->end, 0);
    if (v->obj)
        umm__rmap_del(v->obj, v);
    anon_put(v->anon);
    ptes_put(v->ptes);
    umm__kfree(v, sizeof *v);
}

/*
 * mremap: move v, entries, frames, object and private range unchanged, to
 * start at `to`, a range with no VMA that the caller has reserved on the
 * host.  The host maps the new range as the entries say: every page to its
 * slot PROT_NONE, then the resident ones to the frames they use with their
 * protection, so nothing is copied or faulted again.  An armed SIGBUS page
 * is disarmed: its next touch faults and arms it again at the new place.
 * The old range is the caller's; so is the map count (umm__mc_recount).
 */
int umm__vma_move(struct umm__vma *v, uintptr_t to)
{
    uintptr_t len = v->end - v->start;
    vma_remove(v);
    regions_mark(v->start, v->end, 0);
    v->start = to;
    v->end = to + len;
    vma_insert(v);
    regions_mark(v->start, v->end, 1);
    return umm__vma_host_map_entries(v);
}

int umm__vma_host_map_entries(struct umm__vma *v)
{
    if (umm__vma_host_map(v, v->start, v->end) != 0)
        return -1;
    uint64_t n = umm__vma_pages(v);
    for (uint64_t p = 0; p < n;) {
        struct umm__pte *pte = umm__vma_pte(v, p);
        uint32_t f = atomic_load(&pte->flags);
        if (f & UMM__P_SIGBUS)
            atomic_fetch_and(&pte->flags, ~(UMM__P_SIGBUS | UMM__P_NOSPACE));
        if ((f & (UMM__P_PRESENT | UMM__P_ANON)) == UMM__P_ANON) {
            /* Reclaim took it out: it keeps its frame (swapped or not). */
            if (umm__host_map_frames((void *)(v->start + (p << UMM_PAGE_SHIFT)), UMM_PAGE_SIZE, PROT_NONE,
                                     pte->pfn) != 0)
                return -1;
            p++;
            continue;
        }
        if (!(f & UMM__P_PRESENT) || (f & UMM__P_SIGBUS)) {
            p++;
            continue;
        }
        int prot = umm__host_prot(v, f);
        umm__pfn pfn = (f & UMM__P_ANON) ? pte->pfn
                       : v->obj            ? umm__object_pfn(v->obj, v->fpage + p)
                                           : umm__vma_anon_pfn(v, p);
        uint64_t q = p + 1;
        while (q < n) {
            const struct umm__pte *t = umm__vma_pte(v, q);
            uint32_t g = atomic_load(&t->flags);
            if (!(g & UMM__P_PRESENT) || (g & UMM__P_SIGBUS) || umm__host_prot(v, g) != prot)
                break;
            umm__pfn r = (g & UMM__P_ANON) ? t->pfn
                         : v->obj            ? umm__object_pfn(v->obj, v->fpage + q)
                                             : umm__vma_anon_pfn(v, q);
            if (r != pfn + (q - p) || umm__frame_host(r) != umm__frame_host(pfn))
                break;
            q++;
        }
        if (map_run(v, p, q - p, prot, pfn) != 0)
            return -1;
        p = q;
    }
    return 0;
}

/* Free a VMA that was never inserted (a failed mmap). */
void umm__vma_discard(struct umm__vma *v)
{
    if (v->obj)
        umm__rmap_del(v->obj, v);
    anon_put(v->anon);
    ptes_put(v->ptes);
    umm__kfree(v, sizeof *v);
}

/* ------------------------------------------------------------- SIGBUS */

static int sigbus_fd = -1; /* an empty memfd: touching it is SIGBUS */

/* At start-up (init.c): the empty file that armed pages map. */
int umm__sigbus_init(void)
{
    sigbus_fd = umm__sys_memfd_create("libumm-sigbus", MFD_CLOEXEC);
    if (sigbus_fd < 0)
        return -1;
    sigbus_fd = umm__fd_own(sigbus_fd);
    return 0;
}

/* Map page addr of v to the empty memfd, so the retried access raises a
 * real SIGBUS.  With the mapping's own protection, so that an access it
 * forbids (a write to a PROT_READ page) still raises SIGSEGV there, as in
 * the kernel, which checks the protection before it looks at the file.
 * Called by fault.c with the page's entry held; trap.c disarms. */
int umm__arm_sigbus(struct umm__vma *v, uint64_t page)
{
    if (umm__host_map((void *)(v->start + (page << UMM_PAGE_SHIFT)), UMM_PAGE_SIZE,
                      umm__host_prot(v, UMM__P_PRESENT | UMM__P_WRITE), sigbus_fd, 0) != 0)
        return -1;
    umm__mc_update(v, page, page + 1, UMM__P_SIGBUS, 0, UMM__MC_NOLIMIT);
    return 0;
}

/* ------------------------------------------------------------- at exit */

/*
 * Under Valgrind, the last thing a process does: give memcheck's leak check
 * the blocks still alive as the program holds them (vg.h).  It counts a
 * pointer only to a page the host lets it read, so the first page of a
 * block that is not readable gets a zero page in its place (nothing runs
 * any more that could read the page's own bytes there); and it reads no
 * undefined word as a pointer, so the VMAs' copies of the mappings'
 * addresses, which would keep every mapping reachable, become undefined.
 * A process of a fork family gives its mappings back at exit instead
 * (mman.c's at_last), whichever way it exits: its blocks are free'd.
 * The lock is held for reading while this runs, and not waited for long:
 * the process may be dying of a signal in the middle of a call.  fault is
 * the address of a fault about to be retried to kill the process, or 0:
 * its page keeps what it has, so that the retry faults again.
 */
void umm__vg_exit(uintptr_t fault)
{
    static _Atomic int done;
    if (!umm__vg_running() || getpid() != umm__mm.pid || atomic_exchange(&done, 1))
        return;
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += 1;
    if (pthread_rwlock_timedrdlock(&umm__mm.lock, &deadline) != 0)
        return;
    for (size_t i = 0; i < umm__vma_count(); i++) {
        struct umm__vma *v = umm__vma_at(i);
        if (umm__mm.forked) {
            if (v->start == v->block)
                umm__vg_block_free(v->block);
            continue;
        }
        if (v->start == v->block && v->start != (fault & UMM_PAGE_MASK) &&
            !(umm__host_prot(v, atomic_load(&umm__vma_pte(v, 0)->flags)) & PROT_READ))
            mmap((void *)v->start, UMM_PAGE_SIZE, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
        umm__vg_undefined(&v->start, sizeof v->start);
        umm__vg_undefined(&v->end, sizeof v->end);
        umm__vg_undefined(&v->block, sizeof v->block);
    }
    umm__vg_undefined(&umm__mm.vg_next_hint, sizeof umm__mm.vg_next_hint);
    umm__trace_vg_exit();
    pthread_rwlock_unlock(&umm__mm.lock);
}
