/* Promise: writes through a MAP_SHARED mapping reach the file when the
 * process exits without umm_msync or umm_munmap, whether it calls exit(),
 * _exit() or _Exit(), or returns from main, as they do with the kernel's mmap; a page written
 * again after an msync is written again.  Each child maps, writes and
 * exits; the parent, which has not started libumm, checks the file. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>
#include "kcmp.h"

#define SEED 42
#define N 6

/* The child's work: two mappings of the file, writes, an msync, more
 * writes.  Returns 0, or 2 if a call failed.  The child still holds the
 * mappings when it exits (not a leak for memcheck, which sees them). */
static int child_writes(const struct mm_ops *ops, int fd)
{
    static unsigned char *p, *q;
    tap_quiet();
    p = ops->mmap(NULL, N * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    q = ops->mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 5 * PAGE);
    if (p == MAP_FAILED || q == MAP_FAILED)
        return 2;
    p[7] = 0x10;
    if (ops->msync(p, N * PAGE, MS_SYNC) != 0)
        return 2;
    p[7] = 0x11; /* the same page, written again after msync */
    memset(p + 2 * PAGE, 0x22, 3000);
    p[4 * PAGE + 4095] = 0x33;
    q[100] = 0x44; /* through the second mapping */
    return 0;
}

static void expected(unsigned char *want)
{
    for (size_t i = 0; i < N * PAGE; i++)
        want[i] = pattern(i, SEED);
    want[7] = 0x11;
    memset(want + 2 * PAGE, 0x22, 3000);
    want[4 * PAGE + 4095] = 0x33;
    want[5 * PAGE + 100] = 0x44;
}

static int wait_child(pid_t pid)
{
    int status;
    if (pid < 0)
        tap_bail("fork: %s", strerror(errno));
    waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 100 + WTERMSIG(status);
}

int main(void)
{
    static unsigned char k[N * PAGE], u[N * PAGE], want[N * PAGE];
    expected(want);
    fflush(stdout);

    /* The kernel: the child calls exit(). */
    int fd = tmpfile_make(N * PAGE, SEED, O_RDWR, NULL);
    pid_t pid = fork();
    if (pid == 0)
        exit(child_writes(&kernel_ops, fd));
    is_int(wait_child(pid), 0, "kernel: the child exits normally");
    read_file(fd, k, sizeof k, 0);
    close(fd);
    ok(memcmp(k, want, sizeof want) == 0, "kernel: its writes are in the file (the test is right)");

    /* libumm: the child calls exit(). */
    fd = tmpfile_make(N * PAGE, SEED, O_RDWR, NULL);
    pid = fork();
    if (pid == 0)
        exit(child_writes(&umm_ops, fd));
    is_int(wait_child(pid), 0, "libumm: the child maps, writes and calls exit() without munmap");
    read_file(fd, u, sizeof u, 0);
    close(fd);
    ok(memcmp(u, want, sizeof want) == 0, "its writes are in the file");
    ok(memcmp(u, k, sizeof k) == 0, "the file holds what the kernel's child left");

    /* libumm: the child returns from main. */
    fd = tmpfile_make(N * PAGE, SEED, O_RDWR, NULL);
    pid = fork();
    if (pid == 0)
        return child_writes(&umm_ops, fd);
    is_int(wait_child(pid), 0, "libumm: the child maps, writes and returns from main");
    memset(u, 0, sizeof u);
    read_file(fd, u, sizeof u, 0);
    close(fd);
    ok(memcmp(u, want, sizeof want) == 0, "its writes are in the file");

    /* libumm: the child ends with _exit(2) or _Exit, which run no exit
     * handler: libumm stands in front of them (README difference 4). */
    for (int way = 0; way < 2; way++) {
        fd = tmpfile_make(N * PAGE, SEED, O_RDWR, NULL);
        pid = fork();
        if (pid == 0) {
            int rc = child_writes(&umm_ops, fd);
            vg_abrupt_end(); /* libumm's daemon thread still runs (util.h) */
            if (way == 0)
                _exit(rc);
            _Exit(rc);
        }
        is_int(wait_child(pid), 0, "libumm: the child maps, writes and calls %s", way ? "_Exit" : "_exit");
        memset(u, 0, sizeof u);
        read_file(fd, u, sizeof u, 0);
        close(fd);
        ok(memcmp(u, want, sizeof want) == 0, "its writes are in the file");
    }

    /* The parent never started libumm: nothing of the children's is here. */
    check_released();
    return tap_done();
}
