/* Promise: libumm's count of the host mappings its pages take
 * (umm_stats' host_maps, what it keeps under the budget) is exact: after
 * every kind of operation it equals the libumm lines of /proc/self/maps. */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "util.h"

#define NP 256 /* pages of the test file */

static void check(const char *what)
{
    int lib;
    maps_lines(&lib);
    is_int(stat_get("host_maps"), lib, "%s: host_maps is the number of libumm lines in /proc/self/maps (%d)", what,
           lib);
}

static unsigned char *at(unsigned char *p, int page)
{
    return p + (size_t)page * PAGE;
}

/* Touch a scatter of pages: every 7th for reading, every 11th for writing. */
static int scatter(unsigned char *p, int pages, int writes, unsigned seed, int fileoff)
{
    int bad = 0;
    for (int i = 0; i < pages; i += 7)
        if (seed && *at(p, i) != pattern((uint64_t)(fileoff + i) * PAGE, seed))
            bad++;
    for (int i = 3; writes && i < pages; i += 11)
        *at(p, i) = (unsigned char)i;
    return bad;
}

static void beyond_eof(void *p)
{
    touch_read(p);
}

int main(void)
{
    char path[512];
    setenv("UMM_FLUSH_INTERVAL_MS", "0", 1); /* no write-back between two counts */
    int fd = tmpfile_make((uint64_t)NP * PAGE, 21, O_RDWR, path);
    check("before any mapping");

    unsigned char *s = umm_mmap(NULL, NP * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    ok(s != MAP_FAILED, "shared file mapping");
    check("a fresh mapping");
    is_int(scatter(s, NP, 0, 21, 0), 0, "shared reads right");
    check("scattered reads");
    scatter(s, NP, 1, 0, 0);
    check("scattered writes (dirty pages between clean ones)");
    is_int(umm_msync(s, NP * PAGE, MS_SYNC), 0, "msync");
    check("msync: dirty pages write-protected again");

    unsigned char *q = umm_mmap(NULL, NP * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    ok(q != MAP_FAILED, "private file mapping");
    scatter(q, NP, 0, 0, 0);
    scatter(q, NP, 1, 0, 0);
    *at(q, 100) = 1; /* a run of copies */
    *at(q, 101) = 1;
    *at(q, 102) = 1;
    check("private reads and copy-on-write copies");

    unsigned char *a = umm_mmap(NULL, 64 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    unsigned char *sa = umm_mmap(NULL, 64 * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    ok(a != MAP_FAILED && sa != MAP_FAILED, "anonymous mappings");
    scatter(a, 64, 1, 0, 0);
    scatter(sa, 64, 1, 0, 0);
    check("anonymous pages");

    is_int(umm_mprotect(at(s, 64), 64 * PAGE, PROT_READ), 0, "mprotect part read-only");
    check("partial mprotect");
    is_int(umm_mprotect(at(s, 64), 64 * PAGE, PROT_READ | PROT_WRITE), 0, "mprotect back");
    check("mprotect back: the halves join again");
    is_int(umm_mprotect(q, NP * PAGE, PROT_READ), 0, "mprotect a private mapping read-only");
    check("copies and page-cache pages read-only");
    is_int(umm_mprotect(q, NP * PAGE, PROT_NONE), 0, "mprotect PROT_NONE");
    check("all PROT_NONE");
    is_int(umm_mprotect(q, NP * PAGE, PROT_READ | PROT_WRITE), 0, "mprotect read-write");
    check("read-write again");

    is_int(umm_madvise(at(s, 10), 30 * PAGE, MADV_DONTNEED), 0, "MADV_DONTNEED shared");
    is_int(umm_madvise(at(q, 90), 20 * PAGE, MADV_DONTNEED), 0, "MADV_DONTNEED private");
    is_int(umm_madvise(a, 16 * PAGE, MADV_DONTNEED), 0, "MADV_DONTNEED anonymous");
    check("MADV_DONTNEED");
    is_int(umm_madvise(at(s, 140), 8 * PAGE, MADV_REMOVE), 0, "MADV_REMOVE");
    check("MADV_REMOVE");
    is_int(umm_msync(s, NP * PAGE, MS_INVALIDATE), 0, "MS_INVALIDATE");
    check("MS_INVALIDATE");

    is_int(umm_munmap(at(s, 200), 8 * PAGE), 0, "munmap a hole");
    check("a hole in a mapping");
    is_int(umm_prefault(at(s, 150), 40 * PAGE, PROT_READ), 0, "prefault");
    check("prefault across the hole's edge");

    /* Two mappings back to back of consecutive parts of the file: the host
     * joins them where their pages agree. */
    unsigned char *x = umm_mmap(NULL, 32 * PAGE, PROT_READ, MAP_SHARED, fd, 0);
    ok(x != MAP_FAILED, "a 32-page mapping");
    unsigned char *x2 = umm_mmap(at(x, 16), 16 * PAGE, PROT_READ, MAP_SHARED | MAP_FIXED, fd, 16 * PAGE);
    ok(x2 == at(x, 16), "MAP_FIXED over its second half, same file offsets");
    check("MAP_FIXED: two VMAs, one host mapping");
    touch_read(at(x, 15));
    check("the last page of the first VMA resident");
    touch_read(at(x, 16));
    check("and the first page of the second");
    unsigned char *x3 = umm_mmap(at(x, 8), 4 * PAGE, PROT_READ, MAP_PRIVATE | MAP_FIXED | MAP_ANONYMOUS, -1, 0);
    ok(x3 == at(x, 8), "MAP_FIXED anonymous in between");
    touch_read(at(x, 9));
    check("MAP_FIXED anonymous memory inside a file mapping");

    /* A later mapping that reaches beyond what the first one placed: the
     * file's frames come in two extents, which the host cannot join. */
    int fd2 = tmpfile_make(64 * PAGE, 22, O_RDONLY, NULL);
    unsigned char *e1 = umm_mmap(NULL, 8 * PAGE, PROT_READ, MAP_SHARED, fd2, 0);
    unsigned char *e2 = umm_mmap(NULL, 64 * PAGE, PROT_READ, MAP_SHARED, fd2, 0);
    ok(e1 != MAP_FAILED && e2 != MAP_FAILED, "a file placed in two extents");
    check("a mapping across two extents");
    for (int i = 0; i < 64; i++)
        touch_read(at(e2, i));
    check("all of it resident");

    /* A page beyond the end of the file: SIGBUS, from another memfd. */
    int fd3 = tmpfile_make(2 * PAGE + 100, 23, O_RDWR, NULL);
    unsigned char *t = umm_mmap(NULL, 6 * PAGE, PROT_READ, MAP_SHARED, fd3, 0);
    ok(t != MAP_FAILED, "a mapping longer than its file");
    touch_read(t);
    is_int(catch_signal(beyond_eof, at(t, 3), NULL, NULL), SIGBUS, "SIGBUS beyond the end");
    check("a page armed for SIGBUS");
    is_int(catch_signal(beyond_eof, at(t, 4), NULL, NULL), SIGBUS, "SIGBUS on the next page too");
    check("two pages armed for SIGBUS");
    is_int(ftruncate(fd3, 6 * PAGE), 0, "the file grows");
    is_int(catch_signal(beyond_eof, at(t, 3), NULL, NULL), 0, "the page reads now");
    check("a page disarmed");

    is_int(umm_munmap(at(s, 0), 64 * PAGE), 0, "munmap the first quarter");
    check("partial munmap");
    is_int(umm_munmap(x, 32 * PAGE), 0, "munmap the joined mappings");
    check("munmap of adjacent VMAs");
    umm_munmap(s, NP * PAGE);
    umm_munmap(q, NP * PAGE);
    umm_munmap(a, 64 * PAGE);
    umm_munmap(sa, 64 * PAGE);
    umm_munmap(e1, 8 * PAGE);
    umm_munmap(e2, 64 * PAGE);
    umm_munmap(t, 6 * PAGE);
    check("everything unmapped");
    is_int(stat_get("host_maps"), 0, "no host mapping counted");
    close(fd);
    close(fd2);
    close(fd3);
    unlink(path);
    check_released();
    return tap_done();
}
