/* Promise (issue 15, read-ahead for private first writes): a stream of
 * first writes to a private file mapping grows the read-ahead window as a
 * stream of reads does (a write fault that reads advances it): the second
 * write of the stream reads its page and the next one with one pread, not
 * the whole 128 KiB cluster around it (read-around is for faults outside a
 * stream), and every page still gets the file's bytes and the program's
 * write, read once.  Two such streams in one mapping (two cursors, or two
 * threads) keep a window each.  A page the window read but the program has
 * not written yet is still the file's: it shows what is written to the
 * file after it was read, until the program's own write copies it. */
#include <fcntl.h>
#include <unistd.h>
#include "util.h"

#define LONG 2048 /* pages of the two-stream case: 1024 a stream, windows doubling to 512 */

/* First writes to every page of a fresh private mapping of LONG pages, by
 * `streams` cursors taking turns over equal parts; returns how many of the
 * writes read from the file. */
static uint64_t write_streams(int streams, unsigned seed, const char *what)
{
    int fd = tmpfile_make((uint64_t)LONG * PAGE, seed, O_RDONLY, NULL);
    unsigned char *p = umm_mmap(NULL, (size_t)LONG * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    ok(p != MAP_FAILED, "%s: a private mapping of %d pages", what, LONG);
    uint64_t reading = 0, r0 = stat_get("pages_read");
    size_t part = LONG / streams;
    for (size_t i = 0; i < part; i++)
        for (int s = 0; s < streams; s++) {
            uint64_t r = stat_get("pages_read");
            p[(s * part + i) * PAGE] = 0xA5;
            reading += stat_get("pages_read") != r;
        }
    int bad = 0;
    for (size_t i = 0; i < LONG; i++)
        bad += p[i * PAGE] != 0xA5 || p[i * PAGE + 9] != pattern(i * PAGE + 9, seed);
    is_int(bad, 0, "%s: every page has the program's write and the file's other bytes", what);
    is_int(stat_get("pages_read") - r0, LONG, "%s: every page read once", what);
    is_int(umm_munmap(p, (size_t)LONG * PAGE), 0, "%s: umm_munmap", what);
    close(fd);
    return reading;
}

int main(void)
{
    const size_t pages = 64;
    int fd = tmpfile_make(pages * PAGE, 21, O_RDONLY, NULL);
    unsigned char *p = umm_mmap(NULL, pages * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    ok(p != MAP_FAILED, "a private mapping of %zu pages", pages);
    uint64_t r0 = stat_get("pages_read");
    p[0] = 1;
    is_int(stat_get("pages_read") - r0, 1, "the first write reads its page");
    p[PAGE] = 2;
    /* And posts the next window, 3 to 6, which libumm's daemon may have
     * read already on its own thread (not counted under UMM_ZEROCOPY: the
     * host reads it). */
    uint64_t got = stat_get("pages_read") - r0;
    ok(got == 3 || got == 7, "the second, in a stream, reads a window of 2: pages 1 and 2 (read: %llu)",
       (unsigned long long)got);
    for (size_t i = 2; i < pages; i++)
        p[i * PAGE] = (unsigned char)(i + 1);
    int bad = 0;
    for (size_t i = 0; i < pages; i++)
        bad += p[i * PAGE] != (unsigned char)(i + 1) || p[i * PAGE + 7] != pattern(i * PAGE + 7, 21);
    is_int(bad, 0, "every page has the program's write and the file's other bytes");
    is_int(stat_get("pages_read") - r0, pages, "every page read once");
    is_int(umm_munmap(p, pages * PAGE), 0, "umm_munmap");
    close(fd);

    /* Two streams: each grows its own window, from one page (a ramp of
     * ~10 reads to 2 MiB each: at most twice one stream's reads, and a
     * few).  With one read-ahead state per mapping they reset each
     * other's at every write, and the pages came in by read-around, two
     * preads per 128 KiB cluster: 128 writes that read here. */
    uint64_t one = write_streams(1, 22, "one stream");
    uint64_t two = write_streams(2, 23, "two streams taking turns");
    ok(two <= one * 2 + 4 && two < 64, "two streams: %llu of %d first writes read, one stream %llu",
       (unsigned long long)two, LONG, (unsigned long long)one);

    /* What the window read ahead but the program has not written is still
     * the file's page, as in the kernel. */
    fd = tmpfile_make(pages * PAGE, 24, O_RDWR, NULL);
    /* The private mapping ends at page 7: the window of 4 at page 3 reaches
     * its end, so it posts no next window for libumm's daemon to read
     * ahead (which, racing with this test, read 7 to 14 once under load). */
    p = umm_mmap(NULL, 7 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    unsigned char *shar = umm_mmap(NULL, pages * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    ok(p != MAP_FAILED && shar != MAP_FAILED, "a private and a shared mapping of one file");
    r0 = stat_get("pages_read");
    p[0] = 1;
    p[PAGE] = 2;
    p[3 * PAGE] = 3; /* a window of 4: pages 3 to 6 read, 4 to 6 not written */
    is_int(stat_get("pages_read") - r0, 7, "three first writes read pages 0 to 6");
    unsigned char b = 0xEE;
    is_int(pwrite(fd, &b, 1, 5 * PAGE + 9), 1, "pwrite to page 5 of the file");
    shar[6 * PAGE + 9] = 0xDD;
    is_int(p[5 * PAGE + 9], 0xEE, "page 5, read ahead, not written: shows the pwrite");
    is_int(p[6 * PAGE + 9], 0xDD, "page 6: shows the shared mapping's write");
    p[5 * PAGE] = 5;
    b = 0x11;
    is_int(pwrite(fd, &b, 1, 5 * PAGE + 9), 1, "pwrite to page 5 again");
    is_int(p[5 * PAGE + 9], 0xEE, "once written, page 5 is the program's copy: the second pwrite not seen");
    is_int(p[5 * PAGE], 5, "with the program's write");
    is_int(p[4 * PAGE + 9], pattern(4 * PAGE + 9, 24), "page 4 shows the file");
    is_int(umm_munmap(p, 7 * PAGE), 0, "unmap the private mapping");
    is_int(umm_munmap(shar, pages * PAGE), 0, "unmap the shared mapping");
    close(fd);
    check_released();
    return tap_done();
}
