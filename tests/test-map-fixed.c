/* Promise: MAP_FIXED replaces libumm's own mappings in its range, as the
 * kernel replaces its own: the part of an old mapping outside the range
 * stays, the part inside is gone, and the dirty shared pages of what is
 * replaced reach their file before umm_mmap returns.  The same sequence
 * runs against the kernel and against libumm; memory, results and files
 * must agree.  Over memory libumm does not own, MAP_FIXED fails with EEXIST
 * and changes nothing (a documented difference). */
#define _GNU_SOURCE
#include <fcntl.h>
#include <unistd.h>
#include "kcmp.h"

#define SA 33
#define SB 34
#define B ((unsigned char *)KCMP_BASE)

struct trace {
    int r1_ok, r2_ok;
    int file_has_replaced;      /* right after MAP_FIXED: the replaced pages' writes are in file A */
    int head_ok, middle_ok, tail_ok;
    int span_head_ok, span_ok, after_span;
    long asize;
    unsigned char afile[4 * PAGE], bfile[4 * PAGE];
};

static void scenario(const struct mm_ops *ops, int fa, int fb, struct trace *t)
{
    kcmp_require_free(KCMP_BASE, 8 * PAGE);
    unsigned char *a = ops->mmap(B, 4 * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED_NOREPLACE, fa, 0);
    if (a != B)
        tap_bail("%s: mmap A: %s", ops->name, strerror(errno));
    for (int i = 0; i < 4; i++)
        a[i * PAGE + i] = (unsigned char)(0xe0 + i); /* every page of A dirty */

    /* Replace pages 1-2 of A by pages 1-2 of B. */
    unsigned char *r = ops->mmap(B + PAGE, 2 * PAGE, PROT_READ, MAP_SHARED | MAP_FIXED, fb, PAGE);
    t->r1_ok = r == B + PAGE;
    unsigned char buf[4 * PAGE];
    t->file_has_replaced = read_file(fa, buf, sizeof buf, 0) == 0 && buf[PAGE + 1] == 0xe1 && buf[2 * PAGE + 2] == 0xe2;
    t->head_ok = a[0] == 0xe0 && diff_pattern(a + 1, PAGE - 1, 1, SA) == 0;
    t->middle_ok = diff_pattern(B + PAGE, 2 * PAGE, PAGE, SB) == 0;
    t->tail_ok = a[3 * PAGE + 3] == 0xe3 && diff_pattern(a + 3 * PAGE + 4, PAGE - 4, 3 * PAGE + 4, SA) == 0;

    /* Private anonymous pages 4-5, then one MAP_FIXED over A's last page
     * (dirty) and both anonymous pages. */
    unsigned char *c = ops->mmap(B + 4 * PAGE, 2 * PAGE, PROT_READ | PROT_WRITE,
                                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
    if (c != B + 4 * PAGE)
        tap_bail("%s: mmap C: %s", ops->name, strerror(errno));
    memset(c, 0x77, 2 * PAGE);
    r = ops->mmap(B + 3 * PAGE, 3 * PAGE, PROT_READ, MAP_PRIVATE | MAP_FIXED, fb, 0);
    t->r2_ok = r == B + 3 * PAGE;
    t->span_head_ok = B[0] == 0xe0 && diff_pattern(B + PAGE, 2 * PAGE, PAGE, SB) == 0;
    t->span_ok = diff_pattern(B + 3 * PAGE, 3 * PAGE, 0, SB) == 0;
    t->after_span = probe_read(B + 6 * PAGE);
    if (ops->munmap(B, 8 * PAGE) != 0)
        tap_bail("%s: munmap: %s", ops->name, strerror(errno));
    t->asize = file_bytes(fa, t->afile, sizeof t->afile);
    file_bytes(fb, t->bfile, sizeof t->bfile);
}

int main(void)
{
    static struct trace k, u;
    int kfa = tmpfile_make(4 * PAGE, SA, O_RDWR, NULL), kfb = tmpfile_make(4 * PAGE, SB, O_RDWR, NULL);
    int ufa = tmpfile_make(4 * PAGE, SA, O_RDWR, NULL), ufb = tmpfile_make(4 * PAGE, SB, O_RDWR, NULL);
    scenario(&kernel_ops, kfa, kfb, &k);
    ok(k.r1_ok && k.r2_ok && k.file_has_replaced && k.head_ok && k.middle_ok && k.tail_ok && k.span_head_ok &&
           k.span_ok && k.after_span == ACC_MAPERR,
       "kernel: the scenario behaves as the test expects (the test is right)");

    uint64_t w0 = stat_get("pages_written");
    scenario(&umm_ops, ufa, ufb, &u);
    ok(u.r1_ok, "MAP_FIXED over the middle of a libumm mapping returns the address");
    ok(u.file_has_replaced, "the dirty pages it replaced were in the file when umm_mmap returned");
    ok(u.head_ok, "the head of the old mapping is untouched (its write still there)");
    ok(u.middle_ok, "the middle shows the new file");
    ok(u.tail_ok, "the tail of the old mapping is untouched");
    ok(u.r2_ok, "MAP_FIXED over a file page and two anonymous pages returns the address");
    ok(u.span_head_ok, "what lies before it is untouched");
    ok(u.span_ok, "the whole range shows the new file");
    is_int(u.after_span, k.after_span, "the page after it is not mapped, as in the kernel");
    is_int(stat_get("pages_written") - w0, 4, "every dirty page of A was written back exactly once");
    is_int(u.asize, k.asize, "file A keeps its size");
    ok(memcmp(u.afile, k.afile, sizeof k.afile) == 0, "file A holds the bytes the kernel left in its copy");
    ok(memcmp(u.bfile, k.bfile, sizeof k.bfile) == 0, "file B is unchanged, as with the kernel");

    /* Over memory libumm does not own: EEXIST, nothing changes. */
    kcmp_require_free(KCMP_BASE, 8 * PAGE);
    unsigned char *mine = umm_mmap(B, 2 * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED_NOREPLACE, ufa, 0);
    unsigned char *foreign = mmap(B + 2 * PAGE, PAGE, PROT_READ | PROT_WRITE,
                                  MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
    ok(mine == B && foreign == B + 2 * PAGE, "a libumm mapping and a foreign page side by side");
    memset(foreign, 0x3c, PAGE);
    mine[5] = 0x99;
    struct umm_stats s0, s1;
    umm_stats(&s0);
    errno = 0;
    void *r = umm_mmap(foreign, PAGE, PROT_READ, MAP_PRIVATE | MAP_FIXED, ufb, 0);
    ok(r == MAP_FAILED && errno == EEXIST, "MAP_FIXED over foreign memory fails with EEXIST");
    errno = 0;
    r = umm_mmap(B, 3 * PAGE, PROT_READ, MAP_PRIVATE | MAP_FIXED, ufb, 0);
    ok(r == MAP_FAILED && errno == EEXIST, "MAP_FIXED over a libumm mapping and foreign memory: EEXIST");
    umm_stats(&s1);
    ok(foreign[0] == 0x3c && foreign[PAGE - 1] == 0x3c, "the foreign page is untouched");
    ok(mine[5] == 0x99 && mine[PAGE] == u.afile[PAGE], "the libumm mapping is untouched");
    ok(s1.mappings == s0.mappings && s1.pages_written == s0.pages_written, "nothing replaced, nothing written");
    is_int(umm_msync(mine, 2 * PAGE, MS_SYNC), 0, "its dirty page is still dirty: msync");
    is_int(stat_get("pages_written") - s1.pages_written, 1, "writes it back");
    unsigned char c;
    ok(read_file(ufa, &c, 1, 5) == 0 && c == 0x99, "and the file has it");
    munmap(foreign, PAGE);
    umm_munmap(mine, 2 * PAGE);
    close(kfa);
    close(kfb);
    close(ufa);
    close(ufb);
    check_released();
    return tap_done();
}
