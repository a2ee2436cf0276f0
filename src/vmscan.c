/*
 * vmscan.c: reclaim, as the kernel's mm/vmscan.c does it: libumm's frames
 * stay under a memory budget whatever the program maps.
 *
 * The budget.  UMM_RAM in the environment (a size: 512M, 2G), else what the
 * process may really use: three quarters of its memory cgroup's limit where
 * there is one (v2 or v1: cgroup_limit), else half of the machine's memory.  Every frame that holds
 * bytes counts (page-cache pages, private copies, zero-filled pages, in
 * every process of a fork family: the count lives in shared memory).
 * Mappings do not count: a mapping of any size costs frame numbers (a
 * virtual space, frame.c), not memory, until its pages are touched.
 *
 * Watermarks.  A fault that would take the frames past the budget first
 * reclaims in the faulting thread (direct reclaim) until there is a batch
 * of room; so frames pass the budget by at most what the faults in flight
 * take at once (a read-ahead window each: umm__window_max, 32 to 512
 * pages, a 64th of the budget).  Ahead of that, the
 * daemon (daemon.c) is woken once a fault's window would take frames past
 * 7/8 of the budget and reclaims on its own thread down to 3/4 (kswapd's
 * low and high marks), running again until it is there or finds nothing
 * to take (umm__reclaim_background).
 *
 * The clock.  Reclaim walks this process's pages in address order, a hand
 * going round (the "clock" of the textbooks, one hand, second chance).  A
 * resident page the hand reaches is made OLD: the host's access to it is
 * taken away (one mprotect for a run), the page stays resident.  A touch
 * of an OLD page is a cheap fault that gives the access back: the page was
 * referenced.  A page still OLD when the hand comes round again was not
 * used for a whole turn, and goes: out of this process's page table, and,
 * if no other entry maps or pins its frame (frame.c keeps that count for
 * every process of the family), out of memory:
 *   - a clean page-cache page is dropped (the file has its bytes);
 *   - a dirty one is written back first, then dropped;
 *   - a private page (a copy, a zero-filled page) and a page of shared
 *     anonymous memory go to the swap file (swap.c) and come back at the
 *     next touch, in every process that shares them.
 * A frame another process still maps stays: that process's own clock (its
 * daemon runs reclaim too) lets go of it in time.  Pages of MAP_LOCKED
 * mappings are never made OLD nor reclaimed.
 *
 * Everything here runs with the address-space lock held, for reading
 * (faults, the daemon) or writing (madvise), and takes entries and frames
 * only with trylock: a page someone is working on is passed over.
 */
#include "umm-int.h"
#include "vg.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define BATCH 256 /* pages of room direct reclaim makes at once, at least */
#define RUN_MAX 64 /* pages the hand takes at once, at most */
/* kswapd's marks, as distances below the budget: a fault's window that
 * would take frames past budget - WAKE wakes the daemon, which reclaims
 * down to budget - BALANCED.  What lies between is memory the page cache
 * does not use: bench-policy measured these marks (7/8, 3/4) holding 0.84
 * of the budget on average; 15/16 and 7/8 held 0.92 and missed 6 % less
 * on a hot set, but left direct reclaim so little room that, under load,
 * frames counted passed the budget by 138 (doc/PERFORMANCE.md, session
 * 12): not taken until that is understood. */
#define WAKE(b) ((b) / 8)
#define BALANCED(b) ((b) / 4)

static uint64_t budget; /* pages */
static _Atomic size_t hand_vma;
static _Atomic uint64_t hand_page;
static _Atomic uint64_t high_water, reclaimed, written, swapped_out, swapped_in;
static _Atomic uint32_t daemon_kicked;
/* Frames in use below which direct reclaim is not tried again: set when a
 * pass found nothing to take (every page pinned, locked, or mapped by
 * another process), so that each fault does not walk every page in vain. */
static _Atomic uint64_t futile_below;
static _Atomic int in_background; /* the daemon's pass is running (umm__reclaim_background) */
static _Atomic size_t obj_hand; /* the page cache's hand: index in the objects' list */
static _Atomic uint64_t obj_hand_page; /* and file page */

/* -------------------------------------------------------------- budget */

/*
 * The process's memory cgroup limit, in bytes (0: none): the lowest limit
 * on the way from its cgroup up to the root of its hierarchy, in both
 * hierarchies a host may have (a hybrid host has both):
 *   - v2: the "0::PATH" line of /proc/self/cgroup, memory.max under
 *     where the cgroup2 file system is mounted (its /proc/self/mountinfo
 *     line; /sys/fs/cgroup if none is listed): a hybrid host has it at
 *     /sys/fs/cgroup/unified, and a container without a cgroup namespace
 *     shows its own cgroup as the mount's root;
 *   - v1: the line whose controllers include "memory" ("4:memory:PATH"),
 *     memory.limit_in_bytes under where that hierarchy is mounted (the
 *     "cgroup" line of /proc/self/mountinfo with the "memory" option; its
 *     root field is the part of PATH the mount hides, in a container).
 * v1 says "no limit" with a huge number, which the caller's minimum with
 * the machine's memory discards.  UMM_SYSROOT (for tests) is put in front
 * of every path read here, so a test can show libumm a made-up /proc and
 * cgroup tree.
 */
static const char *sysroot(void)
{
    const char *r = getenv("UMM_SYSROOT");
    return r ? r : "";
}

/* The lowest positive number in file `name` of dir and its parents, up to
 * (and with) top; 0 if none.  dir is cut up on the way. */
static uint64_t lowest_up(char *dir, size_t top, const char *name)
{
    char path[4400], val[64];
    uint64_t best = 0;
    for (;;) {
        snprintf(path, sizeof path, "%s/%s", dir, name);
        if (umm__slurp(path, val, sizeof val) > 0 && val[0] >= '0' && val[0] <= '9') {
            uint64_t v = strtoull(val, NULL, 10);
            if (v && (!best || v < best))
                best = v;
        }
        char *slash = strrchr(dir, '/');
        if (!slash || (size_t)(slash - dir) < top)
            break;
        *slash = 0;
    }
    return best;
}

/* The cgroup path of this process in the hierarchy whose controller list
 * (second field of /proc/self/cgroup) is ctl exactly ("" for v2) or, for
 * v1, contains it.  Copied to out; 0 if found. */
static int cgroup_path(const char *cgfile, const char *ctl, char *out, size_t n)
{
    for (const char *line = cgfile; line && *line;) {
        const char *nl = strchr(line, '\n'), *end = nl ? nl : line + strlen(line);
        const char *c1 = memchr(line, ':', (size_t)(end - line));
        const char *c2 = c1 ? memchr(c1 + 1, ':', (size_t)(end - c1 - 1)) : NULL;
        if (c2) {
            size_t cl = (size_t)(c2 - c1 - 1), want = strlen(ctl);
            int match = !*ctl ? cl == 0 : 0;
            for (const char *t = c1 + 1; *ctl && t < c2;) { /* a comma-separated list */
                const char *comma = memchr(t, ',', (size_t)(c2 - t));
                const char *te = comma ? comma : c2;
                match |= (size_t)(te - t) == want && memcmp(t, ctl, want) == 0;
                t = te + 1;
            }
            size_t pl = (size_t)(end - c2 - 1);
            if (match && pl < n) {
                memcpy(out, c2 + 1, pl);
                out[pl] = 0;
                return 0;
            }
        }
        line = nl ? nl + 1 : NULL;
    }
    return -1;
}

/* Where the hierarchy is mounted -- v2's (fstype "cgroup2"), or v1's with
 * the memory controller ("cgroup") -- and the root of it that mount shows
 * (fields 5 and 4 of its mountinfo line). */
static int memory_mount(const char *fstype, char *mnt, size_t mn, char *root, size_t rn)
{
    static char buf[16384]; /* under the address-space lock or at start: one at a time */
    char path[4200];
    snprintf(path, sizeof path, "%s/proc/self/mountinfo", sysroot());
    if (umm__slurp(path, buf, sizeof buf) <= 0)
        return -1;
    for (char *line = buf; line && *line;) {
        char *nl = strchr(line, '\n');
        if (nl)
            *nl = 0;
        char key[32];
        snprintf(key, sizeof key, " - %s ", fstype);
        int v2 = strcmp(fstype, "cgroup2") == 0;
        char *dash = strstr(line, key);
        if (dash) {
            /* "ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTS... - cgroup SOURCE SUPEROPTS" */
            char *opts = strrchr(dash, ' ') + 1, *f[5] = { line };
            int k = 1;
            for (char *q = line; k < 5 && (q = strchr(q, ' ')); f[k++] = ++q)
                ;
            int has_memory = v2;
            for (char *t = opts; t && *t;) {
                char *comma = strchr(t, ',');
                size_t len = comma ? (size_t)(comma - t) : strlen(t);
                has_memory |= len == 6 && memcmp(t, "memory", 6) == 0;
                t = comma ? comma + 1 : NULL;
            }
            if (has_memory && k == 5) {
                size_t rl = (size_t)(strchr(f[3], ' ') - f[3]), ml = (size_t)(strchr(f[4], ' ') - f[4]);
                if (rl >= rn || ml >= mn)
                    return -1;
                memcpy(root, f[3], rl);
                root[rl] = 0;
                memcpy(mnt, f[4], ml);
                mnt[ml] = 0;
                return 0;
            }
        }
        line = nl ? nl + 1 : NULL;
    }
    return -1;
}

/* The directory of cgroup cg under hierarchy mounted at mnt showing root
 * there, into dir; returns the length of the mount's part (where the walk
 * up stops).  A container's mount shows its own cgroup as the root: that
 * part of cg is cut. */
static size_t cgroup_dir(char *dir, size_t n, const char *mnt, const char *root, const char *cg)
{
    const char *rel = cg;
    size_t rl = strlen(root);
    if (strcmp(root, "/") != 0 && strncmp(cg, root, rl) == 0 && (cg[rl] == '/' || !cg[rl]))
        rel = cg + rl;
    size_t top = (size_t)snprintf(dir, n, "%s%s", sysroot(), mnt);
    if (strcmp(rel, "/") != 0 && *rel)
        snprintf(dir + top, n - top, "%s", rel);
    return top;
}

static uint64_t cgroup_limit(void)
{
    char buf[4096], cg[1024], dir[4400];
    uint64_t best = 0;
    snprintf(dir, sizeof dir, "%s/proc/self/cgroup", sysroot());
    if (umm__slurp(dir, buf, sizeof buf) <= 0)
        return 0;
    char mnt[1024], root[1024];
    if (cgroup_path(buf, "", cg, sizeof cg) == 0) { /* v2 */
        if (memory_mount("cgroup2", mnt, sizeof mnt, root, sizeof root) != 0) {
            snprintf(mnt, sizeof mnt, "/sys/fs/cgroup");
            snprintf(root, sizeof root, "/");
        }
        size_t top = cgroup_dir(dir, sizeof dir, mnt, root, cg);
        best = lowest_up(dir, top, "memory.max");
    }
    if (cgroup_path(buf, "memory", cg, sizeof cg) == 0 &&
        memory_mount("cgroup", mnt, sizeof mnt, root, sizeof root) == 0) {
        size_t top = cgroup_dir(dir, sizeof dir, mnt, root, cg);
        uint64_t v1 = lowest_up(dir, top, "memory.limit_in_bytes");
        if (v1 && (!best || v1 < best))
            best = v1;
    }
    return best;
}

void umm__vmscan_init(void)
{
    uint64_t bytes = umm__parse_size(getenv("UMM_RAM"), 0);
    if (!bytes) {
        uint64_t cg = cgroup_limit();
        uint64_t phys = (uint64_t)sysconf(_SC_PHYS_PAGES) * (uint64_t)sysconf(_SC_PAGESIZE);
        bytes = phys / 2;
        if (cg && cg / 4 * 3 < bytes)
            bytes = cg / 4 * 3;
    }
    budget = bytes >> UMM_PAGE_SHIFT;
    if (budget < 16)
        budget = 16; /* one chunk, at the least */
    /* Chunks let go are pooled (frame.c) while frames in use and pooled
     * pages stay at the daemon's low mark, where it would bring them. */
    umm__ram_pool_limit(budget - BALANCED(budget));
    umm__vg_racy(&hand_vma, sizeof hand_vma);
    umm__vg_racy(&hand_page, sizeof hand_page);
    umm__vg_racy(&high_water, sizeof high_water);
    umm__vg_racy(&daemon_kicked, sizeof daemon_kicked);
    umm__vg_racy(&futile_below, sizeof futile_below);
    umm__vg_racy(&obj_hand, sizeof obj_hand);
    umm__vg_racy(&obj_hand_page, sizeof obj_hand_page);
}

uint64_t umm__budget(void)
{
    return budget;
}

/* Room for n more frames below the mark that wakes the daemon's reclaim:
 * asynchronous read-ahead (fault.c) reads ahead only there, or under a
 * tight budget it would read pages that reclaim takes before the program
 * comes to them (read twice, test-ra-window under UMM_RAM=4M). */
int umm__reclaim_room(uint64_t n)
{
    return umm__ram_frames_in_use() + umm__ram_pool_pages() + n <= budget - WAKE(budget);
}

/* The largest read-ahead window (fault.c): 2 MiB, as issue 15 asks of a
 * sequential stream (each window one trap, one pread, one populate), but
 * no more than a 64th of the budget, never under 32 pages (128 KiB, the
 * kernel's own default): it is what a faulting thread may take past the
 * budget (umm__reclaim_before), so a small budget keeps small windows. */
uint64_t umm__window_max(void)
{
    uint64_t w = budget / 64;
    return w < 32 ? 32 : w > 512 ? 512 : w;
}

/* ------------------------------------------------------------- evicting */

/* Which store a page's frame goes to. */
enum kind { K_FILE, K_SWAP };

static enum kind kind_of(const struct umm__vma *v, uint32_t f)
{
    return (f & UMM__P_ANON) || !v->obj || v->obj->anon ? K_SWAP : K_FILE;
}

/*
 * Give the memory of frames [pfn, pfn+n) back: file pages [fpage, ..) of
 * obj for K_FILE (written back first if dirty), else to the swap file.
 * They are locked, up to date (or live private frames), and nothing maps
 * or pins them.  Returns how many went.
 */
static uint64_t evict_frames(struct umm__object *obj, uint64_t fpage, umm__pfn pfn, uint64_t n, enum kind k,
                             int discard)
{
    if (k == K_FILE) {
        uint64_t dirty = 0;
        for (uint64_t i = 0; i < n; i++)
            dirty += (atomic_load(&umm__frame(pfn + (umm__pfn)i)->flags) & UMM__F_DIRTY) != 0;
        if (umm__object_evict(obj, fpage, n, discard) != 0)
            return 0; /* an I/O error: they stay, dirty */
        atomic_fetch_add(&written, dirty);
        return n;
    }
    if (umm__swap_out(pfn, n) != 0)
        return 0;
    for (uint64_t i = 0; i < n; i++) {
        struct umm__frame *fr = umm__frame(pfn + (umm__pfn)i);
        /* A page of shared anonymous memory is up to date no more: its
         * next touch swaps it in (fault.c). */
        atomic_fetch_and(&fr->flags, ~UMM__F_UPTODATE);
        atomic_fetch_or(&fr->flags, UMM__F_SWAPPED);
    }
    umm__ram_discard(pfn, n);
    umm__ram_count(-(int64_t)n);
    atomic_fetch_add(&swapped_out, n);
    return n;
}

/* Can the hand do anything with this entry? */
static int candidate(uint32_t f)
{
    return (f & (UMM__P_PRESENT | UMM__P_SIGBUS | UMM__P_GUARD)) == UMM__P_PRESENT;
}

/* May reclaim take frame pfn's bytes now?  Locks it if so.  A private
 * frame is live whatever its flags; a page-cache frame must be up to date
 * (a frame being filled is locked anyway). */
static int frame_takeable(umm__pfn pfn, enum kind k)
{
    if (atomic_load(&umm__frame(pfn)->mapped) != 0 || !umm__frame_trylock(pfn))
        return 0;
    uint32_t fl = atomic_load(&umm__frame(pfn)->flags);
    if (atomic_load(&umm__frame(pfn)->mapped) == 0 && !(fl & UMM__F_SWAPPED) &&
        (k == K_SWAP || (fl & UMM__F_UPTODATE)))
        return 1;
    umm__frame_unlock(pfn);
    return 0;
}

/*
 * Frames a run of the hand gave up, not yet given back to the host: their
 * memory goes in one punch of the memfd, which is a TLB shoot-down on
 * every CPU the process runs on.  A random pass leaves resident pages a
 * few apart, each its own run, so the runs of one hand_run are joined over
 * the frames between them when those hold nothing: frames of the same
 * extent of the object (page-cache frames: a private frame in between
 * might hold a page that could not be swapped), not up to date, not
 * dirty, under write-back or mapped by nobody -- locked meanwhile, so that
 * no fill starts in them before the punch.  Every frame of [from, to) is
 * locked until the punch.
 */
struct punch {
    umm__pfn from, to;
    const struct umm__object *obj;
    int ext; /* the extent of obj that holds them */
};

static void punch_flush(struct punch *pu)
{
    if (pu->to == pu->from)
        return;
    umm__ram_discard(pu->from, pu->to - pu->from);
    for (umm__pfn f = pu->from; f < pu->to; f++)
        umm__frame_unlock(f);
    pu->from = pu->to = 0;
    pu->obj = NULL;
}

/* May frame pfn go in the punch with the runs around it?  Locked if so. */
static int frame_empty(umm__pfn pfn)
{
    const uint32_t busy = UMM__F_UPTODATE | UMM__F_DIRTY | UMM__F_WRITEBACK | UMM__F_SWAPPED;
    if ((atomic_load(&umm__frame(pfn)->flags) & busy) || atomic_load(&umm__frame(pfn)->mapped) ||
        !umm__frame_trylock(pfn))
        return 0;
    if (!(atomic_load(&umm__frame(pfn)->flags) & busy) && atomic_load(&umm__frame(pfn)->mapped) == 0)
        return 1;
    umm__frame_unlock(pfn);
    return 0;
}

/* The run of obj's frames [pfn, pfn + n) (file page fpage on), locked and
 * given up, joins the punch if the frames between are empty (at most a
 * run's length of them), or the punch goes first. */
static void punch_add(struct punch *pu, const struct umm__object *obj, uint64_t fpage, umm__pfn pfn, uint64_t n)
{
    int ext = umm__extent_index(obj, fpage);
    if (pu->to != pu->from && pu->obj == obj && pu->ext == ext && pfn >= pu->to && pfn - pu->to <= RUN_MAX) {
        umm__pfn f = pu->to;
        while (f < pfn && frame_empty(f))
            f++;
        if (f == pfn) {
            pu->to = pfn + (umm__pfn)n;
            return;
        }
        for (umm__pfn g = pu->to; g < f; g++) /* not joined: let them go */
            umm__frame_unlock(g);
    }
    punch_flush(pu);
    pu->from = pfn;
    pu->to = pfn + (umm__pfn)n;
    pu->obj = obj;
    pu->ext = ext;
}

/*
 * Pages [p, q) of v, entries held, were just taken out of this process's
 * page table (flags[] are what they were).  Give their frames' memory back
 * where nobody else maps them, in runs contiguous in RAM (one write each),
 * the file pages' in as few punches as the frames between allow.  Returns
 * how many frames went.
 */
static uint64_t evict_run(struct umm__vma *v, uint64_t p, uint64_t q, const uint32_t *flags, const umm__pfn *pfns)
{
    uint64_t gone = 0;
    struct punch pu = { 0, 0, NULL, -1 };
    for (uint64_t i = p; i < q;) {
        enum kind k = kind_of(v, flags[i - p]);
        if (!candidate(flags[i - p]) || !frame_takeable(pfns[i - p], k)) { /* bridged over, or held */
            i++;
            continue;
        }
        uint64_t j = i + 1;
        while (j < q && candidate(flags[j - p]) && kind_of(v, flags[j - p]) == k &&
               pfns[j - p] == pfns[i - p] + (umm__pfn)(j - i) && frame_takeable(pfns[j - p], k))
            j++;
        /* Zero-copy pages are the host's page cache: out of this page
         * table they still hold the host's (PROT_NONE) entries; zapped
         * here, so that the host reclaims them as pages nobody maps, as it
         * would a kernel mapping's it had unmapped.  Not dropped from its
         * cache: another reader may want them, and the host's reclaim
         * (its memory cgroup's, if any) decides. */
        if (k == K_FILE && umm__frame_host(pfns[i - p]))
            madvise((void *)(v->start + (i << UMM_PAGE_SHIFT)), (j - i) << UMM_PAGE_SHIFT, MADV_DONTNEED);
        uint64_t went = evict_frames(v->obj, v->obj ? v->fpage + i : 0, pfns[i - p], j - i, k, k != K_FILE);
        gone += went;
        if (k == K_FILE && went) {
            punch_add(&pu, v->obj, v->fpage + i, pfns[i - p], j - i); /* their locks go with the punch */
        } else {
            for (uint64_t r = i; r < j; r++)
                umm__frame_unlock(pfns[r - p]);
        }
        i = j;
    }
    punch_flush(&pu);
    return gone;
}

enum mode { M_CLOCK, M_COLD, M_PAGEOUT };

/* Set and clear bits of the run's resident pages in [p, q) (flags[] as
 * they were; pages bridged over keep theirs), a stretch of them at once. */
static void mark(struct umm__vma *v, uint64_t p, uint64_t q, const uint32_t *flags, uint32_t set, uint32_t clear)
{
    for (uint64_t i = p; i < q;) {
        if (!candidate(flags[i - p])) {
            i++;
            continue;
        }
        uint64_t j = i + 1;
        while (j < q && candidate(flags[j - p]))
            j++;
        umm__mc_update(v, i, j, set, clear, UMM__MC_NOLIMIT);
        i = j;
    }
}

/* A zero-copy page (the host's page cache of the file) holds none of the
 * budget: the clock passes it by, and the host reclaims it as it would a
 * kernel mapping's.  MADV_COLD and MADV_PAGEOUT still take it. */
static int budget_free(const struct umm__vma *v, uint32_t f, umm__pfn pfn, enum mode mode)
{
    return mode == M_CLOCK && v->obj && !(f & UMM__P_ANON) && umm__frame_host(pfn);
}

/*
 * The hand at page p of v: take the run of resident pages from p that are
 * all OLD or all not (as far as their entries can be taken without
 * waiting).  Not OLD: make them OLD (take the host's access away).  OLD:
 * out of the page table, then out of memory where nobody else maps them.
 * M_PAGEOUT takes pages whether OLD or not (MADV_PAGEOUT); M_COLD only
 * makes them OLD (MADV_COLD).  Returns the page to look at next; *freed
 * counts frames given back.
 */
static uint64_t hand_run(struct umm__vma *v, uint64_t p, uint64_t end, enum mode mode, uint64_t *freed)
{
    struct umm__pte *pte = umm__vma_pte(v, p);
    uint32_t f0 = atomic_load(&pte->flags);
    if (!candidate(f0) || !umm__bittrylock(&pte->flags))
        return p + 1;
    f0 = atomic_load(&pte->flags);
    if (!candidate(f0) || budget_free(v, f0, pte->pfn, mode)) {
        umm__bitunlock(&pte->flags, 0);
        return p + 1;
    }
    int pageout = mode == M_PAGEOUT, old = pageout || (f0 & UMM__P_OLD);
    if (old && mode == M_COLD) {
        umm__bitunlock(&pte->flags, 0);
        return p + 1;
    }
    uint32_t flags[RUN_MAX];
    umm__pfn pfns[RUN_MAX];
    flags[0] = f0;
    pfns[0] = pte->pfn;
    /*
     * The run goes on over pages that are not resident (the host maps them
     * PROT_NONE already: bridged, their entries held but unchanged), so
     * that pages scattered by random access go in one mprotect -- each
     * one a TLB shoot-down on every CPU the process runs on (2.3 mprotect
     * calls a page in a random pass over a file 4x the budget, 0.9 of them
     * the hand's).  Not into a page of entries the run has not reached
     * yet with a gap pending: reading it would cost a page (kmem.c).
     */
    uint64_t q = p + 1, last = p + 1, taken = 1;
    while (q < end && q - p < RUN_MAX) {
        if (last < q && umm__pte_page_start(v, q))
            break;
        struct umm__pte *e = umm__vma_pte(v, q);
        uint32_t g = atomic_load(&e->flags);
        int gap = !(g & (UMM__P_PRESENT | UMM__P_SIGBUS | UMM__P_GUARD));
        if ((!gap && (!candidate(g) || (!pageout && (g & UMM__P_OLD) != (f0 & UMM__P_OLD)))) ||
            !umm__bittrylock(&e->flags))
            break;
        g = atomic_load(&e->flags);
        int still = gap ? !(g & (UMM__P_PRESENT | UMM__P_SIGBUS | UMM__P_GUARD))
                        : candidate(g) && (pageout || (g & UMM__P_OLD) == (f0 & UMM__P_OLD)) &&
                              !budget_free(v, g, e->pfn, mode);
        if (!still) {
            umm__bitunlock(&e->flags, 0);
            break;
        }
        flags[q - p] = g;
        pfns[q - p] = e->pfn;
        q++;
        if (!gap) {
            last = q;
            taken++;
        }
    }
    for (uint64_t i = last; i < q; i++) /* a gap at the end is not the run's */
        umm__bitunlock(&umm__vma_pte(v, i)->flags, 0);
    q = last;
    void *addr = (void *)(v->start + (p << UMM_PAGE_SHIFT));
    size_t len = (q - p) << UMM_PAGE_SHIFT;
    if (!old) {
        mark(v, p, q, flags, UMM__P_OLD, 0);
        if (mprotect(addr, len, PROT_NONE) != 0) /* the host's map count: leave them */
            mark(v, p, q, flags, 0, UMM__P_OLD);
    } else {
        /* The private pages keep ANON and their frame: that is where
         * their bytes are, in memory or in the swap file. */
        mark(v, p, q, flags, 0, UMM__P_PRESENT | UMM__P_WRITE | UMM__P_OLD);
        /* Pages the hand made OLD have no host access already (a touch
         * would have taken OLD away, under the entry's lock): no call. */
        if ((pageout || !(f0 & UMM__P_OLD)) && mprotect(addr, len, PROT_NONE) != 0) {
            for (uint64_t i = p; i < q; i++) /* put them back as they were */
                if (candidate(flags[i - p]))
                    umm__mc_update(v, i, i + 1, flags[i - p] & (UMM__P_PRESENT | UMM__P_WRITE | UMM__P_OLD), 0,
                                   UMM__MC_NOLIMIT);
        } else {
            atomic_fetch_sub(&umm__mm.resident, taken);
            *freed += evict_run(v, p, q, flags, pfns);
            umm__trace_reclaim((uintptr_t)addr, v->obj ? v->fpage + p : 0, q - p);
        }
    }
    for (uint64_t i = p; i < q; i++)
        umm__bitunlock(&umm__vma_pte(v, i)->flags, 0);
    return q;
}

/*
 * The first page from p (below end) whose entry may be in use.  A page
 * table costs memory only for the entries written (kmem.c): the host
 * gives a page of entries no memory until one is written, so one that is
 * not resident (mincore) holds no present entry, and reading it would make
 * the host map it -- a hand going over a 4 TiB MAP_NORESERVE mapping read
 * its 8 GiB of entries and took that much memory, for a turn of minutes.
 * So the hands skip such pages of entries unread.  (An entry page the host
 * swapped out is skipped too: its pages are reclaimed when it comes back.)
 * Looks at most 512 pages of entries at a time; returns the page to go on
 * from, which may hold no candidate, and in *known the end of the run of
 * pages whose entries are resident from there (no need to ask again).
 */
static uint64_t skip_unused(const struct umm__vma *v, uint64_t p, uint64_t end, uint64_t *known)
{
    const uintptr_t per = UMM_PAGE_SIZE, sz = sizeof(struct umm__pte);
    unsigned char vec[512];
    uintptr_t a = (uintptr_t)umm__vma_pte(v, p), d0 = a & ~(per - 1);
    uintptr_t d1 = ((uintptr_t)umm__vma_pte(v, end - 1) + sz + per - 1) & ~(per - 1);
    if (d1 - d0 > sizeof vec * per)
        d1 = d0 + sizeof vec * per;
    size_t np = (d1 - d0) / per, i = 0, j;
    /* the page of entries that starts at or after entry p... */
#define PAGE_AT(k) (d0 + (k) * per <= a ? p : p + (d0 + (k) * per - a + sz - 1) / sz)
    if (mincore((void *)d0, d1 - d0, vec) != 0) {
        *known = p + 1; /* cannot tell: read this one */
        return p;
    }
    while (i < np && !(vec[i] & 1))
        i++;
    for (j = i; j < np && (vec[j] & 1); j++)
        ;
    uint64_t q = i < np ? PAGE_AT(i) : PAGE_AT(np);
    *known = PAGE_AT(j); /* resident entries up to there */
#undef PAGE_AT
    if (q > end)
        q = end;
    if (*known > end)
        *known = end;
    return q;
}

/* ------------------------------------------------ the page cache's hand */

/*
 * Page-cache frames that no entry maps (the source of a copy-on-write
 * copy, read-ahead past what was installed, pages the map-count budget or
 * MADV_DONTNEED released, pages another process unmapped) are found
 * through the objects, not through a page table.  They are the cheapest to
 * take (no mapping to change) and go first, as the kernel's inactive file
 * list does.  A second hand walks this process's objects' extents; the
 * descriptors of frames never used are never touched (mincore says which
 * pages of the descriptor array hold anything), so a huge sparse mapping
 * costs only what it has cached.
 */

/* Frames [base, base+n) of extent x of obj: take what nobody maps. */
static uint64_t cache_scan(struct umm__object *obj, const struct umm__extent *x, uint64_t from, uint64_t n,
                           uint64_t *freed)
{
    umm__pfn base = x->base + (umm__pfn)from;
    if (umm__frame_host(x->base))
        return n; /* zero-copy: the host's pages, which hold none of the budget */
    const size_t per = UMM_PAGE_SIZE; /* bytes of descriptors per page */
    uintptr_t d0 = (uintptr_t)umm__frame(base) & ~(uintptr_t)(per - 1);
    uintptr_t d1 = ((uintptr_t)umm__frame(base + (umm__pfn)n - 1) + sizeof(struct umm__frame) + per - 1) &
                   ~(uintptr_t)(per - 1);
    unsigned char vec[64];
    if ((d1 - d0) / per > sizeof vec) { /* one window at a time */
        d1 = d0 + sizeof vec * per;
        n = ((d1 - (uintptr_t)umm__frame(base)) / sizeof(struct umm__frame));
    }
    if (mincore((void *)d0, d1 - d0, vec) != 0)
        memset(vec, 1, sizeof vec);
    enum kind k = obj->anon ? K_SWAP : K_FILE;
    for (uint64_t i = 0; i < n;) {
        uintptr_t d = (uintptr_t)umm__frame(base + (umm__pfn)i);
        if (!(vec[(d - d0) / per] & 1)) { /* never used: nothing cached */
            i++;
            continue;
        }
        uint32_t fl = atomic_load_explicit(&umm__frame(base + (umm__pfn)i)->flags, memory_order_relaxed);
        if (!(fl & UMM__F_UPTODATE) || !frame_takeable(base + (umm__pfn)i, k)) {
            i++;
            continue;
        }
        uint64_t j = i + 1;
        while (j < n && (atomic_load(&umm__frame(base + (umm__pfn)j)->flags) & UMM__F_UPTODATE) &&
               frame_takeable(base + (umm__pfn)j, k))
            j++;
        uint64_t got = evict_frames(obj, x->fpage + from + i, base + (umm__pfn)i, j - i, k, 1);
        *freed += got;
        umm__trace_reclaim(0, x->fpage + from + i, got);
        for (uint64_t r = i; r < j; r++)
            umm__frame_unlock(base + (umm__pfn)r);
        i = j;
    }
    return n;
}

/* Walk the objects' frames until frames are at most target or every
 * object was seen once. */
static void shrink_cache(uint64_t target, uint64_t *freed)
{
    size_t nobj = 0;
    for (struct umm__object *o = umm__mm.objects; o; o = o->next)
        nobj++;
    if (nobj == 0)
        return;
    size_t oi = atomic_load_explicit(&obj_hand, memory_order_relaxed) % nobj;
    uint64_t fp = atomic_load_explicit(&obj_hand_page, memory_order_relaxed);
    for (size_t seen = 0; seen <= nobj && umm__ram_frames_in_use() > target;) {
        struct umm__object *o = umm__mm.objects;
        for (size_t k = 0; k < oi; k++)
            o = o->next;
        for (size_t e = 0; e < o->nex && umm__ram_frames_in_use() > target;) {
            struct umm__extent *x = &o->ext[e];
            if (fp >= x->fpage + x->npages) {
                e++;
                continue;
            }
            uint64_t from = fp > x->fpage ? fp - x->fpage : 0;
            fp = x->fpage + from + cache_scan(o, x, from, x->npages - from, freed);
        }
        if (umm__ram_frames_in_use() > target) {
            oi = (oi + 1) % nobj; /* the next object, from its start */
            fp = 0;
            seen++;
        }
    }
    atomic_store_explicit(&obj_hand, oi, memory_order_relaxed);
    atomic_store_explicit(&obj_hand_page, fp, memory_order_relaxed);
}

/* Go round with the hands until frames are at most target: unmapped
 * page-cache frames first, then the page tables', where the hand goes
 * round at most twice (once to make pages OLD, once to take them). */
static uint64_t shrink(uint64_t target)
{
    size_t nv = umm__mm.nvmas, i = atomic_load_explicit(&hand_vma, memory_order_relaxed);
    uint64_t p = atomic_load_explicit(&hand_page, memory_order_relaxed), seen = 0, look = 0, freed = 0;
    uint64_t known = 0; /* entries of this VMA known resident below this page, from p */
    shrink_cache(target, &freed);
    if (nv == 0 || umm__ram_frames_in_use() <= target) {
        atomic_fetch_add(&reclaimed, freed);
        return freed;
    }
    for (size_t k = 0; k < nv; k++)
        look += umm__vma_pages(umm__mm.vmas[k]) + 1;
    look *= 2;
    while (umm__ram_frames_in_use() > target && seen < look) {
        if (i >= nv) {
            i = 0;
            p = 0;
            known = 0;
        }
        struct umm__vma *v = umm__mm.vmas[i];
        if (p >= umm__vma_pages(v) || (v->vflags & UMM__V_LOCKED) || !v->ptes) {
            seen += (p < umm__vma_pages(v) ? umm__vma_pages(v) - p : 0) + 1;
            i++;
            p = 0;
            known = 0;
            continue;
        }
        uint64_t q = p < known ? p : skip_unused(v, p, umm__vma_pages(v), &known);
        if (q == p)
            q = hand_run(v, p, umm__vma_pages(v), M_CLOCK, &freed);
        seen += q - p;
        p = q;
    }
    atomic_store_explicit(&hand_vma, i, memory_order_relaxed);
    atomic_store_explicit(&hand_page, p, memory_order_relaxed);
    atomic_fetch_add(&reclaimed, freed);
    return freed;
}

static void note_high_water(uint64_t in_use)
{
    uint64_t hw = atomic_load_explicit(&high_water, memory_order_relaxed);
    while (in_use > hw &&
           !atomic_compare_exchange_weak_explicit(&high_water, &hw, in_use, memory_order_relaxed, memory_order_relaxed))
        ;
}


void umm__reclaim_before(uint64_t n)
{
    uint64_t in_use = umm__ram_frames_in_use(), pool = umm__ram_pool_pages();
    /* Pooled pages are memory the host counts, and the cheapest to give
     * back: punched before the daemon is woken or a page is taken. */
    if (pool && in_use + pool + n > budget - WAKE(budget))
        umm__ram_pool_drain(in_use + pool + n - (budget - WAKE(budget)));
    note_high_water(in_use);
    if (in_use + n > budget - WAKE(budget) && !atomic_exchange(&daemon_kicked, 1))
        umm__ring(UMM__BELL_RECLAIM);
    if (in_use + n <= budget || in_use < atomic_load_explicit(&futile_below, memory_order_relaxed))
        return;
    uint64_t room = budget / 16 > BATCH ? budget / 16 : BATCH;
    uint64_t freed = shrink(budget > n + room ? budget - n - room : 0);
    uint64_t after = umm__ram_frames_in_use();
    /* Nothing came free: over the budget it is, until BATCH more frames
     * (or a page another process lets go) make another pass worth it.  A
     * pass that freed something is no reason to stop trying, even if
     * other threads' faults (or a daemon's run holding the entries it
     * wanted) left frames over the budget: two threads passed it by 256
     * that way.  Nor is a pass that found nothing while the daemon runs
     * (it holds the entries its own pass is taking): the budget was passed
     * by 195 that way once the daemon woke closer to it. */
    int futile = freed == 0 && after + n > budget && !atomic_load_explicit(&in_background, memory_order_relaxed);
    atomic_store_explicit(&futile_below, futile ? after + BATCH : 0, memory_order_relaxed);
}

/*
 * The daemon's run (kswapd).  It was woken because a fault's window would
 * take frames past 7/8: it brings them to 3/4 whether or not they are past
 * 7/8 by the time it runs (a wake-up just below 7/8 that did nothing left
 * frames there for good: nothing else wakes it).  A run can end above 3/4
 * when the program touched the pages the hand made OLD before the hand
 * came round again; then it asks to be run again a little later (returns
 * 1), as kswapd keeps going until its zone is balanced -- but not for
 * ever: after AGAIN_IDLE runs in a row that freed nothing (every page
 * pinned, locked, or in use at each turn) it waits for the next wake-up.
 */
#define AGAIN_IDLE 4
static _Atomic unsigned idle_runs;

int umm__reclaim_background(void)
{
    uint64_t low = budget - BALANCED(budget);
    atomic_store(&daemon_kicked, 0);
    /* The pool first (nothing is lost), and only what passes 3/4: a run
     * woken during a read that has since been unmapped would otherwise
     * punch the pool its munmap just filled. */
    uint64_t held = umm__ram_frames_in_use() + umm__ram_pool_pages();
    if (held > low)
        umm__ram_pool_drain(held - low);
    if (umm__ram_frames_in_use() <= low) {
        atomic_store(&idle_runs, 0);
        return 0;
    }
    uint64_t before = atomic_load(&reclaimed);
    atomic_store(&in_background, 1);
    shrink(low);
    atomic_store(&in_background, 0);
    if (umm__ram_frames_in_use() <= low || atomic_load(&reclaimed) != before) {
        atomic_store(&idle_runs, 0);
        return umm__ram_frames_in_use() > low;
    }
    if (atomic_fetch_add(&idle_runs, 1) + 1 >= AGAIN_IDLE) {
        atomic_store(&idle_runs, 0);
        return 0;
    }
    return 1;
}

void umm__reclaim_range(struct umm__vma *v, uint64_t from, uint64_t to, int pageout)
{
    uint64_t freed = 0;
    if (v->vflags & UMM__V_LOCKED)
        return;
    for (uint64_t p = from, known = 0; p < to;) {
        uint64_t q = p < known ? p : skip_unused(v, p, to, &known);
        p = q > p ? q : hand_run(v, p, to, pageout ? M_PAGEOUT : M_COLD, &freed);
    }
    atomic_fetch_add(&reclaimed, freed);
}

void umm__reclaim_note_swapin(void)
{
    atomic_fetch_add(&swapped_in, 1);
}

void umm__reclaim_stats(struct umm__reclaim_stats *s)
{
    note_high_water(umm__ram_frames_in_use());
    s->budget = budget;
    s->high_water = atomic_load(&high_water);
    s->reclaimed = atomic_load(&reclaimed);
    s->written = atomic_load(&written);
    s->swapped_out = atomic_load(&swapped_out);
    s->swapped_in = atomic_load(&swapped_in);
    s->swap_used = umm__swap_used();
}

/* ------------------------------------------------- the host's map count */

/*
 * The host's map count (mapcount.c) is the other budget reclaim keeps:
 * near it, page-cache pages are taken out of host mappings elsewhere,
 * their frames staying in the page cache (the next touch is a cheap fault
 * that reads nothing), down to a little below the budget so that not every
 * fault comes here.  The releasing itself is mapcount.c's, which walks its
 * own clock over the page tables; the host refusing a mapping outright
 * (ENOMEM: the program's own mappings count too) is met there, inside the
 * host call (umm__mc_squeeze).  Returns 1 if the count is below the budget.
 */
int umm__reclaim_host_maps(void)
{
    uint64_t b = umm__mc_budget();
    umm__mc_release(b - b / 32 - (b > 2 ? 2 : 0));
    return umm__mc_count() < b;
}

/* The same after a call that may have raised the count (mmap, mprotect). */
void umm__reclaim_host_maps_over(void)
{
    if (umm__mc_count() > umm__mc_budget())
        umm__reclaim_host_maps();
}
