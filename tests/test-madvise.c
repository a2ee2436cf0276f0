/* Promise: umm_madvise as the kernel's madvise.  MADV_DONTNEED makes
 * private file pages show the file again, anonymous private pages zeros,
 * and keeps the contents of shared pages (file: still written back;
 * anonymous: still there); MADV_WILLNEED, MADV_SEQUENTIAL, MADV_RANDOM and
 * MADV_NORMAL are accepted and change no byte; unknown advice is EINVAL.
 * Each runs against the kernel and libumm.  And what libumm documents:
 * MADV_DONTNEED frees private frames, MADV_WILLNEED reads the pages at
 * once, MADV_RANDOM reads only the page touched, MADV_SEQUENTIAL reads
 * ahead. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <unistd.h>
#include "kcmp.h"

#define SEED 48
#define N 4

enum { PRIV_FILE, SHARED_FILE, PRIV_ANON, SHARED_ANON, NKIND };
static const char *const kind_name[NKIND] = { "private file", "shared file", "private anonymous", "shared anonymous" };
static const int kind_flags[NKIND] = { MAP_PRIVATE, MAP_SHARED, MAP_PRIVATE | MAP_ANONYMOUS, MAP_SHARED | MAP_ANONYMOUS };

static const int hints[4] = { MADV_WILLNEED, MADV_SEQUENTIAL, MADV_RANDOM, MADV_NORMAL };
static const char *const hint_name[4] = { "MADV_WILLNEED", "MADV_SEQUENTIAL", "MADV_RANDOM", "MADV_NORMAL" };

struct trace {
    int dontneed_rc[NKIND];
    uint64_t after[NKIND][N]; /* page hashes after MADV_DONTNEED */
    int hint_rc[NKIND][4];
    int hint_same[NKIND];     /* no byte changed by the hints */
    int unknown_rc, unknown_errno;
    unsigned char file[N * PAGE];
};

static void scenario(const struct mm_ops *ops, struct trace *t)
{
    int fd = tmpfile_make(N * PAGE, SEED, O_RDWR, NULL);
    for (int k = 0; k < NKIND; k++) {
        int anon = (kind_flags[k] & MAP_ANONYMOUS) != 0;
        unsigned char *p = ops->mmap(NULL, N * PAGE, PROT_READ | PROT_WRITE, kind_flags[k], anon ? -1 : fd, 0);
        if (p == MAP_FAILED)
            tap_bail("%s: mmap: %s", ops->name, strerror(errno));
        (void)p[0];                  /* page 0 resident, not written */
        memset(p + PAGE, 0x71, 200); /* page 1 written */
        p[3 * PAGE + 9] = 0x73;      /* page 3 written */
        uint64_t before[N];
        for (int i = 0; i < N; i++)
            before[i] = page_hash(p + i * PAGE);
        int same = 1;
        for (int h = 0; h < 4; h++) {
            t->hint_rc[k][h] = ops->madvise(p, N * PAGE, hints[h]);
            for (int i = 0; i < N; i++)
                same &= page_hash(p + i * PAGE) == before[i];
        }
        t->hint_same[k] = same;
        t->dontneed_rc[k] = ops->madvise(p, 2 * PAGE, MADV_DONTNEED); /* pages 0 and 1 */
        t->dontneed_rc[k] |= ops->madvise(p + 3 * PAGE, PAGE, MADV_DONTNEED);
        for (int i = 0; i < N; i++)
            t->after[k][i] = page_hash(p + i * PAGE);
        ops->munmap(p, N * PAGE);
    }
    errno = 0;
    unsigned char *p = ops->mmap(NULL, PAGE, PROT_READ, MAP_PRIVATE, fd, 0);
    t->unknown_rc = ops->madvise(p, PAGE, 12345);
    t->unknown_errno = errno;
    ops->munmap(p, PAGE);
    file_bytes(fd, t->file, sizeof t->file);
    close(fd);
}

int main(void)
{
    static struct trace k, u;
    scenario(&kernel_ops, &k);
    scenario(&umm_ops, &u);
    for (int kind = 0; kind < NKIND; kind++) {
        const char *w = kind_name[kind];
        for (int h = 0; h < 4; h++)
            is_int(u.hint_rc[kind][h], k.hint_rc[kind][h], "%s: %s returns as the kernel", w, hint_name[h]);
        ok(u.hint_same[kind], "%s: the hints change no byte", w);
        is_int(u.dontneed_rc[kind], k.dontneed_rc[kind], "%s: MADV_DONTNEED returns as the kernel", w);
        for (int i = 0; i < N; i++)
            ok(u.after[kind][i] == k.after[kind][i], "%s: page %d after MADV_DONTNEED as in the kernel", w, i);
    }
    ok(k.unknown_rc == -1 && k.unknown_errno == EINVAL, "kernel: unknown advice is EINVAL (the test is right)");
    ok(u.unknown_rc == -1 && u.unknown_errno == EINVAL, "unknown advice is EINVAL");
    ok(memcmp(u.file, k.file, sizeof k.file) == 0, "the file ends with the kernel's twin's bytes");

    /* What libumm documents. */
    int fd = tmpfile_make(64 * PAGE, SEED, O_RDONLY, NULL);
    unsigned char *a = umm_mmap(NULL, 8 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    memset(a, 1, 8 * PAGE);
    uint64_t f0 = stat_get("frames");
    is_int(umm_madvise(a, 8 * PAGE, MADV_DONTNEED), 0, "MADV_DONTNEED on private anonymous memory");
    is_int(f0 - stat_get("frames"), 8, "frees its 8 frames");
    umm_munmap(a, 8 * PAGE);

    unsigned char *p = umm_mmap(NULL, 64 * PAGE, PROT_READ, MAP_PRIVATE, fd, 0);
    uint64_t r0 = stat_get("resident");
    is_int(umm_madvise(p, 8 * PAGE, MADV_WILLNEED), 0, "MADV_WILLNEED");
    ok(stat_get("resident") - r0 >= 8, "reads the 8 pages at once (and maybe more ahead: %llu)",
       (unsigned long long)(stat_get("resident") - r0));
    uint64_t faults = stat_get("faults");
    is_int(diff_pattern(p, 8 * PAGE, 0, SEED), 0, "which show the file");
    is_int(stat_get("faults") - faults, 0, "and are touched without a trap");

    /* Far enough from the pages read ahead above. */
    is_int(umm_madvise(p + 20 * PAGE, 16 * PAGE, MADV_RANDOM), 0, "MADV_RANDOM");
    uint64_t rd = stat_get("pages_read");
    for (int i = 20; i < 36; i++)
        (void)*(volatile unsigned char *)(p + i * PAGE);
    is_int(stat_get("pages_read") - rd, 16, "sequential touches read one page each under MADV_RANDOM");

    is_int(umm_madvise(p + 40 * PAGE, 24 * PAGE, MADV_SEQUENTIAL), 0, "MADV_SEQUENTIAL");
    rd = stat_get("pages_read");
    (void)*(volatile unsigned char *)(p + 40 * PAGE);
    ok(stat_get("pages_read") - rd > 1, "one touch reads ahead under MADV_SEQUENTIAL (%llu pages)",
       (unsigned long long)(stat_get("pages_read") - rd));
    is_int(diff_pattern(p + 20 * PAGE, 44 * PAGE, 20 * PAGE, SEED), 0, "and the pages show the file");
    umm_munmap(p, 64 * PAGE);
    close(fd);
    check_released();
    return tap_done();
}
