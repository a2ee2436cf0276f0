/* Promise: umm_msync(MS_SYNC) writes back exactly the pages written since
 * they were last written back (umm_stats pages_written counts them; a
 * clean page is not written, so bytes that write(2) put in the file there
 * survive), and catches a later write to a page it wrote back; msync on any
 * mapping of a file writes back its dirty pages in the range; MS_SYNC on a
 * private mapping writes nothing.  MS_ASYNC writes back soon, on libumm's
 * own thread, even with the periodic flush turned off. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>
#include "kcmp.h"

#define SEED 43
#define N 16

static uint64_t written(void)
{
    return stat_get("pages_written");
}

static unsigned char file_byte(int fd, off_t off)
{
    unsigned char c = 0;
    read_file(fd, &c, 1, off);
    return c;
}

int main(void)
{
    /* Only MS_ASYNC's own kick may write back (no periodic flush). */
    setenv("UMM_FLUSH_INTERVAL_MS", "0", 1);
    int fd = tmpfile_make(N * PAGE, SEED, O_RDWR, NULL);
    unsigned char *p = umm_mmap(NULL, N * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    ok(p != MAP_FAILED, "umm_mmap MAP_SHARED");
    is_int(diff_pattern(p, N * PAGE, 0, SEED), 0, "every page read (resident, clean)");
    uint64_t w = written();
    is_int(umm_msync(p, N * PAGE, MS_SYNC), 0, "msync of clean pages");
    is_int(written() - w, 0, "writes nothing");

    p[1 * PAGE + 1] = 1;
    p[5 * PAGE + 5] = 5;
    p[6 * PAGE + 6] = 6;
    p[11 * PAGE + 11] = 11;
    /* write(2) changes a clean page's bytes in the file behind libumm. */
    unsigned char ext = (unsigned char)~pattern(2 * PAGE + 2, SEED);
    if (pwrite(fd, &ext, 1, 2 * PAGE + 2) != 1)
        tap_bail("pwrite: %s", strerror(errno));
    w = written();
    is_int(umm_msync(p, N * PAGE, MS_SYNC), 0, "msync after writing 4 pages");
    is_int(written() - w, 4, "writes back exactly the 4 dirty pages");
    ok(file_byte(fd, 1 * PAGE + 1) == 1 && file_byte(fd, 5 * PAGE + 5) == 5 && file_byte(fd, 6 * PAGE + 6) == 6 &&
           file_byte(fd, 11 * PAGE + 11) == 11,
       "the file has the 4 writes");
    is_int(file_byte(fd, 2 * PAGE + 2), ext, "a clean page was not written: write(2)'s byte survives");

    w = written();
    is_int(umm_msync(p, N * PAGE, MS_SYNC), 0, "msync again");
    is_int(written() - w, 0, "nothing is dirty any more");

    p[5 * PAGE + 6] = 0x56; /* caught again after the write-back */
    w = written();
    is_int(umm_msync(p, N * PAGE, MS_SYNC), 0, "write, msync, write, msync");
    is_int(written() - w, 1, "the second msync writes the 1 page written again");
    is_int(file_byte(fd, 5 * PAGE + 6), 0x56, "and the file has it");

    p[9 * PAGE] = 9;
    w = written();
    is_int(umm_msync(p, 8 * PAGE, MS_SYNC), 0, "msync of a range without the dirty page");
    is_int(written() - w, 0, "writes nothing");
    is_int(umm_msync(p + 9 * PAGE, PAGE, MS_SYNC), 0, "msync of just that page");
    is_int(written() - w, 1, "writes it");

    /* Another mapping of the same file: msync there writes back what was
     * written here. */
    unsigned char *q = umm_mmap(NULL, 4 * PAGE, PROT_READ, MAP_SHARED, fd, 12 * PAGE);
    ok(q != MAP_FAILED, "a second mapping of the file's last 4 pages");
    p[13 * PAGE + 3] = 0x33;
    w = written();
    is_int(umm_msync(q, 4 * PAGE, MS_SYNC), 0, "msync through the second mapping");
    is_int(written() - w, 1, "writes back the page written through the first");
    is_int(file_byte(fd, 13 * PAGE + 3), 0x33, "the file has it");
    is_int(umm_munmap(q, 4 * PAGE), 0, "unmap the second mapping");

    /* MS_SYNC on a private mapping writes nothing. */
    unsigned char *r = umm_mmap(NULL, 2 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    r[10] = 0x10;
    w = written();
    is_int(umm_msync(r, 2 * PAGE, MS_SYNC), 0, "MS_SYNC on a private mapping");
    is_int(written() - w, 0, "writes nothing");
    is_int(file_byte(fd, 10), pattern(10, SEED), "the private write is not in the file");
    umm_munmap(r, 2 * PAGE);

    /* MS_ASYNC: written back soon, by libumm's thread. */
    p[14 * PAGE + 14] = 0x14;
    w = written();
    is_int(umm_msync(p, N * PAGE, MS_ASYNC), 0, "umm_msync(MS_ASYNC) returns at once");
    int seen = 0;
    for (int i = 0; i < 3000 && !seen; i++) { /* a bound, not a speed: stops when seen */
        seen = file_byte(fd, 14 * PAGE + 14) == 0x14;
        if (!seen) {
            struct timespec ts = { 0, 10 * 1000 * 1000 };
            nanosleep(&ts, NULL);
        }
    }
    ok(seen, "the write reaches the file (waited up to 30 s), with the periodic flush off");
    is_int(written() - w, 1, "one page written back");
    p[14 * PAGE + 15] = 0x15; /* and the page is caught again */
    w = written();
    is_int(umm_msync(p, N * PAGE, MS_SYNC), 0, "msync");
    is_int(written() - w, 1, "the page written after the asynchronous write-back is written again");

    is_int(umm_munmap(p, N * PAGE), 0, "umm_munmap");
    close(fd);
    check_released();
    return tap_done();
}
