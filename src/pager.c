/*
 * pager.c: the program's own pager -- a store of its choosing (compressed
 * memory, a server, a checkpoint) behind a mapping whose pages otherwise
 * behave as a file's.  It plays the part of a file system's address-space
 * operations (read_folio, writepages, fsync) for a page-cache object
 * (pagecache.c), which calls in here at its I/O points: fill, write-back,
 * sync, size, and the release of its last mapping.
 *
 * Where the callbacks run.  The fill of a fault comes from libumm's SIGSEGV
 * handler, with the address-space lock and frame locks held; the program's
 * callback there could take no lock and call nothing but async-signal-safe
 * functions.  So every callback runs on one thread of libumm's, the pager
 * thread, and the thread that needs the I/O hands it a request (on its own
 * stack: no malloc in the trap) and sleeps on a futex until it is done.
 * The callbacks then may block, allocate and do I/O, and run one at a time
 * (a store needs no locking of its own); what they must not do is touch
 * libumm memory or take a lock the faulting thread may hold (umm_pager(3)).
 * A request from the pager thread itself (a callback that called into
 * libumm after all), or while the thread is not running (in a child of
 * fork before it starts again), runs in the caller.
 *
 * After fork the child has its own copy of the pager (ops, cookie) and a
 * pager thread of its own, started by the atfork handler registered with
 * the first one: its faults fill from its copy of the store.  The frames
 * already in the page cache are the family's, as for files.
 */
#include "umm-int.h"
#include "vg.h"

#include <errno.h>
#include <linux/futex.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

enum op { OP_FILL, OP_WRITE, OP_SYNC, OP_SIZE, OP_RELEASE };

struct req {
    enum op op;
    struct umm__pager *pg;
    uint64_t off, len;
    void *buf;
    int64_t result;
    _Atomic uint32_t done;
    struct req *next;
};

static _Atomic uint32_t qlock;   /* a bit lock over the queue */
static struct req *qhead, *qtail;
static _Atomic uint32_t qseq;    /* bumped at each request: the thread sleeps on it */
static _Atomic int running;     /* changed under qlock: call() decides there */
static int stopping;
static pthread_t worker;
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;
static pthread_mutex_t start_lock = PTHREAD_MUTEX_INITIALIZER;

static void futex_wait(_Atomic uint32_t *w, uint32_t val)
{
    syscall(SYS_futex, w, FUTEX_WAIT_PRIVATE, val, NULL, NULL, 0);
}

static void futex_wake(_Atomic uint32_t *w)
{
    syscall(SYS_futex, w, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

/* Run one request's callback (in whatever thread). */
static void run(struct req *r)
{
    const struct umm_pager_ops *o = &r->pg->ops;
    void *c = r->pg->cookie;
    switch (r->op) {
    case OP_FILL:
        r->result = o->fill(c, (off_t)r->off, r->buf, r->len);
        break;
    case OP_WRITE:
        r->result = o->writeback ? o->writeback(c, (off_t)r->off, r->buf, r->len) : -EROFS;
        break;
    case OP_SYNC:
        r->result = o->sync ? o->sync(c) : 0;
        break;
    case OP_SIZE:
        r->result = 0;
        r->pg->size = o->size ? o->size(c) : UMM__PAGER_NOEND;
        if (r->pg->size > UMM__PAGER_NOEND)
            r->pg->size = UMM__PAGER_NOEND;
        break;
    case OP_RELEASE:
        r->result = 0;
        if (o->release)
            o->release(c);
        break;
    }
}

static void *pager_thread(void *arg)
{
    (void)arg;
    umm__own_io = 1;
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, NULL); /* the program's signals go to its threads */
    for (;;) {
        uint32_t seq = atomic_load(&qseq);
        umm__bitlock(&qlock, 0);
        struct req *r = qhead;
        if (r && !(qhead = r->next))
            qtail = NULL;
        int stop = !r && stopping; /* nothing left and no more to come */
        umm__bitunlock(&qlock, 0);
        if (stop)
            return NULL;
        if (!r) {
            futex_wait(&qseq, seq);
            continue;
        }
        run(r);
        atomic_store(&r->done, 1);
        futex_wake(&r->done);
    }
    return NULL;
}

/* In a child of fork: its threads are gone, so is any request in flight
 * (their threads with them); a pager thread of its own starts now. */
static void atfork_child(void)
{
    atomic_store(&qlock, 0);
    qhead = qtail = NULL;
    pthread_mutex_init(&start_lock, NULL);
    stopping = 0;
    if (atomic_exchange(&running, 0) && umm__sys_pthread_create(&worker, pager_thread, NULL) == 0)
        atomic_store(&running, 1);
}

/* At exit (init.c), after the last write-back: the thread drains its queue
 * and ends, and is joined, so that nothing of it is left for memcheck's
 * leak check; a request after that runs in its caller (exit is single
 * threaded by then, the daemon stopped). */
void umm__pager_stop(void)
{
    pthread_mutex_lock(&start_lock);
    umm__bitlock(&qlock, 0);
    int was = atomic_exchange(&running, 0);
    stopping = 1;
    umm__bitunlock(&qlock, 0);
    if (was && !pthread_equal(pthread_self(), worker)) {
        atomic_fetch_add(&qseq, 1);
        futex_wake(&qseq);
        pthread_join(worker, NULL);
    }
    pthread_mutex_unlock(&start_lock);
}

static void register_atfork(void)
{
    pthread_atfork(NULL, NULL, atfork_child);
}

/* Start the pager thread (umm_mmap_pager, outside libumm's locks). */
int umm__pager_start(void)
{
    pthread_once(&atfork_once, register_atfork);
    pthread_mutex_lock(&start_lock);
    int err = 0;
    if (!atomic_load(&running) && !stopping) {
        sigset_t all, old;
        sigfillset(&all);
        pthread_sigmask(SIG_BLOCK, &all, &old); /* born with every signal blocked */
        err = umm__sys_pthread_create(&worker, pager_thread, NULL);
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        if (!err)
            atomic_store(&running, 1);
    }
    pthread_mutex_unlock(&start_lock);
    return err;
}

/* Hand r to the pager thread and wait for it (async-signal-safe: the trap
 * calls this).  Signals that arrive meanwhile are handled as usual; the
 * wait goes on after them. */
static void call(struct req *r)
{
    if (!atomic_load(&running) || pthread_equal(pthread_self(), worker)) {
        run(r);
        return;
    }
    atomic_store(&r->done, 0);
    r->next = NULL;
    umm__bitlock(&qlock, 0);
    if (!atomic_load(&running)) { /* stopped meanwhile (exit) */
        umm__bitunlock(&qlock, 0);
        run(r);
        return;
    }
    if (qtail)
        qtail->next = r;
    else
        qhead = r;
    qtail = r;
    umm__bitunlock(&qlock, 0);
    atomic_fetch_add(&qseq, 1);
    futex_wake(&qseq);
    while (!atomic_load(&r->done))
        futex_wait(&r->done, 0);
}

/* A write-back's failure as msync reports it, as the kernel's write-back
 * errors: ENOSPC and EDQUOT as they are, anything else EIO. */
static int errno_of(int64_t r)
{
    return r == -ENOSPC || r == -EDQUOT ? (int)-r : EIO;
}

int umm__pager_fill(struct umm__pager *pg, uint64_t off, void *buf, uint64_t len)
{
    struct req r = { .op = OP_FILL, .pg = pg, .off = off, .len = len, .buf = buf };
    call(&r);
    if (r.result < 0 || (uint64_t)r.result > len)
        return EIO; /* whatever the store said: the access gets SIGBUS, as for a file's I/O error */
    /* A short fill: the rest reads as zeros, as past the end of a file. */
    memset((char *)buf + r.result, 0, len - (uint64_t)r.result);
    return 0;
}

int umm__pager_write(struct umm__pager *pg, uint64_t off, const void *buf, uint64_t len)
{
    struct req r = { .op = OP_WRITE, .pg = pg, .off = off, .len = len, .buf = (void *)buf };
    call(&r);
    return r.result == 0 ? 0 : errno_of(r.result);
}

int umm__pager_sync(struct umm__pager *pg)
{
    struct req r = { .op = OP_SYNC, .pg = pg };
    call(&r);
    return r.result == 0 ? 0 : errno_of(r.result);
}

void umm__pager_resize(struct umm__pager *pg)
{
    struct req r = { .op = OP_SIZE, .pg = pg };
    call(&r);
}

void umm__pager_release(struct umm__pager *pg)
{
    struct req r = { .op = OP_RELEASE, .pg = pg };
    call(&r);
}

int umm__pager_running(void)
{
    return atomic_load(&running);
}

int umm__pager_foreign(const struct umm__object *obj)
{
    return obj->pager && obj->pager->owner != umm__mm.pid;
}
