/* Promise: a SIGSEGV or SIGBUS that is not a fault on a libumm page -- one
 * sent with raise(), kill() or sigqueue() (si_code <= 0) -- gets exactly
 * the disposition the program set, as under the kernel.  Left at the
 * default, it ends the process (the same wait status as a child without
 * libumm), and the dirty shared pages reach the file first.  Ignored,
 * nothing happens, and libumm's trap stays: a later first touch of a fresh
 * mapping still works.  With a handler, the handler is called once, with
 * the sender's si_code, and the trap stays too.  And a real fault elsewhere
 * with SIGSEGV ignored still ends the process, as the kernel does. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>
#include "util.h"

enum send { RAISE, KILL, QUEUE, STRAY };
static const char *const send_names[] = { "raise", "kill", "sigqueue", "a real fault elsewhere" };
static const int send_codes[] = { SI_TKILL, SI_USER, SI_QUEUE };

/* A child dies with its mapping still mapped.  Under memcheck each mapping
 * is a block (README, "Using libumm under Valgrind"), so the child keeps a
 * pointer to it to the end, or the leak check calls it lost. */
static void *volatile still_mapped;
static int data_fd; /* four pages of pattern 7, for first touches */

static int send_it(enum send how, int sig)
{
    switch (how) {
    case RAISE: return raise(sig);
    case KILL: return kill(getpid(), sig);
    case QUEUE: return sigqueue(getpid(), sig, (union sigval){ .sival_int = 77 });
    case STRAY: {
        volatile char *foreign = mmap(NULL, PAGE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        vg_expect_fault((const void *)foreign, 1);
        *foreign = 1;
        return 0;
    }
    }
    return -1;
}

/* A first touch of a fresh libumm mapping: 1 if it reads the file's byte. */
static int first_touch_works(void)
{
    unsigned char *p = umm_mmap(NULL, 4 * PAGE, PROT_READ, MAP_PRIVATE, data_fd, 0);
    if (p == MAP_FAILED)
        return 0;
    int good = p[2 * PAGE + 5] == pattern(2 * PAGE + 5, 7);
    return umm_munmap(p, 4 * PAGE) == 0 && good;
}

/* A page past the end of its file, touched once (a real SIGBUS, caught);
 * then the file grows.  libumm's SIGBUS trap maps the page back at the next
 * touch, as the kernel would have it: so it needs the trap. */
static unsigned char *volatile armed;
static void arm_past_eof(void)
{
    int fd = tmpfile_make(PAGE, 9, O_RDWR, NULL);
    armed = umm_mmap(NULL, 2 * PAGE, PROT_READ, MAP_SHARED, fd, 0);
    if (armed == MAP_FAILED || catch_signal(touch_read, armed + PAGE, NULL, NULL) != SIGBUS ||
        ftruncate(fd, 2 * PAGE) != 0)
        _exit(100);
}

/* libumm's traps are in place: a first touch works, and so does a touch of
 * the page past the end once the file has grown. */
static int traps_work(void)
{
    return first_touch_works() && armed[PAGE + 3] == 0;
}

/* Dirty two pages of fd (two pages of pattern 31) through libumm. */
static void dirty(int fd)
{
    unsigned char *p = umm_mmap(NULL, 2 * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED)
        _exit(100);
    still_mapped = p;
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

/* A child that sends sig the way `how` says with disposition disp (SIG_DFL
 * or SIG_IGN), having dirtied two pages of fd through libumm if
 * with_libumm; its wait status.  If it lives on, it exits 2 with SIG_DFL
 * (it should not have lived), else 0 if libumm's traps then work, 1 if not. */
static int child(enum send how, int sig, void (*disp)(int), int fd, int with_libumm)
{
    pid_t pid = fork();
    if (pid == 0) {
        if (with_libumm) {
            dirty(fd);
            arm_past_eof();
            vg_abrupt_end(); /* it dies or exits with libumm's daemon running */
        }
        signal(sig, disp);
        send_it(how, sig);
        if (disp == SIG_DFL)
            _exit(2);
        _exit(with_libumm && !traps_work());
    }
    return wait_for(pid);
}

static void check_default(enum send how, int sig, const char *name)
{
    char path[512];
    int fd = tmpfile_make(2 * PAGE, 31, O_RDWR, path);
    int kernel = child(how, sig, SIG_DFL, fd, 0);
    int status = child(how, sig, SIG_DFL, fd, 1);
    ok(WIFSIGNALED(status) && WTERMSIG(status) == sig && status == kernel,
       "%s by %s, default action: the child died of it as one without libumm does (status %#x, without "
       "libumm %#x)",
       name, send_names[how], status, kernel);
    unsigned char buf[2 * PAGE];
    read_file(fd, buf, sizeof buf, 0);
    int bad = 0;
    for (int i = 100; i < 150; i++)
        bad += buf[i] != 0xA5;
    bad += buf[PAGE + 7] != 0x5A;
    bad += buf[PAGE + 8] != pattern(PAGE + 8, 31) || buf[99] != pattern(99, 31);
    ok(bad == 0, "%s by %s, default action: both dirty pages reached the file (%d bytes wrong)", name,
       send_names[how], bad);
    close(fd);
    unlink(path);
}

static void check_ignored(enum send how, int sig, const char *name)
{
    char path[512];
    int fd = tmpfile_make(2 * PAGE, 31, O_RDWR, path);
    int status = child(how, sig, SIG_IGN, fd, 1);
    ok(WIFEXITED(status), "%s by %s, ignored: the child lives on (status %#x)", name, send_names[how], status);
    ok(WIFEXITED(status) && WEXITSTATUS(status) == 0,
       "%s by %s, ignored: libumm's traps stay (a first touch, a page past the end of a file grown since)", name,
       send_names[how]);
    close(fd);
    unlink(path);
}

static volatile int calls, code, value;
static void on_signal(int sig, siginfo_t *si, void *uc)
{
    (void)sig;
    (void)uc;
    calls++;
    code = si->si_code;
    value = si->si_value.sival_int;
}

/* Bit 0: not called once with the sender's si_code (and value);
 * bit 1: libumm's traps do not work afterwards. */
static int handled(enum send how, int sig)
{
    arm_past_eof();
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_signal;
    sa.sa_flags = SA_SIGINFO;
    sigaction(sig, &sa, NULL);
    send_it(how, sig);
    int r = !(calls == 1 && code == send_codes[how] && (how != QUEUE || value == 77));
    return r | !traps_work() << 1;
}

static void check_handled(enum send how, int sig, const char *name)
{
    pid_t pid = fork();
    if (pid == 0) {
        int r = handled(how, sig);
        vg_abrupt_end(); /* _exit with libumm's daemon running */
        _exit(r);
    }
    int status = wait_for(pid);
    ok(WIFEXITED(status) && !(WEXITSTATUS(status) & 1),
       "%s by %s, with a handler: it is called once, with si_code %d (status %#x)", name, send_names[how],
       send_codes[how], status);
    ok(WIFEXITED(status) && !(WEXITSTATUS(status) & 2), "%s by %s, with a handler: libumm's traps stay", name,
       send_names[how]);
}

/* A real fault elsewhere cannot be ignored: the kernel ends the process. */
static void check_stray_ignored(void)
{
    char path[512];
    int fd = tmpfile_make(2 * PAGE, 31, O_RDWR, path);
    int kernel = child(STRAY, SIGSEGV, SIG_IGN, fd, 0);
    int status = child(STRAY, SIGSEGV, SIG_IGN, fd, 1);
    ok(WIFSIGNALED(status) && WTERMSIG(status) == SIGSEGV && status == kernel,
       "a real fault elsewhere with SIGSEGV ignored: the child died of SIGSEGV as one without libumm does "
       "(status %#x, without libumm %#x)",
       status, kernel);
    close(fd);
    unlink(path);
}

int main(int argc, char **argv)
{
    (void)argc;
#if defined(__SANITIZE_ADDRESS__)
    /* AddressSanitizer catches SIGSEGV and SIGBUS itself and exits with its
     * own report; this test is about the kernel's default action. */
    if (!getenv("UMM_TEST_NO_ASAN_SIGNALS")) {
        setenv("UMM_TEST_NO_ASAN_SIGNALS", "1", 1);
        setenv("ASAN_OPTIONS", "handle_segv=0:handle_sigbus=0", 1);
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
    data_fd = tmpfile_make(4 * PAGE, 7, O_RDONLY, NULL);

    static const int sigs[] = { SIGSEGV, SIGBUS };
    static const char *const names[] = { "SIGSEGV", "SIGBUS" };
    for (int i = 0; i < 2; i++)
        for (enum send how = RAISE; how <= QUEUE; how++) {
            if (how == QUEUE && under_valgrind()) {
                for (int k = 0; k < 6; k++)
                    tap_skip("Valgrind 3.19 never delivers a signal a process sends itself with sigqueue() to its "
                             "handler or default action (not even SIGUSR1)",
                             "%s by sigqueue (%d of 6)", names[i], k + 1);
                continue;
            }
            check_default(how, sigs[i], names[i]);
            check_ignored(how, sigs[i], names[i]);
            check_handled(how, sigs[i], names[i]);
        }
    check_stray_ignored();
    close(data_fd);
    check_released();
    return tap_done();
}
