/* Promise (src/frame.c, umm__ram_batch_begin): a file's page cache that
 * grew an extent at a time (a database mapped again each time it grows,
 * as SQLite does) is given back as one at the last munmap -- and given
 * back all the same: libumm's shared memory (RssShmem, its frames as the
 * host counts them) falls by what the extents held, every frame is
 * released, the frame space serves the next mapping, and the bytes read
 * through a new mapping are the file's. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include "util.h"

#define STEPS 48
#define GROW (128 * 1024)

/* Every page of [0, len) of p holds the file's pattern (seed 5). */
static int pattern_ok(const unsigned char *p, size_t len)
{
    for (size_t off = 0; off < len; off += 512)
        if (p[off] != pattern(off, 5))
            return 0;
    return 1;
}

int main(void)
{
    /* The batch and its punch are what is promised here: with the frame
     * pool (test-frame-pool) freed frames would stay ready for the next
     * mapping instead.  Read once, when libumm starts. */
    setenv("UMM_FRAME_POOL", "0", 1);
    char path[512];
    const size_t total = (size_t)STEPS * GROW;
    int fd = tmpfile_make(total, 5, O_RDWR, path);
    ok(fd >= 0, "an %zu KiB file", total / 1024);
    ok(ftruncate(fd, GROW) == 0, "cut to its first %d KiB", GROW / 1024);

    /* The first page stays mapped: the page cache lives across the remaps. */
    unsigned char *keep = umm_mmap(NULL, PAGE, PROT_READ, MAP_SHARED, fd, 0);
    ok(keep != MAP_FAILED && keep[0] == pattern(0, 5), "its first page mapped and kept");

    long before = rss_shmem_kb();
    int bad = 0;
    for (int s = 1; s <= STEPS; s++) {
        size_t len = (size_t)s * GROW;
        if (ftruncate(fd, (off_t)len) != 0) {
            bad = 1;
            break;
        }
        /* The bytes past the old end were cut away: write them again. */
        unsigned char buf[GROW];
        for (size_t i = 0; i < GROW; i++)
            buf[i] = pattern(len - GROW + i, 5);
        if (s > 1 && pwrite(fd, buf, GROW, (off_t)(len - GROW)) != GROW)
            bad = 1;
        unsigned char *m = umm_mmap(NULL, len, PROT_READ, MAP_SHARED, fd, 0);
        if (m == MAP_FAILED || !pattern_ok(m, len))
            bad = 1;
        if (m != MAP_FAILED)
            umm_munmap(m, len);
    }
    ok(!bad, "grown %d times by %d KiB, mapped again each time, every byte the file's", STEPS, GROW / 1024);
    long grown = rss_shmem_kb();
    ok(grown - before >= (long)(total / 1024) * 3 / 4, "the page cache holds the file (RssShmem %ld -> %ld kB)", before,
       grown);

    umm_munmap(keep, PAGE);
    long after = rss_shmem_kb();
    ok(grown - after >= (long)(total / 1024) * 3 / 4,
       "the last munmap gives it back to the host (RssShmem %ld -> %ld kB)", grown, after);
    is_int(stat_get("frames"), 0, "every frame released");
    is_int(stat_get("files"), 0, "the file released");

    /* The frame space serves again, and nothing stale is read. */
    unsigned char *m = umm_mmap(NULL, total, PROT_READ, MAP_SHARED, fd, 0);
    ok(m != MAP_FAILED && pattern_ok(m, total), "mapped again whole: every byte the file's");
    if (m != MAP_FAILED)
        umm_munmap(m, total);
    unsigned char *anon = umm_mmap(NULL, total, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    int zero = anon != MAP_FAILED;
    for (size_t off = 0; zero && off < total; off += PAGE)
        zero = anon[off] == 0;
    ok(zero, "anonymous memory in the same frame space reads zeros");
    if (anon != MAP_FAILED)
        umm_munmap(anon, total);
    close(fd);
    unlink(path);
    check_released();
    return tap_done();
}
