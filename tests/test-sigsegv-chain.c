/* Promise: faults that are not libumm's reach the program's own handler
 * (installed after libumm) with the real address, or the default action at
 * the real instruction; libumm's own faults keep working meanwhile. */
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>
#include "util.h"

static volatile int mine;
static void my_handler(int sig, siginfo_t *si, void *uc)
{
    (void)sig; (void)si; (void)uc;
    mine++;
}

int main(void)
{
    int fd = tmpfile_make(64 * PAGE, 10, O_RDONLY, NULL);
    unsigned char *p = umm_mmap(NULL, 64 * PAGE, PROT_READ, MAP_PRIVATE, fd, 0);
    ok(p != MAP_FAILED, "umm_mmap (libumm is started)");

    /* The program installs its handler after libumm. */
    struct sigaction sa, back;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = my_handler;
    sa.sa_flags = SA_SIGINFO;
    is_int(sigaction(SIGSEGV, &sa, NULL), 0, "program installs a SIGSEGV handler");
    is_int(sigaction(SIGSEGV, NULL, &back), 0, "and reads it back");
    ok(back.sa_sigaction == my_handler, "the program sees its own handler");
    is_int(p[2 * PAGE + 9], pattern(2 * PAGE + 9, 10), "libumm faults still work");
    is_int(mine, 0, "the program's handler was not called for them");

    /* A foreign fault goes to the program's handler. */
    char *foreign = mmap(NULL, PAGE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    int code;
    void *addr;
    int sig = catch_signal(touch_read, foreign + 7, &code, &addr);
    is_int(sig, SIGSEGV, "a foreign fault reaches the program's handler");
    ok(addr == foreign + 7, "with the real address");
    is_int(code, SEGV_ACCERR, "and the real si_code");
    siginfo_t si;
    memset(&si, 0, sizeof si);
    si.si_code = SEGV_ACCERR;
    si.si_addr = foreign;
    is_int(umm_handle_fault(SIGSEGV, &si, NULL), 0, "umm_handle_fault declines a foreign address");
    /* Forwarded by hand, a fault on a libumm page is handled.  Page 40:
     * 160 KiB from page 2, so neither read-ahead (not sequential) nor
     * read-around (another 128 KiB cluster, nothing of it cached) reads
     * more than the page. */
    uint64_t r0 = stat_get("pages_read");
    si.si_addr = p + 40 * PAGE + 1;
    is_int(umm_handle_fault(SIGSEGV, &si, NULL), 1, "umm_handle_fault handles a libumm address");
    is_int(stat_get("pages_read") - r0, 1, "and read its page");
    is_int(p[40 * PAGE + 1], pattern(40 * PAGE + 1, 10), "which is now resident with the file's bytes");

    /* Default action: a child crashes on a foreign page. */
    signal(SIGSEGV, SIG_DFL);
    pid_t pid = fork();
    if (pid == 0) {
        volatile unsigned char c = p[PAGE]; /* libumm fault first */
        (void)c;
        vg_abrupt_end();                     /* it dies with libumm's daemon running */
        vg_expect_fault(foreign, 1);
        *(volatile char *)foreign = 1;       /* then a real crash */
        _exit(0);
    }
    int status;
    waitpid(pid, &status, 0);
    ok(WIFSIGNALED(status) && WTERMSIG(status) == SIGSEGV, "a real crash still dies of SIGSEGV (status %#x)", status);
    munmap(foreign, PAGE);
    is_int(umm_munmap(p, 64 * PAGE), 0, "umm_munmap");
    close(fd);
    check_released();
    return tap_done();
}
