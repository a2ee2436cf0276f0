/* Promise: writes through a MAP_SHARED mapping reach the file: all of them
 * by the time umm_msync(MS_SYNC) returns, and all of them by the time
 * umm_munmap returns (including writes made after the last msync), with
 * the file's size unchanged.  The same writes through the kernel's mmap
 * leave the same bytes in a twin file.  A mapping at a file offset writes
 * to that offset. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <unistd.h>
#include "kcmp.h"

#define SEED 41
#define N 8

struct trace {
    int msync_rc, munmap_rc;
    int after_msync_ok;   /* the file held every write when msync returned */
    int after_munmap_ok;  /* and the later ones when munmap returned */
    long size;
    unsigned char file[N * PAGE];
};

/* The writes: a few bytes in some pages, a whole page, a run across a
 * page boundary. */
static void write_round1(unsigned char *p)
{
    p[0] = 0x01;
    p[3 * PAGE + 17] = 0x02;
    memset(p + 5 * PAGE, 0xab, PAGE);
    memset(p + 6 * PAGE - 10, 0xcd, 20);
}
static void write_round2(unsigned char *p)
{
    p[1] = 0x03;
    p[7 * PAGE + 4095] = 0x04;
    p[2 * PAGE + 100] = 0x05;
}

static int file_matches(int fd, int rounds)
{
    unsigned char want[N * PAGE], got[N * PAGE];
    for (size_t i = 0; i < sizeof want; i++)
        want[i] = pattern(i, SEED);
    write_round1(want);
    if (rounds > 1)
        write_round2(want);
    return read_file(fd, got, sizeof got, 0) == 0 && memcmp(want, got, sizeof want) == 0;
}

static void scenario(const struct mm_ops *ops, struct trace *t)
{
    int fd = tmpfile_make(N * PAGE, SEED, O_RDWR, NULL);
    unsigned char *p = ops->mmap(NULL, N * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED)
        tap_bail("%s: mmap: %s", ops->name, strerror(errno));
    write_round1(p);
    t->msync_rc = ops->msync(p, N * PAGE, MS_SYNC);
    t->after_msync_ok = file_matches(fd, 1);
    write_round2(p);
    t->munmap_rc = ops->munmap(p, N * PAGE);
    t->after_munmap_ok = file_matches(fd, 2);
    t->size = file_bytes(fd, t->file, sizeof t->file);
    close(fd);
}

int main(void)
{
    static struct trace k, u;
    scenario(&kernel_ops, &k);
    scenario(&umm_ops, &u);
    ok(k.after_msync_ok && k.after_munmap_ok, "kernel: the writes are in the file (the test is right)");
    is_int(u.msync_rc, 0, "umm_msync(MS_SYNC)");
    ok(u.after_msync_ok, "every write was in the file when umm_msync returned");
    is_int(u.munmap_rc, 0, "umm_munmap");
    ok(u.after_munmap_ok, "the writes made after msync were in the file when umm_munmap returned");
    is_int(u.size, k.size, "the file keeps its size");
    ok(memcmp(u.file, k.file, sizeof k.file) == 0, "the file holds the bytes the kernel left in its twin");

    /* A mapping at an offset writes at that offset. */
    int fd = tmpfile_make(N * PAGE, SEED, O_RDWR, NULL);
    unsigned char *q = umm_mmap(NULL, 2 * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 4 * PAGE);
    ok(q != MAP_FAILED, "a mapping at offset 4 pages");
    q[PAGE + 9] = 0xee;
    is_int(umm_munmap(q, 2 * PAGE), 0, "umm_munmap");
    unsigned char c = 0, before = 0, after = 0;
    read_file(fd, &c, 1, 5 * PAGE + 9);
    read_file(fd, &before, 1, PAGE + 9);
    read_file(fd, &after, 1, 7 * PAGE + 9);
    is_int(c, 0xee, "the write reached the file at offset + 1 page + 9");
    ok(before == pattern(PAGE + 9, SEED) && after == pattern(7 * PAGE + 9, SEED), "and nowhere else");
    close(fd);
    check_released();
    return tap_done();
}
