/*
 * kvma.c: the kernel's VMAs.
 *
 * libumm splits its VMAs wherever it needs to and never merges them; the
 * kernel merges neighbours that are alike, and mremap tells the
 * difference: a range that is not within one of the kernel's VMAs is
 * EFAULT, and only the end of one grows in place.  So each of libumm's
 * VMAs names the kernel VMA it is part of (kid: neighbours with the same
 * kid are one), and the kernel's VMAs are kept here as Linux (6.18,
 * mm/vma.c, mm/mmap.c, mm/mprotect.c, mm/madvise.c, mm/mremap.c,
 * mm/rmap.c) makes them:
 *
 *  - mmap, mprotect and madvise try to merge what they made or changed
 *    with the VMAs on either side (vma_merge_new_range,
 *    vma_merge_existing_range); a change that leaves a VMA's flags as they
 *    were merges nothing and splits nothing; munmap splits;
 *  - VMAs merge when their flags (protection, VM_ACCOUNT, VM_NORESERVE,
 *    VM_LOCKED, advice...), their file (the open file, not the inode) and
 *    their vm_pgoff line up -- private anonymous memory has a vm_pgoff
 *    too: its address at mmap, which a move keeps once it has an anon_vma
 *    and otherwise takes from the new address (copy_vma) -- and their
 *    anon_vmas allow it (is_mergeable_anon_vma: the same one, or one side
 *    has none; not one of a fork child's);
 *  - a private mapping gets its anon_vma at its first fault that needs
 *    one: of private anonymous memory a write fault, and a read fault
 *    where the host has no zero page for it (umm__kvma_init asks), of a
 *    private file mapping a write fault; it takes a
 *    neighbour's when they are alike but for the protection
 *    (find_mergeable_anon_vma: the next VMA first, then the previous one);
 *    a merge gives the merged VMA the anon_vma either side had; a fork
 *    child's VMAs each get one of their own (anon_vma_fork), except under
 *    MADV_WIPEONFORK (none);
 *  - mprotect charges a private mapping made writable (VM_ACCOUNT) and
 *    uncharges private anonymous memory made read-only that has no
 *    anon_vma; MREMAP_DONTUNMAP clears VM_LOCKED of the old VMA, and takes
 *    its anon_vma away when all of it moved -- without merging it.
 *
 * The anon_vma of a kernel VMA (kanon) is set by a fault, with the
 * address-space lock held for reading; a mutex makes those assignments
 * (and their reads there) one at a time.  Everything else here runs with the lock
 * held for writing.
 */
#include "umm-int.h"

#include <fcntl.h>
#include <pthread.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#define FORKED (1ull << 63) /* an anon_vma of a fork child (vma_is_fork_child) */

static _Atomic uint64_t ids = 1;
static pthread_mutex_t anon_lock = PTHREAD_MUTEX_INITIALIZER; /* helgrind and drd know it */

static uint64_t fresh(void)
{
    return atomic_fetch_add(&ids, 1);
}

static uint64_t anon_of(const struct umm__vma *v)
{
    return atomic_load_explicit(&v->kanon, memory_order_relaxed);
}

static void set_anon(struct umm__vma *v, uint64_t a)
{
    atomic_store_explicit(&v->kanon, a, memory_order_relaxed);
}

/* vm_pgoff at v's start: the object's page, or private anonymous memory's own. */
static uint64_t kpgoff(const struct umm__vma *v)
{
    return v->obj ? v->fpage : v->kpg + v->anon_off;
}

static void set_kpgoff(struct umm__vma *v, uint64_t pg)
{
    if (!v->obj)
        v->kpg = pg - v->anon_off;
}

uint64_t umm__kvma_pgoff(const struct umm__vma *v, uintptr_t addr)
{
    return kpgoff(v) + ((addr - v->start) >> UMM_PAGE_SHIFT);
}

/* vma_is_anonymous(): private anonymous memory (and private /dev/zero). */
static int anonymous(const struct umm__vma *v)
{
    return !v->obj && !(v->vflags & UMM__V_SHARED);
}

int umm__kvma_joined(const struct umm__vma *v, const struct umm__vma *w)
{
    return v && w && v->end == w->start && v->kid && v->kid == w->kid;
}

static struct umm__vma *at(size_t i)
{
    return umm__vma_at(i);
}

/* The kernel VMA holding libumm's VMA i: its first and last VMA. */
static void kbounds(size_t i, size_t *first, size_t *last)
{
    size_t f = i, l = i;
    while (f > 0 && umm__kvma_joined(at(f - 1), at(f)))
        f--;
    while (umm__kvma_joined(at(l), at(l + 1)))
        l++;
    *first = f;
    *last = l;
}

static void relabel(size_t f, size_t l, uint64_t kid)
{
    for (size_t i = f; i <= l; i++)
        at(i)->kid = kid;
}

static void anon_all(size_t f, size_t l, uint64_t a)
{
    for (size_t i = f; i <= l; i++)
        set_anon(at(i), a);
}

/* Flags alike, but (anon_vma_compatible) for the protection.  Zero-copy
 * is libumm's own, not a flag of the kernel's VMAs. */
static int alike(const struct umm__vma *v, const struct umm__vma *w, int prot_too)
{
    const int own = UMM__V_ZEROCOPY;
    return (!prot_too || v->prot == w->prot) && (v->vflags & ~own) == (w->vflags & ~own) && v->advice == w->advice &&
           v->obj == w->obj && v->kfile == w->kfile && v->end == w->start &&
           kpgoff(v) + umm__vma_pages(v) == kpgoff(w);
}

/* is_mergeable_anon_vma(): may VMAs with anon_vmas a and b be one? */
static int anon_ok(uint64_t a, uint64_t b)
{
    return a == b || (!a && !(b & FORKED)) || (!b && !(a & FORKED));
}

static uint64_t either(uint64_t a, uint64_t b)
{
    return a ? a : b;
}

/*
 * Merge libumm's VMAs f..l (consecutive, one kernel VMA to be, with the
 * flags and anon_vma of f) with the kernel VMAs on either side, as
 * vma_merge_new_range() does: with the previous one if alike, with the
 * next one if alike (and, when both, if their anon_vmas agree).
 */
static void merge_new(size_t f, size_t l)
{
    struct umm__vma *v = at(f), *w = at(l), *p = f > 0 ? at(f - 1) : NULL, *n = at(l + 1);
    uint64_t a = anon_of(v);
    int left = p && alike(p, v, 1) && anon_ok(a, anon_of(p));
    int right = n && alike(w, n, 1) && anon_ok(a, anon_of(n)) &&
                (!left || !anon_of(p) || !anon_of(n) || anon_of(p) == anon_of(n));
    size_t from = f, to = l, x;
    uint64_t kid = v->kid;
    if (left) {
        kbounds(f - 1, &from, &x);
        kid = p->kid;
        a = either(a, anon_of(p));
    }
    if (right) {
        kbounds(l + 1, &x, &to);
        if (!left)
            kid = n->kid;
        a = either(a, anon_of(n));
    }
    relabel(from, to, kid);
    anon_all(from, to, a);
}

/* ------------------------------------------------------------ making */

static int overcommit_never(void)
{
    static int mode = -1;
    if (mode < 0) {
        char buf[8];
        mode = umm__slurp("/proc/sys/vm/overcommit_memory", buf, sizeof buf) > 0 && buf[0] == '2';
    }
    return mode;
}

void umm__kvma_new(struct umm__vma *v, int fd, int flags, uint64_t pgoff)
{
    v->kid = fresh();
    set_anon(v, 0);
    v->kfile = fd;
    /* do_mmap(): private anonymous memory's vm_pgoff is its address;
     * private /dev/zero keeps the offset given. */
    if (!v->obj)
        v->kpg = fd < 0 ? v->start >> UMM_PAGE_SHIFT : pgoff;
    if ((flags & MAP_NORESERVE) && !overcommit_never())
        v->vflags |= UMM__V_NORESERVE;
    /* accountable_mapping(): private and writable, without VM_NORESERVE. */
    if (!(v->vflags & (UMM__V_SHARED | UMM__V_NORESERVE)) && (v->prot & PROT_WRITE))
        v->vflags |= UMM__V_ACCOUNT;
}

void umm__kvma_mapped(struct umm__vma *v)
{
    size_t i;
    umm__vma_next(v->start, &i);
    merge_new(i, i);
}

void umm__kvma_cut(uintptr_t addr)
{
    size_t i, f, l;
    struct umm__vma *v = umm__vma_next(addr, &i);
    if (!v || v->start != addr)
        return;
    if (i > 0 && umm__kvma_joined(at(i - 1), v))
        return; /* not cut: still one VMA with what is before */
    kbounds(i, &f, &l);
    relabel(i, l, fresh());
}

/* ---------------------------------------------- mprotect and madvise */

void umm__kvma_snapshot(uintptr_t start, uintptr_t end)
{
    size_t i;
    for (struct umm__vma *v = umm__vma_next(start, &i); v && v->start < end; v = at(++i)) {
        v->kold_prot = v->prot;
        v->kold_vflags = v->vflags;
        v->kold_advice = v->advice;
    }
}

/*
 * vma_merge_existing_range(), then vma_modify()'s splits: [rs, re) of the
 * kernel VMA kf..kl changed its flags (libumm's VMAs are split at rs, re).
 */
static void modify(size_t kf, size_t kl, uintptr_t rs, uintptr_t re, uintptr_t end)
{
    size_t mf = kf, ml = kl, x, pf = 0, nl = 0;
    while (at(mf)->start < rs)
        mf++;
    while (at(ml)->end > re)
        ml--;
    struct umm__vma *m = at(mf), *me = at(ml), *p = kf > 0 ? at(kf - 1) : NULL, *n = at(kl + 1), nold;
    uint64_t a = anon_of(m);
    int left = mf == kf && p && alike(p, m, 1) && anon_ok(a, anon_of(p));
    if (n && n->start < end) { /* the kernel gets to the next one later: as it is now */
        nold = *n;
        nold.prot = n->kold_prot;
        nold.vflags = n->kold_vflags;
        nold.advice = n->kold_advice;
    }
    int right = ml == kl && n && alike(me, n && n->start < end ? &nold : n, 1) && anon_ok(a, anon_of(n)) &&
                (!left || !anon_of(p) || !anon_of(n) || anon_of(p) == anon_of(n));
    if (left)
        kbounds(kf - 1, &pf, &x);
    if (right)
        kbounds(kl + 1, &x, &nl);
    if (left && right) {
        relabel(pf, nl, p->kid);
        anon_all(pf, nl, either(either(anon_of(p), a), anon_of(n)));
    } else if (left) {
        a = either(anon_of(p), a);
        relabel(mf, ml, p->kid);
        anon_all(pf, ml, a);
    } else if (right) {
        a = either(anon_of(n), a);
        relabel(mf, ml, n->kid);
        anon_all(mf, nl, a);
    } else {
        if (mf > kf)
            relabel(mf, kl, fresh());
        if (ml < kl)
            relabel(ml + 1, kl, fresh());
    }
}

void umm__kvma_changed(uintptr_t start, uintptr_t end, int mprotect)
{
    uintptr_t pos = start;
    for (;;) {
        size_t i, kf, kl;
        struct umm__vma *v = umm__vma_next(pos, &i);
        if (!v || v->start >= end)
            return;
        kbounds(i, &kf, &kl);
        uintptr_t rs = v->start, re = at(kl)->end < end ? at(kl)->end : end;
        size_t ml = i;
        while (at(ml)->end < re)
            ml++;
        if (v->prot != v->kold_prot || v->vflags != v->kold_vflags || v->advice != v->kold_advice) {
            if (mprotect) {
                /* mprotect_fixup(): VM_ACCOUNT for private memory made
                 * writable; gone from private anonymous memory made
                 * read-only while it has no anon_vma. */
                int of = v->kold_vflags, add = 0, drop = 0;
                if (v->prot & PROT_WRITE)
                    add = !(of & (UMM__V_ACCOUNT | UMM__V_SHARED | UMM__V_NORESERVE)) &&
                          !(v->kold_prot & PROT_WRITE);
                else
                    drop = (of & UMM__V_ACCOUNT) && anonymous(v) && !anon_of(v);
                for (size_t j = i; j <= ml; j++)
                    at(j)->vflags = add ? at(j)->vflags | UMM__V_ACCOUNT
                                  : drop ? at(j)->vflags & ~UMM__V_ACCOUNT : at(j)->vflags;
            }
            modify(kf, kl, rs, re, end);
        }
        pos = re;
    }
}

/* ------------------------------------------------------------- mremap */

void umm__kvma_like(struct umm__vma *v, const struct umm__vma *t, uint64_t pg)
{
    v->kid = t->kid;
    set_anon(v, anon_of(t));
    v->kfile = t->kfile;
    set_kpgoff(v, pg);
}

void umm__kvma_grown(struct umm__vma *v)
{
    size_t i;
    umm__vma_next(v->start, &i);
    merge_new(i, i);
}

void umm__kvma_moved(uintptr_t start, uintptr_t end)
{
    size_t f, l;
    struct umm__vma *v = umm__vma_next(start, &f);
    if (!v || v->start != start)
        return;
    /* copy_vma(): private anonymous memory that has no anon_vma yet takes
     * its vm_pgoff from the new address, to merge there more likely. */
    uint64_t base = anonymous(v) && !anon_of(v) ? start >> UMM_PAGE_SHIFT : kpgoff(v), kid = fresh();
    for (l = f; at(l) && at(l)->start < end; l++) {
        at(l)->kid = kid;
        set_kpgoff(at(l), base + ((at(l)->start - start) >> UMM_PAGE_SHIFT));
    }
    merge_new(f, l - 1);
}

void umm__kvma_dontunmap(uintptr_t start, uintptr_t end, uintptr_t ks, uintptr_t ke)
{
    if (start != ks || end != ke)
        return;
    size_t i;
    for (struct umm__vma *v = umm__vma_next(start, &i); v && v->start < end; v = at(++i))
        set_anon(v, 0); /* unlink_anon_vmas() */
}

/* ---------------------------------------------------------- anon_vma */

/*
 * anon_vma_prepare() for the kernel VMA holding v: the anon_vma of a
 * neighbour alike but for the protection (the next one first), or a new one.
 */
static void prepare(struct umm__vma *v)
{
    pthread_mutex_lock(&anon_lock);
    if (!anon_of(v)) {
        size_t i, f, l;
        umm__vma_next(v->start, &i);
        kbounds(i, &f, &l);
        struct umm__vma *p = f > 0 ? at(f - 1) : NULL, *n = at(l + 1);
        uint64_t a = 0;
        if (n && alike(at(l), n, 0) && anon_of(n) && !(anon_of(n) & FORKED))
            a = anon_of(n);
        else if (p && alike(p, at(f), 0) && anon_of(p) && !(anon_of(p) & FORKED))
            a = anon_of(p);
        anon_all(f, l, a ? a : fresh());
    }
    pthread_mutex_unlock(&anon_lock);
}

/*
 * Does a read fault of private anonymous memory give its VMA an anon_vma?
 * Not where the kernel maps its shared zero page there (do_anonymous_page
 * reads need no anon_vma); yes where it allocates a page instead (seen on
 * some of these machines: no zero page for anonymous reads).  Which one
 * changes which VMAs merge, so it is asked of the host once, at start-up:
 * three pages mapped one by one, the outer two read first -- with an
 * anon_vma each they cannot all merge, and growing the three is EFAULT.
 */
static int read_gives_anon = 1;

/* The host's own calls, not the C library's: a program may define mmap or
 * mremap itself (test-sqlite does, to send SQLite's to libumm). */
static char *host_map(void *at, size_t len, int prot, int flags)
{
    long r = syscall(SYS_mmap, at, len, prot, flags, -1, 0L);
    return r < 0 && r > -4096 ? MAP_FAILED : (char *)r;
}

void umm__kvma_init(void)
{
    const size_t pg = UMM_PAGE_SIZE;
    const int fl = MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED;
    char *a = host_map(NULL, 3 * pg, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE);
    if (a == MAP_FAILED)
        return; /* keep the guess that merges less */
    if (host_map(a, pg, PROT_READ, fl) != MAP_FAILED && host_map(a + 2 * pg, pg, PROT_READ, fl) != MAP_FAILED) {
        (void)*(volatile char *)a;
        (void)*(volatile char *)(a + 2 * pg);
        if (host_map(a + pg, pg, PROT_READ, fl) != MAP_FAILED) {
            long b = syscall(SYS_mremap, a, 3 * pg, 4 * pg, MREMAP_MAYMOVE, NULL);
            if (b != -1) {
                read_gives_anon = 0;
                syscall(SYS_munmap, (void *)b, 4 * pg);
                return;
            }
        }
    }
    syscall(SYS_munmap, a, 3 * pg);
}

void umm__kvma_faulted(struct umm__vma *v, int write)
{
    if (!(v->vflags & UMM__V_SHARED) && (v->obj ? write : write || read_gives_anon))
        prepare(v);
}

int umm__kvma_populate(struct umm__vma *v, uintptr_t start, uintptr_t end, int write)
{
    int err = umm__populate(v, start, end, write);
    /* populate_vma_page_range() faults nothing into PROT_NONE memory. */
    if (start < end && (v->prot & (write ? PROT_WRITE : PROT_READ | PROT_WRITE | PROT_EXEC)))
        umm__kvma_faulted(v, write);
    return err;
}

/* -------------------------------------------------------------- fork */

void umm__kvma_forked(void)
{
    for (size_t i = 0, f, l; i < umm__vma_count(); i = l + 1) {
        kbounds(i, &f, &l);
        uint64_t a = anon_of(at(i));
        anon_all(f, l, a && !(at(i)->vflags & UMM__V_WIPEONFORK) ? fresh() | FORKED : 0);
    }
}
