/* Promise: a length that is not a multiple of the page size is rounded up,
 * as by the kernel, in umm_mmap, umm_munmap, umm_mprotect and umm_msync:
 * the whole last page is mapped, protected, written back and unmapped.  The
 * same sequence runs against the kernel and against libumm and leaves the
 * same results, the same page states and the same file bytes. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <unistd.h>
#include "kcmp.h"

#define SEED 31
#define FILE_PAGES 3

struct trace {
    int map_at_base;
    int acc[FILE_PAGES];   /* pages 0..2 after mapping PAGE+1 bytes */
    int byte_ok;           /* p[PAGE+100] reads the file */
    int mprotect_rc, w_first, w_second;
    int msync_rc;
    int munmap_rc, acc_after[2];
    int anon_write, anon_munmap_rc, anon_after;
    int small_rc, small_byte_ok, small_next;
    long fsize;
    unsigned char file[FILE_PAGES * PAGE];
};

static void scenario(const struct mm_ops *ops, int fd, struct trace *t)
{
    kcmp_require_free(KCMP_BASE, 4 * PAGE);
    unsigned char *p = ops->mmap((void *)KCMP_BASE, PAGE + 1, PROT_READ | PROT_WRITE,
                                 MAP_SHARED | MAP_FIXED_NOREPLACE, fd, 0);
    t->map_at_base = p == (void *)KCMP_BASE;
    if (p == MAP_FAILED)
        tap_bail("%s: mmap: %s", ops->name, strerror(errno));
    for (int i = 0; i < FILE_PAGES; i++)
        t->acc[i] = probe_read(p + i * PAGE);
    t->byte_ok = p[PAGE + 100] == pattern(PAGE + 100, SEED);
    p[2 * PAGE - 1] = 0xa5;                 /* the rounded-up part is the file's */
    t->mprotect_rc = ops->mprotect(p, 1, PROT_READ); /* the whole first page */
    t->w_first = probe_write(p + PAGE - 1);
    t->w_second = probe_write(p + PAGE);
    t->msync_rc = ops->msync(p + PAGE, 1, MS_SYNC); /* the whole second page */
    t->munmap_rc = ops->munmap(p, PAGE + 1);         /* both pages */
    t->acc_after[0] = probe_read(p);
    t->acc_after[1] = probe_read(p + PAGE);

    unsigned char *q = ops->mmap(NULL, 1, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (q == MAP_FAILED)
        tap_bail("%s: anonymous mmap: %s", ops->name, strerror(errno));
    t->anon_write = probe_write(q + PAGE - 1);
    t->anon_munmap_rc = ops->munmap(q, 1);
    t->anon_after = probe_read(q + PAGE - 1);

    kcmp_require_free(KCMP_BASE, 4 * PAGE);
    unsigned char *s = ops->mmap((void *)KCMP_BASE, 10, PROT_READ, MAP_PRIVATE | MAP_FIXED_NOREPLACE, fd, PAGE);
    t->small_rc = s == MAP_FAILED ? -1 : 0;
    if (s != MAP_FAILED) {
        t->small_byte_ok = s[PAGE - 2] == pattern(2 * PAGE - 2, SEED);
        t->small_next = probe_read(s + PAGE);
        ops->munmap(s, 10);
    }
    t->fsize = file_bytes(fd, t->file, sizeof t->file);
}

int main(void)
{
    static struct trace k, u;
    int kfd = tmpfile_make(FILE_PAGES * PAGE, SEED, O_RDWR, NULL);
    int ufd = tmpfile_make(FILE_PAGES * PAGE, SEED, O_RDWR, NULL);
    scenario(&kernel_ops, kfd, &k);
    scenario(&umm_ops, ufd, &u);

    ok(k.map_at_base && u.map_at_base, "PAGE+1 bytes mapped where asked");
    ok(k.acc[0] == ACC_OK && k.acc[1] == ACC_OK && k.acc[2] == ACC_MAPERR,
       "kernel: two pages mapped, the third not (the test is right)");
    for (int i = 0; i < FILE_PAGES; i++)
        is_int(u.acc[i], k.acc[i], "page %d after mapping PAGE+1 bytes: as the kernel", i);
    ok(u.byte_ok, "the rounded-up page shows the file");
    is_int(u.mprotect_rc, k.mprotect_rc, "mprotect of 1 byte returns as the kernel");
    is_int(k.w_first, ACC_ACCERR, "kernel: mprotect of 1 byte protects the whole page (the test is right)");
    is_int(u.w_first, k.w_first, "libumm: mprotect of 1 byte protects the whole page");
    is_int(u.w_second, k.w_second, "the next page keeps its protection");
    is_int(u.msync_rc, k.msync_rc, "msync of 1 byte returns as the kernel");
    is_int(u.munmap_rc, k.munmap_rc, "munmap of PAGE+1 bytes returns as the kernel");
    is_int(u.acc_after[0], ACC_MAPERR, "munmap of PAGE+1 bytes unmaps the first page");
    is_int(u.acc_after[1], ACC_MAPERR, "and the second");
    is_int(u.anon_write, k.anon_write, "anonymous mapping of 1 byte: its last byte is writable as in the kernel");
    is_int(u.anon_write, ACC_OK, "anonymous mapping of 1 byte: one whole page");
    is_int(u.anon_munmap_rc, k.anon_munmap_rc, "munmap of 1 byte returns as the kernel");
    is_int(u.anon_after, ACC_MAPERR, "and unmaps the page");
    is_int(u.small_rc, k.small_rc, "10 bytes at an offset: as the kernel");
    ok(u.small_byte_ok && k.small_byte_ok, "the whole page at the offset shows the file");
    is_int(u.small_next, k.small_next, "the page after it is not mapped");
    is_int(u.fsize, k.fsize, "the file keeps its size");
    ok(memcmp(u.file, k.file, sizeof k.file) == 0, "the file holds the same bytes as the kernel's");
    is_int(u.file[2 * PAGE - 1], 0xa5, "the write in the rounded-up part reached the file");
    close(kfd);
    close(ufd);
    check_released();
    return tap_done();
}
