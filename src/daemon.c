/*
 * daemon.c: the work a kernel does in its own threads, on a libuv loop.
 *
 * One background thread runs a uv loop with
 *  - a timer: every flush interval (UMM_FLUSH_INTERVAL_MS in the
 *    environment, default 5000, 0 turns it off) dirty shared pages are
 *    written back, bounding what a SIGKILL can lose;
 *  - an async handle: msync(MS_ASYNC) schedules a write-back with
 *    uv_async_send(), which is safe even inside a signal handler;
 *  - another: a fault that finds libumm's frames near the memory budget
 *    wakes background reclaim (vmscan.c, the kernel's kswapd), which runs
 *    here under the address-space lock held for reading, so faults go on,
 *    and on a one-shot timer after that while it is not done;
 *  - a third: chunks of frames were pooled (frame.c), and are zeroed here
 *    so that the next fault that takes them need not;
 *  - a fourth: a sequential stream's fault posted its next window
 *    (fault.c), read here into the page cache while the program uses the
 *    window it has (the kernel's asynchronous read-ahead).  On this
 *    thread, not libuv's thread pool: one reader keeps ahead of a stream
 *    (the reads are the host's copies), and a thread that is parked
 *    between callbacks at a fork, and stopped at exit, needs nothing more
 *    to be safe across both; the pool's threads would.
 * The thread blocks every signal, so faults and signals of the program are
 * never handled on it.  Every callback works under the address-space lock
 * and does nothing once the process, dying by _exit() or a fatal signal in
 * a fork family, let go of the frames it shared (fork.c, umm__mm.let_go):
 * the lock is let go before the process ends, and this thread may get it
 * in between.
 */
#include "umm-int.h"

#include <fcntl.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <uv.h>

static uv_loop_t loop;
static uv_async_t kick, stop, reclaim, zero, ra;
static uv_timer_t timer;
static uv_thread_t thread;
static _Atomic int running;

/* Running or not; while it runs, its doorbells ring it (mm.c). */
static int set_running(int on)
{
    atomic_store(&umm__mm.bell[UMM__BELL_FLUSH], on ? (void *)&kick : NULL);
    atomic_store(&umm__mm.bell[UMM__BELL_RECLAIM], on ? (void *)&reclaim : NULL);
    atomic_store(&umm__mm.bell[UMM__BELL_ZERO], on ? (void *)&zero : NULL);
    atomic_store(&umm__mm.bell[UMM__BELL_READAHEAD], on ? (void *)&ra : NULL);
    return atomic_exchange(&running, on);
}

static void flush(void)
{
    sigset_t saved;
    umm__enter(&saved);
    if (!umm__mm.let_go) { /* fork.c: the process is ending and let go of its frames */
        umm__writeback_all(UMM__WB_UNLOCK); /* faults go on while it writes */
        umm__file_retry();
    }
    umm__leave(&saved);
}

/* The address-space lock for reading, for a callback's work, or 0 (and
 * not held) once the process let go of its frames (fork.c: it is ending). */
static int lock_for_work(void)
{
    pthread_rwlock_rdlock(&umm__mm.lock);
    if (!umm__mm.let_go)
        return 1;
    pthread_rwlock_unlock(&umm__mm.lock);
    return 0;
}

static void on_kick(uv_async_t *h)
{
    (void)h;
    flush();
}

static void on_timer(uv_timer_t *h)
{
    (void)h;
    flush();
    /* Pooled frames unused for an interval go back (frame.c).  Under the
     * address-space lock for reading, as all the daemon's work with
     * frames: a process that ends by _exit() or a fatal signal takes the
     * lock for writing first (signals.c), so this thread is never cut off
     * in the middle of it, holding the family's allocator. */
    if (!lock_for_work())
        return;
    umm__ram_pool_age();
    pthread_rwlock_unlock(&umm__mm.lock);
}

static uv_timer_t reclaim_again;

#define RECLAIM_AGAIN_MS 20 /* time for the program to touch what the hand made OLD */

static void on_reclaim_again(uv_timer_t *h);

static void background_reclaim(void)
{
    /* The thread blocks every signal already. */
    if (!lock_for_work())
        return;
    int again = umm__reclaim_background();
    pthread_rwlock_unlock(&umm__mm.lock);
    if (again)
        uv_timer_start(&reclaim_again, on_reclaim_again, RECLAIM_AGAIN_MS, 0);
}

static void on_reclaim(uv_async_t *h)
{
    (void)h;
    background_reclaim();
}

static void on_reclaim_again(uv_timer_t *h)
{
    (void)h;
    background_reclaim();
}

/* Chunks were pooled: zero them here, off the program's fault path
 * (frame.c), a megabyte at a time.  Pooled chunks belong to no mapping,
 * but each run is done under the address-space lock for reading (see
 * on_timer): an _exit() waits for it to end. */
static void on_zero(uv_async_t *h)
{
    (void)h;
    for (int more = 1; more && lock_for_work();) {
        more = umm__ram_pool_zero();
        pthread_rwlock_unlock(&umm__mm.lock);
    }
}

/* Streams posted their next windows (fault.c): read them now, while the
 * program uses the windows it has.  Under the address-space lock for
 * reading, as a fault's own read. */
static void on_readahead(uv_async_t *h)
{
    (void)h;
    if (!lock_for_work())
        return;
    umm__readahead_run();
    pthread_rwlock_unlock(&umm__mm.lock);
}

static void on_stop(uv_async_t *h)
{
    (void)h;
    uv_stop(&loop);
}

/* A fork parks the thread outside its loop instead of ending it: a thread's
 * exit cost the host time in proportion to the process's memory (14 ms
 * with 1 GiB mapped, 2.8 with 256 MiB: a third of a fork of 1 GiB,
 * doc/PERFORMANCE.md 2026-12-07). */
static pthread_mutex_t park_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t park_cond = PTHREAD_COND_INITIALIZER;
static int park, parked; /* under park_lock: asked to park, parked */

static void run(void *arg)
{
    (void)arg;
    for (;;) {
        uv_run(&loop, UV_RUN_DEFAULT);
        pthread_mutex_lock(&park_lock);
        if (!park) {
            pthread_mutex_unlock(&park_lock);
            if (!atomic_load(&running))
                return; /* stopped for good (umm__daemon_stop) */
            /* A stop sent to park the thread for a fork that found it
             * parked still (two forks in a row, before this thread woke
             * from the first): the park was done, the loop goes on.
             * Taking it for the end left a daemon nobody ran, and the
             * next fork waiting for it to park, for ever. */
            continue;
        }
        parked = 1;
        pthread_cond_broadcast(&park_cond);
        while (park)
            pthread_cond_wait(&park_cond, &park_lock);
        parked = 0;
        pthread_mutex_unlock(&park_lock);
    }
}

/* The thread blocks every signal: the program's are not for it. */
static int spawn(void)
{
    sigset_t all, saved;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &saved);
    /* Under RLIMIT_AS a smaller stack than the default 8 MiB, which would
     * count against the program's limit (kmem.c: libumm keeps to a small
     * share of the room); the daemon's deepest frames are a few KiB. */
    uv_thread_options_t opt = { .flags = UV_THREAD_HAS_STACK_SIZE, .stack_size = (size_t)1 << 20 };
    int rc = umm__as_room() != UINT64_MAX ? uv_thread_create_ex(&thread, &opt, run, NULL)
                                           : uv_thread_create(&thread, run, NULL);
    pthread_sigmask(SIG_SETMASK, &saved, NULL);
    return rc;
}

/*
 * The loop's descriptors (its epoll and eventfd) are libumm's, not the
 * program's: the program's closefrom(3) leaves them (fdtable.c).  libuv
 * closes and makes them with system calls of its own, in uv_loop_fork and
 * uv_loop_close; the marks go before and come back after.
 */
static void own_loop_fds(int own)
{
    int fds[] = { loop.backend_fd, loop.async_io_watcher.fd, loop.async_wfd, loop.signal_pipefd[0],
                  loop.signal_pipefd[1] };
    for (size_t i = 0; i < sizeof fds / sizeof *fds; i++) {
        if (fds[i] < 0)
            continue;
        if (own)
            umm__fd_own_number(fds[i]);
        else
            umm__fd_disown(fds[i]);
    }
}

/*
 * libuv asserts that its descriptors are above 2 (and a program that
 * started with 0, 1 or 2 closed expects open() to hand those out): while
 * it makes them, /dev/null holds the free numbers among 0, 1 and 2.
 */
static int hold_low(int held[3])
{
    int n = 0;
    for (;;) {
        int fd = (int)syscall(SYS_openat, AT_FDCWD, "/dev/null", O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            break;
        if (fd > 2) {
            syscall(SYS_close, fd);
            break;
        }
        held[n++] = fd;
    }
    return n;
}

static void release_low(const int held[3], int n)
{
    while (n-- > 0)
        syscall(SYS_close, held[n]);
}

int umm__daemon_start(void)
{
    const char *s = getenv("UMM_FLUSH_INTERVAL_MS");
    uint64_t interval = s ? strtoull(s, NULL, 10) : 5000;
    int held[3], nheld = hold_low(held);
    int rc = uv_loop_init(&loop);
    if (rc == 0 && (uv_async_init(&loop, &kick, on_kick) != 0 || uv_async_init(&loop, &stop, on_stop) != 0 ||
                    uv_async_init(&loop, &reclaim, on_reclaim) != 0 || uv_async_init(&loop, &zero, on_zero) != 0 ||
                    uv_async_init(&loop, &ra, on_readahead) != 0))
        rc = -1;
    release_low(held, nheld);
    if (rc != 0)
        return -1;
    uv_timer_init(&loop, &timer);
    uv_timer_init(&loop, &reclaim_again);
    uv_unref((uv_handle_t *)&reclaim_again);
    if (interval) {
        uv_timer_start(&timer, on_timer, interval, interval);
        uv_unref((uv_handle_t *)&timer);
    }
    own_loop_fds(1);
    if (spawn() != 0)
        return -1;
    set_running(1);
    return 0;
}

/*
 * fork: the thread leaves its loop (between callbacks, so the loop is whole)
 * and parks before the fork, and the forking thread's prepare handler takes
 * the address-space lock only then (the thread may be waiting for it in a
 * flush).  Afterwards the parent lets the thread run its loop again; the
 * child, which has no thread of libumm's, first gives the loop its own
 * kernel objects (uv_loop_fork), then starts one.
 */
static _Atomic int paused;

void umm__daemon_pause(void)
{
    if (!atomic_load(&running))
        return;
    pthread_mutex_lock(&park_lock);
    park = 1;
    pthread_mutex_unlock(&park_lock);
    uv_async_send(&stop);
    pthread_mutex_lock(&park_lock);
    while (!parked)
        pthread_cond_wait(&park_cond, &park_lock);
    pthread_mutex_unlock(&park_lock);
    atomic_store(&paused, 1);
}

void umm__daemon_resume(int child)
{
    if (!atomic_exchange(&paused, 0))
        return;
    if (!child) {
        pthread_mutex_lock(&park_lock);
        park = 0;
        pthread_cond_broadcast(&park_cond);
        pthread_mutex_unlock(&park_lock);
        return;
    }
    /* The child: the parked thread is not here; its lock and condition
     * are taken afresh (the parent's thread sleeps on them there). */
    pthread_mutex_t fresh_lock = PTHREAD_MUTEX_INITIALIZER;
    pthread_cond_t fresh_cond = PTHREAD_COND_INITIALIZER;
    park_lock = fresh_lock;
    park_cond = fresh_cond;
    park = parked = 0;
    own_loop_fds(0);
    int held[3], nheld = hold_low(held);
    int rc = uv_loop_fork(&loop);
    release_low(held, nheld);
    own_loop_fds(1);
    if (rc != 0) {
        set_running(0); /* write-back still happens at msync, munmap, exit */
        return;
    }
    if (spawn() != 0)
        set_running(0);
}

/* Stop the daemon and free its loop (at exit, so that nothing is left
 * running or allocated behind the program's back). */
void umm__daemon_stop(void)
{
    if (!set_running(0))
        return;
    uv_async_send(&stop);
    uv_thread_join(&thread);
    uv_close((uv_handle_t *)&kick, NULL);
    uv_close((uv_handle_t *)&stop, NULL);
    uv_close((uv_handle_t *)&reclaim, NULL);
    uv_close((uv_handle_t *)&zero, NULL);
    uv_close((uv_handle_t *)&ra, NULL);
    uv_close((uv_handle_t *)&timer, NULL);
    uv_close((uv_handle_t *)&reclaim_again, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    own_loop_fds(0);
    uv_loop_close(&loop);
}

/* Is the daemon's thread alive? */
int umm__daemon_running(void)
{
    return atomic_load(&running) && !atomic_load(&paused);
}
