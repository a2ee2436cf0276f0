/* Promise (doc/PERFORMANCE.md, "kmap windows ... Found"): mapping a huge
 * sparse file costs memory for the pages used, not for the size.  A 64 GiB
 * sparse file mapped MAP_SHARED, its first and last pages written and
 * msynced, then unmapped: the bytes reach the file, and libumm's shared
 * memory (RssShmem: its frames and frame descriptors) grows by far less
 * than the descriptors of the whole mapping would take (12 bytes a page,
 * 192 MiB), at the mapping and at the munmap, which frees the frames.
 * Before, freeing the extent scrubbed every descriptor of it, which gave
 * each page of descriptors memory (2 TiB: 6.4 GB and minutes). */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include "util.h"

int main(void)
{
    const uint64_t size = (uint64_t)64 << 30;
    if (under_valgrind()) {
        tap_skip_all("under Valgrind libumm's frame space is smaller than 64 GiB (the host's limit there)");
    }
    /* Start libumm first: its start-up memory is not the test's. */
    void *q = umm_mmap(NULL, PAGE, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    ok(q != MAP_FAILED && umm_munmap(q, PAGE) == 0, "libumm starts");
    int fd = tmpfile_sparse(size, O_RDWR, NULL);
    long before = rss_shmem_kb();
    unsigned char *f = umm_mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    ok(f != MAP_FAILED, "a 64 GiB sparse file maps MAP_SHARED");
    if (f == MAP_FAILED)
        return tap_done();
    f[0] = 1;
    f[size - 1] = 2;
    ok(umm_msync(f, PAGE, MS_SYNC) == 0 && umm_msync(f + size - PAGE, PAGE, MS_SYNC) == 0, "msync both ends");
    long mapped = rss_shmem_kb();
    ok(umm_munmap(f, size) == 0, "munmap");
    long after = rss_shmem_kb();
    unsigned char a = 0, b = 0;
    read_file(fd, &a, 1, 0);
    read_file(fd, &b, 1, (off_t)(size - 1));
    ok(a == 1 && b == 2, "both bytes reached the file (%d, %d)", a, b);
    ok(before >= 0 && mapped - before < 16 * 1024,
       "mapped and two pages used: shared memory grew by %ld KiB (< 16 MiB; all descriptors: 192 MiB)", mapped - before);
    ok(before >= 0 && after - before < 16 * 1024,
       "after munmap: shared memory is %ld KiB above where it was (< 16 MiB)", after - before);
    close(fd);
    check_released();
    return tap_done();
}
