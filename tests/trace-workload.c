/*
 * trace-workload: a program that knows nothing of tracing, for
 * test-trace.sh, which runs it with UMM_TRACE_FILE and UMM_RAM set and
 * draws its trace with umm-trace.  In order:
 *
 *   1. a private mapping of a 16-page file, read in order, then its pages
 *      0..3 written (4 copy-on-write copies);
 *   2. 8 pages of private anonymous memory written (zero-filled), taken
 *      out with MADV_PAGEOUT, and read back (8 pages swapped in);
 *   3. a shared mapping of a file 4x the budget (UMM_RAM, 64 pages in the
 *      test) read in order: reclaim must take pages.
 *
 * Every byte is checked; it prints what umm_stats counted, one "name value"
 * a line, for the test to hold the trace against.  Exit 0 when all bytes
 * were right.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util.h"

#define FILE_PAGES 16
#define COW_PAGES 4
#define ANON_PAGES 8

static int bad;

static void check(int cond, const char *what)
{
    if (!cond) {
        fprintf(stderr, "trace-workload: wrong: %s\n", what);
        bad = 1;
    }
}

int main(void)
{
    struct umm_stats s0, s;
    /* 1. read a file privately in order, then write 4 of its pages. */
    int fd = tmpfile_make(FILE_PAGES * PAGE, 7, O_RDONLY, NULL);
    if (fd < 0)
        return perror("tmpfile_make"), 2;
    unsigned char *p = umm_mmap(NULL, FILE_PAGES * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED)
        return perror("umm_mmap"), 2;
    umm_stats(&s0); /* libumm started with the first call */
    unsigned sum = 0, want = 0;
    for (int i = 0; i < FILE_PAGES; i++)
        for (int j = 0; j < PAGE; j += 512) {
            sum += p[i * PAGE + j];
            want += pattern((uint64_t)i * PAGE + (uint64_t)j, 7);
        }
    check(sum == want, "the file's bytes through the private mapping");
    for (int i = 0; i < COW_PAGES; i++)
        p[i * PAGE] = (unsigned char)~pattern((uint64_t)i * PAGE, 7);
    for (int i = 0; i < COW_PAGES; i++)
        check(p[i * PAGE] == (unsigned char)~pattern((uint64_t)i * PAGE, 7), "a private copy's byte");
    umm_munmap(p, FILE_PAGES * PAGE);
    close(fd);

    /* 2. anonymous memory out to the swap file and back. */
    unsigned char *a = umm_mmap(NULL, ANON_PAGES * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (a == MAP_FAILED)
        return perror("umm_mmap"), 2;
    for (int i = 0; i < ANON_PAGES; i++)
        memset(a + i * PAGE, 'a' + i, PAGE);
    check(umm_madvise(a, ANON_PAGES * PAGE, MADV_PAGEOUT) == 0, "MADV_PAGEOUT");
    for (int i = 0; i < ANON_PAGES; i++)
        check(a[i * PAGE] == 'a' + i && a[i * PAGE + PAGE - 1] == 'a' + i, "an anonymous page swapped back");
    umm_munmap(a, ANON_PAGES * PAGE);

    /* 3. a file 4x the budget, read in order under it. */
    umm_stats(&s);
    uint64_t big = 4 * s.budget;
    fd = tmpfile_make(big * PAGE, 9, O_RDONLY, NULL);
    if (fd < 0)
        return perror("tmpfile_make"), 2;
    p = umm_mmap(NULL, big * PAGE, PROT_READ, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED)
        return perror("umm_mmap"), 2;
    sum = want = 0;
    for (uint64_t i = 0; i < big; i++) {
        sum += p[i * PAGE + 100];
        want += pattern(i * PAGE + 100, 9);
    }
    check(sum == want, "the big file's bytes");
    umm_munmap(p, big * PAGE);
    close(fd);

    umm_stats(&s);
    printf("budget %llu\n", (unsigned long long)s.budget);
    printf("frames_high %llu\n", (unsigned long long)s.frames_high);
    printf("cow_copies %llu\n", (unsigned long long)(s.cow_copies - s0.cow_copies));
    printf("swapped_out %llu\n", (unsigned long long)s.swapped_out);
    printf("swapped_in %llu\n", (unsigned long long)s.swapped_in);
    printf("reclaimed %llu\n", (unsigned long long)s.reclaimed);
    printf("big_pages %llu\n", (unsigned long long)big);
    return bad;
}
