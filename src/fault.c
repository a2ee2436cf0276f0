/*
 * fault.c: the state machine of a page.
 *
 * umm__fault() is called by the trap (and by umm_prefault) with the
 * address-space lock held for reading.  It finds the VMA, checks the access
 * against the mapping's protection, locks the page's table entry, and runs
 * the stage the page is in:
 *
 *                       not present
 *                           |
 *          +----------------+-----------------+
 *          | file           | shared anon     | private anon
 *          v                v                 v
 *   fill from the page   frame of the      zero frame of its own,
 *   cache (pread runs,   object, writable  writable
 *   read-ahead)
 *          |
 *    +-----+------------------+
 *    | MAP_SHARED             | MAP_PRIVATE
 *    v                        v
 *  install read-only;      install the page-cache frame read-only
 *  on write: mark dirty,   on write: copy to the mapping's own frame
 *  upgrade (fault_dirty)   and map it there (fault_cow)
 *
 * A present page faults again only for a write to a page installed
 * read-only: a clean shared page (dirty tracking) or a private page still
 * served from the page cache (copy-on-write).
 *
 * The host's map count is a budget (mapcount.c): every change of an entry
 * is charged to it.  When a change would pass the budget, resident
 * page-cache pages elsewhere are released first (their frames stay in the
 * page cache).  Private pages (zero pages, copies) cannot be released: once
 * what releasing cannot reduce passes half the budget, a new one is widened
 * over the gaps to its resident private neighbours, so that it joins their
 * host mapping instead of starting one of its own.  Short of that nothing
 * is widened: a touch of one page brings in one page.
 *
 * Nothing here calls malloc or stdio: everything was allocated when the
 * mapping was made.  Frames are read and written through the direct map.
 */
#include "umm-int.h"
#include "vg.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>

#define RA_MAX umm__window_max() /* the largest read-ahead window, in pages (vmscan.c) */
#define GAP_MAX 4096 /* the widest gap a private page is widened over */

#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22
#define MADV_POPULATE_WRITE 23
#endif

static int access_ok(const struct umm__vma *v, int access)
{
    if (access == UMM__ACC_WRITE)
        return (v->prot & PROT_WRITE) != 0;
    if (access == UMM__ACC_EXEC)
        return (v->prot & PROT_EXEC) != 0;
    return (v->prot & (PROT_READ | PROT_WRITE | PROT_EXEC)) != 0;
}

static void *page_addr(const struct umm__vma *v, uint64_t page)
{
    return (void *)(v->start + (page << UMM_PAGE_SHIFT));
}

/* The file's pages, as far as a fault at file page fpage needs to know:
 * the size seen before while fpage lies inside it (no fstat), else the
 * file's own, asked again (it may have grown).  A read that finds the
 * file shorter forgets the size seen (umm__object_read); fault_object
 * then asks again too. */
static uint64_t file_pages(struct umm__object *obj, uint64_t fpage, uint64_t *fsize)
{
    uint64_t n = umm__object_filepages_hint(obj, fsize);
    if (fpage < n)
        return n;
    atomic_store(&obj->size_gen, 0);
    return umm__object_filepages_hint(obj, fsize);
}

/*
 * How many pages to bring in at a fault at `page`: one for random access, a
 * window that doubles while a stream's faults are sequential.  A VMA keeps
 * a few streams (UMM__RA_STREAMS), as the kernel's ondemand read-ahead
 * matches a stream by the index it expects next: with one, two threads
 * reading the two halves of a mapping reset each other's window to a page
 * at every fault (0.14 traps a page against 0.03 for one thread, session
 * 12).  A fault at a stream's expected page grows that stream's window; any
 * other starts a stream of one page in the slot used least recently (so
 * scattered touches still read a page each).  *slot says which stream, or
 * -1: the caller tells it where the pages it brought in end (ra_advance).
 * No lock: faults racing for one slot lose an update, which costs no more
 * than a smaller window.
 */
static uint64_t ra_window(struct umm__vma *v, uint64_t page, int *slot)
{
    *slot = -1;
    if (v->advice == MADV_RANDOM)
        return 1;
    if (v->advice == MADV_SEQUENTIAL)
        return RA_MAX;
    uint32_t now = atomic_fetch_add_explicit(&v->ra_clock, 1, memory_order_relaxed) + 1;
    uint32_t oldest = 0;
    for (int i = 0; i < UMM__RA_STREAMS; i++) {
        struct umm__ra *s = &v->ra[i];
        if (atomic_load_explicit(&s->next, memory_order_relaxed) == page) {
            uint32_t win = atomic_load_explicit(&s->win, memory_order_relaxed);
            win = win * 2 > RA_MAX ? RA_MAX : win * 2;
            atomic_store_explicit(&s->win, win, memory_order_relaxed);
            atomic_store_explicit(&s->used, now, memory_order_relaxed);
            *slot = i;
            return win;
        }
        uint32_t age = now - atomic_load_explicit(&s->used, memory_order_relaxed);
        if (*slot < 0 || age > oldest) {
            *slot = i;
            oldest = age;
        }
    }
    atomic_store_explicit(&v->ra[*slot].win, 1, memory_order_relaxed);
    atomic_store_explicit(&v->ra[*slot].used, now, memory_order_relaxed);
    return 1;
}

/* The pages a fault of stream `slot` brought in end before page `end`: its
 * next fault is expected there. */
static void ra_advance(struct umm__vma *v, int slot, uint64_t end)
{
    if (slot >= 0)
        atomic_store_explicit(&v->ra[slot].next, end, memory_order_relaxed);
}

/*
 * Lock the entries of pages [page+1, page+max) that are not present, as
 * far as that goes without waiting.  Returns how many pages from `page`
 * (whose entry the caller holds) are now held.
 */
static uint64_t grab_ptes(struct umm__vma *v, uint64_t page, uint64_t max)
{
    uint64_t n = 1;
    while (n < max) {
        struct umm__pte *pte = umm__vma_pte(v, page + n);
        if (!umm__bittrylock(&pte->flags))
            break;
        /* A guard is never filled; a private page not present (swapped
         * out) is not a fresh page: its own fault brings it back. */
        if (atomic_load(&pte->flags) & (UMM__P_PRESENT | UMM__P_GUARD | UMM__P_ANON)) {
            umm__bitunlock(&pte->flags, 0);
            break;
        }
        n++;
    }
    return n;
}

static void release_ptes(struct umm__vma *v, uint64_t page, uint64_t n)
{
    for (uint64_t i = 1; i < n; i++)
        umm__bitunlock(&umm__vma_pte(v, page + i)->flags, 0);
}

static void unlock_ptes(struct umm__vma *v, uint64_t from, uint64_t to)
{
    for (uint64_t p = from; p < to; p++)
        umm__bitunlock(&umm__vma_pte(v, p)->flags, 0);
}

/* ---------------------------------------------------- the map budget */

/* Set bits of entries [from, to) of v, charged to the map budget: when the
 * change would pass it, release pages elsewhere first; past it only when
 * nothing could be released, for a fault never fails because of it. */
static void charge(struct umm__vma *v, uint64_t from, uint64_t to, uint32_t set)
{
    uint64_t budget = umm__mc_budget();
    if (umm__mc_update(v, from, to, set, 0, budget) == 0)
        return;
    umm__reclaim_host_maps();
    if (umm__mc_update(v, from, to, set, 0, budget) == 0)
        return;
    umm__mc_update(v, from, to, set, 0, UMM__MC_NOLIMIT);
}

/* Private pages (zero pages, copies) can never be released, so once what
 * releasing cannot reduce (the floor) passes half the budget, they join
 * their neighbours rather than start host mappings of their own: the other
 * half stays for the page cache. */
static int private_room(struct umm__vma *v, uint64_t from, uint64_t to, uint32_t set)
{
    return umm__mc_floor_fits(v, from, to, set, umm__mc_budget() / 2);
}

/* Take the entries from page `from` one by one towards `to` (down or up)
 * until a private resident page (the neighbour to join) or a page that
 * cannot be part of the gap; returns where the gap ends on that side, with
 * its entries held, or `from` (nothing held) when no neighbour was reached
 * within max pages. */
static uint64_t take_gap(struct umm__vma *v, uint64_t from, uint64_t to, uint64_t max)
{
    int down = to < from;
    uint64_t p = from; /* the gap is [p, from) going down, [from, p) going up */
    while (p != to && (down ? from - p : p - from) < max) {
        struct umm__pte *pte = umm__vma_pte(v, down ? p - 1 : p);
        uint32_t f = atomic_load(&pte->flags);
        if ((f & (UMM__P_PRESENT | UMM__P_ANON)) == (UMM__P_PRESENT | UMM__P_ANON))
            return p; /* the neighbour */
        if ((f & (UMM__P_SIGBUS | UMM__P_GUARD)) || !umm__bittrylock(&pte->flags))
            break;
        if (atomic_load(&pte->flags) & (UMM__P_ANON | UMM__P_SIGBUS | UMM__P_GUARD)) {
            umm__bitunlock(&pte->flags, 0);
            break;
        }
        p = down ? p - 1 : p + 1;
    }
    if (down)
        unlock_ptes(v, p, from);
    else
        unlock_ptes(v, from, p);
    return from;
}

/* Stretch the private pages [*a, *b) over the gaps (of at most max pages)
 * to their resident private neighbours on either side (up to page hi),
 * taking the gaps' entries, so that the install joins their host mapping. */
static void widen(struct umm__vma *v, uint64_t *a, uint64_t *b, uint64_t hi, uint64_t max)
{
    *a = take_gap(v, *a, 0, max);
    *b = take_gap(v, *b, hi, max);
}

/* Fill the host's page table for [addr, addr+n pages) now, with one call,
 * instead of taking one host page fault per page when the program resumes.
 * Only a speed-up: failure (an old kernel) costs nothing but the faults.
 * One page too: a host page fault costs more than the call that takes it
 * (on this project's VMs, 10 us against 2.5; the isolated fault went 31.6
 * -> 28.2 us, doc/PERFORMANCE.md 2026-12-07). */
static void populate(void *addr, uint64_t n, int prot)
{
    if (prot & PROT_WRITE)
        madvise(addr, n << UMM_PAGE_SHIFT, MADV_POPULATE_WRITE);
    else if (prot & PROT_READ)
        madvise(addr, n << UMM_PAGE_SHIFT, MADV_POPULATE_READ);
}

/* Mark pages [page, page+n) present on frames pfn.., flags as given, and
 * grant the host access with one mprotect (the caller populates). */
static int install(struct umm__vma *v, uint64_t page, uint64_t n, umm__pfn pfn, uint32_t flags)
{
    for (uint64_t i = 0; i < n; i++)
        umm__vma_pte(v, page + i)->pfn = pfn + (umm__pfn)i;
    charge(v, page, page + n, UMM__P_PRESENT | flags);
    atomic_fetch_add(&umm__mm.resident, n);
    if (umm__host_mprotect(page_addr(v, page), n << UMM_PAGE_SHIFT, umm__host_prot(v, UMM__P_PRESENT | flags)) != 0)
        return errno;
    return 0;
}

/* install() and populate what the program is about to touch -- but not
 * zero-copy pages (the host's page cache of the file): the program's own
 * touches fault them in as they would a kernel mapping's, with the host's
 * fault-around and read-ahead, and a populate (the host's get_user_pages)
 * in a tight memory cgroup v1 was OOM-killed where those faults reclaim
 * (tests/test-reclaim-cgroup under UMM_ZEROCOPY=1: 3 runs in 4 without
 * this, 0 in 8 with it). */
static int install_now(struct umm__vma *v, uint64_t page, uint64_t n, umm__pfn pfn, uint32_t flags)
{
    int err = install(v, page, n, pfn, flags);
    if (!err && !umm__frame_host(pfn))
        populate(page_addr(v, page), n, umm__host_prot(v, UMM__P_PRESENT | flags));
    return err;
}

/* -------------------------------------------------- private anonymous */

/* A fresh page of a private anonymous mapping: its frame is the mapping's
 * own, and reads as zeros (frames are discarded when freed). */
static enum umm__fault_result fault_anon(struct umm__vma *v, uint64_t page, int access, int *err)
{
    int slot;
    uint64_t want = ra_window(v, page, &slot);
    if (want > umm__vma_pages(v) - page)
        want = umm__vma_pages(v) - page;
    uint64_t n = grab_ptes(v, page, want);
    const uint32_t fl = UMM__P_ANON | UMM__P_WRITE;
    uint64_t a = page, b = page + n;
    if (!private_room(v, a, b, UMM__P_PRESENT | fl))
        widen(v, &a, &b, umm__vma_pages(v), GAP_MAX); /* zero pages: free until touched */
    umm__pfn pfn = umm__vma_anon_pfn(v, a);
    for (uint64_t i = 0; i < b - a; i++) {
        uint32_t old = atomic_exchange(&umm__frame(pfn + (umm__pfn)i)->ref, 1);
        umm__assert(old == 0);
    }
    umm__ram_frames_live(pfn, b - a);
    umm__ram_count((int64_t)(b - a));
    umm__noted(UMM_TRACE_ZERO, access == UMM__ACC_WRITE, 0, b - a);
    *err = install(v, a, b - a, pfn, fl);
    ra_advance(v, slot, b);
    if (!*err) /* the gaps cost no memory until they are touched */
        populate(page_addr(v, page), n, umm__host_prot(v, UMM__P_PRESENT | fl));
    release_ptes(v, page, n);
    unlock_ptes(v, a, page);
    unlock_ptes(v, page + n, b);
    return *err ? UMM__FAULT_SIGBUS : UMM__FAULT_DONE;
}

/* ---------------------------------------------------- the page cache */

/*
 * Make the page-cache frames of file pages [fpage, ...) up to date: the
 * first one whatever it takes (waiting for a thread already filling it),
 * then up to want-1 more that nobody else holds, read with the same pread.
 * Returns how many pages from fpage are up to date (>= 1), or 0 with *err;
 * *read says whether this call read them from the file.  The frames come
 * back pinned (reclaim leaves them be until they are mapped): the caller
 * unpins them (unpin_run).
 */
static uint64_t fill(struct umm__object *obj, uint64_t fpage, uint64_t want, uint64_t fsize, int *err, int *read)
{
    umm__pfn pfn = umm__object_pfn(obj, fpage);
    want = umm__object_run(obj, fpage, want);
    *read = 0;
    umm__frame_lock(pfn);
    if (atomic_load(&umm__frame(pfn)->flags) & UMM__F_UPTODATE) {
        /* In the page cache already (read before, or read ahead by the
         * daemon: umm__readahead_run): the run of it that is, as far as
         * nobody holds it, installed with this fault. */
        umm__frame_pin(pfn);
        umm__frame_unlock(pfn);
        uint64_t n = 1;
        for (; n < want; n++) {
            umm__pfn q = pfn + (umm__pfn)n;
            if (!umm__frame_trylock(q))
                break;
            int up = (atomic_load(&umm__frame(q)->flags) & UMM__F_UPTODATE) != 0;
            if (up)
                umm__frame_pin(q);
            umm__frame_unlock(q);
            if (!up)
                break;
        }
        return n;
    }
    uint64_t n = 1;
    while (n < want) {
        umm__pfn q = pfn + (umm__pfn)n;
        if (!umm__frame_trylock(q))
            break;
        if (atomic_load(&umm__frame(q)->flags) & UMM__F_UPTODATE) {
            umm__frame_unlock(q);
            break;
        }
        n++;
    }
    *err = umm__object_read(obj, fpage, n, fsize);
    if (!*err) {
        for (uint64_t i = 0; i < n; i++)
            atomic_fetch_or(&umm__frame(pfn + (umm__pfn)i)->flags, UMM__F_UPTODATE);
        umm__ram_count_cache(pfn, (int64_t)n);
        atomic_fetch_add(&umm__mm.pages_read, n); /* zero-copy: pages the host reads for it */
        *read = 1;
    }
    for (uint64_t i = 0; i < n; i++) {
        if (!*err)
            umm__frame_pin(pfn + (umm__pfn)i);
        umm__frame_unlock(pfn + (umm__pfn)i);
    }
    return *err ? 0 : n;
}

static void unpin_run(umm__pfn pfn, uint64_t n)
{
    for (uint64_t i = 0; i < n; i++)
        umm__frame_unpin(pfn + (umm__pfn)i);
}

/* Can a pwrite of frame pfn into the memfd be made without meeting the
 * program's RLIMIT_FSIZE (which applies to a memfd as to any file: past
 * it, SIGXFSZ, tests/test-rlimit-fsize)?  Asked at each copy: the program
 * may lower the limit at any time. */
static int memfd_writable(umm__pfn pfn)
{
    struct rlimit rl;
    return getrlimit(RLIMIT_FSIZE, &rl) == 0 &&
           (rl.rlim_cur == RLIM_INFINITY || ((uint64_t)pfn + 1) << UMM_PAGE_SHIFT <= rl.rlim_cur);
}

/* Make private frame dst (free: its reference count is 0) live, as a copy
 * of frame src.  The copy is a pwrite into the memfd where the file-size
 * limit allows it: a fresh frame has no host page yet, and the host's
 * allocation inside a system call costs far less than a page fault taking
 * it at the first touch (private write 45 -> 32 us a page with the
 * populated install below; a populate and a memcpy instead, 38 us:
 * doc/PERFORMANCE.md 2026-12-07).  Otherwise, or if the pwrite fails (the
 * host out of memory for the memfd), a memcpy, whose fault is the host's
 * to answer, as any touch of a frame. */
static void copy_frame(umm__pfn dst, umm__pfn src)
{
    uint32_t old = atomic_exchange(&umm__frame(dst)->ref, 1);
    umm__assert(old == 0);
    umm__ram_frames_live(dst, 1);
    char *s = umm__kmap(src, 1);
    umm__vg_defined(s, UMM_PAGE_SIZE);
    if (!memfd_writable(dst) ||
        umm__sys_pwrite(umm__ram.fd, s, UMM_PAGE_SIZE, (off_t)((uint64_t)dst << UMM_PAGE_SHIFT)) != UMM_PAGE_SIZE) {
        char *d = umm__kmap(dst, 1);
        umm__vg_defined(d, UMM_PAGE_SIZE);
        memcpy(d, s, UMM_PAGE_SIZE);
        umm__vg_noaccess(d, UMM_PAGE_SIZE);
        umm__kunmap(d, 1);
    }
    umm__vg_noaccess(s, UMM_PAGE_SIZE);
    umm__kunmap(s, 1);
}

/* Make private frame dst (free) live, as a copy of page fpage of obj's
 * file read from the host's page cache (a zero-copy page: its frame has no
 * bytes of its own).  Past the file's end, zeros. */
static void copy_file_page(umm__pfn dst, struct umm__object *obj, uint64_t fpage)
{
    uint32_t old = atomic_exchange(&umm__frame(dst)->ref, 1);
    umm__assert(old == 0);
    umm__ram_frames_live(dst, 1);
    char *d = umm__kmap(dst, 1);
    umm__vg_defined(d, UMM_PAGE_SIZE);
    uint64_t got = 0;
    while (got < UMM_PAGE_SIZE) {
        ssize_t r = umm__sys_pread(obj->fd, d + got, UMM_PAGE_SIZE - got, (off_t)((fpage << UMM_PAGE_SHIFT) + got));
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break; /* the end of the file, or an error: zeros, as copy_in's failed read */
        got += (uint64_t)r;
    }
    memset(d + got, 0, UMM_PAGE_SIZE - got);
    umm__vg_noaccess(d, UMM_PAGE_SIZE);
    umm__kunmap(d, 1);
}

static void copy_in(struct umm__vma *v, uint64_t p)
{
    /* Under the frame's lock: a gap's page-cache frame is mapped by
     * nobody, and reclaim may have taken it since it was read; then it is
     * read again. */
    umm__pfn src = umm__object_pfn(v->obj, v->fpage + p);
    umm__frame_lock(src);
    if (umm__frame_host(src)) {
        if (!(atomic_fetch_or(&umm__frame(src)->flags, UMM__F_UPTODATE) & UMM__F_UPTODATE))
            umm__ram_count_cache(src, 1);
        copy_file_page(umm__vma_anon_pfn(v, p), v->obj, v->fpage + p);
        umm__frame_unlock(src);
        return;
    }
    if (!(atomic_load(&umm__frame(src)->flags) & UMM__F_UPTODATE)) {
        uint64_t fsize;
        file_pages(v->obj, v->fpage + p, &fsize);
        if (umm__object_read(v->obj, v->fpage + p, 1, fsize) == 0) {
            atomic_fetch_or(&umm__frame(src)->flags, UMM__F_UPTODATE);
            umm__ram_count(1);
        } /* else a read error: the copy holds zeros, as a failed read would */
    }
    copy_frame(umm__vma_anon_pfn(v, p), src);
    umm__frame_unlock(src);
}

/* Make the page-cache frames of pages [a, b) of a file mapping up to date
 * (one pread per run that is not).  Returns 0 or an errno. */
static int fill_range(struct umm__vma *v, uint64_t a, uint64_t b)
{
    uint64_t fsize;
    file_pages(v->obj, v->fpage + a, &fsize);
    for (uint64_t p = a; p < b;) {
        uint64_t fp = v->fpage + p;
        if (atomic_load(&umm__frame(umm__object_pfn(v->obj, fp))->flags) & UMM__F_UPTODATE) {
            p++;
            continue;
        }
        int err, read;
        uint64_t k = fill(v->obj, fp, b - p, fsize, &err, &read);
        if (k == 0)
            return err;
        unpin_run(umm__object_pfn(v->obj, fp), k); /* copy_in looks again */
        p += k;
    }
    return 0;
}

/* Does any mapping share obj's pages for writing?  Then an unwritten page
 * of a private mapping must keep showing what is written there. */
static int shared_writer(const struct umm__object *obj)
{
    for (const struct umm__vma *w = obj->rmap; w; w = w->rnext)
        if ((w->vflags & UMM__V_SHARED) && (w->vflags & UMM__V_MAYWRITE))
            return 1;
    return 0;
}

/* A copy widened over the gaps (of at most max pages) to its neighbour
 * copies (never past the end of the file): the pages between are copied
 * too, read first if need be.  Returns the range to copy, [*a, *b), gaps
 * held.  Only when no mapping can write the file's pages: a page copied
 * early stops following the file (README, "map-count budget"). */
static void widen_cow(struct umm__vma *v, uint64_t page, uint64_t *a, uint64_t *b, uint64_t max)
{
    uint64_t fsize, fpages = file_pages(v->obj, v->fpage + page, &fsize), hi = umm__vma_pages(v);
    if (fpages <= v->fpage + page || shared_writer(v->obj))
        return; /* copy the page alone */
    if (fpages - v->fpage < hi)
        hi = fpages - v->fpage;
    widen(v, a, b, hi, max);
    if (fill_range(v, *a, page) != 0 || fill_range(v, page + 1, *b) != 0) {
        unlock_ptes(v, *a, page); /* a read failed: the page alone, then */
        unlock_ptes(v, page + 1, *b);
        *a = page;
        *b = page + 1;
    }
}

/*
 * Copy-on-write after fork: the page's private frame is shared with another
 * process (its reference count is above one).  Copy it to the page's slot
 * in the mapping's private range, which is this process's alone (fork gave
 * each side a fresh one), map that writable, and drop the shared frame; the
 * other side takes it over at its own next write, or frees it if it let go
 * meanwhile.  While the writes are sequential, the next shared pages are
 * copied with it (the read-ahead window): one host mapping and one trap for
 * many pages.  Copying a private page early changes nothing anyone can see:
 * after the fork each side's private pages are its own snapshot.
 */
static enum umm__fault_result fault_cow_shared(struct umm__vma *v, uint64_t page, int *err)
{
    int slot;
    uint64_t want = ra_window(v, page, &slot), n = 1;
    if (want > umm__vma_pages(v) - page)
        want = umm__vma_pages(v) - page;
    while (n < want) { /* the shared pages that follow, as far as nobody holds them */
        struct umm__pte *e = umm__vma_pte(v, page + n);
        if (!umm__bittrylock(&e->flags))
            break;
        uint32_t g = atomic_load(&e->flags);
        if ((g & (UMM__P_PRESENT | UMM__P_ANON | UMM__P_WRITE | UMM__P_SIGBUS)) != (UMM__P_PRESENT | UMM__P_ANON) ||
            atomic_load(&umm__frame(e->pfn)->ref) < 2) {
            umm__bitunlock(&e->flags, 0);
            break;
        }
        n++;
    }
    umm__pfn dst = umm__vma_anon_pfn(v, page);
    for (uint64_t i = 0; i < n; i++)
        copy_frame(dst + (umm__pfn)i, umm__vma_pte(v, page + i)->pfn);
    const uint32_t nf = UMM__P_PRESENT | UMM__P_ANON | UMM__P_WRITE;
    int prot = umm__host_prot(v, nf);
    if (umm__host_map_frames_now(page_addr(v, page), n << UMM_PAGE_SHIFT, prot, dst) != 0) {
        *err = errno;
        for (uint64_t i = 0; i < n; i++)
            atomic_store(&umm__frame(dst + (umm__pfn)i)->ref, 0);
        umm__ram_discard(dst, n);
        umm__ram_frames_dead(dst, n);
        release_ptes(v, page, n);
        return UMM__FAULT_SIGBUS;
    }
    umm__vg_defined(page_addr(v, page), n << UMM_PAGE_SHIFT);
    /* Out of the map count on the old frames, back in on the new ones. */
    umm__mc_update(v, page, page + n, 0, nf, UMM__MC_NOLIMIT);
    for (uint64_t i = 0; i < n; i++) {
        struct umm__pte *e = umm__vma_pte(v, page + i);
        umm__pfn src = e->pfn;
        e->pfn = dst + (umm__pfn)i;
        if (atomic_fetch_sub(&umm__frame(src)->ref, 1) == 1) {
            /* The other side let go meanwhile: the old frame was ours last. */
            umm__ram_discard(src, 1);
            umm__ram_frames_dead(src, 1);
        } else {
            umm__ram_count(1);
        }
    }
    charge(v, page, page + n, nf);
    ra_advance(v, slot, page + n);
    umm__noted(UMM_TRACE_COW, 1, 0, n);
    atomic_fetch_add(&umm__mm.cow_copies, n);
    release_ptes(v, page, n);
    return UMM__FAULT_DONE;
}

/* Copy-on-write: give page `page` of a private mapping a frame of its own,
 * copied from the page-cache frame it shows, and map it there writable
 * (with the gaps to its neighbour copies, when private pages have taken
 * half the map budget). */
static enum umm__fault_result fault_cow(struct umm__vma *v, uint64_t page, int *err)
{
    struct umm__pte *pte = umm__vma_pte(v, page);
    uint32_t f = atomic_load(&pte->flags);
    if (f & UMM__P_ANON) {
        if (atomic_load(&umm__frame(pte->pfn)->ref) == 1) {
            /* Ours alone (never shared, or every other process let go):
             * take it over. */
            charge(v, page, page + 1, UMM__P_WRITE);
            *err = umm__vma_reprotect(v, page, page + 1) == 0 ? 0 : errno;
            return *err ? UMM__FAULT_SIGBUS : UMM__FAULT_DONE;
        }
        return fault_cow_shared(v, page, err);
    }
    const uint32_t nf = UMM__P_PRESENT | UMM__P_ANON | UMM__P_WRITE;
    uint64_t a = page, b = page + 1, fresh = 0;
    if (!private_room(v, a, b, nf))
        widen_cow(v, page, &a, &b, GAP_MAX);
    for (uint64_t p = a; p < b; p++) {
        fresh += !(atomic_load(&umm__vma_pte(v, p)->flags) & UMM__P_PRESENT);
        copy_in(v, p);
    }
    umm__noted(UMM_TRACE_COW, 1, 0, b - a);
    umm__ram_count((int64_t)(b - a));
    atomic_fetch_add(&umm__mm.cow_copies, b - a);
    int prot = umm__host_prot(v, nf);
    if (umm__host_map_frames_now(page_addr(v, a), (b - a) << UMM_PAGE_SHIFT, prot, umm__vma_anon_pfn(v, a)) != 0) {
        *err = errno;
        for (uint64_t p = a; p < b; p++)
            atomic_store(&umm__frame(umm__vma_anon_pfn(v, p))->ref, 0);
        umm__ram_discard(umm__vma_anon_pfn(v, a), b - a);
        umm__ram_frames_dead(umm__vma_anon_pfn(v, a), b - a);
        umm__ram_count(-(int64_t)(b - a));
        unlock_ptes(v, a, page);
        unlock_ptes(v, page + 1, b);
        return UMM__FAULT_SIGBUS;
    }
    umm__vg_defined(page_addr(v, a), (b - a) << UMM_PAGE_SHIFT);
    /* Pages that showed the page cache stop mapping its frames. */
    umm__mc_update(v, a, b, 0, UMM__P_PRESENT | UMM__P_WRITE, UMM__MC_NOLIMIT);
    for (uint64_t p = a; p < b; p++)
        umm__vma_pte(v, p)->pfn = umm__vma_anon_pfn(v, p);
    charge(v, a, b, nf);
    atomic_fetch_add(&umm__mm.resident, fresh);
    unlock_ptes(v, a, page);
    unlock_ptes(v, page + 1, b);
    return UMM__FAULT_DONE;
}

/*
 * Mark a page-cache frame dirty, and leave it locked: the caller lets the
 * host write it (which counts it a writer of the frame) before unlocking.
 * Write-back in another process (after fork) looks at DIRTY and the
 * writers under the same lock, so it never calls clean a page that a
 * process here can write without faulting.
 */
static void mark_dirty(struct umm__object *obj, umm__pfn pfn)
{
    umm__frame_lock(pfn);
    if (!(atomic_fetch_or(&umm__frame(pfn)->flags, UMM__F_DIRTY) & UMM__F_DIRTY))
        atomic_fetch_add(&obj->ndirty, 1);
}

/* A write to a clean page of a shared mapping: mark the frame dirty and let
 * the host write it. */
static enum umm__fault_result fault_dirty(struct umm__vma *v, uint64_t page, int *err)
{
    struct umm__pte *pte = umm__vma_pte(v, page);
    if ((*err = umm__object_reserve(v->obj, v->fpage + page, pte->pfn)) != 0) {
        /* No room for it: the page leaves the mapping, to be armed for
         * the SIGBUS the store raises (umm__fault); it comes back clean
         * from the page cache at the next touch. */
        umm__mc_update(v, page, page + 1, 0, UMM__P_PRESENT | UMM__P_WRITE, UMM__MC_NOLIMIT);
        atomic_fetch_sub(&umm__mm.resident, 1);
        return UMM__FAULT_SIGBUS;
    }
    mark_dirty(v->obj, pte->pfn);
    umm__noted(UMM_TRACE_DIRTY, 1, v->fpage + page, 1);
    charge(v, page, page + 1, UMM__P_WRITE);
    umm__frame_unlock(pte->pfn);
    *err = umm__vma_reprotect(v, page, page + 1) == 0 ? 0 : errno;
    return *err ? UMM__FAULT_SIGBUS : UMM__FAULT_DONE;
}

/*
 * Fault-around, as Linux's filemap_map_pages (fault_around_bytes, 64 KiB):
 * after a read fault has installed pages [page, page+n), install the other
 * pages of the same aligned 64 KiB window of v whose page-cache frames are
 * already up to date -- no I/O.  Nothing past the end of the file (fpages)
 * or of the VMA, nothing but plain absent entries (not armed for SIGBUS,
 * not a guard, not a private page).  Each frame stays locked from the
 * check of F_UPTODATE until install() has returned, so that reclaim (which
 * evicts unmapped frames under the frame lock) never sees it unmapped yet
 * about to be mapped.  Installed read-only, as a read fault would: a write
 * still faults for dirty tracking or copy-on-write.  Every change goes
 * through install() and so through the map budget.  Best effort: an entry
 * or a frame somebody else holds is left to its own fault.  The read-ahead
 * state is left as the fault set it.
 *
 * Returns the pages it mapped that were up to date before this fault (not
 * in fresh, the pages this fault's read_around read) and that reclaim
 * never evicted (UMM__F_REFAULT): as in filemap_map_pages, each is a
 * read-around hit for mmap_miss -- a page read earlier, used without a
 * trap of its own.
 */
#define AROUND_PAGES 16

/* Fault-around's block for a fault at `page`: the aligned 64 KiB around
 * it, as pages [*lo, return) of v, clipped to the VMA and the file. */
static uint64_t around_block(const struct umm__vma *v, uint64_t page, uint64_t fpages, uint64_t *lo)
{
    uint64_t base = v->start >> UMM_PAGE_SHIFT, w = (base + page) & ~(uint64_t)(AROUND_PAGES - 1);
    uint64_t hi = w + AROUND_PAGES - base;
    *lo = w > base ? w - base : 0;
    if (hi > umm__vma_pages(v))
        hi = umm__vma_pages(v);
    if (hi > fpages - v->fpage)
        hi = fpages - v->fpage;
    return hi;
}

/*
 * Where a stream goes on after a fault that brought in pages [page, from):
 * at `from`, or at the end of fault-around's 64 KiB block if fault_around
 * mapped all the rest of it.  Over pages another mapping (or the daemon,
 * for another stream) brought into the page cache, a fault brings one page
 * of window and fault-around the rest of the block; expected at `from`,
 * the stream's next fault (at the block's end) would start a new stream,
 * whose window never grows: a trap every 16 pages.  A block mapped in part
 * is no such evidence: the next miss there reads around as any other.
 */
static uint64_t stream_end(struct umm__vma *v, uint64_t page, uint64_t from, uint64_t fpages)
{
    uint64_t lo, hi = around_block(v, page, fpages, &lo);
    for (uint64_t p = from; p < hi; p++)
        if (!(atomic_load(&umm__vma_pte(v, p)->flags) & UMM__P_PRESENT))
            return from;
    return hi > from ? hi : from;
}

struct around_read {
    uint64_t base;  /* file page of bit 0: the start of read_around's cluster */
    uint64_t mask;  /* pages read by this fault's read_around (a cluster is 32) */
};

static uint64_t fault_around(struct umm__vma *v, uint64_t page, uint64_t n, uint64_t fpages,
                             const struct around_read *fresh)
{
    const uint32_t busy = UMM__P_PRESENT | UMM__P_ANON | UMM__P_SIGBUS | UMM__P_NOSPACE | UMM__P_GUARD;
    uint64_t hits = 0;
    if (v->advice == MADV_RANDOM || v->fpage >= fpages)
        return 0;
    uint64_t lo, hi = around_block(v, page, fpages, &lo);
    for (uint64_t p = lo; p < hi;) {
        /* A run [p, q) of eligible pages on consecutive frames, held. */
        uint64_t q = p;
        umm__pfn first = 0;
        while (q < hi && !(q >= page && q < page + n)) {
            struct umm__pte *pte = umm__vma_pte(v, q);
            if ((atomic_load(&pte->flags) & busy) || !umm__bittrylock(&pte->flags))
                break;
            umm__pfn pfn = umm__object_pfn(v->obj, v->fpage + q);
            if ((atomic_load(&pte->flags) & busy) || (q > p && pfn != first + (umm__pfn)(q - p))) {
                umm__bitunlock(&pte->flags, 0);
                break;
            }
            if (!umm__frame_trylock(pfn)) {
                umm__bitunlock(&pte->flags, 0);
                break;
            }
            if (!(atomic_load(&umm__frame(pfn)->flags) & UMM__F_UPTODATE)) {
                umm__frame_unlock(pfn);
                umm__bitunlock(&pte->flags, 0);
                break;
            }
            if (q == p)
                first = pfn;
            q++;
        }
        if (q == p) {
            p++;
            continue;
        }
        if (install(v, p, q - p, first, 0) == 0) {
            if (!umm__frame_host(first)) /* as install_now */
                populate(page_addr(v, p), q - p, umm__host_prot(v, UMM__P_PRESENT));
            for (uint64_t i = p; i < q; i++) {
                uint64_t b = v->fpage + i - fresh->base;
                hits += (b >= 64 || !(fresh->mask >> b & 1)) &&
                        !(atomic_load(&umm__frame(first + (umm__pfn)(i - p))->flags) & UMM__F_REFAULT);
            }
        }
        for (uint64_t i = 0; i < q - p; i++)
            umm__frame_unlock(first + (umm__pfn)i);
        unlock_ptes(v, p, q);
        p = q;
    }
    return hits;
}

/*
 * Read-around, as Linux's do_sync_mmap_readahead() for a fault outside a
 * sequential stream: read the aligned cluster of AROUND_CLUSTER pages (128
 * KiB) that holds the faulting page, in one pread per run of pages not yet
 * up to date, so that a program working in a neighbourhood of the file
 * (SQLite's and LMDB's B-trees) takes one trap and one read for it instead
 * of one per page.  Only at a miss (the page is not up to date in the page
 * cache).  Linux reads around at every such miss until its
 * mmap_miss count says the reads go unused; libumm waits for evidence
 * instead: another page of the cluster already up to date (an earlier touch
 * there, or a write).  A program touching scattered pages thus reads just
 * those (the laziness promise, tests/test-sparse-3pages), one that comes
 * back to a neighbourhood reads it whole, and MADV_RANDOM never reads
 * around.  Nothing past the file's end or outside the VMA; frames somebody
 * else holds are left to their own faults.  The frames are read and left
 * unmapped (fault_around maps those next to the fault; reclaim's page-cache
 * hand takes the others first).  Returns the pages read.
 */
#define AROUND_CLUSTER 32
/*
 * And, as Linux's mmap_miss (mm/filemap.c), a count per file of misses
 * where read-around was due, less hits: a fault that found its page in the
 * page cache, and every page fault_around maps that was read before this
 * fault (filemap_map_pages counts those too).  Past MMAP_LOTSAMISS,
 * read-around stops until hits bring it down.  Out of core (a file 4x the
 * budget touched at random) the clusters read around were reclaimed before
 * their pages were touched: ~10 pages read and 11 reclaimed per touch
 * (doc/PERFORMANCE.md, 2026-12-05).  So, as the kernel's workingset check
 * (a refaulting folio is no hit), a page reclaim has evicted once
 * (UMM__F_REFAULT) counts no hit when fault-around maps it again.  A
 * scattered miss that reads no cluster (no neighbour cached yet) is no
 * evidence either way and is not counted: counting it turned read-around
 * off for good after SQLite's first hundred B-tree pages (12,969 traps a
 * bench-sqlite run instead of 1,255).
 */
#define MMAP_LOTSAMISS 100
#define MMAP_MISS_MAX (MMAP_LOTSAMISS * 10)

static void mmap_miss_note(struct umm__object *obj, int hit)
{
    uint32_t m = atomic_load_explicit(&obj->mmap_miss, memory_order_relaxed);
    if (hit ? m > 0 : m < MMAP_MISS_MAX) /* a lost update costs nothing */
        atomic_store_explicit(&obj->mmap_miss, hit ? m - 1 : m + 1, memory_order_relaxed);
}

/* n hits at once (fault_around's pages), as filemap_map_pages. */
static void mmap_miss_hits(struct umm__object *obj, uint64_t n)
{
    uint32_t m = atomic_load_explicit(&obj->mmap_miss, memory_order_relaxed);
    if (n && m)
        atomic_store_explicit(&obj->mmap_miss, m > n ? m - (uint32_t)n : 0, memory_order_relaxed);
}

static uint64_t read_around(struct umm__vma *v, uint64_t page, uint64_t fpages, uint64_t fsize,
                            struct around_read *fresh)
{
    struct umm__object *obj = v->obj;
    uint64_t fpage = v->fpage + page;
    if (v->advice == MADV_RANDOM ||
        (atomic_load(&umm__frame(umm__object_pfn(obj, fpage))->flags) & UMM__F_UPTODATE))
        return 0; /* not a miss: fault-around's work */
    uint64_t cs = fpage & ~(uint64_t)(AROUND_CLUSTER - 1), ce = cs + AROUND_CLUSTER;
    if (cs < v->fpage)
        cs = v->fpage;
    if (ce > v->fpage + umm__vma_pages(v))
        ce = v->fpage + umm__vma_pages(v);
    if (ce > fpages)
        ce = fpages;
    int dense = 0;
    for (uint64_t p = cs; p < ce && !dense;) {
        umm__pfn pfn = umm__object_pfn(obj, p);
        uint64_t r = umm__object_run(obj, p, ce - p);
        for (uint64_t i = 0; i < r && !dense; i++)
            dense = p + i != fpage && (atomic_load(&umm__frame(pfn + (umm__pfn)i)->flags) & UMM__F_UPTODATE);
        p += r;
    }
    if (!dense)
        return 0; /* no read-around tried: no evidence either way */
    mmap_miss_note(obj, 0);
    if (atomic_load_explicit(&obj->mmap_miss, memory_order_relaxed) > MMAP_LOTSAMISS)
        return 0;
    uint64_t nread = 0;
    fresh->base = fpage & ~(uint64_t)(AROUND_CLUSTER - 1);
    for (uint64_t p = cs; p < ce;) {
        umm__pfn pfn = umm__object_pfn(obj, p);
        uint64_t r = umm__object_run(obj, p, ce - p);
        for (uint64_t i = 0; i < r;) {
            uint64_t j = i;
            while (j < r && umm__frame_trylock(pfn + (umm__pfn)j)) {
                if (atomic_load(&umm__frame(pfn + (umm__pfn)j)->flags) & UMM__F_UPTODATE) {
                    umm__frame_unlock(pfn + (umm__pfn)j);
                    break;
                }
                j++;
            }
            if (j > i) {
                if (umm__object_read(obj, p + i, j - i, fsize) == 0) {
                    for (uint64_t k = i; k < j; k++)
                        atomic_fetch_or(&umm__frame(pfn + (umm__pfn)k)->flags, UMM__F_UPTODATE);
                    umm__ram_count_cache(pfn, (int64_t)(j - i));
                    atomic_fetch_add(&umm__mm.pages_read, j - i);
                    nread += j - i;
                    for (uint64_t k = i; k < j; k++)
                        fresh->mask |= (uint64_t)1 << (p + k - fresh->base);
                } /* else the faulting page's own read reports the error */
                for (uint64_t k = i; k < j; k++)
                    umm__frame_unlock(pfn + (umm__pfn)k);
            }
            i = j + 1; /* past the page up to date or held by another */
        }
        p += r;
    }
    return nread;
}

/* ---------------------------------------- asynchronous read-ahead */

/*
 * A stream's fault posts the window after the one it brings in, and the
 * daemon's thread reads it into the page cache meanwhile
 * (umm__readahead_run), so that the stream's next fault finds its window
 * up to date and only installs it (fill: a run of frames up to date) --
 * the kernel's asynchronous read-ahead (mm/readahead.c), posted at the
 * fault itself rather than at a marked page.  The fault runs in the trap:
 * a post is a slot of a fixed ring and a doorbell, nothing allocated, and
 * a full ring drops it (the next fault reads for itself).  The daemon
 * looks the object up again among this process's objects and a mapping of
 * it over the pages, so a post holds nothing and outlives nothing it
 * names.  A file's pages only: shared anonymous memory has nothing to
 * read, a pager reads on its own thread, zero-copy pages are the host's
 * to read (asked with POSIX_FADV_WILLNEED).  Only with room in the budget
 * (umm__reclaim_room: else what is read ahead is reclaimed before it is
 * used).  In a fork family as anywhere: the daemon's fill is a fault's
 * fill, under the frame locks every process of the family takes; but a
 * process dying by _exit() lets go of the frames it shares and then of
 * its lock, and its daemon must not read into them after (fork.c,
 * umm__mm.let_go: a page of zeros and a frame held in test-differential
 * with forks, about one run in four under load, before that).
 */
#define RA_POSTS 8
enum { POST_FREE, POST_WRITING, POST_READY, POST_TAKEN };
static struct ra_post {
    _Atomic int state;
    struct umm__object *obj;
    uint64_t fpage, n;
} ra_posts[RA_POSTS];

/* Set while umm__populate (MADV_WILLNEED, MAP_POPULATE, MADV_POPULATE_*)
 * faults pages in: the program named the pages it wants, as the kernel's
 * force_page_cache_readahead reads them and no more; nothing is posted. */
static __thread int populating __attribute__((tls_model("initial-exec")));

/* Threads in a fault now.  With another thread faulting too, the machine's
 * cores are busy with the program's own streams, and a read on the
 * daemon's thread would only take a core from them: two threads reading
 * halves of a file went from 1.46-1.57 to 1.62-1.65 us a page with every
 * window posted (doc/PERFORMANCE.md 2026-12-07); the faults read their
 * own windows then. */
static _Atomic int faulting;

static void ra_post(struct umm__vma *v, uint64_t page, uint64_t n, uint64_t fpages)
{
    struct umm__object *obj = v->obj;
    uint64_t fpage = v->fpage + page;
    if (populating || atomic_load_explicit(&faulting, memory_order_relaxed) > 1)
        return;
    if (obj->fd < 0 || obj->pager || page >= umm__vma_pages(v) || fpage >= fpages ||
        !umm__bell_ready(UMM__BELL_READAHEAD) || !umm__reclaim_room(2 * n))
        return;
    if (n > umm__vma_pages(v) - page)
        n = umm__vma_pages(v) - page;
    if (atomic_load(&umm__frame(umm__object_pfn(obj, fpage))->flags) & UMM__F_UPTODATE)
        return; /* cached already (a file read again) */
    for (int i = 0; i < RA_POSTS; i++) {
        int free_ = POST_FREE;
        if (!atomic_compare_exchange_strong(&ra_posts[i].state, &free_, POST_WRITING))
            continue;
        /* The slot's fields pass between threads by its state alone:
         * said to helgrind and drd, which do not read atomics that way. */
        umm__vg_hb_after(&ra_posts[i].state);
        ra_posts[i].obj = obj;
        ra_posts[i].fpage = fpage;
        ra_posts[i].n = n;
        umm__vg_hb_before(&ra_posts[i].obj);
        atomic_store(&ra_posts[i].state, POST_READY);
        umm__ring(UMM__BELL_READAHEAD);
        return;
    }
}

/* Pages [fpage, fpage+n) of obj into the page cache, if obj still has a
 * mapping over fpage in this process (as far as it reaches). */
static void readahead_one(struct umm__object *obj, uint64_t fpage, uint64_t n)
{
    struct umm__object *o = umm__mm.objects;
    while (o && o != obj)
        o = o->next;
    uint64_t reach = 0;
    for (const struct umm__vma *w = o ? o->rmap : NULL; w; w = w->rnext)
        if (fpage >= w->fpage && fpage - w->fpage < umm__vma_pages(w) &&
            w->fpage + umm__vma_pages(w) - fpage > reach)
            reach = w->fpage + umm__vma_pages(w) - fpage;
    if (n > reach)
        n = reach;
    uint64_t fsize, fpages = n ? file_pages(obj, fpage, &fsize) : 0;
    if (fpage >= fpages)
        return;
    if (n > fpages - fpage)
        n = fpages - fpage;
    if (umm__frame_host(umm__object_pfn(obj, fpage))) {
        posix_fadvise(obj->fd, (off_t)(fpage << UMM_PAGE_SHIFT), (off_t)(n << UMM_PAGE_SHIFT), POSIX_FADV_WILLNEED);
        return;
    }
    umm__reclaim_before(n); /* the fault's room, taken here: before any frame is held */
    for (uint64_t p = fpage; p < fpage + n;) {
        int err, read;
        uint64_t k = fill(obj, p, fpage + n - p, fsize, &err, &read);
        if (k == 0)
            return; /* a read error: the fault that needs the page reports it */
        unpin_run(umm__object_pfn(obj, p), k);
        p += k;
    }
}

/* The daemon's side: every post waiting.  The address-space lock is held
 * for reading. */
void umm__readahead_run(void)
{
    for (int i = 0; i < RA_POSTS; i++) {
        int ready = POST_READY;
        if (!atomic_compare_exchange_strong(&ra_posts[i].state, &ready, POST_TAKEN))
            continue;
        umm__vg_hb_after(&ra_posts[i].obj);
        struct ra_post post = { 0, ra_posts[i].obj, ra_posts[i].fpage, ra_posts[i].n };
        umm__vg_hb_before(&ra_posts[i].state);
        atomic_store(&ra_posts[i].state, POST_FREE);
        readahead_one(post.obj, post.fpage, post.n);
    }
}

/* A fork's child: every post is free again (half written or taken by a
 * thread it has not got; one ready is the parent's to read). */
void umm__readahead_fork_child(void)
{
    for (int i = 0; i < RA_POSTS; i++)
        atomic_store(&ra_posts[i].state, POST_FREE);
}

/*
 * A page of a file mapping (or of shared anonymous memory) that is not
 * present: bring it (and a read-ahead window) into the page cache, then
 * install it; a write goes on to copy-on-write or dirty marking.
 */
static enum umm__fault_result fault_object(struct umm__vma *v, uint64_t page, int access, int *err)
{
    struct umm__object *obj = v->obj;
    uint64_t fpage = v->fpage + page;
    umm__pfn pfn = umm__object_pfn(obj, fpage);
    int shared = (v->vflags & UMM__V_SHARED) != 0;

    if (obj->anon) {
        /* Shared anonymous memory: no file, no dirty tracking; past its
         * size (grown by mremap) SIGBUS, as the kernel's shmem. */
        if (fpage >= obj->anon_pages) {
            umm__noted(UMM_TRACE_SIGBUS, access == UMM__ACC_WRITE, fpage, 0);
            return UMM__FAULT_SIGBUS;
        }
        umm__frame_lock(pfn);
        uint32_t fl = atomic_load(&umm__frame(pfn)->flags);
        int kind = UMM_TRACE_ZERO;
        if (fl & UMM__F_SWAPPED) { /* reclaim put it in the swap file */
            if ((*err = umm__swap_in(pfn)) != 0) {
                umm__frame_unlock(pfn);
                return UMM__FAULT_SIGBUS;
            }
            atomic_fetch_and(&umm__frame(pfn)->flags, ~UMM__F_SWAPPED);
            umm__reclaim_note_swapin();
            kind = UMM_TRACE_SWAPIN;
        }
        if (!(atomic_fetch_or(&umm__frame(pfn)->flags, UMM__F_UPTODATE) & UMM__F_UPTODATE))
            umm__ram_count(1);
        umm__frame_pin(pfn);
        umm__frame_unlock(pfn);
        umm__noted(kind, access == UMM__ACC_WRITE, fpage, 1);
        *err = install_now(v, page, 1, pfn, UMM__P_WRITE);
        umm__frame_unpin(pfn);
        return *err ? UMM__FAULT_SIGBUS : UMM__FAULT_DONE;
    }

    uint64_t fsize, fpages = file_pages(obj, fpage, &fsize);
    if (fpage >= fpages) {
        umm__noted(UMM_TRACE_SIGBUS, access == UMM__ACC_WRITE, fpage, 0);
        return UMM__FAULT_SIGBUS; /* wholly beyond the end of the file */
    }
    int slot;
    uint64_t want = ra_window(v, page, &slot);
    if (want > fpages - fpage)
        want = fpages - fpage;
    if (want > umm__vma_pages(v) - page)
        want = umm__vma_pages(v) - page;
    /* Outside a sequential stream, the neighbourhood (at most a window's
     * worth of frames, which reclaim made room for). */
    struct around_read fresh = {0, 0};
    uint64_t around = want == 1 ? read_around(v, page, fpages, fsize, &fresh) : 0;
    int read;
    uint64_t filled = fill(obj, fpage, want, fsize, err, &read);
    if (filled == 0)
        return UMM__FAULT_SIGBUS;
    /* A window that came in part up to date (read ahead, or being read by
     * the daemon now) and in part not: the rest is read, or waited for,
     * with this fault, as far as the extent goes (the frames must follow
     * each other). */
    for (uint64_t ext = umm__object_run(obj, fpage, want); filled < ext;) {
        int e2, r2;
        uint64_t k = fill(obj, fpage + filled, ext - filled, fsize, &e2, &r2);
        if (k == 0)
            break; /* a read error: its own fault reports it */
        filled += k;
        read |= r2;
    }
    if (want == 1 && !read && !around)
        mmap_miss_note(obj, 1); /* a hit: read-around's pages (or others) were used */
    if (atomic_load(&obj->size_gen) == 0) {
        /* A read came up short: the file shrank behind the size seen.
         * Nothing past its end now is installed; the frames read there
         * hold zeros, as the file would if it grew back. */
        fpages = umm__object_filepages_hint(obj, &fsize);
        if (fpage >= fpages) {
            unpin_run(pfn, filled);
            umm__noted(UMM_TRACE_SIGBUS, access == UMM__ACC_WRITE, fpage, 0);
            return UMM__FAULT_SIGBUS;
        }
    }
    read |= around != 0;
    uint64_t n = grab_ptes(v, page, filled < fpages - fpage ? filled : fpages - fpage);
    umm__noted(read ? UMM_TRACE_FILL : UMM_TRACE_CACHED, access == UMM__ACC_WRITE, fpage, n);

    enum umm__fault_result r = UMM__FAULT_DONE;
    uint64_t first = 0;
    if (access == UMM__ACC_WRITE && !shared) {
        r = fault_cow(v, page, err);
        first = 1;
    } else if (access == UMM__ACC_WRITE) {
        first = 1;
        if ((*err = umm__object_reserve(obj, fpage, pfn)) == 0) {
            mark_dirty(obj, pfn);
            *err = install(v, page, 1, pfn, UMM__P_WRITE);
            umm__frame_unlock(pfn);
            if (!*err)
                populate(page_addr(v, page), 1, umm__host_prot(v, UMM__P_PRESENT | UMM__P_WRITE));
        } /* else no room: the page stays out, armed for SIGBUS (umm__fault) */
    }
    if (!*err && n > first)
        *err = install_now(v, page + first, n - first, pfn + (umm__pfn)first, 0);
    /* The stream goes on past what this fault brought in, for a write as
     * for a read: a stream of first writes to a private mapping reads its
     * window into the page cache at once, yet copies each page only at its
     * own write (the others are installed showing the page cache, so they
     * follow the file until then; their write faults leave the stream
     * alone). */
    if (!*err && want > 1 && n == want && (slot >= 0 || v->advice == MADV_SEQUENTIAL))
        ra_post(v, page + n, want * 2 > RA_MAX ? RA_MAX : want * 2, fpages);
    uint64_t end = page + n;
    if (!*err && access != UMM__ACC_WRITE) {
        mmap_miss_hits(obj, fault_around(v, page, n, fpages, &fresh));
        end = stream_end(v, page, end, fpages);
    }
    ra_advance(v, slot, end);
    release_ptes(v, page, n);
    unpin_run(pfn, filled);
    return *err ? UMM__FAULT_SIGBUS : r;
}

/* --------------------------------------------------------- the stages */

/*
 * A private page that reclaim took out of the page table (vmscan.c): its
 * entry keeps ANON and its frame, whose bytes are in memory still (another
 * process mapped it then) or in the swap file.  Bring them back into the
 * same frame and map it again: writable if this entry is its only user,
 * read-only if it is shared since a fork (copy-on-write as before).
 */
static enum umm__fault_result fault_swapin(struct umm__vma *v, uint64_t page, int access, int *err)
{
    struct umm__pte *pte = umm__vma_pte(v, page);
    umm__pfn pfn = pte->pfn;
    umm__frame_lock(pfn);
    int kind = UMM_TRACE_CACHED;
    if (atomic_load(&umm__frame(pfn)->flags) & UMM__F_SWAPPED) {
        if ((*err = umm__swap_in(pfn)) != 0) {
            umm__frame_unlock(pfn);
            return UMM__FAULT_SIGBUS;
        }
        atomic_fetch_and(&umm__frame(pfn)->flags, ~UMM__F_SWAPPED);
        umm__ram_count(1);
        umm__reclaim_note_swapin();
        kind = UMM_TRACE_SWAPIN;
    }
    uint32_t nf = UMM__P_PRESENT | (atomic_load(&umm__frame(pfn)->ref) == 1 ? UMM__P_WRITE : 0);
    int prot = umm__host_prot(v, nf | UMM__P_ANON);
    /* The host maps the frame here already (reclaim only took the access
     * away), unless mremap or fork moved the page: map it to be sure. */
    if (umm__host_map_frames(page_addr(v, page), UMM_PAGE_SIZE, prot, pfn) != 0) {
        *err = errno;
        umm__frame_unlock(pfn);
        return UMM__FAULT_SEGV;
    }
    umm__vg_defined(page_addr(v, page), UMM_PAGE_SIZE);
    charge(v, page, page + 1, nf);
    atomic_fetch_add(&umm__mm.resident, 1);
    umm__frame_unlock(pfn);
    populate(page_addr(v, page), 1, prot);
    umm__noted(kind, access == UMM__ACC_WRITE, 0, 1);
    /* A write to a shared page goes on to copy-on-write: the retry faults. */
    return UMM__FAULT_DONE;
}

static enum umm__fault_result fault_page(struct umm__vma *v, uint64_t page, int access, int *err)
{
    struct umm__pte *pte = umm__vma_pte(v, page);
    uint32_t f = atomic_load(&pte->flags);
    if (access == UMM__ACC_GUESS) /* a present page faults only for a write (or when OLD) */
        access = (f & (UMM__P_PRESENT | UMM__P_OLD)) == UMM__P_PRESENT ? UMM__ACC_WRITE : UMM__ACC_READ;
    if (!access_ok(v, access))
        return UMM__FAULT_SEGV;
    if (f & UMM__P_GUARD) { /* after the mapping's own check, as the kernel */
        *err = EFAULT;
        return UMM__FAULT_SEGV;
    }
    if (!(f & UMM__P_PRESENT)) {
        if (f & UMM__P_ANON)
            return fault_swapin(v, page, access, err);
        return v->obj ? fault_object(v, page, access, err) : fault_anon(v, page, access, err);
    }
    if (f & UMM__P_OLD) {
        /* Reclaim's hand took the host's access away to see whether the
         * page is used: it is.  Give it back (and go on if this is a write
         * the page's entry does not allow yet). */
        umm__mc_update(v, page, page + 1, 0, UMM__P_OLD, UMM__MC_NOLIMIT);
        f = atomic_load(&pte->flags);
        if (access != UMM__ACC_WRITE || (f & UMM__P_WRITE)) {
            umm__noted(UMM_TRACE_SPURIOUS, access == UMM__ACC_WRITE, 0, 0);
            if (umm__vma_reprotect(v, page, page + 1) != 0) {
                *err = errno;
                return UMM__FAULT_SEGV;
            }
            return UMM__FAULT_DONE;
        }
    }
    if (access != UMM__ACC_WRITE || (f & UMM__P_WRITE)) {
        /* Another thread got here first -- or the host refused the
         * protection when the page was installed (its map count at its
         * limit: install() reports it, the entry stays).  The entry is
         * right either way: give the host its protection again, or the
         * access would fault here for ever. */
        umm__noted(UMM_TRACE_SPURIOUS, access == UMM__ACC_WRITE, 0, 0);
        if (umm__vma_reprotect(v, page, page + 1) != 0) {
            *err = errno;
            return UMM__FAULT_SEGV;
        }
        return UMM__FAULT_DONE;
    }
    if (v->vflags & UMM__V_SHARED)
        return fault_dirty(v, page, err);
    return fault_cow(v, page, err);
}

enum umm__fault_result umm__fault(uintptr_t addr, int access, int *err)
{
    *err = 0;
    struct umm__vma *v = umm__vma_find(addr);
    if (!v)
        return UMM__FAULT_NOTOURS;
    if (!(v->prot & (PROT_READ | PROT_WRITE | PROT_EXEC)))
        return UMM__FAULT_SEGV;
    uint64_t page = (addr - v->start) >> UMM_PAGE_SHIFT;
    struct umm__pte *pte = umm__vma_pte(v, page);
    umm__reclaim_before(RA_MAX); /* room for a read-ahead window, before any entry is held */
    umm__bitlock(&pte->flags, 0);
    atomic_fetch_add_explicit(&faulting, 1, memory_order_relaxed);
    enum umm__fault_result r = fault_page(v, page, access, err);
    atomic_fetch_sub_explicit(&faulting, 1, memory_order_relaxed);
    /* Past the end of the file (or an I/O error): arm the page so that the
     * retried access raises the kernel's own SIGBUS.  A present page here
     * means the host refused a mapping: that can only end as SIGSEGV. */
    if (r == UMM__FAULT_SIGBUS &&
        ((atomic_load(&pte->flags) & UMM__P_PRESENT) || umm__arm_sigbus(v, page) != 0))
        r = UMM__FAULT_SEGV;
    else if (r == UMM__FAULT_SIGBUS && (*err == ENOSPC || *err == EDQUOT || *err == EIO))
        atomic_fetch_or(&pte->flags, UMM__P_NOSPACE); /* inside the file, yet this SIGBUS is real
                                                       * (EIO: a failed read or pager fill, which
                                                       * would otherwise be retried for ever) */
    umm__bitunlock(&pte->flags, 0);
    return r;
}

/* Make [start, end) of v resident, and writable if write, page by page as
 * faults would.  The caller holds the address-space lock for reading. */
static int populate_range(struct umm__vma *v, uintptr_t start, uintptr_t end, int write);

int umm__populate(struct umm__vma *v, uintptr_t start, uintptr_t end, int write)
{
    populating = 1;
    int err = populate_range(v, start, end, write);
    populating = 0;
    return err;
}

static int populate_range(struct umm__vma *v, uintptr_t start, uintptr_t end, int write)
{
    for (uintptr_t a = start; a < end; a += UMM_PAGE_SIZE) {
        int err;
        uint64_t page = (a - v->start) >> UMM_PAGE_SHIFT;
        uint32_t f = atomic_load(&umm__vma_pte(v, page)->flags);
        if ((f & (UMM__P_PRESENT | UMM__P_OLD)) == UMM__P_PRESENT && (!write || (f & UMM__P_WRITE)))
            continue;
        enum umm__fault_result r = umm__fault(a, write ? UMM__ACC_WRITE : UMM__ACC_READ, &err);
        if (r == UMM__FAULT_SEGV)
            return err ? err : EACCES;
        if (r == UMM__FAULT_SIGBUS)
            return err ? err : EFAULT;
        if (r == UMM__FAULT_NOTOURS)
            return ENOMEM;
    }
    return 0;
}
