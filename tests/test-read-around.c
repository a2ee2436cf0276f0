/* Promise (issue 13/15; README "How it works"): a miss outside a sequential
 * stream reads around -- the aligned 128 KiB cluster (32 pages) of the
 * faulting page, in one go -- once another page of that cluster is already
 * in the page cache (an earlier touch there): one trap and one read for a
 * neighbourhood instead of one per page.  Scattered touches read just their
 * pages; MADV_RANDOM never reads around; nothing outside the VMA or past
 * the end of the file is read; every byte is the file's. */
#include <fcntl.h>
#include <unistd.h>
#include "util.h"

static int page_ok(const unsigned char *p, uint64_t i, uint64_t fp)
{
    return p[i * PAGE] == pattern(fp * PAGE, 7) && p[i * PAGE + PAGE - 1] == pattern(fp * PAGE + PAGE - 1, 7);
}

int main(void)
{
    const uint64_t npages = 1024;
    int fd = tmpfile_make(npages * PAGE, 7, O_RDONLY, NULL);
    unsigned char *p = umm_mmap(NULL, npages * PAGE, PROT_READ, MAP_SHARED, fd, 0);
    ok(p != MAP_FAILED, "map a 4 MiB file");

    /* Scattered: one page in each of five clusters. */
    uint64_t f0 = stat_get("faults"), r0 = stat_get("pages_read");
    int bad = 0;
    for (uint64_t i = 0; i < 5; i++)
        bad += !page_ok(p, 200 * i + 3, 200 * i + 3);
    is_int(bad, 0, "five scattered pages see the file");
    is_int(stat_get("pages_read") - r0, 5, "scattered touches read just their pages");
    is_int(stat_get("faults") - f0, 5, "one trap each");

    /* A second touch in the cluster of page 403 (384..415): read around. */
    f0 = stat_get("faults");
    r0 = stat_get("pages_read");
    ok(page_ok(p, 410, 410), "page 410 sees the file");
    is_int(stat_get("faults") - f0, 1, "one trap");
    is_int(stat_get("pages_read") - r0, 31, "it read the cluster's 31 pages not yet read, at once");
    for (uint64_t i = 384; i < 416; i++)
        bad += !page_ok(p, i, i);
    is_int(bad, 0, "the whole cluster sees the file");
    is_int(stat_get("pages_read") - r0, 31, "and nothing more was read for it");
    ok(stat_get("faults") - f0 <= 3, "a few traps for 32 pages (%llu; fault-around maps 16 at a time)",
       (unsigned long long)(stat_get("faults") - f0));
    ok(page_ok(p, 383, 383), "page 383, in the cluster before, sees the file");
    is_int(stat_get("pages_read") - r0, 32, "page 383 (no other page of its cluster read) is a read of its own");

    /* MADV_RANDOM: never around. */
    is_int(umm_madvise(p + 640 * PAGE, 64 * PAGE, MADV_RANDOM), 0, "MADV_RANDOM on pages 640..703");
    f0 = stat_get("faults");
    r0 = stat_get("pages_read");
    bad = !page_ok(p, 650, 650) + !page_ok(p, 651, 651) + !page_ok(p, 660, 660);
    is_int(bad, 0, "MADV_RANDOM pages see the file");
    is_int(stat_get("pages_read") - r0, 3, "MADV_RANDOM: one page read per touch, in one cluster");
    is_int(stat_get("faults") - f0, 3, "and one trap each");
    is_int(umm_munmap(p, npages * PAGE), 0, "umm_munmap");
    close(fd);

    /* Outside the VMA and past the end of the file: a file of 20 pages and
     * 100 bytes, mapped from page 8 for 16 pages (file pages 8..23, of
     * which 8..20 exist).  Touches of file pages 10 and 12 (one cluster,
     * 0..31) read file pages 8..20 only: 13 pages. */
    fd = tmpfile_make(20 * PAGE + 100, 7, O_RDONLY, NULL);
    unsigned char *q = umm_mmap(NULL, 16 * PAGE, PROT_READ, MAP_PRIVATE, fd, 8 * PAGE);
    ok(q != MAP_FAILED, "map file pages 8..23 of a 20-page file");
    r0 = stat_get("pages_read");
    bad = !page_ok(q, 2, 10) + !page_ok(q, 4, 12);
    is_int(bad, 0, "file pages 10 and 12 see the file");
    is_int(stat_get("pages_read") - r0, 13, "read around stopped at the VMA's start and the file's end (8..20)");
    for (uint64_t i = 0; i < 12; i++)
        bad += !page_ok(q, i, i + 8);
    is_int(bad, 0, "pages 8..19 see the file");
    is_int(q[12 * PAGE + 99], pattern(20 * PAGE + 99, 7), "the last page sees the file");
    is_int(q[12 * PAGE + 100], 0, "and zeros past its end");
    is_int(stat_get("pages_read") - r0, 13, "nothing read twice");
    is_int(umm_munmap(q, 16 * PAGE), 0, "umm_munmap");
    close(fd);

    /* Scattered first touches are no evidence against read-around: a B-tree
     * (SQLite's) first touches a page in each of many clusters, then comes
     * back to their neighbourhoods.  150 scattered touches, then in each
     * cluster a second page and all the others: read-around must still
     * read each cluster at once, and fault-around's mapping of the pages it
     * read counts as its hits (mmap_miss, as filemap_map_pages).  When a
     * scattered read counted as a miss, read-around was off for good after
     * 100 of them and bench-sqlite took a trap per page (12,969 a run, now
     * 1,255); here 3 traps per cluster, 9 then). */
    const uint64_t nc = 150;
    fd = tmpfile_make(nc * 32 * PAGE, 7, O_RDONLY, NULL);
    p = umm_mmap(NULL, nc * 32 * PAGE, PROT_READ, MAP_SHARED, fd, 0);
    ok(p != MAP_FAILED, "map %llu clusters", (unsigned long long)nc);
    bad = 0;
    for (uint64_t c = 0; c < nc; c++)
        bad += !page_ok(p, c * 32, c * 32);
    f0 = stat_get("faults");
    r0 = stat_get("pages_read");
    for (uint64_t c = 0; c < nc; c++) {
        bad += !page_ok(p, c * 32 + 16, c * 32 + 16);
        for (uint64_t i = 1; i < 32; i++)
            bad += !page_ok(p, c * 32 + i, c * 32 + i);
    }
    is_int(bad, 0, "every page of the %llu clusters sees the file", (unsigned long long)nc);
    is_int(stat_get("pages_read") - r0, nc * 31, "each cluster's other 31 pages were read");
    ok(stat_get("faults") - f0 <= 4 * nc, "in a few traps per cluster: %llu for %llu clusters",
       (unsigned long long)(stat_get("faults") - f0), (unsigned long long)nc);
    is_int(umm_munmap(p, nc * 32 * PAGE), 0, "umm_munmap");
    close(fd);
    check_released();
    return tap_done();
}
