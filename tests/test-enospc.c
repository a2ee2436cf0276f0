/* Promise: a full file system is met at the store, as under the kernel.
 * Shared-writable pages of a sparse file on a small tmpfs: the store that
 * needs a block the file system cannot give raises SIGBUS (the kernel's
 * page fault fails the same way), on the kernel and on libumm at the same
 * page; every page stored before it reaches the file.  And when write-back
 * fails all the same at exit (here: the file made immutable after it was
 * dirtied), libumm says so on stderr, naming the file, instead of losing
 * the pages silently.
 *
 * Needs root (a tmpfs mounted in a mount namespace of the test's own, and
 * the immutable attribute); skipped elsewhere, saying which. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <sched.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <unistd.h>
#include "util.h"

#define FS_PAGES 256              /* the tmpfs: 1 MiB */
#define FILE_PAGES (2 * FS_PAGES) /* the sparse file: twice that */

static sigjmp_buf jb;
static void on_bus(int sig)
{
    (void)sig;
    siglongjmp(jb, 1);
}

/* Store one byte in every page until SIGBUS; returns the page that raised
 * it (FILE_PAGES if none did).  volatile: the stores must happen in order. */
static long store_until_sigbus(volatile unsigned char *p)
{
    volatile long i = 0;
    struct sigaction sa, old;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_bus;
    sigaction(SIGBUS, &sa, &old);
    if (sigsetjmp(jb, 1) == 0)
        for (i = 0; i < FILE_PAGES; i++)
            p[i * PAGE + 1] = (unsigned char)(i * 7 + 1);
    sigaction(SIGBUS, &old, NULL);
    return i;
}

static int fill_tmpfs(const char *dir, int umm, long *bus_page, long *bad)
{
    char path[512];
    snprintf(path, sizeof path, "%s/sparse-%d", dir, umm);
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    if (fd < 0 || ftruncate(fd, (off_t)FILE_PAGES * PAGE) != 0)
        return -1;
    size_t len = (size_t)FILE_PAGES * PAGE;
    unsigned char *p = umm ? umm_mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)
                           : mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED)
        return -1;
    *bus_page = store_until_sigbus(p);
    int rc = umm ? umm_msync(p, len, MS_SYNC) : msync(p, len, MS_SYNC);
    umm ? umm_munmap(p, len) : munmap(p, len);
    *bad = 0;
    for (long i = 0; i < *bus_page; i++) {
        unsigned char b = 0;
        if (pread(fd, &b, 1, (off_t)i * PAGE + 1) != 1 || b != (unsigned char)(i * 7 + 1))
            (*bad)++;
    }
    close(fd);
    unlink(path);
    return rc;
}

static int set_immutable(const char *path, int on)
{
    int fd = open(path, O_RDONLY), flags = 0, rc = -1;
    if (fd >= 0 && ioctl(fd, FS_IOC_GETFLAGS, &flags) == 0) {
        flags = on ? flags | FS_IMMUTABLE_FL : flags & ~FS_IMMUTABLE_FL;
        rc = ioctl(fd, FS_IOC_SETFLAGS, &flags);
    }
    if (fd >= 0)
        close(fd);
    return rc;
}

/* A child dirties a page, the file becomes immutable, the child exits:
 * what does it say on stderr? */
static void failed_writeback_is_reported(void)
{
    char path[512];
    int fd = tmpfile_make(2 * PAGE, 9, O_RDWR, path);
    int out[2];
    if (pipe(out) != 0)
        tap_bail("pipe");
    int probe = set_immutable(path, 1);
    set_immutable(path, 0);
    if (probe != 0) {
        tap_skip("cannot set the immutable attribute here (needs root and ext4/xfs/btrfs)",
                 "a failed write-back at exit is reported");
        close(fd);
        unlink(path);
        return;
    }
    pid_t pid = fork();
    if (pid == 0) {
        tap_quiet();
        dup2(out[1], 2);
        unsigned char *p = umm_mmap(NULL, 2 * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        p[5] = 0x99;
        set_immutable(path, 1);
        exit(0);
    }
    close(out[1]);
    char msg[4096] = { 0 };
    size_t got = 0;
    for (ssize_t n; got < sizeof msg - 1 && (n = read(out[0], msg + got, sizeof msg - 1 - got)) > 0;)
        got += (size_t)n;
    close(out[0]);
    waitpid(pid, NULL, 0);
    set_immutable(path, 0);
    ok(strstr(msg, path) && strstr(msg, "could not be written back"),
       "a write-back that fails at exit is reported on stderr, naming the file");
    tap_diag("it said: %s", msg);
    close(fd);
    unlink(path);
}

int main(void)
{
    failed_writeback_is_reported();

    /* A tmpfs of our own, in a mount namespace of our own: it goes with
     * the process whatever happens. */
    char dir[512];
    const char *base = getenv("UMM_TEST_TMPDIR");
    snprintf(dir, sizeof dir, "%s/enospc-XXXXXX", base ? base : "/tmp");
    if (!mkdtemp(dir))
        tap_bail("mkdtemp: %s", strerror(errno));
    char opts[64];
    snprintf(opts, sizeof opts, "size=%d", FS_PAGES * PAGE);
    if (unshare(CLONE_NEWNS) != 0 || mount("none", "/", "none", MS_REC | MS_PRIVATE, NULL) /* names ignored: Valgrind wants them */ != 0 ||
        mount("tmpfs", dir, "tmpfs", 0, opts) != 0) {
        rmdir(dir);
        tap_skip("cannot mount a small tmpfs here (needs root)", "ENOSPC at the store");
        check_released();
        return tap_done();
    }
    long kpage = -1, upage = -1, kbad = -1, ubad = -1;
    int krc = fill_tmpfs(dir, 0, &kpage, &kbad);
    int urc = fill_tmpfs(dir, 1, &upage, &ubad);
    umount(dir);
    rmdir(dir);
    ok(kpage > 0 && kpage < FILE_PAGES, "kernel: a store raised SIGBUS, at page %ld of %d", kpage, FILE_PAGES);
    ok(upage > 0 && upage < FILE_PAGES, "libumm: a store raised SIGBUS, at page %ld of %d", upage, FILE_PAGES);
    ok(upage >= kpage - 2 && upage <= kpage + 2, "libumm: at the kernel's page (%ld), give or take two: %ld",
       kpage, upage);
    is_int(krc, 0, "kernel: msync of what was stored");
    is_int(urc, 0, "libumm: msync of what was stored");
    is_int(kbad, 0, "kernel: every page stored before the SIGBUS is in the file");
    is_int(ubad, 0, "libumm: every page stored before the SIGBUS is in the file");
    check_released();
    return tap_done();
}
