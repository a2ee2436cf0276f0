/*
 * mapcount.c: the host kernel's map count, kept as a budget.
 *
 * Linux allows a process about 65,530 mappings (vm.max_map_count), and
 * every separate run of libumm's resident pages costs one: touching single
 * pages of a large file at random would run out after a few tens of
 * thousands of faults, and the next mprotect would fail with ENOMEM.  So
 * libumm counts the host mappings its pages take and keeps the count under
 * a budget (UMM_MAP_BUDGET in the environment, default 40,000 or 5/8 of the
 * host's limit if that is lower), leaving the rest to the program.
 *
 * The count is exact, not an estimate.  The host merges neighbouring
 * mappings of the memfd that have the same protection and consecutive
 * offsets, so a page of a libumm VMA starts a host mapping unless the page
 * just before it (in the same VMA, or the last page of a VMA that ends
 * where this one starts) has the same host protection and the previous
 * frame.  What the host maps at a page follows from its entry's bits: an
 * armed SIGBUS page maps another file (it merges with nothing), an ANON
 * page or any page of a private anonymous mapping its private frame, any
 * other page its object's frame.  Every change of those bits goes through
 * umm__mc_update(), which counts the starts in the window the change can
 * affect, before and after, under one small lock; faults run concurrently,
 * but the lock makes each change and its delta one step.  tests/
 * test-map-count compares the count with /proc/self/maps.  The floor is
 * kept the same way: the count as it would be if every resident page-cache
 * page were released, what releasing can never bring it below.
 *
 * Near the budget, reclaim (vmscan.c: asked by the fault stages, and by
 * mmap and mprotect after they changed the count) has resident page-cache
 * pages released elsewhere (umm__mc_release, a clock of this file's own):
 * the frame stays in the page cache, dirty or not, so only this mapping of
 * it goes and the next touch is a cheap fault that reads nothing.  Private copies (ANON) are the
 * only copy of their bytes and are never released; once the floor passes
 * half the budget the fault stages widen them instead, so that a new one
 * joins its resident neighbours, and the other half stays for the page
 * cache.  Should the host refuse a mapping all the same (the program's own
 * mappings count against its limit too), libumm releases what it can, tries
 * again (umm__mc_squeeze), and keeps to what the host gave from then on.
 */
#include "umm-int.h"
#include "vg.h"

#include <fcntl.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#define DEFAULT_BUDGET 40000
#define VALGRIND_BUDGET 4000

static _Atomic uint32_t lock;     /* the count's lock: innermost */
static _Atomic uint64_t count;    /* host mappings of libumm's pages */
static _Atomic uint64_t floor_;   /* what count would be with no page-cache page */
static _Atomic uint64_t releasable; /* resident page-cache pages (entries) */
static _Atomic uint64_t budget;   /* 0 until the first mapping; only falls */
static _Atomic size_t hand_vma;   /* where releasing goes on (a clock) */
static _Atomic uint64_t hand_page;

/* ------------------------------------------------------------ the budget */

/* Read once, at the first mapping (never in the trap).  Never above the
 * host's own limit, less what a program needs at the least: a budget the
 * host cannot give would not be kept. */
static void budget_init(void)
{
    if (atomic_load(&budget))
        return;
    /* Changed under the lock, read without it on purpose (a snapshot
     * against the budget, umm_stats): not races for helgrind and drd. */
    umm__vg_racy(&count, sizeof count);
    umm__vg_racy(&floor_, sizeof floor_);
    umm__vg_racy(&releasable, sizeof releasable);
    umm__vg_racy(&lock, sizeof lock);
    /* Valgrind keeps its own table of the host's mappings, of fixed size
     * (VG_N_SEGMENTS: it aborts at about 15,000 separate mappings, two
     * table entries each with the gaps between), so under it the budget
     * is much smaller: pages are then joined and released sooner. */
    uint64_t b = umm__vg_running() ? VALGRIND_BUDGET : DEFAULT_BUDGET, cap = UINT64_MAX;
    /* Read without stdio, whose buffer is malloc'ed: a thread's first
     * malloc maps an arena, perhaps where the program just unmapped, and
     * libumm's memory is never there (kmem.c). */
    char buf[32];
    if (umm__slurp("/proc/sys/vm/max_map_count", buf, sizeof buf) > 0) {
        unsigned long long max = strtoull(buf, NULL, 10);
        if (max > 2048) {
            cap = max - 1024;
            if (max * 5 / 8 < b)
                b = max * 5 / 8;
        }
    }
    const char *s = getenv("UMM_MAP_BUDGET");
    if (s && *s) {
        char *end;
        unsigned long long v = strtoull(s, &end, 10);
        if (*end == 0 && v > 0)
            b = v < cap ? v : cap;
    }
    atomic_store(&budget, b);
}

uint64_t umm__mc_budget(void)
{
    uint64_t b = atomic_load_explicit(&budget, memory_order_relaxed);
    return b ? b : DEFAULT_BUDGET;
}

uint64_t umm__mc_count(void)
{
    return atomic_load_explicit(&count, memory_order_relaxed);
}

/* ---------------------------------------------------- what the host maps */

/* A resident page that can be released: its frame is the page cache's. */
static int releasable_bits(uint32_t f)
{
    return (f & UMM__P_PRESENT) && !(f & (UMM__P_ANON | UMM__P_SIGBUS));
}

/* A page as the host sees it: its protection (-1: another file, merges
 * with nothing), the file it maps (0: libumm's memfd; a zero-copy page,
 * its object: the file itself) and its place there (frame, or file page). */
struct hs {
    int prot;
    uintptr_t file;
    uint64_t pfn;
};

/* The extent last looked up, so that a scan of many pages costs one
 * search per extent. */
struct home {
    const struct umm__object *obj;
    uint64_t lo, hi;
    umm__pfn base;
};

static uint64_t object_pfn(struct home *h, struct umm__object *obj, uint64_t fp)
{
    if (h->obj != obj || fp < h->lo || fp >= h->hi) {
        h->obj = obj;
        h->lo = fp;
        h->base = umm__object_pfn(obj, fp);
        h->hi = fp + umm__object_run(obj, fp, UINT64_MAX - fp);
    }
    return h->base + (fp - h->lo);
}

static struct hs host_state(struct home *h, const struct umm__vma *v, uint64_t page, uint32_t f)
{
    struct hs s = { -1, 0, 0 };
    if (f & UMM__P_SIGBUS)
        return s;
    s.prot = umm__host_prot(v, f);
    if (f & UMM__P_ANON) /* after fork, not always the page's slot */
        s.pfn = umm__vma_pte(v, page)->pfn;
    else if (!v->obj)
        s.pfn = umm__vma_anon_pfn(v, page);
    else if (umm__frame_host(s.pfn = object_pfn(h, v->obj, v->fpage + page))) {
        s.file = (uintptr_t)v->obj; /* zero-copy: the host maps the file itself (vma.c) */
        s.pfn = v->fpage + page;
    }
    return s;
}

static int merges(struct hs a, struct hs b)
{
    return a.prot >= 0 && b.prot == a.prot && b.file == a.file && b.pfn == a.pfn + 1;
}

/* Do file pages fp-1 and fp of obj, both placed, lie on one host mapping
 * when mapped alike?  Frames in a row in the memfd, or both zero-copy. */
static int extents_join(const struct umm__object *obj, uint64_t fp)
{
    umm__pfn a = umm__object_pfn(obj, fp - 1), b = umm__object_pfn(obj, fp);
    if (umm__frame_host(a) || umm__frame_host(b))
        return umm__frame_host(a) && umm__frame_host(b);
    return b == a + 1;
}

/* A change being weighed: entries [from, to) seen as (f & ~clear) | set;
 * with floor, resident page-cache pages seen as released. */
struct change {
    const struct umm__vma *v;
    uint64_t from, to;
    uint32_t set, clear;
    int floor;
};

/* An entry's flags f as the view c sees them. */
static uint32_t view_bits(uint32_t f, const struct umm__vma *v, uint64_t page, const struct change *c)
{
    if (c && c->v == v && page >= c->from && page < c->to)
        f = (f & ~c->clear) | c->set;
    if (c && c->floor && releasable_bits(f))
        f &= ~(UMM__P_PRESENT | UMM__P_WRITE);
    return f;
}

static uint32_t bits(const struct umm__vma *v, uint64_t page, const struct change *c)
{
    return view_bits(atomic_load_explicit(&umm__vma_pte(v, page)->flags, memory_order_relaxed), v, page, c);
}

/* The VMAs that touch v on the left and on the right, if any. */
static struct umm__vma *left_of(const struct umm__vma *v)
{
    return v->start ? umm__vma_find(v->start - 1) : NULL;
}

static struct umm__vma *right_of(const struct umm__vma *v)
{
    struct umm__vma *w = umm__vma_find(v->end);
    return w && w->start == v->end ? w : NULL;
}

/*
 * Pages [p, q) of v have zero entries (kmem.c: their page-table memory was
 * never written), seen through nothing that sets bits there.  How many of
 * them start a host mapping after prev; prev becomes the last one's state.
 * Each maps its slot PROT_NONE: private anonymous slots are consecutive,
 * an object's only within an extent.
 */
static uint64_t zero_starts(struct home *h, const struct umm__vma *v, uint64_t p, uint64_t q, struct hs *prev)
{
    uint64_t n = 0;
    struct hs s = host_state(h, v, p, 0);
    n += !merges(*prev, s);
    for (uint64_t i = p; v->obj && i < q;) {
        uint64_t fp = v->fpage + i, k = umm__object_run(v->obj, fp, q - i);
        if (i > p && !extents_join(v->obj, fp))
            n++;
        i += k;
    }
    *prev = host_state(h, v, q - 1, 0);
    return n;
}

/*
 * How many of the pages [from, to] of v start a host mapping; page `to`
 * == the VMA's length means the first page of the VMA that touches v on
 * the right (nothing if none does).  Seen through each of nv views c[i]
 * (a change, the floor; NULL: as it is), counted into n[i], in one walk:
 * a change is weighed four ways (before and after, count and floor), and
 * four walks of a long run cost four times one (fork's recount of 1 GiB:
 * doc/PERFORMANCE.md 2026-12-07).  Entries never written are skipped
 * unread (ks: kmem.c), except where a view sets bits on them.
 */
#define VIEWS 4
static void starts_views(const struct umm__vma *v, uint64_t from, uint64_t to, const struct change *const *c, int nv,
                         uint64_t *n, struct umm__kscan *ks)
{
    struct home h = { 0 };
    uint64_t npages = umm__vma_pages(v);
    struct hs prev[VIEWS];
    struct umm__vma *u = from > 0 ? NULL : left_of(v);
    for (int i = 0; i < nv; i++) {
        n[i] = 0;
        prev[i] = (struct hs){ -1, 0, 0 };
        if (from > 0)
            prev[i] = host_state(&h, v, from - 1, bits(v, from - 1, c[i]));
        else if (u)
            prev[i] = host_state(&h, u, umm__vma_pages(u) - 1, bits(u, umm__vma_pages(u) - 1, c[i]));
    }
    uint64_t end = to < npages ? to + 1 : npages;
    for (uint64_t p = from; p < end; p++) {
        if (p == from || umm__pte_page_start(v, p)) {
            uint64_t q = umm__pte_next(v, p, end, ks);
            for (int i = 0; i < nv; i++) /* bits set there: read them */
                if (c[i] && c[i]->v == v && c[i]->set && c[i]->from < q && c[i]->to > p)
                    q = c[i]->from > p ? c[i]->from : p;
            if (q > p) {
                for (int i = 0; i < nv; i++)
                    n[i] += zero_starts(&h, v, p, q, &prev[i]);
                p = q - 1;
                continue;
            }
        }
        uint32_t f = atomic_load_explicit(&umm__vma_pte(v, p)->flags, memory_order_relaxed);
        for (int i = 0; i < nv; i++) {
            struct hs s = host_state(&h, v, p, view_bits(f, v, p, c[i]));
            n[i] += !merges(prev[i], s);
            prev[i] = s;
        }
    }
    struct umm__vma *w = to == npages ? right_of(v) : NULL;
    for (int i = 0; w && i < nv; i++)
        n[i] += !merges(prev[i], host_state(&h, w, 0, bits(w, 0, c[i])));
}

static void count_lock(void)
{
    umm__bitlock(&lock, 0);
}

static void count_unlock(void)
{
    umm__bitunlock(&lock, 0);
}

/* -------------------------------------------------------------- changes */

#define LOCKBITS (UMM__P_LOCKED | UMM__P_WAITERS)

/* The count and the floor before and after a change, under the lock. */
struct weigh {
    uint64_t before, after, fbefore, fafter;
};

static void weigh(struct umm__vma *v, const struct change *c, struct weigh *w, struct umm__kscan *ks)
{
    struct change fl = *c, fl_as_is = { v, 0, 0, 0, 0, 1 };
    fl.floor = 1;
    const struct change *views[4] = { NULL, c, &fl_as_is, &fl };
    uint64_t n[4];
    starts_views(v, c->from, c->to, views, 4, n, ks);
    w->before = n[0];
    w->after = n[1];
    w->fbefore = n[2];
    w->fafter = n[3];
}

int umm__mc_update(struct umm__vma *v, uint64_t from, uint64_t to, uint32_t set, uint32_t clear, uint64_t limit)
{
    if (from >= to)
        return 0;
    struct change c = { v, from, to, set & ~LOCKBITS, clear & ~LOCKBITS, 0 };
    struct weigh w;
    struct umm__kscan ks;
    /* Opened before the lock: no system call but the reads under it. */
    umm__kscan_begin(&ks, (to - from) * sizeof(struct umm__pte));
    count_lock();
    weigh(v, &c, &w, &ks);
    uint64_t now = atomic_load_explicit(&count, memory_order_relaxed);
    if (w.after > w.before && now + (w.after - w.before) > limit) {
        count_unlock();
        umm__kscan_end(&ks);
        return -1;
    }
    int64_t rel = 0;
    for (uint64_t p = from; p < to; p++) {
        /* Entries never written stay zero unless this sets bits. */
        if (!c.set && (p == from || umm__pte_page_start(v, p))) {
            p = umm__pte_next(v, p, to, &ks);
            if (p == to)
                break;
        }
        /* Only entries that change are written: the page tables' memory
         * comes from the host when first written (a huge munmap). */
        struct umm__pte *pte = umm__vma_pte(v, p);
        uint32_t f = atomic_load_explicit(&pte->flags, memory_order_relaxed);
        if (f & c.clear)
            atomic_fetch_and(&pte->flags, ~c.clear);
        if (~f & c.set)
            atomic_fetch_or(&pte->flags, c.set);
        /* Write access taken away for any reason but umm_dirty's clear
         * (which clears SOFTDIRTY with it): remember the page may have been
         * written (softdirty.c). */
        if ((f & c.clear & UMM__P_WRITE) && !(c.clear & UMM__P_SOFTDIRTY))
            atomic_fetch_or(&pte->flags, UMM__P_SOFTDIRTY);
        uint32_t nf = (f & ~c.clear) | c.set;
        int ow = umm__pte_writes_cache(v, f), nw = umm__pte_writes_cache(v, nf);
        if (ow != nw) /* the frame's writers, for write-back across fork */
            atomic_fetch_add(&umm__frame(pte->pfn)->ref, nw ? 1u : UINT32_MAX);
        int om = (f & (UMM__P_PRESENT | UMM__P_SIGBUS)) == UMM__P_PRESENT,
            nm = (nf & (UMM__P_PRESENT | UMM__P_SIGBUS)) == UMM__P_PRESENT;
        if (om != nm) { /* the frame's mappers, for reclaim across fork */
            uint32_t was = atomic_fetch_add(&umm__frame(pte->pfn)->mapped, nm ? 1u : UINT32_MAX);
            umm__assert(nm || was > 0);
        }
        rel += releasable_bits((f & ~c.clear) | c.set) - releasable_bits(f);
    }
    atomic_store_explicit(&count, now + w.after - w.before, memory_order_relaxed);
    atomic_fetch_add_explicit(&floor_, w.fafter - w.fbefore, memory_order_relaxed);
    atomic_fetch_add_explicit(&releasable, (uint64_t)rel, memory_order_relaxed);
    count_unlock();
    umm__kscan_end(&ks);
    return 0;
}

/*
 * fork.c's prepare: private entries [from, to) of v lose WRITE (and are
 * marked SOFTDIRTY, as umm__mc_update marks a page whose write access
 * goes), with the count left as it was: the caller holds the address-space
 * lock for writing, no entry is held, and both sides recount
 * (umm__mc_recount) before the lock goes.  A private page's WRITE counts
 * in no frame (its ref is its users, mapped its presence), so the count is
 * all umm__mc_update would have kept besides, and weighing it here cost a
 * quarter of a fork of 1 GiB (doc/PERFORMANCE.md 2026-12-07).
 */
void umm__mc_write_protect_forking(struct umm__vma *v, uint64_t from, uint64_t to)
{
    for (uint64_t p = from; p < to; p++) {
        struct umm__pte *pte = umm__vma_pte(v, p);
        uint32_t f = atomic_load_explicit(&pte->flags, memory_order_relaxed);
        umm__assert(!umm__pte_writes_cache(v, f) && !(f & LOCKBITS));
        if (f & UMM__P_WRITE)
            atomic_store_explicit(&pte->flags, (f & ~UMM__P_WRITE) | UMM__P_SOFTDIRTY, memory_order_relaxed);
    }
}

int umm__mc_floor_fits(struct umm__vma *v, uint64_t from, uint64_t to, uint32_t set, uint64_t b)
{
    if (atomic_load_explicit(&floor_, memory_order_relaxed) + (to - from) + 1 <= b)
        return 1;
    struct change c = { v, from, to, set & ~LOCKBITS, 0, 1 }, fl_as_is = { v, 0, 0, 0, 0, 1 };
    const struct change *views[2] = { &fl_as_is, &c };
    uint64_t n[2];
    struct umm__kscan ks;
    umm__kscan_begin(&ks, (to - from) * sizeof(struct umm__pte));
    count_lock();
    starts_views(v, from, to, views, 2, n, &ks);
    uint64_t before = n[0], after = n[1];
    uint64_t now = atomic_load_explicit(&floor_, memory_order_relaxed);
    count_unlock();
    umm__kscan_end(&ks);
    return after <= before || now + (after - before) <= b;
}

/* Called with umm__mm.lock held for writing: no fault runs.  Each VMA's
 * pages, its first one measured against its left neighbour. */
void umm__mc_recount(void)
{
    uint64_t c = 0, f = 0;
    count_lock();
    for (size_t i = 0; i < umm__mm.nvmas; i++) {
        struct umm__vma *v = umm__mm.vmas[i];
        struct change fl = { v, 0, 0, 0, 0, 1 };
        const struct change *views[2] = { NULL, &fl };
        uint64_t n[2];
        struct umm__kscan ks;
        umm__kscan_begin(&ks, umm__vma_pages(v) * sizeof(struct umm__pte));
        starts_views(v, 0, umm__vma_pages(v) - 1, views, 2, n, &ks);
        umm__kscan_end(&ks);
        c += n[0];
        f += n[1];
    }
    atomic_store(&count, c);
    atomic_store(&floor_, f);
    count_unlock();
}

/* Called with umm__mm.lock held for writing: no fault runs. */
void umm__mc_set_prot(struct umm__vma *v, int prot)
{
    struct change fl = { v, 0, 0, 0, 0, 1 };
    uint64_t n = umm__vma_pages(v);
    struct umm__kscan ks;
    umm__kscan_begin(&ks, n * sizeof(struct umm__pte));
    const struct change *views[2] = { NULL, &fl };
    uint64_t before[2], after[2];
    count_lock();
    starts_views(v, 0, n, views, 2, before, &ks);
    v->prot = prot;
    starts_views(v, 0, n, views, 2, after, &ks);
    atomic_fetch_add(&count, after[0] - before[0]); /* modulo 2^64: a fall too */
    atomic_fetch_add(&floor_, after[1] - before[1]);
    count_unlock();
    umm__kscan_end(&ks);
}

/*
 * A VMA was inserted, host-mapped PROT_NONE to its frames.  Its entries
 * are all clear, so its starts are its first page (unless it joins the VMA
 * on its left), one per break between the extents of its object, and the
 * first page of a VMA it now touches on the right, which started a mapping
 * before.  Counted by extents, not pages: a huge reservation costs nothing.
 * Seen through view (the floor, or as it is).
 */
static uint64_t added(struct umm__vma *v, const struct change *view)
{
    struct home h = { 0 };
    uint64_t n = umm__vma_pages(v);
    struct umm__vma *u = left_of(v), *w = right_of(v);
    struct hs prev = { -1, 0, 0 };
    if (u)
        prev = host_state(&h, u, umm__vma_pages(u) - 1, bits(u, umm__vma_pages(u) - 1, view));
    uint64_t add = zero_starts(&h, v, 0, n, &prev);
    if (w && merges(prev, host_state(&h, w, 0, bits(w, 0, view))))
        add--;
    return add;
}

void umm__mc_vma_added(struct umm__vma *v)
{
    budget_init();
    struct change as_is = { v, 0, 0, 0, 0, 0 }, fl = { v, 0, 0, 0, 0, 1 };
    count_lock();
    atomic_fetch_add(&count, added(v, &as_is)); /* modulo 2^64: a fall too */
    atomic_fetch_add(&floor_, added(v, &fl));
    count_unlock();
}

void umm__mc_vma_removing(struct umm__vma *v)
{
    struct change fl = { v, 0, 0, 0, 0, 1 };
    struct umm__kscan ks;
    umm__kscan_begin(&ks, umm__vma_pages(v) * sizeof(struct umm__pte));
    const struct change *views[2] = { NULL, &fl };
    uint64_t b[2];
    count_lock();
    starts_views(v, 0, umm__vma_pages(v), views, 2, b, &ks);
    uint64_t before = b[0], fbefore = b[1];
    uint64_t after = right_of(v) ? 1 : 0; /* the next VMA's first page starts one now */
    atomic_fetch_add(&count, after - before);
    atomic_fetch_add(&floor_, after - fbefore);
    count_unlock();
    umm__kscan_end(&ks);
}

/* ------------------------------------------------------------ releasing */

/*
 * If page p of v starts a run of releasable pages that nobody holds,
 * release the run: clear the entries, take the host's access away (while
 * the entries are still held, so that no fault can install the pages
 * again in between), and let the entries go.  The frames stay in the
 * page cache.  Returns the page to look at next.
 */
static uint64_t release_run(struct umm__vma *v, uint64_t p)
{
    uint64_t n = umm__vma_pages(v);
    struct umm__pte *pte = umm__vma_pte(v, p);
    if (!releasable_bits(atomic_load(&pte->flags)) || !umm__bittrylock(&pte->flags))
        return p + 1;
    uint32_t f = atomic_load(&pte->flags) & (UMM__P_PRESENT | UMM__P_WRITE | UMM__P_ANON | UMM__P_SIGBUS);
    uint64_t q = p + 1;
    if (releasable_bits(f)) {
        while (q < n) {
            struct umm__pte *e = umm__vma_pte(v, q);
            uint32_t g = atomic_load(&e->flags);
            if (!releasable_bits(g) || (g & UMM__P_WRITE) != (f & UMM__P_WRITE) || !umm__bittrylock(&e->flags))
                break;
            g = atomic_load(&e->flags);
            if (!releasable_bits(g) || (g & UMM__P_WRITE) != (f & UMM__P_WRITE)) {
                umm__bitunlock(&e->flags, 0);
                break;
            }
            q++;
        }
        umm__mc_update(v, p, q, 0, UMM__P_PRESENT | UMM__P_WRITE | UMM__P_OLD, UMM__MC_NOLIMIT);
        if (mprotect((void *)(v->start + (p << UMM_PAGE_SHIFT)), (q - p) << UMM_PAGE_SHIFT, PROT_NONE) == 0)
            atomic_fetch_sub(&umm__mm.resident, q - p);
        else /* the host would need a mapping it has not got: leave them */
            umm__mc_update(v, p, q, f, 0, UMM__MC_NOLIMIT);
    }
    for (uint64_t i = p; i < q; i++)
        umm__bitunlock(&umm__vma_pte(v, i)->flags, 0);
    return q;
}

/* Release runs in clock order until the count is at most target, nothing
 * is left to release, or the hand went round once.  The mm lock is held
 * (read or write). */
void umm__mc_release(uint64_t target)
{
    size_t nv = umm__mm.nvmas, i = atomic_load_explicit(&hand_vma, memory_order_relaxed);
    uint64_t p = atomic_load_explicit(&hand_page, memory_order_relaxed), seen = 0, look = 0;
    for (size_t k = 0; k < nv; k++)
        look += umm__vma_pages(umm__mm.vmas[k]) + 1;
    while (umm__mc_count() > target && atomic_load_explicit(&releasable, memory_order_relaxed) && seen < look) {
        if (i >= nv) {
            i = 0;
            p = 0;
        }
        struct umm__vma *v = umm__mm.vmas[i];
        /* A locked mapping's pages stay resident, as mlock keeps them:
         * passed over whole. */
        if (p >= umm__vma_pages(v) || (v->vflags & UMM__V_LOCKED)) {
            seen += (p < umm__vma_pages(v) ? umm__vma_pages(v) - p : 0) + 1;
            i++;
            p = 0;
            continue;
        }
        uint64_t q = release_run(v, p);
        seen += q - p;
        p = q;
    }
    atomic_store_explicit(&hand_vma, i, memory_order_relaxed);
    atomic_store_explicit(&hand_page, p, memory_order_relaxed);
}

/* The host refused a mapping: the program's own mappings leave libumm
 * fewer than its budget.  From now on the budget is what the host gave,
 * less an eighth (so private pages widen in time, and the page cache keeps
 * room), and half of what can be released goes now. */
int umm__mc_squeeze(void)
{
    uint64_t c = umm__mc_count(), b = c - c / 8;
    if (b < 64)
        b = 64;
    if (b < umm__mc_budget())
        atomic_store(&budget, b);
    umm__mc_release(c / 2);
    return umm__mc_count() < c;
}
