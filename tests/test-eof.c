/* Promise: the end of the file behaves as in the kernel, for MAP_SHARED and
 * MAP_PRIVATE.  The partial last page reads as zeros beyond the end of the
 * file; bytes written there stay in memory but never reach the file, and
 * write-back never extends it.  A page wholly beyond the end raises SIGBUS
 * (BUS_ADRERR) in the program, with si_addr the address touched, for reads
 * and writes; once the file is extended with ftruncate, that page is
 * accessible and shows the file.  Each sequence runs against the kernel and
 * against libumm; the results, page states and file bytes must agree. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <unistd.h>
#include "kcmp.h"

#define SEED 40
#define SIZE (PAGE + 100) /* a page and a bit */

struct trace {
    int inside_ok, tail_zero;      /* the partial page */
    int wrote_tail;                /* memory keeps the byte written beyond EOF */
    int msync_rc, munmap_rc;
    long size_after_msync, size_after_munmap;
    unsigned char file[2 * PAGE];  /* whole pages of the file afterwards (zeros beyond its size) */
    int sig_read, sig_write, sig_read_far; /* whole pages beyond EOF */
    int ftruncate_rc;
    int after_extend_read, after_extend_write, extended_bytes;
    long final_size;
    unsigned char final_file[3 * PAGE];
};

static void scenario(const struct mm_ops *ops, int flags, struct trace *t)
{
    int shared = (flags & MAP_TYPE) == MAP_SHARED;
    int fd = tmpfile_make(SIZE, SEED, O_RDWR, NULL);
    unsigned char *p = ops->mmap(NULL, 2 * PAGE, PROT_READ | PROT_WRITE, flags, fd, 0);
    if (p == MAP_FAILED)
        tap_bail("%s: mmap: %s", ops->name, strerror(errno));
    t->inside_ok = diff_pattern(p, SIZE, 0, SEED) == 0;
    t->tail_zero = 1;
    for (size_t i = SIZE; i < 2 * PAGE; i++)
        t->tail_zero &= p[i] == 0;
    p[PAGE + 50] = 0x55;  /* inside the file */
    p[PAGE + 200] = 0x77; /* beyond its end, in the last page */
    p[2 * PAGE - 1] = 0x78;
    t->wrote_tail = p[PAGE + 200] == 0x77 && p[2 * PAGE - 1] == 0x78;
    t->msync_rc = ops->msync(p, 2 * PAGE, MS_SYNC);
    t->size_after_msync = file_bytes(fd, t->file, sizeof t->file);
    t->munmap_rc = ops->munmap(p, 2 * PAGE);
    memset(t->file, 0, sizeof t->file);
    t->size_after_munmap = file_bytes(fd, t->file, sizeof t->file);
    close(fd);

    /* Whole pages beyond the end, then the file grows. */
    fd = tmpfile_make(SIZE, SEED, O_RDWR, NULL);
    p = ops->mmap(NULL, 4 * PAGE, PROT_READ | PROT_WRITE, flags, fd, 0);
    if (p == MAP_FAILED)
        tap_bail("%s: mmap: %s", ops->name, strerror(errno));
    t->sig_read = probe_read(p + 2 * PAGE + 8);
    t->sig_write = probe_write(p + 2 * PAGE + 16);
    t->sig_read_far = probe_read(p + 3 * PAGE + 4095);
    t->ftruncate_rc = ftruncate(fd, 3 * PAGE);
    unsigned char b = 0x99;
    if (pwrite(fd, &b, 1, 2 * PAGE + 9) != 1)
        tap_bail("pwrite: %s", strerror(errno));
    t->after_extend_read = probe_read(p + 2 * PAGE + 8);
    t->extended_bytes = p[2 * PAGE + 8] == 0 && p[2 * PAGE + 9] == 0x99;
    t->after_extend_write = probe_write(p + 2 * PAGE + 8);
    p[2 * PAGE + 10] = 0x44;
    if (shared)
        ops->msync(p, 3 * PAGE, MS_SYNC);
    ops->munmap(p, 4 * PAGE);
    memset(t->final_file, 0, sizeof t->final_file);
    t->final_size = file_bytes(fd, t->final_file, sizeof t->final_file);
    close(fd);
}

/*
 * Read-ahead stops at the end of the file, counted in file pages: a
 * mapping at a file offset, read in order up to the file's last page,
 * reads no page past the end (the window is clamped with the file page,
 * not the mapping's page index, which would read a window of zeros past
 * the end; mutant 18).  The file: 8 pages; the mapping: from page 4, 32
 * pages long.  Returns the pages libumm read.
 */
static uint64_t offset_readahead(void)
{
    char path[512];
    int fd = tmpfile_make(8 * PAGE, SEED + 1, O_RDONLY, path);
    if (fd < 0)
        return UINT64_MAX;
    unsigned char *p = umm_mmap(NULL, 32 * PAGE, PROT_READ, MAP_SHARED, fd, 4 * PAGE);
    uint64_t before = stat_get("pages_read"), bad = 0;
    for (uint64_t i = 0; p != MAP_FAILED && i < 4; i++)
        bad |= p[i * PAGE] != pattern((4 + i) * PAGE, SEED + 1);
    uint64_t read = stat_get("pages_read") - before;
    if (p == MAP_FAILED || bad)
        read = UINT64_MAX;
    if (p != MAP_FAILED)
        umm_munmap(p, 32 * PAGE);
    close(fd);
    unlink(path);
    return read;
}

int main(void)
{
    static const int flags[2] = { MAP_SHARED, MAP_PRIVATE };
    static const char *const what[2] = { "MAP_SHARED", "MAP_PRIVATE" };
    for (int i = 0; i < 2; i++) {
        static struct trace k, u;
        memset(&k, 0, sizeof k);
        memset(&u, 0, sizeof u);
        scenario(&kernel_ops, flags[i], &k);
        scenario(&umm_ops, flags[i], &u);
        const char *w = what[i];
        ok(k.inside_ok && k.tail_zero && k.sig_read == ACC_SIGBUS && k.size_after_munmap == SIZE,
           "%s kernel: behaves as the test expects (the test is right)", w);
        ok(u.inside_ok, "%s: the partial last page shows the file", w);
        ok(u.tail_zero, "%s: and zeros beyond its end", w);
        ok(u.wrote_tail, "%s: bytes written beyond the end stay in memory", w);
        is_int(u.msync_rc, k.msync_rc, "%s: msync returns as the kernel", w);
        is_int(u.size_after_msync, SIZE, "%s: msync does not extend the file", w);
        is_int(u.munmap_rc, k.munmap_rc, "%s: munmap returns as the kernel", w);
        is_int(u.size_after_munmap, SIZE, "%s: munmap does not extend the file", w);
        ok(memcmp(u.file, k.file, sizeof k.file) == 0, "%s: the file holds the bytes the kernel's does", w);
        is_int(u.file[PAGE + 50], k.file[PAGE + 50], "%s: the write inside the file: as the kernel", w);
        is_int(u.sig_read, ACC_SIGBUS, "%s: reading a page beyond the end raises SIGBUS at the address", w);
        is_int(u.sig_write, k.sig_write, "%s: writing there raises what the kernel raises", w);
        is_int(u.sig_read_far, k.sig_read_far, "%s: the last byte of the mapping: as the kernel", w);
        is_int(u.ftruncate_rc, 0, "%s: the file is extended", w);
        is_int(k.after_extend_read, ACC_OK, "%s kernel: the page is accessible after ftruncate (the test is right)", w);
        is_int(u.after_extend_read, ACC_OK, "%s: the page is accessible after ftruncate", w);
        ok(u.extended_bytes, "%s: and shows the file (zeros, and what write(2) put there)", w);
        is_int(u.after_extend_write, k.after_extend_write, "%s: writable as in the kernel", w);
        is_int(u.final_size, k.final_size, "%s: the file's final size is the kernel's", w);
        ok(memcmp(u.final_file, k.final_file, sizeof k.final_file) == 0, "%s: its final bytes are the kernel's", w);
    }
    uint64_t read = offset_readahead();
    ok(read <= 4, "a mapping at file page 4 of an 8-page file, read in order: %llu pages read, none past the end",
       (unsigned long long)read);
    check_released();
    return tap_done();
}
