/*
 * signals.c: the program's signals, with libumm in the process.
 *
 * Three jobs, all so that libumm stays invisible to a program that was
 * written for the kernel's mmap:
 *
 * 1. sigaction() and signal() stand in front of the C library's (as the
 *    JVM's libjsig does).  For SIGSEGV and SIGBUS the program's handler is
 *    recorded as the one that gets faults that are not libumm's, and the
 *    trap stays installed; the program reads back exactly what it set.
 *
 * 2. Nothing is lost on a crash.  While the program leaves SIGABRT, SIGFPE,
 *    SIGILL, SIGTERM, SIGINT or SIGHUP at their default action (to kill),
 *    libumm catches them, writes back every dirty shared page with
 *    async-signal-safe calls through the direct map, restores the default
 *    and lets it happen: the program dies of the same signal, and the file
 *    has its data.  (Faults that are not libumm's do the same in trap.c.)
 *    SIGKILL cannot be caught.
 *
 * 3. Every thread gets an alternate signal stack (pthread_create stands in
 *    front of the C library's too), so a fault taken on an almost
 *    exhausted stack is still handled.
 */
#include "umm-int.h"
#include "vg.h"

#include <dlfcn.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

extern int __sigaction(int sig, const struct sigaction *act, struct sigaction *old);

static const int crash_signals[] = { SIGABRT, SIGFPE, SIGILL, SIGTERM, SIGINT, SIGHUP };
static struct sigaction prog[NSIG]; /* what the program set, for managed signals */
static _Atomic int active;

static int is_trap_signal(int sig)
{
    return sig == SIGSEGV || sig == SIGBUS;
}

static int is_crash_signal(int sig)
{
    for (size_t i = 0; i < sizeof crash_signals / sizeof crash_signals[0]; i++)
        if (crash_signals[i] == sig)
            return 1;
    return 0;
}

static int is_default(const struct sigaction *sa)
{
    return !(sa->sa_flags & SA_SIGINFO) && sa->sa_handler == SIG_DFL;
}

struct sigaction *umm__program_action(int sig)
{
    return &prog[sig];
}

/* Put the kernel's default action back for sig (the process is about to
 * take it). */
void umm__signal_default(int sig)
{
    struct sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    __sigaction(sig, &dfl, NULL);
}

/* ------------------------------------------------------ crash write-back */

/*
 * Write back every dirty shared page, from a handler of a fatal signal.
 * It waits a little for the address-space lock (another thread may be in
 * the middle of a call) and then goes on without it: a best effort is
 * better than losing the data, and the process is about to die.  Only
 * async-signal-safe calls are made (pwrite, mprotect, fstat).
 */
void umm__crash_writeback(void)
{
    static _Atomic int done;
    /* Not in a vfork child (or a clone sharing the memory): what it would
     * change is its parent's. */
    if (!atomic_load(&active) || getpid() != umm__mm.pid || atomic_exchange(&done, 1))
        return;
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += 1;
    int locked = pthread_rwlock_timedwrlock(&umm__mm.lock, &deadline) == 0;
    umm__writeback_all(0);
    if (locked) { /* without the lock the structures may be half-changed */
        umm__fork_let_go();
        pthread_rwlock_unlock(&umm__mm.lock);
    }
}

static void crash(int sig, siginfo_t *si, void *uctx)
{
    (void)uctx;
    int saved_errno = errno;
    umm__crash_writeback();
    umm__vg_exit(0);
    umm__signal_default(sig);
    /* A fault (FPE, ILL from the CPU) happens again when we return; a sent
     * signal is sent again, to this thread, and arrives when we return. */
    if (!(si && si->si_code > 0 && (sig == SIGFPE || sig == SIGILL)))
        syscall(SYS_tgkill, getpid(), (pid_t)syscall(SYS_gettid), sig);
    errno = saved_errno;
}

static int install_crash(int sig)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = crash;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigfillset(&sa.sa_mask);
    return __sigaction(sig, &sa, NULL);
}

/* ------------------------------------------------------ alternate stacks */

static __thread void *altstack __attribute__((tls_model("initial-exec")));
static __thread unsigned altstack_vg __attribute__((tls_model("initial-exec")));
static size_t altstack_size;

/*
 * The stacks, and the note pthread_create hands its thread, are libumm's
 * own memory (kmem.c): from the host's free address space a signal stack
 * would often land in a range the program has just unmapped, and the
 * program's MAP_FIXED there would fail.  kmem.c's lock is taken with
 * signals blocked, as under the address-space lock: a handler of the
 * program that ran on a thread holding it and called into libumm would
 * wait for itself.
 */
static void *own_alloc(size_t n)
{
    sigset_t all, saved;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &saved);
    void *p = umm__kalloc(n);
    pthread_sigmask(SIG_SETMASK, &saved, NULL);
    return p;
}

static void own_free(void *p, size_t n)
{
    sigset_t all, saved;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &saved);
    umm__kfree(p, n);
    pthread_sigmask(SIG_SETMASK, &saved, NULL);
}

/* Give the calling thread an alternate signal stack if it has none. */
void umm__altstack_ensure(void)
{
    stack_t cur;
    /* Under Valgrind, memcheck was seen to mark live frames of the thread's
     * own stack no-access after a handler ran on an alternate stack (even
     * with the stack registered), so there the trap uses the thread's
     * stack; Valgrind runs handlers on frames of its own anyway. */
    if (umm__vg_running())
        return;
    if (altstack || sigaltstack(NULL, &cur) != 0 || !(cur.ss_flags & SS_DISABLE))
        return;
    if (!altstack_size) {
        long min = sysconf(_SC_SIGSTKSZ);
        altstack_size = (size_t)(min > 0 ? min : 0) + 64 * 1024;
    }
    void *mem = own_alloc(altstack_size);
    if (!mem)
        return;
    stack_t ss = { .ss_sp = mem, .ss_flags = 0, .ss_size = altstack_size };
    if (sigaltstack(&ss, NULL) != 0) {
        own_free(mem, altstack_size);
        return;
    }
    altstack = mem;
    altstack_vg = umm__vg_stack_register((char *)mem, (char *)mem + altstack_size);
}

static void altstack_free(void *unused)
{
    (void)unused;
    if (!altstack)
        return;
    stack_t ss = { .ss_sp = NULL, .ss_flags = SS_DISABLE, .ss_size = 0 };
    sigaltstack(&ss, NULL);
    umm__vg_stack_deregister(altstack_vg);
    own_free(altstack, altstack_size);
    altstack = NULL;
}

struct start {
    void *(*fn)(void *);
    void *arg;
};

static void *thread_start(void *p)
{
    struct start s = *(struct start *)p;
    own_free(p, sizeof s);
    umm__altstack_ensure();
    void *r;
    pthread_cleanup_push(altstack_free, NULL);
    r = s.fn(s.arg);
    pthread_cleanup_pop(1);
    return r;
}

int pthread_create(pthread_t *t, const pthread_attr_t *attr, void *(*fn)(void *), void *arg)
{
    static int (*next)(pthread_t *, const pthread_attr_t *, void *(*)(void *), void *);
    if (!next)
        next = (int (*)(pthread_t *, const pthread_attr_t *, void *(*)(void *), void *))dlsym(RTLD_NEXT,
                                                                                          "pthread_create");
    if (!next)
        return ENOSYS;
    struct start *s = own_alloc(sizeof *s);
    if (!s)
        return next(t, attr, fn, arg); /* no stack then, but the thread runs */
    s->fn = fn;
    s->arg = arg;
    int rc = next(t, attr, thread_start, s);
    if (rc != 0)
        own_free(s, sizeof *s);
    return rc;
}

/* ------------------------------------------------------ _exit in front */

/*
 * Under the kernel a process that ends with _exit(2) loses no write to a
 * shared mapping: the page cache has it.  libumm's page cache goes with the
 * process, so _exit (and _Exit) write back first, as exit() does through
 * its handlers; in a fork family the process also lets go of the frames it
 * shares (fork.c), so the others can free them.  Only async-signal-safe
 * work, as _exit may be called from a signal handler or a child of fork.
 */
void _exit(int status)
{
    umm__crash_writeback();
    umm__vg_exit(0);
    for (;;)
        syscall(SYS_exit_group, status);
}

void _Exit(int status) __attribute__((alias("_exit")));

/* ------------------------------------------------------------ start-up */

/* Install the trap for SIGSEGV and SIGBUS and the crash handlers, keeping
 * what the program had set as its own. */
int umm__signals_init(void (*trap)(int, siginfo_t *, void *))
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = trap;
    sa.sa_flags = SA_SIGINFO | SA_RESTART | SA_ONSTACK;
    /* Block everything while the trap runs, so no handler of the program
     * can fault on a page whose entry this thread holds. */
    sigfillset(&sa.sa_mask);
    if (__sigaction(SIGSEGV, &sa, &prog[SIGSEGV]) != 0 || __sigaction(SIGBUS, &sa, &prog[SIGBUS]) != 0)
        return -1;
    for (size_t i = 0; i < sizeof crash_signals / sizeof crash_signals[0]; i++) {
        int sig = crash_signals[i];
        __sigaction(sig, NULL, &prog[sig]);
        if (is_default(&prog[sig]))
            install_crash(sig);
    }
    umm__altstack_ensure();
    atomic_store(&active, 1);
    return 0;
}

/* --------------------------------------------- sigaction, signal in front */

int sigaction(int sig, const struct sigaction *act, struct sigaction *old)
{
    if (!atomic_load(&active) || sig <= 0 || sig >= NSIG || !(is_trap_signal(sig) || is_crash_signal(sig)))
        return __sigaction(sig, act, old);
    sigset_t all, saved;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &saved);
    int rc = 0;
    if (old)
        *old = prog[sig];
    if (act) {
        prog[sig] = *act;
        if (is_crash_signal(sig))
            rc = is_default(act) ? install_crash(sig) : __sigaction(sig, act, NULL);
        /* SIGSEGV, SIGBUS: the trap stays; foreign faults go to prog[sig]. */
    }
    pthread_sigmask(SIG_SETMASK, &saved, NULL);
    return rc;
}

static sighandler_t set_handler(int sig, sighandler_t h, int flags)
{
    struct sigaction sa, old;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = h;
    sa.sa_flags = flags;
    sigemptyset(&sa.sa_mask);
    if (h != SIG_DFL && h != SIG_IGN)
        sigaddset(&sa.sa_mask, sig);
    if (sigaction(sig, &sa, &old) != 0)
        return SIG_ERR;
    return (old.sa_flags & SA_SIGINFO) ? (sighandler_t)(void (*)(void))old.sa_sigaction : old.sa_handler;
}

/* signal() for the signals above once libumm is in: BSD semantics, as
 * glibc's (the handler stays, calls restart).  Others go to the C library. */
sighandler_t signal(int sig, sighandler_t h)
{
    static sighandler_t (*next)(int, sighandler_t);
    if (atomic_load(&active) && sig > 0 && sig < NSIG && (is_trap_signal(sig) || is_crash_signal(sig)))
        return set_handler(sig, h, SA_RESTART);
    if (!next)
        next = (sighandler_t(*)(int, sighandler_t))dlsym(RTLD_NEXT, "signal");
    return next ? next(sig, h) : set_handler(sig, h, SA_RESTART);
}

sighandler_t bsd_signal(int sig, sighandler_t h);
sighandler_t bsd_signal(int sig, sighandler_t h)
{
    return signal(sig, h);
}
