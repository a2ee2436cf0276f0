/*
 * softdirty.c: which pages the program wrote since it last asked -- the
 * kernel's soft-dirty bits (fs/proc/task_mmu.c: clear_refs with 4, then
 * /proc/PID/pagemap), the primitive behind incremental checkpoints and
 * concurrent garbage collectors (Boehm GC's MPROTECT_VDB).
 *
 * A page is "written" if its entry lets the host write it (P_WRITE: it was
 * given write access since the last clear, which a store needs) or if it
 * carries P_SOFTDIRTY, which umm__mc_update (mapcount.c) sets whenever it
 * takes WRITE away for any other reason (write-back, reclaim, fork, the
 * map budget), so that nothing written is forgotten when the page goes.
 * Clearing takes WRITE (and SOFTDIRTY) away, one mprotect per stretch of
 * resident pages: the next
 * store to each page traps once (fault.c gives the access back, as after
 * write-back or fork) and the page is written again.
 *
 * Never a false negative; a false positive is a page given write access by
 * a read (a private anonymous page first touched by a load, a page swapped
 * back in), as the kernel's soft-dirty has its own (new VMAs, THP splits).
 */
#include "umm-int.h"

#include <errno.h>
#include <string.h>

long umm_dirty(void *addr, size_t length, unsigned char *vec, int flags)
{
    uintptr_t start = (uintptr_t)addr;
    if (!UMM_PAGE_ALIGNED(start) || (flags & ~UMM_DIRTY_CLEAR)) {
        errno = EINVAL;
        return -1;
    }
    uintptr_t end = start + ((length + UMM_PAGE_SIZE - 1) & UMM_PAGE_MASK);
    if (end < start) {
        errno = ENOMEM;
        return -1;
    }
    if (end == start)
        return 0;
    if (umm__start() != 0)
        return -1;
    sigset_t saved;
    umm__enter(&saved);
    long count = 0;
    int err = 0;
    for (uintptr_t at = start; at < end;) {
        struct umm__vma *v = umm__vma_find(at);
        if (!v) {
            err = ENOMEM; /* as mincore: a hole in the range */
            break;
        }
        uint64_t from = (at - v->start) >> UMM_PAGE_SHIFT;
        uint64_t to = ((end < v->end ? end : v->end) - v->start) >> UMM_PAGE_SHIFT;
        uint64_t run = UINT64_MAX, lo = UINT64_MAX, hi = 0; /* a run of writable pages; all changed */
        struct umm__kscan ks;
        umm__kscan_begin(&ks, (to - from) * sizeof(struct umm__pte));
        for (uint64_t p = from, next; p <= to; p = next) {
            /* Entries never written (kmem.c) are clean: skipped unread,
             * the first of them taken as a clean page (it ends a run). */
            next = p + 1;
            int skip = 0;
            if (p < to && (p == from || umm__pte_page_start(v, p))) {
                uint64_t q = umm__pte_next(v, p, to, &ks);
                if (q > p) {
                    skip = 1;
                    next = q;
                    if (vec)
                        memset(vec + ((v->start + (p << UMM_PAGE_SHIFT) - start) >> UMM_PAGE_SHIFT), 0, q - p);
                }
            }
            uint32_t f = p < to && !skip ? atomic_load(&umm__vma_pte(v, p)->flags) : 0;
            int dirty = (f & (UMM__P_WRITE | UMM__P_SOFTDIRTY)) != 0;
            if (p < to) {
                count += dirty;
                if (vec)
                    vec[(v->start + (p << UMM_PAGE_SHIFT) - start) >> UMM_PAGE_SHIFT] = (unsigned char)dirty;
            }
            if (!(flags & UMM_DIRTY_CLEAR))
                continue;
            if (p < to && (f & UMM__P_WRITE)) {
                if (run == UINT64_MAX)
                    run = p;
                continue;
            }
            if (run != UINT64_MAX) {
                umm__mc_update(v, run, p, 0, UMM__P_WRITE | UMM__P_SOFTDIRTY, UMM__MC_NOLIMIT);
                lo = run < lo ? run : lo;
                hi = p;
                run = UINT64_MAX;
            }
            if (p < to && (f & UMM__P_SOFTDIRTY))
                atomic_fetch_and(&umm__vma_pte(v, p)->flags, ~UMM__P_SOFTDIRTY);
        }
        /* The host's protection last, over all the runs at once: one
         * mprotect for every stretch of resident pages, not one per run
         * (on a virtual machine each system call is dear). */
        umm__kscan_end(&ks);
        if (lo < hi)
            umm__vma_reprotect(v, lo, hi);
        at = v->start + (to << UMM_PAGE_SHIFT);
    }
    umm__leave(&saved);
    if (err) {
        errno = err;
        return -1;
    }
    return count;
}
