/* Promise: umm_prefault makes a range resident so that system calls libumm
 * does not stand in front of work on libumm memory (the C library's read,
 * write and friends need no prefault: test-fileio).  Without it, such a
 * call (here the raw system call) given a page that is not resident (or,
 * for a read, a shared page still clean and write-protected for dirty
 * tracking) fails with EFAULT: the documented difference from the kernel,
 * whose own mmap the test shows working.  With
 * PROT_WRITE, private pages are copied (the file is untouched) and shared
 * pages made dirty, so that msync writes them.  Bad arguments: EINVAL,
 * ENOMEM, EACCES, EFAULT beyond the end of the file. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <sys/syscall.h>
#include <unistd.h>
#include "kcmp.h"

#define SEED 49
#define N 8

int main(void)
{
    int src = tmpfile_make(N * PAGE, SEED + 1, O_RDONLY, NULL); /* data for read(2) */
    int fd = tmpfile_make(N * PAGE, SEED, O_RDWR, NULL);
    int sink = tmpfile_sparse(0, O_RDWR, NULL);               /* write(2) goes here */

    /* The kernel: no preparation needed. */
    unsigned char *k = mmap(NULL, N * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    is_int(pread(src, k, 2 * PAGE, 0), 2 * PAGE, "kernel: read(2) into a fresh mapping works (the test is right)");
    is_int(pwrite(sink, k + 4 * PAGE, PAGE, 0), PAGE, "kernel: write(2) from a fresh page works");
    munmap(k, N * PAGE);

    /* libumm without umm_prefault, through the system call itself: EFAULT. */
    unsigned char *p = umm_mmap(NULL, N * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    errno = 0;
    is_int(syscall(SYS_pread64, src, p, 2 * PAGE, 0), -1, "the pread system call into pages not resident fails");
    is_int(errno, EFAULT, "with EFAULT");
    errno = 0;
    is_int(syscall(SYS_pwrite64, sink, p + 4 * PAGE, PAGE, 0), -1, "the pwrite system call from a page not resident fails");
    is_int(errno, EFAULT, "with EFAULT");

    /* With it. */
    struct umm_stats s0, s1;
    umm_stats(&s0);
    is_int(umm_prefault(p, 2 * PAGE, PROT_READ | PROT_WRITE), 0, "umm_prefault(PROT_READ|PROT_WRITE) of a private range");
    umm_stats(&s1);
    is_int(s1.cow_copies - s0.cow_copies, 2, "copies its 2 private pages");
    is_int(syscall(SYS_pread64, src, p, 2 * PAGE, 0), 2 * PAGE, "the pread system call into them works");
    is_int(diff_pattern(p, 2 * PAGE, 0, SEED + 1), 0, "and the bytes arrived");
    unsigned char c;
    read_file(fd, &c, 1, 5);
    is_int(c, pattern(5, SEED), "the file is untouched");
    is_int(umm_prefault(p + 4 * PAGE, PAGE, PROT_READ), 0, "umm_prefault(PROT_READ)");
    is_int(syscall(SYS_pwrite64, sink, p + 4 * PAGE, PAGE, 0), PAGE, "the pwrite system call from it works");
    unsigned char buf[PAGE];
    read_file(sink, buf, PAGE, 0);
    is_int(diff_pattern(buf, PAGE, 4 * PAGE, SEED), 0, "and wrote the file's bytes");
    is_int(umm_munmap(p, N * PAGE), 0, "umm_munmap");

    /* Shared: a clean resident page is write-protected; prefault for write
     * makes it dirty, and msync writes it. */
    p = umm_mmap(NULL, N * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    (void)p[2 * PAGE];
    errno = 0;
    is_int(syscall(SYS_pread64, src, p + 2 * PAGE, 100, 0), -1, "the pread system call into a clean shared page fails");
    is_int(errno, EFAULT, "with EFAULT");
    uint64_t w = stat_get("pages_written");
    is_int(umm_prefault(p + 2 * PAGE, 2 * PAGE, PROT_READ | PROT_WRITE), 0, "umm_prefault for write of 2 shared pages");
    is_int(syscall(SYS_pread64, src, p + 2 * PAGE, 2 * PAGE, 0), 2 * PAGE, "the pread system call into them works");
    is_int(umm_msync(p, N * PAGE, MS_SYNC), 0, "msync");
    is_int(stat_get("pages_written") - w, 2, "writes back the 2 pages");
    unsigned char fb[2 * PAGE];
    read_file(fd, fb, sizeof fb, 2 * PAGE);
    is_int(diff_pattern(fb, 2 * PAGE, 0, SEED + 1), 0, "the file has what read(2) put there");

    /* Arguments. */
    errno = 0;
    ok(umm_prefault(p + 1, PAGE, PROT_READ) == -1 && errno == EINVAL, "unaligned address: EINVAL");
    errno = 0;
    ok(umm_prefault(p, PAGE, PROT_EXEC) == -1 && errno == EINVAL, "PROT_EXEC: EINVAL");
    errno = 0;
    ok(umm_prefault(p, PAGE, PROT_READ | 0x100) == -1 && errno == EINVAL, "unknown prot bits: EINVAL");
    errno = 0;
    ok(umm_prefault(p + (N - 1) * PAGE, 2 * PAGE, PROT_READ) == -1 && errno == ENOMEM,
       "a range running past the mapping: ENOMEM");
    is_int(umm_munmap(p, N * PAGE), 0, "umm_munmap");

    int ro = tmpfile_make(PAGE + 10, SEED, O_RDONLY, NULL);
    p = umm_mmap(NULL, 3 * PAGE, PROT_READ, MAP_SHARED, ro, 0);
    errno = 0;
    ok(umm_prefault(p, PAGE, PROT_READ | PROT_WRITE) == -1 && errno == EACCES,
       "PROT_WRITE on a read-only mapping: EACCES");
    is_int(umm_prefault(p, 2 * PAGE, PROT_READ), 0, "the partial last page can be prefaulted");
    errno = 0;
    ok(umm_prefault(p, 3 * PAGE, PROT_READ) == -1 && errno == EFAULT, "a page beyond the end of the file: EFAULT");
    is_int(probe_read(p + 2 * PAGE), ACC_SIGBUS, "and touching it still raises SIGBUS");
    umm_munmap(p, 3 * PAGE);
    close(ro);
    close(src);
    close(fd);
    close(sink);
    check_released();
    return tap_done();
}
