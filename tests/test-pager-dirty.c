/* Promise (umm_dirty(3); issue 16): umm_dirty reports every page written
 * since the last UMM_DIRTY_CLEAR, checked against the truth -- a copy of
 * the memory taken at the clear, compared byte for byte:
 *   - private anonymous memory, a shared file mapping and a pager mapping,
 *     every page resident at the clear: exactly the pages stored to
 *     (reads do not count), round after round;
 *   - write-back in between (msync) does not make a written page forgotten;
 *   - under a budget smaller than the memory (reclaim and swap in
 *     between): never a page changed and not reported;
 *   - without UMM_DIRTY_CLEAR nothing is cleared; EINVAL and ENOMEM. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "util.h"

static unsigned char store_bytes[256 * PAGE];
static ssize_t st_fill(void *c, off_t off, void *buf, size_t len)
{
    (void)c;
    memcpy(buf, store_bytes + off, len);
    return (ssize_t)len;
}
static int st_write(void *c, off_t off, const void *buf, size_t len)
{
    (void)c;
    memcpy(store_bytes + off, buf, len);
    return 0;
}
static const struct umm_pager_ops ops = { st_fill, st_write, NULL, NULL, NULL };

/* Rounds of: clear, store to a random set of pages (and read others),
 * compare what umm_dirty reports with the set and with the bytes. */
static void rounds(const char *what, unsigned char *p, size_t npages, int exact, int msync_between)
{
    unsigned char *snap = malloc(npages * PAGE), *vec = malloc(npages), *truth = malloc(npages);
    uint64_t rnd = 0x1234567 + npages;
    umm_dirty(p, npages * PAGE, NULL, UMM_DIRTY_CLEAR);
    int all_exact = 1, none_missed = 1, reads_clean = 1;
    for (int r = 0; r < 5; r++) {
        memcpy(snap, p, npages * PAGE);
        memset(truth, 0, npages);
        for (size_t k = 0; k < npages / 8; k++) {
            size_t pg = xorshift64(&rnd) % npages;
            p[pg * PAGE + xorshift64(&rnd) % PAGE] ^= 0xff; /* always a change */
            truth[pg] = 1;
        }
        volatile unsigned char sink = 0;
        for (size_t k = 0; k < npages / 4; k++)
            sink ^= p[(xorshift64(&rnd) % npages) * PAGE];
        (void)sink;
        if (msync_between)
            umm_msync(p, npages * PAGE, MS_SYNC);
        long n = umm_dirty(p, npages * PAGE, vec, UMM_DIRTY_CLEAR);
        long want = 0;
        for (size_t i = 0; i < npages; i++) {
            int changed = memcmp(p + i * PAGE, snap + i * PAGE, PAGE) != 0;
            want += truth[i];
            if (changed && !vec[i])
                none_missed = 0;
            if (vec[i] != truth[i])
                all_exact = 0;
            if (!truth[i] && vec[i])
                reads_clean = 0;
        }
        if (exact && n != want)
            all_exact = 0;
    }
    ok(none_missed, "%s: no page changed and not reported, in 5 rounds", what);
    if (exact)
        ok(all_exact && reads_clean, "%s: exactly the pages stored to, reads not counted", what);
    free(snap);
    free(vec);
    free(truth);
}

int main(void)
{
    size_t npages = 256;
    umm_stats(&(struct umm_stats){ 0 });

    unsigned char *a = umm_mmap(NULL, npages * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    for (size_t i = 0; i < npages; i++)
        a[i * PAGE] = 1;
    unsigned char vec[4];
    ok(umm_dirty(a, 4 * PAGE, vec, 0) == 4 && vec[0] && vec[3], "pages just written are reported");
    ok(umm_dirty(a, 4 * PAGE, vec, 0) == 4, "without UMM_DIRTY_CLEAR nothing is cleared");
    ok(umm_dirty(a, 4 * PAGE, vec, UMM_DIRTY_CLEAR) == 4 && umm_dirty(a, 4 * PAGE, vec, 0) == 0 && !vec[0],
       "after UMM_DIRTY_CLEAR nothing is reported");
    a[2 * PAGE + 5] = 9;
    ok(umm_dirty(a, 4 * PAGE, vec, 0) == 1 && vec[2] && !vec[1], "one store: that page alone");
    ok(a[2 * PAGE + 5] == 9 && a[2 * PAGE] == 1, "and the store landed");
    rounds("private anonymous", a, npages, 1, 0);

    int fd = tmpfile_make(npages * PAGE, 3, O_RDWR, NULL);
    unsigned char *f = umm_mmap(NULL, npages * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    for (size_t i = 0; i < npages; i++)
        (void)f[i * PAGE];
    rounds("shared file", f, npages, 1, 0);
    rounds("shared file, msync between", f, npages, 1, 1);

    unsigned char *g = umm_mmap_pager(NULL, npages * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, &ops, NULL, 0);
    for (size_t i = 0; i < npages; i++)
        (void)g[i * PAGE];
    rounds("shared pager", g, npages, 1, 1);

    /* Reclaim in between: pages go to swap or back to the file and come
     * back; nothing written may be missed. */
    umm_madvise(a, npages * PAGE, MADV_PAGEOUT);
    umm_madvise(f, npages * PAGE, MADV_PAGEOUT);
    rounds("private anonymous, paged out", a, npages, 0, 0);
    for (int i = 0; i < 3; i++) {
        umm_madvise(a, npages * PAGE, MADV_PAGEOUT);
        umm_madvise(f, npages * PAGE, MADV_PAGEOUT);
    }
    rounds("shared file, paged out", f, npages, 0, 0);

    errno = 0;
    ok(umm_dirty(a + 1, PAGE, NULL, 0) == -1 && errno == EINVAL, "an unaligned address: EINVAL");
    errno = 0;
    ok(umm_dirty(a, PAGE, NULL, 2) == -1 && errno == EINVAL, "an unknown flag: EINVAL");
    umm_munmap(a + PAGE, PAGE);
    errno = 0;
    ok(umm_dirty(a, 3 * PAGE, NULL, 0) == -1 && errno == ENOMEM, "a hole in the range: ENOMEM");
    ok(umm_dirty(a, 0, NULL, 0) == 0, "an empty range: 0");
    umm_munmap(a, npages * PAGE);
    umm_munmap(f, npages * PAGE);
    umm_munmap(g, npages * PAGE);
    close(fd);
    check_released();
    return tap_done();
}
