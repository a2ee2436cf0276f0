/*
 * signals.c: the program's signals, with libumm in the process.
 *
 * Three jobs, all so that libumm stays invisible to a program that was
 * written for the kernel's mmap:
 *
 * 1. sigaction() and signal() stand in front of the C library's (as the
 *    JVM's libjsig does), and so do bsd_signal(), ssignal(), sysv_signal(),
 *    sigset(), sigignore() and siginterrupt(), which glibc builds on its
 *    internal sigaction.  For SIGSEGV and SIGBUS the program's handler is
 *    recorded as the one that gets faults that are not libumm's, and the
 *    trap stays installed; the program reads back exactly what it set.
 *
 * 2. Nothing is lost on dying of a signal.  While the program leaves a
 *    signal whose default action ends the process at that default (every
 *    such signal the kernel has, real-time ones included: is_crash_signal),
 *    libumm catches it, writes back every dirty shared page with
 *    async-signal-safe calls through the direct map, restores the default
 *    and lets it happen: the program dies of the same signal, with the
 *    status and core dump the kernel gives, and the file has its data.
 *    (SIGSEGV and SIGBUS, faults or sent, do the same in trap.c.)  A
 *    handler or SIG_IGN of the program's replaces this; a handler with
 *    SA_RESETHAND gets it back after its one call.  A signal the program
 *    blocks is never delivered, so sigwait() and signalfd take it as
 *    without libumm.  SIGKILL cannot be caught.
 *
 * 3. Every thread gets an alternate signal stack (pthread_create stands in
 *    front of the C library's too), so a fault taken on an almost
 *    exhausted stack is still handled.
 *
 * 4. fileio.c holds the address-space lock across a program's read or
 *    write of a mapped file; no handler that could call into libumm may
 *    run on that thread meanwhile.  Blocking signals around it costs two
 *    rt_sigprocmask per call, so while the program has no handler of its
 *    own for any signal (SIGSEGV and SIGBUS aside: those the trap passes
 *    on only for faults that are not libumm's), the section only marks
 *    the thread (umm__io_enter/leave): the one handler that can then run,
 *    libumm's crash write-back, defers a signal that arrives inside and
 *    takes it at the section's end (it would otherwise wait for the lock,
 *    or write back a page older than the write the section is making).
 *    The first handler the program installs (sigaction and everything
 *    built on it stand here; what was there before libumm started is read
 *    at start) turns this off for good, after waiting for the sections
 *    already running unblocked to end.
 */
#include "umm-int.h"
#include "vg.h"

#include <dlfcn.h>
#include <errno.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

extern int __sigaction(int sig, const struct sigaction *act, struct sigaction *old);

static struct sigaction prog[NSIG]; /* what the program set, for managed signals */
static _Atomic int active;

/* Section 4 of the comment above. */
static _Atomic int prog_handlers;    /* the program has had a handler: sticky */
static _Atomic unsigned io_unmasked; /* threads inside an unblocked section */
static __thread int io_inside __attribute__((tls_model("initial-exec")));
static __thread int io_deferred __attribute__((tls_model("initial-exec")));

/* A handler of the program's own (not a default, not ignored)? */
static int is_handler(int sig, const struct sigaction *sa)
{
    return sig != SIGSEGV && sig != SIGBUS && sa->sa_handler != SIG_DFL && sa->sa_handler != SIG_IGN;
}

/* From now on fileio.c blocks signals: once no section runs unblocked. */
static void prog_handlers_seen(void)
{
    if (atomic_exchange(&prog_handlers, 1))
        return;
    while (atomic_load(&io_unmasked) != 0)
        sched_yield();
}

int umm__io_enter(void)
{
    if (atomic_load_explicit(&prog_handlers, memory_order_relaxed))
        return 0;
    atomic_fetch_add(&io_unmasked, 1);
    if (atomic_load(&prog_handlers)) { /* installed meanwhile */
        atomic_fetch_sub(&io_unmasked, 1);
        return 0;
    }
    io_inside = 1;
    atomic_signal_fence(memory_order_seq_cst);
    return 1;
}

void umm__io_leave(void)
{
    atomic_signal_fence(memory_order_seq_cst);
    io_inside = 0;
    atomic_signal_fence(memory_order_seq_cst);
    atomic_fetch_sub(&io_unmasked, 1);
    int sig = io_deferred;
    if (sig) { /* a fatal signal came inside: take it now */
        io_deferred = 0;
        syscall(SYS_tgkill, getpid(), (pid_t)syscall(SYS_gettid), sig);
    }
}

static int is_trap_signal(int sig)
{
    return sig == SIGSEGV || sig == SIGBUS;
}

/*
 * A signal whose default action ends the process, which libumm catches to
 * write back first.  The kernel's own list (include/linux/signal.h): every
 * signal, real-time ones included, but those whose default is to ignore
 * (SIGCHLD, SIGCONT, SIGURG, SIGWINCH) or to stop (SIGSTOP, SIGTSTP,
 * SIGTTIN, SIGTTOU).  Less SIGKILL (it cannot be caught), SIGSEGV and
 * SIGBUS (the trap's, trap.c), the C library's own signals between the
 * kernel's first real-time signal and SIGRTMIN (glibc's 32 and 33), and,
 * under Valgrind, SIGRTMAX, which Valgrind keeps for itself.
 */
static int is_crash_signal(int sig)
{
    switch (sig) {
    case SIGKILL: case SIGSEGV: case SIGBUS:
    case SIGCHLD: case SIGCONT: case SIGURG: case SIGWINCH:
    case SIGSTOP: case SIGTSTP: case SIGTTIN: case SIGTTOU:
        return 0;
    }
    if (sig > 0 && sig < __SIGRTMIN)
        return 1;
    return sig >= SIGRTMIN && sig <= SIGRTMAX && !(sig == SIGRTMAX && umm__vg_running());
}

/* The signals whose disposition libumm keeps for the program, once started. */
static int is_managed(int sig)
{
    return atomic_load(&active) && (is_trap_signal(sig) || is_crash_signal(sig));
}

/* (sa_handler and sa_sigaction share their storage: SIG_DFL either way.) */
static int is_default(const struct sigaction *sa)
{
    return sa->sa_handler == SIG_DFL;
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
    umm__writeback_final();
    if (locked) { /* without the lock the structures may be half-changed */
        umm__fork_let_go();
        pthread_rwlock_unlock(&umm__mm.lock);
    }
}

/*
 * Let sig's default action end the process, losing nothing, from a libumm
 * handler that runs with every signal blocked: write back, put the default
 * back, and, unless the signal comes again by itself (a fault: the
 * instruction runs again when the handler returns), send it again to this
 * thread; it arrives as the handler returns, and the kernel ends the
 * process as it would have, core dump (as RLIMIT_CORE says) and all.
 * fault: the address that faults again, for Valgrind (0: none).
 */
void umm__signal_die(int sig, int refaults, uintptr_t fault)
{
    umm__crash_writeback();
    umm__vg_exit(fault);
    umm__signal_default(sig);
    if (!refaults)
        syscall(SYS_tgkill, getpid(), (pid_t)syscall(SYS_gettid), sig);
}

static void crash(int sig, siginfo_t *si, void *uctx)
{
    (void)uctx;
    int refaults = si && si->si_code > 0 && (sig == SIGFPE || sig == SIGILL);
    if (io_inside && !refaults) { /* in fileio.c's section: at its end */
        if (!io_deferred)
            io_deferred = sig;
        return;
    }
    int saved_errno = errno;
    /* A fault (FPE, ILL from the CPU) happens again when we return.
     * Nothing else does: a sent signal, SIGTRAP after a breakpoint (the
     * instruction is behind it), SIGSYS from seccomp (the call is done). */
    umm__signal_die(sig, refaults, 0);
    errno = saved_errno;
}

/*
 * Call the program's handler p for sig as the kernel would have: with the
 * interrupted mask plus its sa_mask plus the signal (unless SA_NODEFER),
 * so a handler that leaves by longjmp leaves the same mask behind as under
 * the kernel.  From a libumm handler, which runs with every signal blocked.
 */
void umm__signal_deliver(int sig, siginfo_t *si, void *uctx, const struct sigaction *p)
{
    sigset_t mask = ((ucontext_t *)uctx)->uc_sigmask;
    sigorset(&mask, &mask, &p->sa_mask);
    if (!(p->sa_flags & SA_NODEFER))
        sigaddset(&mask, sig);
    pthread_sigmask(SIG_SETMASK, &mask, NULL);
    if (p->sa_flags & SA_SIGINFO)
        p->sa_sigaction(sig, si, uctx);
    else
        p->sa_handler(sig);
}

static int install(int sig);

/*
 * A handler with SA_RESETHAND.  The kernel would reset the disposition to
 * its bare default at delivery, and the next such signal would end the
 * process with nothing written back; so libumm delivers it and does the
 * reset itself, to the default as the program sees it (the handler only,
 * as the kernel does), which is libumm's write-back.
 */
static void oneshot(int sig, siginfo_t *si, void *uctx)
{
    struct sigaction p = prog[sig];
    int saved_errno = errno;
    prog[sig].sa_handler = SIG_DFL;
    install(sig);
    errno = saved_errno;
    umm__signal_deliver(sig, si, uctx, &p);
}

static int is_oneshot(const struct sigaction *sa)
{
    return sa->sa_handler != SIG_DFL && sa->sa_handler != SIG_IGN && (sa->sa_flags & SA_RESETHAND);
}

/* Install libumm's own handler fn for sig, run with every signal blocked. */
static int install_own(int sig, void (*fn)(int, siginfo_t *, void *), int flags)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = fn;
    sa.sa_flags = SA_SIGINFO | flags;
    sigfillset(&sa.sa_mask);
    return __sigaction(sig, &sa, NULL);
}

/* Give the kernel what carries out the program's action for a crash signal:
 * libumm's write-back for the default, the trampoline above for a one-shot
 * handler (whether calls restart, and on which stack, stay the program's
 * choice), or else the program's action itself. */
static int install(int sig)
{
    const struct sigaction *p = &prog[sig];
    if (is_default(p))
        return install_own(sig, crash, SA_ONSTACK);
    if (is_oneshot(p))
        return install_own(sig, oneshot, p->sa_flags & (SA_RESTART | SA_ONSTACK));
    return __sigaction(sig, p, NULL);
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
    for (int sig = 1; sig < NSIG; sig++)
        if (is_crash_signal(sig) && __sigaction(sig, NULL, &prog[sig]) == 0 &&
            (is_default(&prog[sig]) || is_oneshot(&prog[sig])))
            install(sig);
    /* Handlers set before libumm stood in front of sigaction (a dlopen):
     * every signal but the C library's own (glibc's 32 and 33, whose
     * handlers never call the program) and Valgrind's. */
    for (int sig = 1; sig < NSIG; sig++) {
        struct sigaction cur;
        if ((sig >= __SIGRTMIN && sig < SIGRTMIN) || (sig == SIGRTMAX && umm__vg_running()))
            continue;
        if (__sigaction(sig, NULL, &cur) == 0 && is_handler(sig, &cur) &&
            cur.sa_sigaction != crash && cur.sa_sigaction != oneshot)
            prog_handlers_seen();
    }
    umm__altstack_ensure();
    atomic_store(&active, 1);
    return 0;
}

/* ------------------------------------------------- sigaction in front */

int sigaction(int sig, const struct sigaction *act, struct sigaction *old)
{
    if (act && sig > 0 && sig < NSIG && is_handler(sig, act))
        prog_handlers_seen();
    if (!is_managed(sig))
        return __sigaction(sig, act, old);
    sigset_t all, saved;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &saved);
    int rc = 0;
    if (old)
        *old = prog[sig];
    if (act) {
        struct sigaction was = prog[sig];
        prog[sig] = *act;
        if (is_crash_signal(sig) && (rc = install(sig)) != 0)
            prog[sig] = was; /* refused: nothing changed */
        /* SIGSEGV, SIGBUS: the trap stays; foreign faults go to prog[sig]. */
    }
    pthread_sigmask(SIG_SETMASK, &saved, NULL);
    return rc;
}

/* ------------------------------- the C library's other ways, in front */

/*
 * glibc's signal(), bsd_signal(), ssignal(), sysv_signal(), sigset(),
 * sigignore() and siginterrupt() call its sigaction from inside, where the
 * one above never sees them: they would put the program's handler in place
 * of libumm's trap or write-back, and read libumm's handler back as the
 * program's.  So they stand here too, each doing what glibc's does,
 * through the sigaction above (which hands the signals libumm does not
 * manage on to the C library's).
 */

static sigset_t interrupting; /* siginterrupt(sig, 1) was called: signal() does not restart */

/* Set handler h with flags, with sig itself blocked while it runs if
 * block_self; the handler before, or SIG_ERR. */
static sighandler_t set_handler(int sig, sighandler_t h, int flags, int block_self)
{
    struct sigaction sa, old;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = h;
    sa.sa_flags = flags;
    sigemptyset(&sa.sa_mask);
    if (block_self)
        sigaddset(&sa.sa_mask, sig);
    if (sigaction(sig, &sa, &old) != 0)
        return SIG_ERR;
    return old.sa_handler;
}

/* BSD semantics, as glibc's: the handler stays, sig is blocked while it
 * runs, calls restart unless siginterrupt() said otherwise.  Signals libumm
 * does not manage (and the error cases) go to the C library. */
sighandler_t signal(int sig, sighandler_t h)
{
    static sighandler_t (*next)(int, sighandler_t);
    if (is_managed(sig) && h != SIG_ERR)
        return set_handler(sig, h, sigismember(&interrupting, sig) ? 0 : SA_RESTART, 1);
    if (!next)
        next = (sighandler_t(*)(int, sighandler_t))dlsym(RTLD_NEXT, "signal");
    return next ? next(sig, h) : set_handler(sig, h, SA_RESTART, 1);
}

sighandler_t bsd_signal(int sig, sighandler_t h);
sighandler_t bsd_signal(int sig, sighandler_t h)
{
    return signal(sig, h);
}

sighandler_t ssignal(int sig, sighandler_t h) __attribute__((alias("signal")));

/* SysV semantics: the handler runs once, sig is not blocked in it, calls
 * do not restart.  Also what signal() is in a program built for strict ISO
 * C or X/Open: glibc's <signal.h> sends it here. */
sighandler_t __sysv_signal(int sig, sighandler_t h)
{
    if (h == SIG_ERR) {
        errno = EINVAL;
        return SIG_ERR;
    }
    return set_handler(sig, h, SA_RESETHAND | SA_NODEFER, 0);
}

sighandler_t sysv_signal(int sig, sighandler_t h) __attribute__((alias("__sysv_signal")));

/* X/Open: SIG_HOLD blocks sig; anything else is set and unblocks it.
 * Returns SIG_HOLD if sig was blocked, else the disposition before. */
sighandler_t sigset(int sig, sighandler_t disp)
{
    sigset_t one, was;
    struct sigaction cur;
    sigemptyset(&one);
    if (sigaddset(&one, sig) != 0)
        return SIG_ERR;
    if (disp == SIG_HOLD) {
        if (sigprocmask(SIG_BLOCK, &one, &was) != 0)
            return SIG_ERR;
        if (sigismember(&was, sig))
            return SIG_HOLD;
        return sigaction(sig, NULL, &cur) == 0 ? cur.sa_handler : SIG_ERR;
    }
    sighandler_t old = set_handler(sig, disp, 0, 0);
    if (old == SIG_ERR || sigprocmask(SIG_UNBLOCK, &one, &was) != 0)
        return SIG_ERR;
    return sigismember(&was, sig) ? SIG_HOLD : old;
}

int sigignore(int sig)
{
    return set_handler(sig, SIG_IGN, 0, 0) == SIG_ERR ? -1 : 0;
}

static int set_restart(int sig, int restart)
{
    struct sigaction sa;
    if (sigaction(sig, NULL, &sa) != 0)
        return -1;
    sa.sa_flags = restart ? sa.sa_flags | SA_RESTART : sa.sa_flags & ~SA_RESTART;
    return sigaction(sig, &sa, NULL);
}

/* Whether sig interrupts calls (no SA_RESTART), now and for later
 * signal() calls, as glibc's. */
int siginterrupt(int sig, int flag)
{
    static int (*next)(int, int);
    if (!next)
        next = (int (*)(int, int))dlsym(RTLD_NEXT, "siginterrupt");
    int rc = is_managed(sig) || !next ? set_restart(sig, !flag) : next(sig, flag);
    if (rc == 0 && flag)
        sigaddset(&interrupting, sig);
    else if (rc == 0)
        sigdelset(&interrupting, sig);
    return rc;
}
