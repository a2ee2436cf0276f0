/* Promise: a program's POSIX record locks (fcntl F_SETLK, lockf) are never
 * dropped by libumm.  POSIX drops every lock a process holds on a file when
 * it closes *any* descriptor of that file, so libumm must not close its own
 * descriptor for a locked file: not at the last umm_munmap, not when a
 * umm_mmap is refused, not when a read-write descriptor replaces its
 * read-only one.  Each case runs on the kernel's mmap and on libumm's, and
 * another process asks the kernel who holds the lock. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>
#include "util.h"

static int use_umm;
static const char *side(void)
{
    return use_umm ? "libumm" : "kernel";
}

static void *map(void *a, size_t len, int prot, int flags, int fd, off_t off)
{
    return use_umm ? umm_mmap(a, len, prot, flags, fd, off) : mmap(a, len, prot, flags, fd, off);
}

static int unmap(void *a, size_t len)
{
    return use_umm ? umm_munmap(a, len) : munmap(a, len);
}

/* Does this process hold a write lock on byte 0 of path?  A child asks:
 * F_GETLK in another process reports our lock, with our pid.  (Asking from
 * here would need a descriptor, and closing it would drop the lock.) */
static int locked_by_me(const char *path)
{
    pid_t me = getpid(), pid = fork();
    if (pid == 0) {
        tap_quiet();
        vg_abrupt_end(); /* _exit with libumm's daemon running */
        int fd = open(path, O_RDONLY);
        struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0 };
        int held = fd >= 0 && fcntl(fd, F_GETLK, &fl) == 0 && fl.l_type == F_WRLCK && fl.l_pid == me;
        _exit(held ? 0 : 1);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

static int lock(int fd, int type)
{
    struct flock fl = { .l_type = (short)type, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0 };
    return fcntl(fd, F_SETLK, &fl);
}

static int count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    int n = 0;
    for (struct dirent *e; (e = readdir(d));)
        n += e->d_name[0] != '.';
    closedir(d);
    return n - 1; /* the directory's own */
}

/* The last mapping of a locked file goes. */
static void last_unmap(int shared)
{
    char path[512];
    int fd = tmpfile_make(4 * PAGE, 3, O_RDWR, path);
    ok(lock(fd, F_WRLCK) == 0, "%s: lock taken", side());
    unsigned char *p = map(NULL, 4 * PAGE, PROT_READ | PROT_WRITE, shared ? MAP_SHARED : MAP_PRIVATE, fd, 0);
    ok(p != MAP_FAILED, "%s: mapped", side());
    p[5] = 0x77;
    p[3 * PAGE] = 0x78;
    is_int(unmap(p, 4 * PAGE), 0, "%s: unmapped", side());
    ok(locked_by_me(path), "%s: %s mapping unmapped: the lock is still held", side(),
       shared ? "shared" : "private");
    unsigned char b[1];
    read_file(fd, b, 1, 5);
    is_int(b[0], shared ? 0x77 : pattern(5, 3), "%s: the file has the mapping's bytes", side());
    close(fd);
    unlink(path);
}

/* A lock taken while the file is mapped, then the mapping goes. */
static void lock_while_mapped(void)
{
    char path[512];
    int fd = tmpfile_make(PAGE, 4, O_RDONLY, path);
    unsigned char *p = map(NULL, PAGE, PROT_READ, MAP_SHARED, fd, 0);
    ok(p != MAP_FAILED, "%s: mapped", side());
    int rfd = open(path, O_RDWR);
    ok(lockf(rfd, F_LOCK, 0) == 0, "%s: lockf taken", side());
    is_int(p[1], pattern(1, 4), "%s: byte read", side());
    is_int(unmap(p, PAGE), 0, "%s: unmapped", side());
    ok(locked_by_me(path), "%s: lockf lock held after the last unmap", side());
    close(rfd);
    close(fd);
    unlink(path);
}

/* A read-only descriptor maps first, then a read-write one: libumm needs a
 * writable descriptor of its own from then on. */
static void writable_arrives(void)
{
    char path[512];
    int ro = tmpfile_make(2 * PAGE, 5, O_RDONLY, path);
    int rw = open(path, O_RDWR);
    ok(lock(rw, F_WRLCK) == 0, "%s: lock taken", side());
    unsigned char *a = map(NULL, 2 * PAGE, PROT_READ, MAP_SHARED, ro, 0);
    unsigned char *b = map(NULL, 2 * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, rw, 0);
    ok(a != MAP_FAILED && b != MAP_FAILED, "%s: mapped read-only, then read-write", side());
    ok(locked_by_me(path), "%s: the lock is held after the read-write mapping", side());
    b[10] = 0x42;
    is_int(a[10], 0x42, "%s: both mappings show the write", side());
    unmap(a, 2 * PAGE);
    unmap(b, 2 * PAGE);
    ok(locked_by_me(path), "%s: and after both are unmapped", side());
    unsigned char c[1];
    read_file(rw, c, 1, 10);
    is_int(c[0], 0x42, "%s: the write reached the file", side());
    close(ro);
    close(rw);
    unlink(path);
}

/* A umm_mmap refused after libumm found the file: far more than libumm's
 * frame space (UMM_FRAME_SPACE below) of a private mapping.  The kernel's mmap of the same
 * succeeds; either way the lock stays. */
static void refused(void)
{
    char path[512];
    int fd = tmpfile_make(PAGE, 6, O_RDWR, path);
    ok(lock(fd, F_WRLCK) == 0, "%s: lock taken", side());
    size_t len = (size_t)1 << 30;
    void *p = map(NULL, len, PROT_READ, MAP_PRIVATE | MAP_NORESERVE, fd, 0);
    if (p != MAP_FAILED)
        unmap(p, len);
    else
        tap_diag("%s: the 1 GiB mapping was refused (%s)", side(), strerror(errno));
    ok(locked_by_me(path), "%s: the lock is held after a 1 GiB umm_mmap %s", side(),
       p == MAP_FAILED ? "refused" : "made");
    close(fd);
    unlink(path);
}

/* A call of the family: libumm closes the descriptors it kept for locks
 * that are gone. */
static void settle(void)
{
    void *q = map(NULL, PAGE, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    unmap(q, PAGE);
}

/* Mapping and unmapping a locked file again and again keeps one spare
 * descriptor at most, and once the lock goes libumm's descriptor goes. */
static void no_descriptor_piles_up(void)
{
    char path[512];
    int fd = tmpfile_make(PAGE, 8, O_RDWR, path);
    settle(); /* the earlier cases' files were closed, their locks gone */
    int before = count_fds();
    ok(lock(fd, F_WRLCK) == 0, "%s: lock taken", side());
    int most = 0;
    for (int i = 0; i < 50; i++) {
        unsigned char *p = map(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        p[0] = (unsigned char)i;
        unmap(p, PAGE);
        int n = count_fds() - before;
        most = n > most ? n : most;
    }
    ok(most <= 1, "%s: 50 map/unmap cycles under a lock: at most %d descriptor kept", side(), most);
    ok(locked_by_me(path), "%s: the lock is held after 50 cycles", side());
    ok(lock(fd, F_UNLCK) == 0, "%s: unlocked", side());
    settle();
    is_int(count_fds() - before, 0, "%s: no descriptor left once the lock is gone", side());
    close(fd);
    unlink(path);
}

int main(void)
{
    setenv("UMM_FRAME_SPACE", "64M", 1); /* for refused() */
    for (use_umm = 0; use_umm < 2; use_umm++) {
        last_unmap(1);
        last_unmap(0);
        lock_while_mapped();
        writable_arrives();
        refused();
        no_descriptor_piles_up();
    }
    check_released();
    return tap_done();
}
