/* Promise: the program's file-size limit (RLIMIT_FSIZE, ulimit -f) is the
 * program's, not libumm's.  libumm starts under a limit smaller than its
 * RAM without dying of SIGXFSZ; and with a limit set after a file was
 * mapped, smaller than the file, msync and exit write back pages inside
 * the file as the kernel's page cache does (returns 0, no SIGXFSZ), on the
 * kernel and on libumm alike.  Each case runs in a child, whose death by
 * SIGXFSZ is what is checked. */
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

#define MIB (1024 * 1024)

static void limit(rlim_t bytes)
{
    struct rlimit rl = { bytes, bytes };
    if (setrlimit(RLIMIT_FSIZE, &rl) != 0)
        _exit(90);
}

/* Run fn in a child; its exit status as the parent sees it. */
static int in_child(int (*fn)(int), int arg)
{
    pid_t pid = fork();
    if (pid == 0) {
        tap_quiet();
        vg_abrupt_end();
        _exit(fn(arg));
    }
    int status = 0;
    waitpid(pid, &status, 0);
    return status;
}

/* libumm's first call under a 1 MiB limit.  (libumm's RAM is then as
 * large as the limit: README.) */
static int start_under_limit(int unused)
{
    (void)unused;
    limit(MIB);
    size_t len = MIB / 2;
    unsigned char *p = umm_mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return 1;
    for (size_t i = 0; i < len; i += PAGE)
        p[i] = (unsigned char)(i >> 12);
    for (size_t i = 0; i < len; i += PAGE)
        if (p[i] != (unsigned char)(i >> 12))
            return 2;
    return umm_munmap(p, len) == 0 ? 0 : 3;
}

static char path[512];
static int fd;

/* A 4 MiB file mapped private and read; then a 64 KiB limit; a store to
 * every page copies it (copy-on-write into libumm's frames, whose place in
 * its memfd is far past the limit): no SIGXFSZ, as in the kernel. */
static int private_write_under_limit(int unused)
{
    (void)unused;
    size_t len = 4 * MIB;
    unsigned char *p = umm_mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED)
        return 10;
    unsigned long s = 0;
    for (size_t i = 0; i < len; i += PAGE)
        s += p[i];
    limit(64 * 1024);
    for (size_t i = 0; i < len; i += PAGE)
        p[i] = (unsigned char)(s + i);
    for (size_t i = 0; i < len; i += PAGE)
        if (p[i] != (unsigned char)(s + i) || p[i + 1] != pattern(i + 1, 24))
            return 11;
    return umm_munmap(p, len) == 0 ? 0 : 12;
}

/* A 4 MiB file mapped shared; then a 1 MiB limit; stores below and past
 * the limit; msync (how & 1) or exit (write-back at exit) with SIGXFSZ
 * ignored (how & 2) or not.  umm: how & 4. */
static int write_back_under_limit(int how)
{
    int umm = how & 4;
    if (how & 2)
        signal(SIGXFSZ, SIG_IGN);
    size_t len = 4 * MIB;
    unsigned char *p = umm ? umm_mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)
                           : mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED)
        return 10;
    limit(MIB);
    p[MIB / 2] = 0x51;
    p[3 * MIB + 5] = 0x52;
    if (how & 1) {
        int rc = umm ? umm_msync(p, len, MS_SYNC) : msync(p, len, MS_SYNC);
        if (rc != 0)
            return 20 + errno % 20;
    }
    exit(0); /* exit(), not _exit(): libumm writes back at exit */
}

int main(void)
{
    int st = in_child(start_under_limit, 0);
    ok(WIFEXITED(st) && WEXITSTATUS(st) == 0, "libumm starts under a 1 MiB file-size limit (status %#x%s)", st,
       WIFSIGNALED(st) && WTERMSIG(st) == SIGXFSZ ? ": SIGXFSZ" : "");

    for (int how = 0; how < 8; how++) {
        const char *who = how & 4 ? "libumm" : "kernel";
        const char *when = how & 1 ? "msync" : "exit";
        const char *ign = how & 2 ? ", SIGXFSZ ignored" : "";
        fd = tmpfile_make(4 * MIB, 23, O_RDWR, path);
        st = in_child(write_back_under_limit, how);
        ok(WIFEXITED(st) && WEXITSTATUS(st) == 0, "%s: write-back at %s under a limit below the file%s (status %#x)",
           who, when, ign, st);
        unsigned char a[1], b[1];
        read_file(fd, a, 1, MIB / 2);
        read_file(fd, b, 1, 3 * MIB + 5);
        ok(a[0] == 0x51 && b[0] == 0x52, "%s: %s: the file has both stores (below and past the limit)%s", who,
           when, ign);
        close(fd);
        unlink(path);
    }
    fd = tmpfile_make(4 * MIB, 24, O_RDONLY, path);
    st = in_child(private_write_under_limit, 0);
    ok(WIFEXITED(st) && WEXITSTATUS(st) == 0,
       "libumm: private writes under a 64 KiB limit copy every page, no SIGXFSZ (status %#x%s)", st,
       WIFSIGNALED(st) && WTERMSIG(st) == SIGXFSZ ? ": SIGXFSZ" : "");
    close(fd);
    unlink(path);
    check_released();
    return tap_done();
}
