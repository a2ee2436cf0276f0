/* Promise (src/pagecache.c, umm__object_evict; issue 14): reclaim drops
 * clean page-cache pages without asking the file anything -- the file's
 * size is asked (an fstat) only to write dirty pages back.  It asked once
 * per run it dropped: 5,462 fstat calls in a random pass over 8,192 pages
 * of a file 4x an 8 MiB budget, a system call a page on top of the
 * pread.  Here a file 4x a 4 MiB budget is read in full, at random, and
 * every page is checked; libumm's fstat calls are counted (this program's
 * fstat stands in front of the C library's) and must be few against the
 * pages reclaim dropped; and the host's mappings of libumm's pages, after
 * the hand took scattered pages a run at a time, are what libumm counts. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>
#include "util.h"

static volatile long fstats; /* changed in the faults of the loop below, unseen by the compiler */
int fstat(int fd, struct stat *st)
{
    fstats++;
    return (int)syscall(SYS_fstat, fd, st);
}

int main(void)
{
    setenv("UMM_RAM", "4M", 1); /* read once, when libumm starts */
    const uint64_t size = 16u << 20, pages = size / PAGE;
    char path[512];
    int fd = tmpfile_make(size, 7, O_RDONLY, path);
    ok(fd >= 0, "a %llu KiB file", (unsigned long long)(size >> 10));
    unsigned char *p = umm_mmap(NULL, size, PROT_READ, MAP_SHARED, fd, 0);
    ok(p != MAP_FAILED, "mapped MAP_SHARED, 4x the budget");
    ok(stat_get("budget") == (4u << 20) / PAGE, "UMM_RAM=4M sets the budget");

    uint64_t *perm = malloc(pages * sizeof *perm), seed = 0x9e3779b97f4a7c15ull;
    for (uint64_t i = 0; i < pages; i++)
        perm[i] = i;
    for (uint64_t i = pages - 1; i > 0; i--) {
        uint64_t j = xorshift64(&seed) % (i + 1), t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
    uint64_t reclaimed0 = stat_get("reclaimed");
    long fstats0 = fstats;
    int bad = 0;
    for (uint64_t i = 0; i < pages; i++) {
        uint64_t off = perm[i] * PAGE + (perm[i] % 7) * 512;
        bad |= p[off] != pattern(off, 7);
    }
    long asked = fstats - fstats0;
    uint64_t dropped = stat_get("reclaimed") - reclaimed0;
    ok(!bad, "every page read at random holds the file's bytes");
    ok(dropped >= pages / 2, "reclaim dropped pages meanwhile (%llu of %llu)", (unsigned long long)dropped,
       (unsigned long long)pages);
    ok((uint64_t)asked * 16 <= dropped, "the file's size asked %ld times for %llu pages dropped (not once a run)",
       asked, (unsigned long long)dropped);
    /* The hand takes scattered pages in one mprotect, over the pages
     * between them that are not resident (vmscan.c hand_run): the host's
     * mappings of libumm's pages must still be what libumm counts.  The
     * daemon may be reclaiming still: asked until two counts agree. */
    int lib = -1;
    uint64_t counted = 0;
    for (int i = 0; i < 50; i++) {
        uint64_t before = stat_get("host_maps");
        maps_lines(&lib);
        counted = stat_get("host_maps");
        if (before == counted && (uint64_t)lib == counted)
            break;
        usleep(20000);
    }
    ok((uint64_t)lib == counted, "the host maps libumm's pages in %d mappings, as libumm counts (%llu)", lib,
       (unsigned long long)counted);

    free(perm);
    ok(umm_munmap(p, size) == 0, "unmapped");
    close(fd);
    unlink(path);
    check_released();
    return tap_done();
}
