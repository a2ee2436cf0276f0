/*
 * init.c: start-up, statistics, exit.
 *
 * libumm starts itself on the first call (pthread_once): it creates its RAM
 * (frame.c) and the region its own structures live in (kmem.c), installs
 * the trap (trap.c), starts the daemon (daemon.c), and registers an exit
 * handler so that dirty shared pages reach their files at the latest when
 * the program exits.
 */
#include "umm-int.h"
#include "vg.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static pthread_once_t once = PTHREAD_ONCE_INIT;
static int init_errno;

static void at_exit(void)
{
    sigset_t saved;
    umm__enter(&saved);
    umm__writeback_final(); /* as umm_shutdown(), naming a file that failed */
    umm__leave(&saved);
    umm__daemon_stop();
    umm__pager_stop(); /* pager.c: after the last write-back through it */
}

static void init_once(void)
{
    umm__mm.pid = getpid(); /* first: the frame allocator's lock names its holder by it (frame.c) */
    /* The region for libumm's own memory right after the direct map (the
     * host places it next to it; kmem.c), and before fork.c registers its
     * fork handlers, which must run outside kmem.c's (the lock order). */
    if (umm__ram_init() != 0 || umm__swap_init() != 0 || umm__kmem_init() != 0 || umm__pagecache_init() != 0 ||
        umm__trap_init() != 0 || umm__fork_init() != 0) {
        init_errno = errno ? errno : ENOMEM;
        return;
    }
    umm__vmscan_init();
    umm__kvma_init();
    umm__trace_file_init(); /* UMM_TRACE_FILE: record from here on */
    umm__vg_racy(&umm__mm.nvmas, sizeof umm__mm.nvmas); /* fileio.c reads it as a hint, unlocked */
    umm__vg_pool_create();
    umm__daemon_start(); /* without it, write-back still happens at msync, munmap and exit */
    atexit(at_exit);
}

int umm__init(void)
{
    pthread_once(&once, init_once);
    if (init_errno) {
        errno = init_errno;
        return -1;
    }
    return 0;
}

int umm_stats(struct umm_stats *out)
{
    if (!out) {
        errno = EFAULT;
        return -1;
    }
    /* Under the lock: the last put of an object (pagecache.c) takes it off
     * the count of files before it frees its frames, both under the lock;
     * read without it, the two counts could disagree.  Gathered in st, and
     * copied out after: *out may be libumm memory, whose fault takes the
     * lock. */
    struct umm_stats st;
    memset(&st, 0, sizeof st);
    pthread_rwlock_rdlock(&umm__mm.lock);
    st.faults = atomic_load(&umm__mm.faults);
    st.pages_read = atomic_load(&umm__mm.pages_read);
    st.pages_written = atomic_load(&umm__mm.pages_written);
    st.resident = atomic_load(&umm__mm.resident);
    st.frames = umm__ram_frames_in_use();
    st.cow_copies = atomic_load(&umm__mm.cow_copies);
    st.signals = atomic_load(&umm__mm.signals);
    st.files = atomic_load(&umm__mm.nobjects);
    st.host_maps = umm__mc_count();
    struct umm__reclaim_stats r;
    umm__reclaim_stats(&r);
    st.budget = r.budget;
    st.frames_high = r.high_water;
    st.reclaimed = r.reclaimed;
    st.reclaim_written = r.written;
    st.swapped_out = r.swapped_out;
    st.swapped_in = r.swapped_in;
    st.swap_used = r.swap_used;
    st.frames_pooled = umm__ram_pool_pages();
    st.mappings = umm__mm.nvmas;
    pthread_rwlock_unlock(&umm__mm.lock);
    *out = st;
    return 0;
}

int umm_shutdown(void)
{
    if (umm__ram.sh == NULL)
        return 0; /* never started: nothing to write */
    sigset_t saved;
    umm__enter(&saved);
    int err = umm__writeback_all(0);
    umm__leave(&saved);
    if (err) {
        errno = err;
        return -1;
    }
    return 0;
}
