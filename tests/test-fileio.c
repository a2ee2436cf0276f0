/* Promise: one file, one truth.  The program's own read()/write() (and
 * pread, readv, pwritev..., ftruncate, fallocate, fsync, copy_file_range,
 * sendfile, open O_TRUNC) and its mappings of the same file see the same
 * bytes at once, as with the kernel's single page cache; a buffer in
 * libumm memory needs no umm_prefault.  Every case runs on the kernel's
 * mmap and on libumm's and must give the same answers. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/sendfile.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>
#include "util.h"

#define SEED 61
#define N 8

static int umm;
static const char *who(void) { return umm ? "libumm" : "kernel"; }
static unsigned char *map(size_t len, int prot, int flags, int fd)
{
    return umm ? umm_mmap(NULL, len, prot, flags, fd, 0) : mmap(NULL, len, prot, flags, fd, 0);
}
static void unmap(void *p, size_t len) { umm ? umm_munmap(p, len) : munmap(p, len); }
static int sync_(void *p, size_t len, int fl) { return umm ? umm_msync(p, len, fl) : msync(p, len, fl); }

/* Make a page resident (a read the compiler cannot drop). */
static void touch(const unsigned char *p)
{
    (void)*(const volatile unsigned char *)p;
}

/* What the file itself holds (the system call, not the C library's). */
static unsigned char on_disk(int fd, off_t off)
{
    unsigned char c = 0;
    read_file(fd, &c, 1, off);
    return c;
}

static void write_then_map_sees(void)
{
    int fd = tmpfile_make(N * PAGE, SEED, O_RDWR, NULL);
    unsigned char *s = map(N * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd);
    unsigned char *r = map(N * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd);
    is_int(s[PAGE + 1] + r[PAGE + 2], pattern(PAGE + 1, SEED) + pattern(PAGE + 2, SEED), "%s: pages resident", who());
    is_int(pwrite(fd, "\x11\x22", 2, PAGE + 1), 2, "%s: pwrite into resident pages", who());
    ok(s[PAGE + 1] == 0x11 && s[PAGE + 2] == 0x22, "%s: the shared mapping sees it at once", who());
    is_int(r[PAGE + 2], 0x22, "%s: so does a private mapping's page not yet copied", who());
    lseek(fd, 3 * PAGE - 1, SEEK_SET);
    is_int(write(fd, "\x33\x44", 2), 2, "%s: write() across a page boundary", who());
    ok(s[3 * PAGE - 1] == 0x33 && s[3 * PAGE] == 0x44, "%s: both pages show it", who());
    struct iovec v[2] = { { "\x55", 1 }, { "\x66\x77", 2 } };
    is_int(pwritev(fd, v, 2, 5 * PAGE), 3, "%s: pwritev", who());
    ok(s[5 * PAGE] == 0x55 && s[5 * PAGE + 2] == 0x77, "%s: the mapping shows pwritev's bytes", who());
    r[6 * PAGE] = 0x99; /* a private copy is the mapping's own: later writes do not reach it */
    pwrite(fd, "\x12", 1, 6 * PAGE);
    is_int(r[6 * PAGE], 0x99, "%s: a private copy keeps its own byte", who());
    is_int(s[6 * PAGE], 0x12, "%s: the shared mapping has the file's", who());
    unmap(s, N * PAGE);
    unmap(r, N * PAGE);
    close(fd);
}

static void store_then_read_sees(void)
{
    int fd = tmpfile_make(N * PAGE, SEED, O_RDWR, NULL);
    unsigned char *s = map(N * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd);
    s[2 * PAGE + 7] = 0xA1;
    s[4 * PAGE] = 0xA2;
    unsigned char b[3] = { 0 };
    is_int(pread(fd, b, 1, 2 * PAGE + 7), 1, "%s: pread", who());
    is_int(b[0], 0xA1, "%s: pread sees a store not yet written back", who());
    struct iovec v[2] = { { b, 1 }, { b + 1, 2 } };
    is_int(preadv(fd, v, 2, 4 * PAGE - 1), 3, "%s: preadv across pages", who());
    ok(b[0] == pattern(4 * PAGE - 1, SEED) && b[1] == 0xA2 && b[2] == pattern(4 * PAGE + 1, SEED),
       "%s: preadv sees it too", who());
    lseek(fd, 2 * PAGE + 7, SEEK_SET);
    is_int(read(fd, b, 1) == 1 && b[0] == 0xA1, 1, "%s: read() sees it", who());
    /* A pwrite into a dirty page: msync must keep both. */
    pwrite(fd, "\xB1", 1, 2 * PAGE + 9);
    is_int(sync_(s, N * PAGE, MS_SYNC), 0, "%s: msync", who());
    ok(on_disk(fd, 2 * PAGE + 7) == 0xA1 && on_disk(fd, 2 * PAGE + 9) == 0xB1,
       "%s: the file has the store and the pwrite into the same page", who());
    s[7 * PAGE + 3] = 0xC1;
    is_int(fsync(fd), 0, "%s: fsync", who());
    if (umm) /* the kernel's page cache has it, fsync or not */
        is_int(on_disk(fd, 7 * PAGE + 3), 0xC1, "%s: fsync writes the mapping's dirty page back", who());
    unmap(s, N * PAGE);
    close(fd);
}

static void truncation_at_once(void)
{
    int fd = tmpfile_make(N * PAGE, SEED, O_RDWR, NULL);
    unsigned char *s = map(N * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd);
    touch(s + 6 * PAGE);
    s[5 * PAGE] = 1; /* dirty, then cut off */
    is_int(ftruncate(fd, 3 * PAGE + 100), 0, "%s: ftruncate to 3 pages and 100 bytes", who());
    int code;
    void *addr;
    is_int(catch_signal(touch_read, s + 6 * PAGE, &code, &addr), SIGBUS, "%s: a resident page past the end: SIGBUS at once", who());
    is_int(catch_signal(touch_read, s + 5 * PAGE, &code, &addr), SIGBUS, "%s: a dirty one too", who());
    is_int(s[3 * PAGE + 100], 0, "%s: the last page reads zeros past the end", who());
    is_int(s[3 * PAGE + 99], pattern(3 * PAGE + 99, SEED), "%s: and the file before it", who());
    is_int(ftruncate(fd, N * PAGE), 0, "%s: the file grows back", who());
    is_int(s[6 * PAGE + 1], 0, "%s: the page reads zeros, not its old bytes", who());
    is_int(s[5 * PAGE], 0, "%s: the dirty byte cut off is gone", who());
    unmap(s, N * PAGE);
    char path[512];
    close(fd);
    fd = tmpfile_make(N * PAGE, SEED, O_RDWR, path);
    s = map(N * PAGE, PROT_READ, MAP_SHARED, fd);
    touch(s + 2 * PAGE);
    int t = open(path, O_WRONLY | O_TRUNC);
    is_int(catch_signal(touch_read, s + 2 * PAGE, &code, &addr), SIGBUS, "%s: open(O_TRUNC) truncates the mapping too", who());
    close(t);
    unmap(s, N * PAGE);
    close(fd);
    unlink(path);
}

static void append_and_holes(void)
{
    char path[512];
    int fd = tmpfile_make(2 * PAGE + 10, SEED, O_RDWR, path);
    unsigned char *s = map(4 * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd);
    touch(s + 2 * PAGE);
    int a = open(path, O_WRONLY | O_APPEND);
    is_int(write(a, "\xD1\xD2", 2), 2, "%s: O_APPEND write", who());
    ok(s[2 * PAGE + 10] == 0xD1 && s[2 * PAGE + 11] == 0xD2, "%s: the mapping sees the appended bytes", who());
    close(a);
    s[PAGE + 5] = 0xE1;
    is_int(fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, PAGE, PAGE), 0, "%s: punch a hole", who());
    ok(s[PAGE + 5] == 0 && s[PAGE + 6] == 0, "%s: the mapping reads the hole's zeros", who());
    unmap(s, 4 * PAGE);
    close(fd);
    unlink(path);
}

static void copies(void)
{
    int src = tmpfile_make(4 * PAGE, SEED, O_RDWR, NULL);
    int dst = tmpfile_make(4 * PAGE, SEED + 1, O_RDWR, NULL);
    unsigned char *s = map(4 * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, src);
    unsigned char *d = map(4 * PAGE, PROT_READ, MAP_SHARED, dst);
    s[10] = 0xF1;
    touch(d + PAGE);
    loff_t in = 0, out = PAGE;
    is_int(copy_file_range(src, &in, dst, &out, 100, 0), 100, "%s: copy_file_range", who());
    is_int(d[PAGE + 10], 0xF1, "%s: the copy has the source's store, and the destination's mapping shows it", who());
    s[2 * PAGE] = 0xF2;
    off_t off = 2 * PAGE;
    lseek(dst, 3 * PAGE, SEEK_SET);
    touch(d + 3 * PAGE);
    is_int(sendfile(dst, src, &off, 10), 10, "%s: sendfile", who());
    is_int(d[3 * PAGE], 0xF2, "%s: sendfile copied the store, the mapping shows it", who());
    unmap(s, 4 * PAGE);
    unmap(d, 4 * PAGE);
    close(src);
    close(dst);
}

/* Buffers in the mappings themselves: no umm_prefault needed. */
static void buffers(void)
{
    int src = tmpfile_make(4 * PAGE, SEED + 2, O_RDONLY, NULL);
    int sink = tmpfile_sparse(0, O_RDWR, NULL);
    int fd = tmpfile_make(4 * PAGE, SEED, O_RDWR, NULL);
    unsigned char *p = map(4 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd);
    unsigned char *a = map(4 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1);
    unsigned char *s = map(4 * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd);
    is_int(pread(src, p, 2 * PAGE, 0), 2 * PAGE, "%s: pread into a fresh private file mapping", who());
    is_int(p[PAGE + 3], pattern(PAGE + 3, SEED + 2), "%s: the bytes arrived", who());
    is_int(read(src, a, 3 * PAGE), 3 * PAGE, "%s: read into fresh anonymous memory", who());
    touch(s + PAGE); /* clean and resident: write-protected for dirty tracking under libumm */
    is_int(pread(src, s + PAGE, 100, 0), 100, "%s: pread into a clean shared page", who());
    is_int(sync_(s, 4 * PAGE, MS_SYNC), 0, "%s: msync", who());
    is_int(on_disk(fd, PAGE + 50), pattern(50, SEED + 2), "%s: it was dirtied and written back", who());
    is_int(pwrite(sink, p + 3 * PAGE, PAGE, 0), PAGE, "%s: pwrite from a page not yet touched", who());
    is_int(on_disk(sink, 7), pattern(3 * PAGE + 7, SEED), "%s: wrote the file's bytes", who());
    struct iovec v[2] = { { a + 3 * PAGE, 10 }, { p + 2 * PAGE + PAGE - 5, 10 } };
    is_int(pwritev(sink, v, 2, 0), 20, "%s: pwritev from two mappings", who());
    int pfd[2];
    if (pipe(pfd) != 0)
        tap_bail("pipe");
    is_int(write(pfd[1], a + 3 * PAGE + 1, 5), 5, "%s: write to a pipe from fresh anonymous memory", who());
    is_int(read(pfd[0], a + PAGE, 5), 5, "%s: read from a pipe", who());
    close(pfd[0]);
    close(pfd[1]);
    unmap(p, 4 * PAGE);
    unmap(a, 4 * PAGE);
    unmap(s, 4 * PAGE);
    close(src);
    close(sink);
    close(fd);
}

/* A child's write(2) is seen by the parent's mapping (one page cache for
 * the family). */
static void family(void)
{
    int fd = tmpfile_make(2 * PAGE, SEED, O_RDWR, NULL);
    unsigned char *s = map(2 * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd);
    touch(s + PAGE);
    pid_t pid = fork();
    if (pid == 0) {
        tap_quiet();
        vg_abrupt_end(); /* _exit with libumm's daemon running */
        _exit(pwrite(fd, "\x5A", 1, PAGE + 3) == 1 ? 0 : 1);
    }
    int st;
    waitpid(pid, &st, 0);
    is_int(s[PAGE + 3], 0x5A, "%s: the parent's mapping sees the child's pwrite", who());
    s[4] = 0x6B;
    pid = fork();
    if (pid == 0) {
        tap_quiet();
        vg_abrupt_end();
        unsigned char c = 0;
        _exit(pread(fd, &c, 1, 4) == 1 && c == 0x6B ? 0 : 1);
    }
    waitpid(pid, &st, 0);
    ok(WIFEXITED(st) && WEXITSTATUS(st) == 0, "%s: the child's pread sees the parent's store", who());
    unmap(s, 2 * PAGE);
    close(fd);
}

/* UMM_FILEIO=0: libumm leaves the C library's calls alone (the old
 * difference: a write(2) reaches resident pages only after MS_INVALIDATE);
 * umm_pwrite() still does it by name. */
static int fileio_off(void)
{
    int fd = tmpfile_make(PAGE, SEED, O_RDWR, NULL);
    unsigned char *s = umm_mmap(NULL, PAGE, PROT_READ, MAP_SHARED, fd, 0);
    touch(s + 0);
    pwrite(fd, "\x01", 1, 0);
    int stale = s[0] == pattern(0, SEED);
    umm_pwrite(fd, "\x02", 1, 1);
    int named = s[1] == 2;
    umm_munmap(s, PAGE);
    return stale && named ? 0 : 1;
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "off") == 0)
        return fileio_off();
    for (umm = 0; umm < 2; umm++) {
        write_then_map_sees();
        store_then_read_sees();
        truncation_at_once();
        append_and_holes();
        copies();
        buffers();
        family();
    }
    pid_t pid = fork();
    if (pid == 0) {
        setenv("UMM_FILEIO", "0", 1);
        /* argv[0], not /proc/self/exe, which under Valgrind is Valgrind. */
        execl(argv[0], argv[0], "off", (char *)NULL);
        execl("/proc/self/exe", argv[0], "off", (char *)NULL);
        _exit(127);
    }
    int st;
    waitpid(pid, &st, 0);
    ok(WIFEXITED(st) && WEXITSTATUS(st) == 0,
       "UMM_FILEIO=0: pwrite leaves resident pages alone, umm_pwrite does not (status %#x)", st);
    check_released();
    return tap_done();
}
