/* Promise (doc/PERFORMANCE.md, "Walks over huge mappings"): a mapping of
 * terabytes costs memory and time for the pages used, not for its size,
 * whatever is done to it.  libumm's page table of a 4 TiB mapping has a
 * billion entries (8 GiB) and its frame descriptors 12 bytes a page; the
 * entries and descriptors of pages never used are never written, and a
 * walk over the range (mprotect, madvise, msync, fork, ftruncate, munmap,
 * umm_dirty)
 * must not read them either, and MADV_WILLNEED reads ahead a bounded
 * window (the kernel's force_page_cache_ra), not terabytes: on a host without a shared zero page each
 * read takes a fresh page.  Before, each of these calls on 4 TiB took tens
 * of seconds and left 8 GiB behind (munmap alone: 70 s, 8.4 GiB of RSS).
 * Here the process's peak resident memory (VmHWM) over all of them stays
 * within 768 MiB (libumm's per-chunk counts of such ranges take 4 bytes
 * per 64 KiB: 256 MiB for 4 TiB), and the pages used keep their bytes. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>
#include "util.h"

static long status_kb(const char *key)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kb = -1;
    size_t n = strlen(key);
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, key, n) && sscanf(line + n, ": %ld kB", &kb) == 1)
            break;
    if (f)
        fclose(f);
    return kb;
}

int main(void)
{
    const uint64_t tib = (uint64_t)1 << 40, A = 4 * tib, F = 2 * tib;
    if (under_valgrind())
        tap_skip_all("under Valgrind libumm's frame space is smaller than 2 TiB (the host's limit there)");
    void *q = umm_mmap(NULL, PAGE, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    ok(q != MAP_FAILED && umm_munmap(q, PAGE) == 0, "libumm starts");
    long hwm0 = status_kb("VmHWM");

    unsigned char *a = umm_mmap(NULL, A, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    ok(a != MAP_FAILED, "4 TiB of MAP_NORESERVE private anonymous memory maps");
    if (a == MAP_FAILED)
        return tap_done();
    a[0] = 1;
    a[A / 2] = 2;
    a[A - 1] = 3;
    is_int(umm_mprotect(a, A, PROT_READ), 0, "mprotect PROT_READ over 4 TiB");
    is_int(umm_mprotect(a, A, PROT_READ | PROT_WRITE), 0, "and back to PROT_READ|PROT_WRITE");
    ok(a[0] == 1 && a[A / 2] == 2 && a[A - 1] == 3, "the three pages used keep their bytes");
    is_int(umm_madvise(a, A, MADV_PAGEOUT), 0, "MADV_PAGEOUT over 4 TiB");
    ok(a[0] == 1 && a[A / 2] == 2 && a[A - 1] == 3, "and they come back");
    is_int(umm_madvise(a, A / 2, MADV_DONTNEED), 0, "MADV_DONTNEED over 2 TiB of it");
    ok(a[0] == 0 && a[A / 2] == 2, "zeros there, bytes past it");
    is_int(umm_munmap(a, A), 0, "munmap of 4 TiB");

    /* fork with 1 TiB of private memory: the child gets its snapshot. */
    unsigned char *b = umm_mmap(NULL, tib, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    ok(b != MAP_FAILED, "1 TiB of private anonymous memory maps");
    if (b != MAP_FAILED) {
        b[7] = 7;
        b[tib - 1] = 8;
        is_int(umm_dirty(b, tib, NULL, UMM_DIRTY_CLEAR), 2, "umm_dirty over 1 TiB: the two pages written");
        b[7] = 7;
        is_int(umm_dirty(b, tib, NULL, 0), 1, "and after the clear, the one written again");
        pid_t pid = umm_fork();
        if (pid == 0) {
            tap_quiet();
            vg_abrupt_end();
            int good = b[7] == 7 && b[tib - 1] == 8;
            b[tib - 1] = 9;
            _exit(good && b[tib - 1] == 9 ? 0 : 1);
        }
        int st = 0;
        waitpid(pid, &st, 0);
        ok(pid > 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0, "after fork the child sees both pages and writes its own");
        ok(b[tib - 1] == 8, "and the parent keeps its byte");
        is_int(umm_munmap(b, tib), 0, "munmap of 1 TiB");
    }

    /* A 2 TiB sparse file, MAP_SHARED. */
    int fd = tmpfile_sparse(F, O_RDWR, NULL);
    unsigned char *f = umm_mmap(NULL, F, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    ok(f != MAP_FAILED, "a 2 TiB sparse file maps MAP_SHARED");
    if (f != MAP_FAILED) {
        is_int(umm_madvise(f, F, MADV_WILLNEED), 0, "MADV_WILLNEED over 2 TiB (read ahead: at most 2 MiB, as the kernel's)");
        f[0] = 4;
        f[F - 1] = 5;
        is_int(umm_msync(f, F, MS_SYNC), 0, "msync of all 2 TiB");
        unsigned char c0 = 0, c1 = 0;
        read_file(fd, &c0, 1, 0);
        read_file(fd, &c1, 1, (off_t)(F - 1));
        ok(c0 == 4 && c1 == 5, "both bytes reached the file (%d, %d)", c0, c1);
        is_int(umm_msync(f, F, MS_INVALIDATE), 0, "MS_INVALIDATE over 2 TiB");
        is_int(umm_madvise(f, F, MADV_DONTNEED), 0, "MADV_DONTNEED over 2 TiB");
        ok(f[0] == 4 && f[F - 1] == 5, "the file's bytes read back");
        f[F - 1] = 6;
        pid_t pid = umm_fork();
        if (pid == 0) {
            tap_quiet();
            vg_abrupt_end();
            _exit(f[F - 1] == 6 ? 0 : 1);
        }
        int st = 0;
        waitpid(pid, &st, 0);
        ok(pid > 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0, "a child of fork sees the shared page");
        is_int(ftruncate(fd, (off_t)(F / 2)), 0, "ftruncate to 1 TiB after fork");
        is_int(umm_msync(f, F, MS_INVALIDATE), 0, "MS_INVALIDATE over 2 TiB after it");
        ok(f[0] == 4, "a page inside the file still reads its byte");
        is_int(umm_munmap(f, F), 0, "munmap of 2 TiB");
    }
    close(fd);

    long hwm = status_kb("VmHWM");
    ok(hwm0 >= 0 && hwm - hwm0 < 768 * 1024,
       "the peak resident memory grew by %ld MiB over all of it (< 768 MiB; the page tables alone: 8 GiB)",
       (hwm - hwm0) / 1024);
    check_released();
    return tap_done();
}
