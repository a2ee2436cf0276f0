/* Promise: a read fault also maps the neighbouring pages of its aligned
 * 64 KiB window whose page-cache frames are already up to date (Linux's
 * fault-around), with no I/O -- and nothing else: not a page that is not
 * up to date, not past the end of the file, not past the end of the VMA,
 * not under MADV_RANDOM, and a write still faults (dirty tracking). */
#include <fcntl.h>
#include <string.h>
#include <unistd.h>
#include "util.h"

#define WIN 16 /* pages in the 64 KiB window */

static uint64_t faults(void)
{
    return stat_get("faults");
}

/* Bytes of page i of the mapping p (file page fp) are the file's. */
#define FSIZE (40 * PAGE + 1000)

static int page_ok(const unsigned char *p, size_t i, uint64_t fp)
{
    uint64_t last = fp * PAGE + PAGE - 1 < FSIZE ? PAGE - 1 : FSIZE - fp * PAGE - 1;
    return p[i * PAGE] == pattern(fp * PAGE, 5) && p[i * PAGE + last] == pattern(fp * PAGE + last, 5) &&
           (last == PAGE - 1 || p[i * PAGE + PAGE - 1] == 0);
}

static unsigned char *res[3];
static size_t res_len[3];
static int nres;

/* An address aligned to 64 KiB with room for pages pages after it, in a
 * reservation the caller maps over with MAP_FIXED. */
static unsigned char *aligned(size_t pages)
{
    unsigned char *r = umm_mmap(NULL, (pages + WIN) * PAGE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    ok(r != MAP_FAILED, "reservation");
    res[nres] = r;
    res_len[nres++] = (pages + WIN) * PAGE;
    uintptr_t a = ((uintptr_t)r + WIN * PAGE - 1) & ~(uintptr_t)(WIN * PAGE - 1);
    return (unsigned char *)a;
}

int main(void)
{
    /* 40 pages and 1000 bytes: page 40 is the last, partly past the end. */
    const uint64_t fsize = FSIZE, fpages = 41;
    int fd = tmpfile_make(fsize, 5, O_RDWR, NULL);

    /* Mapping a brings pages into the page cache one by one (MADV_RANDOM:
     * no read-ahead, no fault-around), all but page 5 and page 20. */
    unsigned char *a = umm_mmap(NULL, 48 * PAGE, PROT_READ, MAP_SHARED, fd, 0);
    ok(a != MAP_FAILED, "map a");
    is_int(umm_madvise(a, 48 * PAGE, MADV_RANDOM), 0, "MADV_RANDOM on a");
    uint64_t f0 = faults(), r0 = stat_get("pages_read");
    int bad = 0;
    for (uint64_t i = 0; i < fpages; i++)
        if (i != 5 && i != 20)
            bad += !page_ok(a, i, i);
    is_int(bad, 0, "a sees the file");
    is_int(faults() - f0, fpages - 2, "MADV_RANDOM: one fault per page, nothing around");
    is_int(stat_get("pages_read") - r0, fpages - 2, "each page read once");

    /* Mapping b, 64 pages at a 64 KiB boundary (past the end of the file
     * from page 41 on). */
    unsigned char *b = aligned(64);
    ok(umm_mmap(b, 64 * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, fd, 0) == b, "map b at 64 KiB");
    f0 = faults();
    r0 = stat_get("pages_read");
    ok(page_ok(b, 3, 3), "b page 3");
    is_int(faults() - f0, 1, "one fault for page 3");
    for (uint64_t i = 0; i < WIN; i++)
        if (i != 5)
            bad += !page_ok(b, i, i);
    is_int(bad, 0, "b's first window sees the file");
    is_int(faults() - f0, 1, "its up-to-date neighbours came with it: no other fault");
    is_int(stat_get("pages_read") - r0, 0, "and nothing was read");
    ok(page_ok(b, 5, 5), "b page 5");
    is_int(faults() - f0, 2, "page 5 was not up to date: its own fault");
    is_int(stat_get("pages_read") - r0, 2,
           "its miss read around the 128 KiB cluster: pages 5 and 20, the two not up to date");

    /* Window 16..31: page 20 is not up to date. */
    f0 = faults();
    ok(page_ok(b, 17, 17), "b page 17");
    for (uint64_t i = WIN; i < 2 * WIN; i++)
        if (i != 20)
            bad += !page_ok(b, i, i);
    is_int(bad, 0, "second window sees the file");
    is_int(faults() - f0, 1, "one fault for the window around page 20");
    ok(page_ok(b, 20, 20), "b page 20");
    is_int(faults() - f0, 1, "page 20 came with it (read around with page 5)");

    /* Window 32..47 holds the end of the file: pages 41.. are past it. */
    f0 = faults();
    ok(page_ok(b, 33, 33), "b page 33");
    for (uint64_t i = 2 * WIN; i < fpages; i++)
        bad += !page_ok(b, i, i);
    is_int(bad, 0, "third window sees the file");
    is_int(faults() - f0, 1, "up to the last page, one fault");
    int code;
    void *addr;
    is_int(catch_signal(touch_read, b + 41 * PAGE, &code, &addr), SIGBUS, "past the end: still SIGBUS");
    is_int(catch_signal(touch_read, b + 47 * PAGE, &code, &addr), SIGBUS, "the window's last page: SIGBUS");

    /* Installed read-only: a write still faults, marks the page dirty, and
     * reaches the file. */
    f0 = faults();
    b[9 * PAGE] = 0x5a;
    is_int(faults() - f0, 1, "a write to a page mapped around faults (dirty tracking)");
    is_int(umm_msync(b, 64 * PAGE, MS_SYNC), 0, "msync");
    unsigned char c = 0;
    read_file(fd, &c, 1, 9 * PAGE);
    is_int(c, 0x5a, "the write reached the file");

    /* The VMA's end: c maps file pages 0..19 ending mid-window, d maps
     * pages 20..35 right after it.  A fault in c's last window maps c's
     * pages only; d's first touch is still its own fault. */
    unsigned char *cm = aligned(40);
    ok(umm_mmap(cm, 20 * PAGE, PROT_READ, MAP_PRIVATE | MAP_FIXED, fd, 0) == cm, "map c");
    unsigned char *d = cm + 20 * PAGE;
    ok(umm_mmap(d, 16 * PAGE, PROT_READ, MAP_PRIVATE | MAP_FIXED, fd, 20 * PAGE) == d, "map d after c");
    f0 = faults();
    ok(page_ok(cm, 16, 16), "c page 16");
    for (uint64_t i = 17; i < 20; i++)
        bad += !page_ok(cm, i, i);
    is_int(bad, 0, "c's last pages");
    is_int(faults() - f0, 1, "c's last window: one fault");
    ok(page_ok(d, 0, 20), "d page 0");
    is_int(faults() - f0, 2, "d's first page: its own fault, not mapped from c");
    for (uint64_t i = 1; i < 12; i++)
        bad += !page_ok(d, i, 20 + i);
    is_int(bad, 0, "d sees the file");
    is_int(faults() - f0, 2, "d's window came with its first fault");

    /* The file shrinks to 30 pages and 100 bytes: the frames of pages
     * 31..40 stay in the page cache, up to date (zeros), but are past the
     * end; a fault in window 16..31 of a new mapping maps 16..30 only. */
    is_int(ftruncate(fd, 30 * PAGE + 100), 0, "truncate to 30 pages and 100 bytes");
    unsigned char *e = aligned(48);
    ok(umm_mmap(e, 48 * PAGE, PROT_READ, MAP_SHARED | MAP_FIXED, fd, 0) == e, "map e");
    f0 = faults();
    ok(e[18 * PAGE] == pattern(18 * PAGE, 5), "e page 18");
    ok(e[30 * PAGE + 99] == pattern(30 * PAGE + 99, 5) && e[30 * PAGE + 100] == 0, "e's last page");
    is_int(faults() - f0, 1, "one fault up to the new end");
    is_int(catch_signal(touch_read, e + 31 * PAGE, &code, &addr), SIGBUS, "past the new end: SIGBUS");
    is_int(catch_signal(touch_read, e + 40 * PAGE, &code, &addr), SIGBUS, "and further on");

    is_int(umm_munmap(a, 48 * PAGE), 0, "unmap a");
    for (int i = 0; i < nres; i++)
        is_int(umm_munmap(res[i], res_len[i]), 0, "unmap reservation %d (b; c and d; e)", i);
    close(fd);
    check_released();
    return tap_done();
}
