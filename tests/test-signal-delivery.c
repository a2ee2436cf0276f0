/* Promise: a fault that is not libumm's reaches the program's handler as
 * the kernel would deliver it: with the mask the kernel would set (the
 * interrupted mask, the handler's sa_mask, the signal itself unless
 * SA_NODEFER), so a handler that leaves with plain longjmp leaves the same
 * mask behind; and SA_RESETHAND resets the handler.  Each scenario runs in a
 * child that never starts libumm (the kernel's delivery) and in one that
 * has started it, and the results are compared. */
#include <fcntl.h>
#include <setjmp.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>
#include "util.h"

static jmp_buf plain;
static volatile int calls;

static void on_segv(int sig)
{
    (void)sig;
    calls++;
    longjmp(plain, 1); /* not siglongjmp: the mask stays as delivery set it */
}

struct result {
    int blocked_segv, blocked_usr1, blocked_usr2, calls, reset_to_dfl;
};

static struct result scenario(int start_libumm, int flags)
{
    struct result r;
    memset(&r, 0, sizeof r);
    if (start_libumm) {
        void *m = umm_mmap(NULL, PAGE, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        umm_munmap(m, PAGE);
    }
    sigset_t none;
    sigemptyset(&none);
    sigaddset(&none, SIGUSR2); /* blocked before the fault: must stay blocked */
    sigprocmask(SIG_SETMASK, &none, NULL);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_segv;
    sa.sa_flags = flags;
    sigemptyset(&sa.sa_mask);
    sigaddset(&sa.sa_mask, SIGUSR1);
    sigaction(SIGSEGV, &sa, NULL);
    char *foreign = mmap(NULL, PAGE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    vg_expect_fault(foreign, 1);
    if (setjmp(plain) == 0)
        *(volatile char *)foreign = 1;
    sigset_t now;
    sigprocmask(SIG_SETMASK, NULL, &now);
    r.blocked_segv = sigismember(&now, SIGSEGV);
    r.blocked_usr1 = sigismember(&now, SIGUSR1);
    r.blocked_usr2 = sigismember(&now, SIGUSR2);
    r.calls = calls;
    struct sigaction cur;
    sigaction(SIGSEGV, NULL, &cur);
    r.reset_to_dfl = cur.sa_handler == SIG_DFL;
    return r;
}

static struct result in_child(int start_libumm, int flags)
{
    int fds[2];
    struct result r;
    memset(&r, 0xff, sizeof r);
    if (pipe(fds) != 0)
        tap_bail("pipe");
    pid_t pid = fork();
    if (pid == 0) {
        struct result c = scenario(start_libumm, flags);
        (void)!write(fds[1], &c, sizeof c);
        vg_abrupt_end(); /* _exit with libumm's daemon running */
        _exit(0);
    }
    close(fds[1]);
    if (read(fds[0], &r, sizeof r) != sizeof r)
        tap_diag("child gave no result");
    close(fds[0]);
    waitpid(pid, NULL, 0);
    return r;
}

int main(void)
{
    static const struct { int flags; const char *name; } cases[] = {
        { 0, "plain handler" },
        { SA_NODEFER, "SA_NODEFER" },
        { SA_RESETHAND, "SA_RESETHAND" },
    };
    for (unsigned i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct result k = in_child(0, cases[i].flags), u = in_child(1, cases[i].flags);
        is_int(k.calls, 1, "%s: the kernel called the handler once", cases[i].name);
        is_int(u.calls, k.calls, "%s: so did libumm", cases[i].name);
        is_int(u.blocked_segv, k.blocked_segv, "%s: SIGSEGV blocked after longjmp as under the kernel (%d)",
               cases[i].name, k.blocked_segv);
        if ((cases[i].flags & SA_NODEFER) && under_valgrind())
            tap_skip("Valgrind's signal delivery leaves sa_mask out for an SA_NODEFER handler (Linux applies it)",
                     "%s: sa_mask applied as under the kernel", cases[i].name);
        else
            is_int(u.blocked_usr1, k.blocked_usr1, "%s: sa_mask applied as under the kernel (%d)", cases[i].name,
                   k.blocked_usr1);
        is_int(u.blocked_usr2, k.blocked_usr2, "%s: the interrupted mask kept (%d)", cases[i].name,
               k.blocked_usr2);
        is_int(u.reset_to_dfl, k.reset_to_dfl, "%s: handler reset as under the kernel (%d)", cases[i].name,
               k.reset_to_dfl);
    }
    check_released();
    return tap_done();
}
