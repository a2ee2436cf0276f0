/* Promise: nothing is lost on a crash.  A child writes to a shared mapping
 * (without msync) and then dies: abort(), a stray pointer (SIGSEGV), a
 * division by zero (SIGFPE), SIGTERM, SIGINT or SIGHUP sent to it, or a
 * SIGBUS past the end of a file.  It dies of that very signal, and the file
 * has the data every time.  A program that installs its own SIGTERM handler
 * keeps it. */
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include "util.h"

enum how { ABORT, STRAY, DIVZERO, TERM, INT, HUP, BUS };
static const char *names[] = { "abort()", "stray pointer", "division by zero", "SIGTERM", "SIGINT", "SIGHUP",
                               "SIGBUS past EOF" };
static const int sigs[] = { SIGABRT, SIGSEGV, SIGFPE, SIGTERM, SIGINT, SIGHUP, SIGBUS };

static volatile int zero, one = 1;

/* A child dies with its mapping still mapped.  Under memcheck each mapping
 * is a block (README, "Using libumm under Valgrind"), so the child keeps a
 * pointer to it to the end, or the leak check calls it lost. */
static void *volatile still_mapped;

/* A real division by zero, so the CPU raises SIGFPE (UBSan must not turn
 * it into its own report: that is the point of the test). */
__attribute__((no_sanitize_undefined, noinline)) static int divide(int a, int b)
{
    return a / b;
}

static void die(enum how how, unsigned char *p)
{
    switch (how) {
    case ABORT: abort();
    case STRAY: {
        volatile char *volatile stray = (volatile char *)(uintptr_t)8;
        vg_expect_fault((const void *)stray, 1);
        *stray = 1;
        break;
    }
    case DIVZERO: { volatile int x = divide(one, zero); (void)x; break; }
    case TERM: kill(getpid(), SIGTERM); break;
    case INT: kill(getpid(), SIGINT); break;
    case HUP: kill(getpid(), SIGHUP); break;
    case BUS: { volatile unsigned char c = p[3 * PAGE]; (void)c; break; } /* the file has 2 pages */
    }
    pause();
}

int main(int argc, char **argv)
{
    (void)argc;
#if defined(__SANITIZE_ADDRESS__)
    /* AddressSanitizer catches fatal faults itself and exits with its own
     * report; this test is about the kernel's default action, so run it
     * with ASan's handlers for those signals off. */
    if (!getenv("UMM_TEST_NO_ASAN_SIGNALS")) {
        setenv("UMM_TEST_NO_ASAN_SIGNALS", "1", 1);
        setenv("ASAN_OPTIONS", "handle_segv=0:handle_sigbus=0:handle_sigfpe=0:handle_abort=0", 1);
        execv("/proc/self/exe", argv);
    }
#else
    (void)argv;
#endif
    setenv("UMM_FLUSH_INTERVAL_MS", "0", 1); /* only the crash may write back */
    for (int how = ABORT; how <= BUS; how++) {
        char path[512];
        int fd = tmpfile_make(2 * PAGE, 31, O_RDWR, path);
        pid_t pid = fork();
        if (pid == 0) {
            unsigned char *p = umm_mmap(NULL, 4 * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
            if (p == MAP_FAILED)
                _exit(100);
            still_mapped = p;
            vg_abrupt_end(); /* it dies with libumm's daemon running */
            /* Valgrind (3.19) restarts a `rep stos` that faulted with one
             * iteration already counted, and compilers inline this memset
             * as one: the page's first fault must come from a plain store
             * there, or a byte of the memset is lost before libumm sees it. */
            if (under_valgrind())
                *(volatile unsigned char *)(p + 100) = 0xA5;
            memset(p + 100, 0xA5, 50);
            p[PAGE + 7] = 0x5A;
            die((enum how)how, p);
            _exit(101);
        }
        int status = 0;
        waitpid(pid, &status, 0);
        ok(WIFSIGNALED(status) && WTERMSIG(status) == sigs[how], "%s: the child died of signal %d (status %#x)",
           names[how], sigs[how], status);
        unsigned char buf[2 * PAGE];
        read_file(fd, buf, sizeof buf, 0);
        int bad = 0;
        for (int i = 100; i < 150; i++)
            bad += buf[i] != 0xA5;
        is_int(bad, 0, "%s: the first dirty page reached the file", names[how]);
        is_int(buf[PAGE + 7], 0x5A, "%s: the second dirty page reached the file", names[how]);
        is_int(buf[PAGE + 8], pattern(PAGE + 8, 31), "%s: the rest of the file is untouched", names[how]);
        close(fd);
        unlink(path);
    }

    /* A program's own handler for SIGTERM stays the program's. */
    pid_t pid = fork();
    if (pid == 0) {
        still_mapped = umm_mmap(NULL, PAGE, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        signal(SIGTERM, SIG_IGN);
        kill(getpid(), SIGTERM);
        struct sigaction cur;
        sigaction(SIGTERM, NULL, &cur);
        vg_abrupt_end(); /* _exit with libumm's daemon running */
        _exit(cur.sa_handler == SIG_IGN ? 0 : 1);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    ok(WIFEXITED(status) && WEXITSTATUS(status) == 0, "SIGTERM ignored by the program stays ignored (status %#x)",
       status);
    check_released();
    return tap_done();
}
