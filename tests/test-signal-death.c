/* Promise: dying of a signal loses nothing (README, difference 4).  For
 * every signal whose default action ends the process -- signal(7)'s "Term"
 * and "Core" signals but SIGKILL, and the real-time signals SIGRTMIN ..
 * SIGRTMAX as the C library gives them at run time (SIGSEGV and SIGBUS
 * sent are test-sent-fault's) -- a child that dirtied two pages of a
 * MAP_SHARED mapping sends it to itself and ends exactly as a child
 * without libumm ends (the same wait status, core bit included), and the
 * file has the data.  So too for SIGPIPE from a write to a pipe nobody
 * reads, SIGXFSZ from a write past RLIMIT_FSIZE (with a dirty page past
 * the limit too: the kernel's write-back of a mapping does not heed it),
 * and a handler with SA_RESETHAND that raises its signal again, the usual
 * way to die of it after cleaning up.
 *
 * And libumm stays out of the program's way: sigaction() reads back for
 * every signal what it read before libumm started; SIG_IGN set before
 * libumm starts, and a handler or SIG_IGN set after, stay the program's; a
 * blocked signal is taken by sigwait(), sigwaitinfo() and a signalfd as
 * without libumm; exec leaves SIG_IGN where the program set it and SIG_DFL
 * everywhere else; and the C library's other ways to set a disposition
 * (sysv_signal, __sysv_signal, sigset, sigignore, siginterrupt, ssignal),
 * which call its sigaction from inside, go through libumm too. */
#define _GNU_SOURCE /* sysv_signal, sigset, SIG_HOLD */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>
#include "util.h"

/* sigset, sigignore and siginterrupt are obsolescent, and glibc says so;
 * they are what is tested here. */
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"

#define S(sig) { sig, #sig }
/* signal(7): default action "Term" or "Core". */
static const struct {
    int sig;
    const char *name;
} classic[] = {
    S(SIGHUP),  S(SIGINT),  S(SIGQUIT), S(SIGILL),    S(SIGTRAP), S(SIGABRT), S(SIGFPE),
    S(SIGUSR1), S(SIGUSR2), S(SIGPIPE), S(SIGALRM),   S(SIGTERM), S(SIGXCPU), S(SIGXFSZ),
    S(SIGVTALRM), S(SIGPROF), S(SIGIO), S(SIGSYS),
#ifdef SIGSTKFLT
    S(SIGSTKFLT),
#endif
#ifdef SIGPWR
    S(SIGPWR),
#endif
};

/* A child dies with its mapping still mapped.  Under memcheck each mapping
 * is a block (README, "Using libumm under Valgrind"), so the child keeps a
 * pointer to it to the end, or the leak check calls it lost. */
static void *volatile still_mapped;

/* How a child ends. */
enum how { KILL, PIPE_WRITE, FSIZE_WRITE, RESETHAND_RAISE };

/* A handler with SA_RESETHAND that dies of its signal: the kernel reset
 * the disposition at delivery, so raise() (blocked until the handler
 * returns) takes the default action. */
static void reraise(int sig)
{
    struct sigaction now;
    sigaction(sig, NULL, &now);
    if (now.sa_handler != SIG_DFL)
        _exit(102); /* the reset was not seen */
    raise(sig);
}

static void die(enum how how, int sig, int fd)
{
    switch (how) {
    case KILL: kill(getpid(), sig); break;
    case PIPE_WRITE: {
        int fds[2];
        if (pipe(fds) != 0)
            _exit(103);
        close(fds[0]);
        (void)!write(fds[1], "x", 1);
        break;
    }
    case FSIZE_WRITE: {
        /* The soft limit below the second dirty page; the write is past it. */
        struct rlimit r;
        getrlimit(RLIMIT_FSIZE, &r);
        r.rlim_cur = PAGE;
        setrlimit(RLIMIT_FSIZE, &r);
        (void)!pwrite(fd, "x", 1, 3 * PAGE);
        break;
    }
    case RESETHAND_RAISE: {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = reraise;
        sa.sa_flags = SA_RESETHAND;
        sigaction(sig, &sa, NULL);
        kill(getpid(), sig);
        break;
    }
    }
    pause();
}

/* Dirty two pages of fd (two pages of pattern 31) through libumm. */
static void dirty(int fd)
{
    unsigned char *p = umm_mmap(NULL, 2 * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED)
        _exit(100);
    still_mapped = p;
    vg_abrupt_end(); /* it dies with libumm's daemon running */
    /* Valgrind (3.19) restarts a `rep stos` that faulted with one
     * iteration already counted, and compilers inline this memset as one:
     * the page's first fault must come from a plain store there, or a byte
     * of the memset is lost before libumm sees it. */
    if (under_valgrind())
        *(volatile unsigned char *)(p + 100) = 0xA5;
    memset(p + 100, 0xA5, 50);
    p[PAGE + 7] = 0x5A;
}

static int wait_for(pid_t pid)
{
    int status = -1;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    return status;
}

/* The wait status of a child that ends as `how` says, with libumm or not. */
static int ending(enum how how, int sig, int fd, int with_libumm)
{
    pid_t pid = fork();
    if (pid == 0) {
        if (with_libumm)
            dirty(fd);
        die(how, sig, fd);
        _exit(101);
    }
    return wait_for(pid);
}

static void check_death(enum how how, int sig, const char *name)
{
    char path[512];
    int fd = tmpfile_make(2 * PAGE, 31, O_RDWR, path);
    int kernel = ending(how, sig, fd, 0);
    int status = ending(how, sig, fd, 1);
    ok(WIFSIGNALED(status) && WTERMSIG(status) == sig && status == kernel,
       "%s: the child died of it as one without libumm does (status %#x, without libumm %#x)", name, status, kernel);
    unsigned char buf[2 * PAGE];
    read_file(fd, buf, sizeof buf, 0);
    int bad = 0;
    for (int i = 100; i < 150; i++)
        bad += buf[i] != 0xA5;
    bad += buf[PAGE + 7] != 0x5A;
    bad += buf[PAGE + 8] != pattern(PAGE + 8, 31) || buf[99] != pattern(99, 31);
    ok(bad == 0, "%s: both dirty pages reached the file, nothing else changed (%d bytes wrong)", name, bad);
    close(fd);
    unlink(path);
}

/* ------------------------------------------------ libumm out of the way */

static int data_fd; /* four pages of pattern 7, for first touches */

/* A first touch of a fresh libumm mapping: 1 if it reads the file's byte. */
static int first_touch_works(void)
{
    unsigned char *p = umm_mmap(NULL, 4 * PAGE, PROT_READ, MAP_PRIVATE, data_fd, 0);
    if (p == MAP_FAILED)
        return 0;
    int good = p[2 * PAGE + 5] == pattern(2 * PAGE + 5, 7);
    return umm_munmap(p, 4 * PAGE) == 0 && good;
}

static void start_libumm(void)
{
    still_mapped = umm_mmap(NULL, PAGE, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (still_mapped == MAP_FAILED)
        _exit(100);
}

/* Run fn in a child; each point is a bit of what it returns (set: failed),
 * reported with names[bit]. */
static void in_child(int (*fn)(void), int n, const char *const names[])
{
    pid_t pid = fork();
    if (pid == 0) {
        alarm(30); /* a trap replaced behind libumm's back could loop */
        int r = fn();
        vg_abrupt_end(); /* _exit with libumm's daemon running */
        _exit(r);
    }
    int status = wait_for(pid);
    for (int i = 0; i < n; i++)
        ok(WIFEXITED(status) && !(WEXITSTATUS(status) & (1 << i)), "%s (status %#x)", names[i], status);
}

/* (Member by member: glibc fills only the kernel's part of sa_mask.) */
static int same_action(const struct sigaction *a, const struct sigaction *b)
{
    int same = a->sa_handler == b->sa_handler && a->sa_flags == b->sa_flags;
    for (int sig = 1; sig < NSIG; sig++)
        same &= sigismember(&a->sa_mask, sig) == sigismember(&b->sa_mask, sig);
    return same;
}

static int readback(void)
{
    static struct sigaction before[NSIG], after[NSIG];
    int rc[NSIG], bad = 0;
    for (int sig = 1; sig < NSIG; sig++)
        rc[sig] = sigaction(sig, NULL, &before[sig]);
    start_libumm();
    for (int sig = 1; sig < NSIG; sig++)
        bad += sigaction(sig, NULL, &after[sig]) != rc[sig] || (rc[sig] == 0 && !same_action(&before[sig], &after[sig]));
    return bad ? 1 : 0;
}

static volatile int calls;
static void count(int sig)
{
    (void)sig;
    calls++;
}

static int programs_own(void)
{
    int r = 0, fds[2];
    signal(SIGPIPE, SIG_IGN); /* before libumm starts */
    start_libumm();
    if (pipe(fds) != 0)
        return 0x7f;
    close(fds[0]);
    r |= !(write(fds[1], "x", 1) == -1 && errno == EPIPE);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = count;
    sigaction(SIGUSR2, &sa, NULL);
    kill(getpid(), SIGUSR2);
    r |= (calls != 1) << 1;
    signal(SIGRTMIN + 2, SIG_IGN);
    kill(getpid(), SIGRTMIN + 2);
    r |= (signal(SIGRTMIN + 2, SIG_DFL) != SIG_IGN) << 2;
    return r;
}
static const char *const programs_own_names[] = {
    "SIGPIPE ignored before libumm starts stays ignored: a write to a closed pipe fails with EPIPE",
    "a SIGUSR2 handler installed after libumm starts is called",
    "SIGRTMIN+2 ignored with signal() after libumm starts stays ignored, and reads back so",
};

/* Blocked signals, taken synchronously: the handlers libumm installs for
 * the default action must play no part. */
static int blocked(void)
{
    int r = 0, rt = SIGRTMIN + 3, got = 0;
    start_libumm();
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR1);
    sigaddset(&set, rt);
    sigprocmask(SIG_BLOCK, &set, NULL);

    kill(getpid(), SIGUSR1);
    sigset_t usr1;
    sigemptyset(&usr1);
    sigaddset(&usr1, SIGUSR1);
    r |= !(sigwait(&usr1, &got) == 0 && got == SIGUSR1);

    sigqueue(getpid(), rt, (union sigval){ .sival_int = 41 });
    sigqueue(getpid(), rt, (union sigval){ .sival_int = 42 });
    for (int i = 0; i < 2; i++) {
        siginfo_t si;
        r |= !(sigwaitinfo(&set, &si) == rt && si.si_code == SI_QUEUE && si.si_value.sival_int == 41 + i) << 1;
    }

    int sfd = signalfd(-1, &set, SFD_CLOEXEC);
    kill(getpid(), SIGUSR1);
    sigqueue(getpid(), rt, (union sigval){ .sival_int = 43 });
    struct signalfd_siginfo ssi[2];
    r |= !(read(sfd, ssi, sizeof ssi) == sizeof ssi && ssi[0].ssi_signo == SIGUSR1 && ssi[1].ssi_signo == (unsigned)rt &&
           ssi[1].ssi_int == 43)
         << 2;
    close(sfd);
    struct timespec zero = { 0, 0 };
    r |= !(sigtimedwait(&set, NULL, &zero) == -1 && errno == EAGAIN) << 3;
    return r;
}
static const char *const blocked_names[] = {
    "sigwait() takes a blocked SIGUSR1",
    "sigwaitinfo() takes a blocked SIGRTMIN+3 twice, queued, with its values",
    "a signalfd reads a blocked SIGUSR1 and SIGRTMIN+3",
    "and nothing else is pending",
};

static sigjmp_buf not_for_me;
static void segv_not_for_me(int sig)
{
    (void)sig;
    siglongjmp(not_for_me, 1); /* the trap was replaced: a first touch came here */
}

static int first_touch_still_works(void)
{
    if (sigsetjmp(not_for_me, 1))
        return 0;
    return first_touch_works();
}

/* The C library's other ways to set a disposition must not take the trap
 * away: each installs a program handler for SIGSEGV (or ignores it), and a
 * first touch of a fresh mapping must still work. */
static int others_keep_trap(void)
{
    int r = 0;
    start_libumm();
    sysv_signal(SIGSEGV, segv_not_for_me);
    r |= !first_touch_still_works();
    __sysv_signal(SIGSEGV, segv_not_for_me);
    r |= !first_touch_still_works() << 1;
    sigset(SIGSEGV, segv_not_for_me);
    r |= !first_touch_still_works() << 2;
    ssignal(SIGSEGV, segv_not_for_me);
    r |= !first_touch_still_works() << 3;
    sigignore(SIGSEGV);
    r |= !first_touch_still_works() << 4;
    struct sigaction now;
    sigaction(SIGSEGV, NULL, &now);
    r |= (now.sa_handler != SIG_IGN) << 5;
    return r;
}
static const char *const others_keep_trap_names[] = {
    "sysv_signal(SIGSEGV, h) leaves libumm's trap in place",
    "__sysv_signal(SIGSEGV, h) (signal() of a strict ISO C program) leaves libumm's trap in place",
    "sigset(SIGSEGV, h) leaves libumm's trap in place",
    "ssignal(SIGSEGV, h) leaves libumm's trap in place",
    "sigignore(SIGSEGV) leaves libumm's trap in place",
    "and sigaction() reads back SIG_IGN",
};

/* ... and read back, and set, what they would without libumm. */
static int others_read_back(void)
{
    int r = 0;
    start_libumm();
    struct sigaction now;
    r |= sysv_signal(SIGUSR1, count) != SIG_DFL;
    sigaction(SIGUSR1, NULL, &now);
    r |= !(now.sa_handler == count && (now.sa_flags & SA_RESETHAND)) << 1;
    kill(getpid(), SIGUSR1);
    sigaction(SIGUSR1, NULL, &now);
    r |= !(calls == 1 && now.sa_handler == SIG_DFL) << 2;

    r |= (sigset(SIGHUP, SIG_HOLD) != SIG_DFL) << 3;
    r |= (sigset(SIGHUP, count) != SIG_HOLD) << 4;
    sigignore(SIGINT);
    kill(getpid(), SIGINT);
    r |= (signal(SIGINT, SIG_DFL) != SIG_IGN) << 5;
    siginterrupt(SIGTERM, 1);
    signal(SIGTERM, count);
    sigaction(SIGTERM, NULL, &now);
    r |= ((now.sa_flags & SA_RESTART) != 0) << 6;
    return r;
}
static const char *const others_read_back_names[] = {
    "sysv_signal(SIGUSR1, h) returns SIG_DFL, the disposition before",
    "sigaction() reads back h, with SA_RESETHAND",
    "h is called once, and the disposition is SIG_DFL after",
    "sigset(SIGHUP, SIG_HOLD) returns SIG_DFL",
    "sigset(SIGHUP, h) then returns SIG_HOLD",
    "sigignore(SIGINT) ignores SIGINT, and signal() returns SIG_IGN",
    "after siginterrupt(SIGTERM, 1), signal(SIGTERM, h) sets no SA_RESTART",
};

/* exec resets the program's handlers, and libumm's with them, to SIG_DFL,
 * and keeps SIG_IGN: so a signal the program ignored after libumm started
 * stays ignored in the new image, and one it left at the default (which
 * libumm catches) or gave a handler is at SIG_DFL there. */
static char *self;
static uint64_t ignored_mask(void)
{
    uint64_t mask = 0;
    struct sigaction sa;
    for (int sig = 1; sig < NSIG && sig <= 64; sig++)
        if (sigaction(sig, NULL, &sa) == 0 && sa.sa_handler == SIG_IGN)
            mask |= 1ull << (sig - 1);
    /* Valgrind reads back its own SIGRTMAX as ignored, and hands the new
     * image (run natively) SIG_DFL there: not the program's doing. */
    if (under_valgrind())
        mask &= ~(1ull << (SIGRTMAX - 1));
    return mask;
}

static int execs(void)
{
    char mask[32];
    snprintf(mask, sizeof mask, "%llx", (unsigned long long)(ignored_mask() | 1ull << (SIGRTMIN + 1 - 1)));
    start_libumm();
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = count;
    sigaction(SIGUSR2, &sa, NULL);
    signal(SIGRTMIN + 1, SIG_IGN);
    /* The path, not /proc/self/exe itself: under Valgrind that is Valgrind. */
    char path[4096];
    ssize_t n = readlink("/proc/self/exe", path, sizeof path - 1);
    if (n <= 0)
        return 0x7f;
    path[n] = 0;
    char *args[] = { self, "--ignored-after-exec", mask, NULL };
    execv(path, args);
    return 0x7f;
}
static const char *const execs_names[] = {
    "after exec, SIG_IGN is where the program set it (also after libumm started), SIG_DFL everywhere else",
};

#define N(a) (int)(sizeof a / sizeof a[0])

/* Valgrind (3.19) cannot send some signals to the process itself, with or
 * without libumm: why, or NULL. */
static const char *valgrind_cannot(int sig)
{
    if (!under_valgrind())
        return NULL;
    if (sig == SIGSYS)
        return "Valgrind 3.19 fails an assertion (m_signals.c, async_signalhandler) when a process sends "
               "itself SIGSYS, and exits with status 1";
#ifdef SIGSTKFLT
    if (sig == SIGSTKFLT)
        return "Valgrind 3.19 never delivers a SIGSTKFLT a process sends itself: it waits forever";
#endif
    if (sig == SIGRTMAX)
        return "Valgrind keeps SIGRTMAX for itself (\"the SIGRT32 signal is used internally by Valgrind\"): "
               "a process that sends it to itself waits forever";
    return NULL;
}

static void check_kill(int sig, const char *name)
{
    const char *why = valgrind_cannot(sig);
    if (why) {
        tap_skip(why, "%s: the child died of it as one without libumm does", name);
        tap_skip(why, "%s: both dirty pages reached the file", name);
    } else
        check_death(KILL, sig, name);
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "--ignored-after-exec") == 0) /* the new image of execs() */
        return ignored_mask() == strtoull(argv[2], NULL, 16) ? 0 : 1;
    self = argv[0];
#if defined(__SANITIZE_ADDRESS__)
    /* AddressSanitizer catches fatal signals itself and exits with its own
     * report; this test is about the kernel's default action. */
    if (!getenv("UMM_TEST_NO_ASAN_SIGNALS")) {
        setenv("UMM_TEST_NO_ASAN_SIGNALS", "1", 1);
        setenv("ASAN_OPTIONS", "handle_segv=0:handle_sigbus=0:handle_sigfpe=0:handle_abort=0:handle_sigill=0:"
                               "handle_sigtrap=0",
               1);
        execv("/proc/self/exe", argv);
    }
#else
    (void)argv;
#endif
    setenv("UMM_FLUSH_INTERVAL_MS", "0", 1); /* only the death may write back */
    /* No core files: a child with libumm would dump its whole reserved
     * address space.  The children with and without libumm have the same
     * limit, so the kernel's core bit is still compared. */
    struct rlimit core = { 0, 0 };
    setrlimit(RLIMIT_CORE, &core);

    for (int i = 0; i < N(classic); i++)
        check_kill(classic[i].sig, classic[i].name);
    for (int sig = SIGRTMIN; sig <= SIGRTMAX; sig++) {
        char name[32];
        snprintf(name, sizeof name, "SIGRTMIN+%d", sig - SIGRTMIN);
        check_kill(sig, name);
    }
    check_death(PIPE_WRITE, SIGPIPE, "SIGPIPE from a write to a pipe with no reader");
    check_death(FSIZE_WRITE, SIGXFSZ, "SIGXFSZ from a write past RLIMIT_FSIZE");
    check_death(RESETHAND_RAISE, SIGTERM, "SIGTERM raised again by its SA_RESETHAND handler");

    data_fd = tmpfile_make(4 * PAGE, 7, O_RDONLY, NULL);
    static const char *const readback_names[] = {
        "sigaction() reads back for every signal what it did before libumm started"
    };
    in_child(readback, 1, readback_names);
    in_child(programs_own, N(programs_own_names), programs_own_names);
    in_child(blocked, N(blocked_names), blocked_names);
    in_child(others_keep_trap, N(others_keep_trap_names), others_keep_trap_names);
    in_child(others_read_back, N(others_read_back_names), others_read_back_names);
    in_child(execs, N(execs_names), execs_names);
    close(data_fd);
    check_released();
    return tap_done();
}
