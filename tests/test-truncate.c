/* Promise (README, difference 1): a truncation from outside the process
 * family (here the raw system call, which libumm does not stand in front
 * of; the C library's ftruncate takes effect at once: test-fileio) is a
 * write by other means.  After it shrinks a mapped file, a page past the new
 * end that was not resident raises SIGBUS (as in the kernel); one that was
 * resident stays readable until msync(MS_INVALIDATE), after which it raises
 * SIGBUS too. */
#include <fcntl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include "util.h"

/* The same after fork, when libumm cannot drop a page another process may
 * map and refreshes it in place instead: a page past the new end must
 * still raise SIGBUS after MS_INVALIDATE, in this process and in a child
 * that maps it too, and read zeros (not the old bytes) once the file grows
 * back. */
static void after_fork(int child_stays)
{
    const char *how = child_stays ? "child mapping it" : "child gone";
    char path[512];
    int fd = tmpfile_make(8 * PAGE, 72, O_RDWR, path);
    unsigned char *p = umm_mmap(NULL, 8 * PAGE, PROT_READ, MAP_SHARED, fd, 0);
    is_int(p[6 * PAGE], pattern(6 * PAGE, 72), "%s: page 6 resident before the fork", how);
    int go[2], done[2];
    if (pipe(go) != 0 || pipe(done) != 0)
        tap_bail("pipe");
    pid_t pid = fork();
    if (pid == 0) {
        tap_quiet();
        vg_abrupt_end(); /* _exit with libumm's daemon running */
        char c;
        int code, bad = 0;
        void *addr;
        if (child_stays) {
            bad |= (p[6 * PAGE] != pattern(6 * PAGE, 72)) << 1;
            bad |= write(done[1], "r", 1) != 1; /* resident here too */
            bad |= read(go[0], &c, 1) != 1;    /* the parent truncated */
            bad |= (umm_msync(p, 8 * PAGE, MS_INVALIDATE) != 0) << 2;
            bad |= (catch_signal(touch_read, p + 6 * PAGE, &code, &addr) != SIGBUS) << 3;
            bad |= write(done[1], "x", 1) != 1;
        }
        _exit(bad);
    }
    char c;
    if (!child_stays)
        waitpid(pid, NULL, 0);
    else if (read(done[0], &c, 1) != 1)
        tap_bail("the child did not start");
    is_int(syscall(SYS_ftruncate, fd, 4 * PAGE), 0, "%s: the file shrinks to 4 pages (from outside)", how);
    is_int(umm_msync(p, 8 * PAGE, MS_INVALIDATE), 0, "%s: msync(MS_INVALIDATE)", how);
    int code, status = 0;
    void *addr;
    is_int(catch_signal(touch_read, p + 6 * PAGE, &code, &addr), SIGBUS,
           "%s: the resident page past the new end raises SIGBUS", how);
    is_int(p[3 * PAGE + 1], pattern(3 * PAGE + 1, 72), "%s: pages inside the file still read", how);
    if (child_stays) {
        ok(write(go[1], "x", 1) == 1 && read(done[0], &c, 1) == 1, "%s: the child checked", how);
        waitpid(pid, &status, 0);
        ok(WIFEXITED(status) && WEXITSTATUS(status) == 0,
           "%s: in the child too, after its own MS_INVALIDATE, SIGBUS (status %#x)", how, status);
    }
    is_int(syscall(SYS_ftruncate, fd, 8 * PAGE), 0, "%s: the file grows back to 8 pages (from outside)", how);
    is_int(p[6 * PAGE + 9], 0, "%s: page 6 now reads the file's zeros, not its old bytes", how);
    /* A cut inside a resident page: the frame is read again in place
     * (another process may map it), and its tail past the new end must read
     * zeros, as the kernel's truncation leaves it -- not the old bytes. */
    is_int(p[2 * PAGE + 200], pattern(2 * PAGE + 200, 72), "%s: page 2 resident", how);
    is_int(syscall(SYS_ftruncate, fd, 2 * PAGE + 100), 0, "%s: the file shrinks into page 2 (from outside)", how);
    is_int(umm_msync(p, 3 * PAGE, MS_INVALIDATE), 0, "%s: msync(MS_INVALIDATE)", how);
    is_int(p[2 * PAGE + 99], pattern(2 * PAGE + 99, 72), "%s: page 2 keeps its bytes before the new end", how);
    is_int(p[2 * PAGE + 200], 0, "%s: and reads zeros past it, not the old bytes", how);
    is_int(umm_munmap(p, 8 * PAGE), 0, "%s: umm_munmap", how);
    close(go[0]), close(go[1]), close(done[0]), close(done[1]);
    close(fd);
    unlink(path);
}

int main(void)
{
    char path[512];
    int fd = tmpfile_make(8 * PAGE, 71, O_RDWR, path);
    unsigned char *p = umm_mmap(NULL, 8 * PAGE, PROT_READ, MAP_SHARED, fd, 0);
    ok(p != MAP_FAILED, "a shared mapping of 8 pages");
    is_int(p[6 * PAGE], pattern(6 * PAGE, 71), "page 6 made resident");
    is_int(syscall(SYS_ftruncate, fd, 4 * PAGE), 0, "the file shrinks to 4 pages (from outside)");
    int code;
    void *addr;
    is_int(catch_signal(touch_read, p + 5 * PAGE, &code, &addr), SIGBUS,
           "a page past the new end that was not resident: SIGBUS");
    ok(addr == p + 5 * PAGE, "at its address");
    is_int(catch_signal(touch_read, p + 6 * PAGE, &code, &addr), 0,
           "the resident page past the new end still reads (documented difference)");
    is_int(umm_msync(p, 8 * PAGE, MS_INVALIDATE), 0, "msync(MS_INVALIDATE)");
    is_int(catch_signal(touch_read, p + 6 * PAGE, &code, &addr), SIGBUS, "then it raises SIGBUS too");
    is_int(p[3 * PAGE + 1], pattern(3 * PAGE + 1, 71), "pages inside the file still read");
    is_int(umm_munmap(p, 8 * PAGE), 0, "umm_munmap");
    close(fd);
    unlink(path);
    after_fork(0);
    after_fork(1);
    check_released();
    return tap_done();
}
