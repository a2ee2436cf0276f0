/*
 * mm.c: the address space's lock, and the daemon's doorbells.
 *
 * Every piece takes umm__mm.lock (faults for reading, calls for writing),
 * so it lives at the bottom of the house, apart from start-up (init.c),
 * which calls every piece and is called only by the system-call layer.
 * The doorbells are here for the same reason: reclaim (vmscan.c), msync
 * (mman.c) and the lock keeper (locks.c) wake the daemon's thread, which
 * then calls down into them; a doorbell rung before the daemon runs, or
 * after it stopped, rings nobody (as the kernel's wakeup_kswapd finds no
 * kswapd waiting).  The kernel keeps kswapd's wait queue in the node's
 * data for the same reason.
 */
#include "umm-int.h"

#include <errno.h>
#include <uv.h>

struct umm__mm umm__mm = { .lock = PTHREAD_RWLOCK_INITIALIZER };

void umm__enter(sigset_t *saved)
{
    sigset_t all;
    sigfillset(&all);
    /* Faults on the program's own errors must still be delivered. */
    sigdelset(&all, SIGSEGV);
    sigdelset(&all, SIGBUS);
    sigdelset(&all, SIGILL);
    sigdelset(&all, SIGFPE);
    pthread_sigmask(SIG_BLOCK, &all, saved);
    pthread_rwlock_wrlock(&umm__mm.lock);
}

void umm__leave(const sigset_t *saved)
{
    int e = errno;
    pthread_rwlock_unlock(&umm__mm.lock);
    pthread_sigmask(SIG_SETMASK, saved, NULL);
    errno = e;
}

/* Set on libumm's own threads and calls whose file I/O must go straight
 * to the host (umm-int.h); defined here, the lowest piece that sets it. */
__thread int umm__own_io __attribute__((tls_model("initial-exec")));

int umm__bell_ready(enum umm__bell b)
{
    return atomic_load(&umm__mm.bell[b]) != NULL;
}

/* Safe anywhere, the trap and signal handlers included (uv_async_send
 * writes an eventfd). */
void umm__ring(enum umm__bell b)
{
    void *h = atomic_load(&umm__mm.bell[b]);
    if (!h)
        return;
    /* uv_async_send writes to an eventfd with write(), which libumm's own
     * file I/O layer stands in front of (fileio.c): rung under the
     * address-space lock held for writing (a munmap that pools frames),
     * it would take the lock for reading and give it back, dropping the
     * writer's hold.  libumm's own call goes straight to the host. */
    int was = umm__own_io;
    umm__own_io = 1;
    uv_async_send(h);
    umm__own_io = was;
}
