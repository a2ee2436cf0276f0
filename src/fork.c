/*
 * fork.c: fork() through copy-on-write bookkeeping.
 *
 * libumm's frames live in a memfd that the host maps MAP_SHARED, so after
 * a plain fork the host would let parent and child write the same private
 * page.  As the xv6 and JOS copy-on-write labs do, libumm keeps the kernel's
 * promise itself, from pthread_atfork handlers (umm_fork() is fork() plus a
 * clean ENOMEM):
 *
 *  prepare (parent, before the fork; every other thread is out of libumm):
 *    - the daemon's thread parks (daemon.c) and the address-space lock is
 *      taken for writing, so the child inherits no half-made change;
 *    - every resident private frame gets one more reference (the child's
 *      page table will use it too) and loses write permission (the map
 *      count is counted again afterwards, not weighed here): the first
 *      write in either process traps to fault_cow, which copies the frame
 *      while others hold it, or takes it over once it is the last;
 *    - every page-cache extent is pinned once more (the child's objects
 *      hold it), and every page-cache frame the host may write gets one
 *      more writer (the child's entry writes it too: pagecache.c);
 *    - each private range gets two fresh ones reserved, one per side.
 *  parent and child (after):
 *    - each side moves its private mappings to its own fresh range, so a
 *      copy made after the fork never lands on a slot the other side uses;
 *      the old range lives on while any frame in it does (frame.c counts
 *      them per chunk); pages not resident are mapped to the new slots;
 *    - the host map count is counted again, the lock let go, the daemon
 *      let run again (in the child a new thread, on a loop rebuilt by
 *      uv_loop_fork).
 *
 * Shared mappings need nothing: the host keeps MAP_SHARED mappings shared,
 * and the page cache's frames and their state (UPTODATE, DIRTY) live in
 * memory every process of the family shares, so a page first touched
 * after the fork by either side is read once and seen by both.
 *
 * When a process of the family exits normally, it lets go of everything it
 * holds (mman.c's last destructor), so the last one out leaves libumm's RAM as it found
 * it.  A process killed by SIGKILL, or one that calls exec, cannot: what
 * it held stays allocated until the whole family has gone (README).
 */
#include "umm-int.h"
#include "vg.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static sigset_t saved_mask; /* the forking thread's, restored on both sides */
static int prepared;

/* Give every private range two fresh ones, the parent's and the child's,
 * unless it has them already.  0, or -1 (libumm's RAM is full). */
static int reserve_ranges(void)
{
    for (size_t i = 0; i < umm__vma_count(); i++) {
        struct umm__anon *a = umm__vma_at(i)->anon;
        if (!a || a->fork_resv)
            continue;
        if (umm__ram_alloc(a->npages, &a->fork_base[0]) != 0)
            return -1;
        if (umm__ram_alloc(a->npages, &a->fork_base[1]) != 0) {
            umm__ram_unpin(a->fork_base[0], a->npages, 0);
            return -1;
        }
        a->fork_resv = 1;
    }
    return 0;
}

/* The end of a run [p - *run, p) of writable private entries: read-only
 * now, for the child and the parent to copy on write.  The map count is
 * counted again on both sides (rehome). */
static void end_run(struct umm__vma *v, uint64_t p, uint64_t *run)
{
    if (!*run)
        return;
    umm__mc_write_protect_forking(v, p - *run, p);
    umm__vma_reprotect(v, p - *run, p);
    *run = 0;
}

/* The child will use what v's entries use: the frames they map (reclaim
 * leaves them be), the page-cache frames they let the host write, and
 * one more reference on each private frame, whose writable entries become
 * read-only.  Entries never written are skipped unread (kmem.c). */
static void share_vma(struct umm__vma *v)
{
    uint64_t n = umm__vma_pages(v), run = 0;
    int shared = (v->vflags & UMM__V_SHARED) != 0;
    struct umm__kscan ks;
    umm__kscan_begin(&ks, n * sizeof(struct umm__pte));
    for (uint64_t p = 0; p < n; p++) {
        if (p == 0 || umm__pte_page_start(v, p)) {
            uint64_t q = umm__pte_next(v, p, n, &ks);
            if (q > p) {
                end_run(v, p, &run);
                p = q - 1;
                continue;
            }
        }
        const struct umm__pte *pte = umm__vma_pte(v, p);
        uint32_t f = atomic_load_explicit(&pte->flags, memory_order_relaxed);
        if ((f & (UMM__P_PRESENT | UMM__P_SIGBUS)) == UMM__P_PRESENT)
            atomic_fetch_add_explicit(&umm__frame(pte->pfn)->mapped, 1, memory_order_relaxed);
        if (shared) {
            if (umm__pte_writes_cache(v, f))
                atomic_fetch_add_explicit(&umm__frame(pte->pfn)->ref, 1, memory_order_relaxed);
            continue;
        }
        if (f & UMM__P_ANON)
            atomic_fetch_add_explicit(&umm__frame(pte->pfn)->ref, 1, memory_order_relaxed);
        if (f & UMM__P_WRITE) {
            run++;
            continue;
        }
        end_run(v, p, &run);
    }
    end_run(v, n, &run);
    umm__kscan_end(&ks);
}

static void prepare(void)
{
    if (umm__ram.sh == NULL)
        return; /* libumm never started: nothing to do */
    umm__daemon_pause();
    umm__enter(&saved_mask);
    if (reserve_ranges() != 0) {
        static const char msg[] = "libumm: fork: no room left in libumm's frame space for the copies "
                                  "(UMM_FRAME_SPACE); use umm_fork() to get ENOMEM instead\n";
        (void)!umm__sys_write(2, msg, sizeof msg - 1);
        abort();
    }
    for (size_t i = 0; i < umm__vma_count(); i++)
        share_vma(umm__vma_at(i));
    for (struct umm__object *obj = umm__mm.objects; obj; obj = obj->next)
        for (size_t i = 0; i < obj->nex; i++)
            umm__ram_pin(obj->ext[i].base, obj->ext[i].npages);
    umm__mm.forked = 1;
    prepared = 1;
}

/*
 * Move each private mapping to this side's fresh range (side 0: the
 * parent, which also lets go of the old range; side 1: the child, whose
 * copy of the old range was never pinned), and map the pages not resident
 * to their new slots.  Resident pages keep their frames until written.
 */
static void rehome(int side)
{
    for (size_t i = 0; i < umm__vma_count(); i++) {
        struct umm__anon *a = umm__vma_at(i)->anon;
        if (!a || !a->fork_resv)
            continue;
        umm__pfn old = a->base;
        a->base = a->fork_base[side];
        a->fork_resv = 0;
        if (side == 0)
            umm__ram_unpin(old, a->npages, 0);
        /* The other side's reservation is the other side's to hold. */
    }
    /* The child, as the kernel's: zeros in MADV_WIPEONFORK mappings.  Their
     * pages were shared like all others, so the child lets go of them as
     * MADV_DONTNEED would.  Nor is anything locked in the child (dup_mmap
     * clears VM_LOCKED).  MADV_DONTFORK mappings leave the child as munmap
     * would, right after this (mman.c's fork handler). */
    for (size_t i = 0; side == 1 && i < umm__vma_count(); i++) {
        struct umm__vma *v = umm__vma_at(i);
        v->vflags &= ~UMM__V_LOCKED;
        if ((v->vflags & UMM__V_WIPEONFORK) && !(v->vflags & UMM__V_DONTFORK))
            umm__vma_release_pages(v, 0, umm__vma_pages(v));
    }
    if (side == 1)
        umm__kvma_forked(); /* anon_vma_fork() */
    for (size_t i = 0; i < umm__vma_count(); i++) {
        struct umm__vma *v = umm__vma_at(i);
        if (v->obj)
            continue; /* private file pages not resident show the page cache */
        uint64_t n = umm__vma_pages(v), run = 0;
        struct umm__kscan ks;
        umm__kscan_begin(&ks, n * sizeof(struct umm__pte));
        for (uint64_t p = 0; p <= n; p++) {
            if (p < n && (p == 0 || umm__pte_page_start(v, p))) { /* never written: not present */
                uint64_t q = umm__pte_next(v, p, n, &ks);
                if (q > p) {
                    run += q - p;
                    p = q - 1;
                    continue;
                }
            }
            /* A private page reclaim took out keeps its frame (ANON):
             * the host maps that one there already. */
            if (p < n && !(atomic_load(&umm__vma_pte(v, p)->flags) & (UMM__P_PRESENT | UMM__P_ANON))) {
                run++;
                continue;
            }
            if (run)
                umm__vma_host_map(v, v->start + ((p - run) << UMM_PAGE_SHIFT), v->start + (p << UMM_PAGE_SHIFT));
            run = 0;
        }
        umm__kscan_end(&ks);
    }
    umm__mc_recount();
}

static void parent(void)
{
    if (!prepared)
        return;
    prepared = 0;
    rehome(0);
    umm__leave(&saved_mask);
    umm__daemon_resume(0);
}

static void child(void)
{
    if (!prepared)
        return;
    prepared = 0;
    /* The child's only thread holds the lock it inherited, under a thread
     * id the lock no longer knows: start it afresh. */
    pthread_rwlock_t fresh = PTHREAD_RWLOCK_INITIALIZER;
    /* helgrind and drd saw this thread take it for writing (prepare) and
     * follow the thread into the child: under Valgrind it also lets the
     * lock go, or they see the next rdlock granted on a write-held lock
     * (drd asserts), and they forget the lock's memory, which the
     * assignment writes.  glibc takes that unlock, under a thread id that
     * is not the writer's, for a reader's; the assignment undoes it. */
    if (umm__vg_running()) {
        pthread_rwlock_unlock(&umm__mm.lock);
        umm__vg_forget(&umm__mm.lock, sizeof umm__mm.lock);
    }
    umm__mm.lock = fresh;
    umm__mm.pid = getpid();
    umm__object_fork_child();
    umm__kmap_fork_child();
    umm__readahead_fork_child();
    rehome(1);
    pthread_sigmask(SIG_SETMASK, &saved_mask, NULL);
    umm__daemon_resume(1);
}

int umm__fork_init(void)
{
    return pthread_atfork(prepare, parent, child) == 0 ? 0 : -1;
}

/* umm_fork (mman.c): reserve what the child needs now, where failing is
 * still an errno; prepare() finds it done.  0 or -1. */
int umm__fork_reserve(void)
{
    sigset_t saved;
    umm__enter(&saved);
    int rc = reserve_ranges();
    umm__leave(&saved);
    return rc;
}

/* 0: at most want threads; 1: more; -1: cannot tell. */
static int count_threads_once(int want)
{
    /* open and read, not stdio: this also runs in signal handlers. */
    char buf[4096];
    int fd = umm__sys_open("/proc/self/status", O_RDONLY | O_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    ssize_t len = umm__sys_pread(fd, buf, sizeof buf - 1, 0);
    umm__sys_close(fd);
    if (len <= 0)
        return -1;
    buf[len] = 0;
    const char *t = strstr(buf, "\nThreads:");
    if (!t)
        return -1;
    t += strlen("\nThreads:");
    while (*t == ' ' || *t == '\t')
        t++;
    int n = 0;
    while (*t >= '0' && *t <= '9')
        n = n * 10 + (*t++ - '0');
    return n > want ? 1 : n > 0 ? 0 : -1;
}

/* Is this the process's only thread (besides the daemon's, if it runs)?
 * A thread just joined may still be counted for a moment: look again. */
int umm__fork_only_thread(void)
{
    /* The daemon's and the pager thread (pager.c) never touch a mapping. */
    int want = 1 + umm__daemon_running() + umm__pager_running();
    for (int tries = 0; tries < 20; tries++) {
        int n = count_threads_once(want);
        if (n <= 0)
            return n == 0;
        struct timespec ms = { 0, 1000000 };
        nanosleep(&ms, NULL); /* async-signal-safe */
    }
    return 0;
}


/*
 * A process of a family dying of a fatal signal (signals.c, after the crash
 * write-back, with the address-space lock held): let go of what it shares
 * with the others, so they can free it.  Only atomics and fallocate: it
 * runs in a signal handler, and the process never touches its mappings
 * again.
 */
void umm__fork_let_go(void)
{
    if (!umm__mm.forked || !umm__fork_only_thread())
        return;
    /* As munmap would: private frames lose a reference (the last one
     * frees), page-cache frames a writer.  No malloc, no I/O in there. */
    for (size_t i = 0; i < umm__vma_count(); i++)
        umm__vma_release_pages(umm__vma_at(i), 0, umm__vma_pages(umm__vma_at(i)));
    for (size_t i = 0; i < umm__vma_count(); i++) {
        struct umm__anon *a = umm__vma_at(i)->anon;
        if (!a || a->let_go)
            continue;
        a->let_go = 1;
        umm__anon_unpin(a);
    }
    for (struct umm__object *obj = umm__mm.objects; obj; obj = obj->next)
        for (size_t i = 0; i < obj->nex; i++)
            umm__extent_release(obj, &obj->ext[i]);
    /* The lock is let go next, and the process ends a moment later: the
     * daemon's thread, waiting for the lock, must not then work on frames
     * this process no longer holds (a read-ahead filling a run the family
     * freed and gave to another file marked it up to date there: a page
     * of zeros in the parent, found by test-differential).  Each of its
     * callbacks looks at this under the lock. */
    umm__mm.let_go = 1;
}
