/* Promise: anonymous memory, private and shared, reads as zeros, is
 * allocated lazily (umm_stats frames grow only on touch, by the pages
 * touched and not by the size of the mapping), and round-trips writes; a
 * 16 GiB MAP_NORESERVE reservation is cheap (no frames, no resident pages,
 * no memory of the process, one host mapping) and usable at its ends and in the middle, as the kernel's
 * own; every frame is freed by umm_munmap. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>
#include "kcmp.h"

#define N 1024 /* pages */

/* The process's resident memory (VmRSS), in KiB. */
static long rss_kib(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kib = -1;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %ld", &kib) == 1)
            break;
    if (f)
        fclose(f);
    return kib;
}

static int all_zero(const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i])
            return 0;
    return 1;
}

int main(void)
{
    static const int types[2] = { MAP_PRIVATE, MAP_SHARED };
    for (int t = 0; t < 2; t++) {
        const char *what = t ? "shared" : "private";
        struct umm_stats s0, s1;
        umm_stats(&s0);
        unsigned char *p = umm_mmap(NULL, N * PAGE, PROT_READ | PROT_WRITE, types[t] | MAP_ANONYMOUS, -1, 0);
        umm_stats(&s1);
        ok(p != MAP_FAILED, "%s anonymous mapping of %d pages", what, N);
        is_int(s1.frames - s0.frames, 0, "%s: no frame at umm_mmap", what);
        is_int(s1.resident - s0.resident, 0, "%s: nothing resident at umm_mmap", what);
        ok(all_zero(p + 100 * PAGE, PAGE), "%s: a page reads as zeros", what);
        umm_stats(&s1);
        ok(s1.frames > s0.frames && s1.frames - s0.frames <= 32,
           "%s: touching one page takes a few frames, not %d (took %llu)", what, N,
           (unsigned long long)(s1.frames - s0.frames));
        uint64_t f1 = s1.frames;
        for (int i = 0; i < 8; i++)
            p[(500 + 37 * i) * PAGE + i] = (unsigned char)(i + 1);
        umm_stats(&s1);
        ok(s1.frames > f1 && s1.frames - s0.frames < N / 4, "%s: frames grow with the pages touched (%llu)", what,
           (unsigned long long)(s1.frames - s0.frames));
        int good = 1;
        for (int i = 0; i < 8; i++)
            good &= p[(500 + 37 * i) * PAGE + i] == (unsigned char)(i + 1) &&
                    p[(500 + 37 * i) * PAGE + i + 1] == 0;
        ok(good, "%s: writes read back, the rest stays zero", what);
        memset(p, 0xa7, N * PAGE);
        umm_stats(&s1);
        is_int(s1.frames - s0.frames, N, "%s: writing every page takes one frame per page", what);
        size_t bad = 0;
        for (size_t i = 0; i < N * PAGE; i++)
            bad += p[i] != 0xa7;
        is_int(bad, 0, "%s: every byte round-trips", what);
        is_int(umm_munmap(p, N * PAGE), 0, "%s: umm_munmap", what);
        umm_stats(&s1);
        is_int(s1.frames, s0.frames, "%s: every frame freed", what);
    }

    /* 16 GiB, reserved but not backed. */
    const size_t big = (size_t)16 << 30;
    for (int t = 0; t < 2; t++) {
        const char *what = t ? "shared" : "private";
        char *k = mmap(NULL, big, PROT_READ | PROT_WRITE, types[t] | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        ok(k != MAP_FAILED, "kernel: a %s 16 GiB MAP_NORESERVE mapping (the test is right)", what);
        if (k != MAP_FAILED)
            munmap(k, big);
        struct umm_stats s0, s1;
        umm_stats(&s0);
        long rss0 = rss_kib();
        unsigned char *p = umm_mmap(NULL, big, PROT_READ | PROT_WRITE, types[t] | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        long rss1 = rss_kib();
        umm_stats(&s1);
        ok(p != MAP_FAILED, "libumm: a %s 16 GiB MAP_NORESERVE mapping", what);
        if (p == MAP_FAILED)
            continue;
        ok(rss1 - rss0 < 16 * 1024, "%s: cheap: the process grew by %ld KiB, not by the mapping's size", what,
           rss1 - rss0);
        ok(s1.host_maps - s0.host_maps <= 2, "%s: cheap: %llu host mappings", what,
           (unsigned long long)(s1.host_maps - s0.host_maps));
        is_int(s1.frames - s0.frames, 0, "%s: no frame", what);
        is_int(s1.resident - s0.resident, 0, "%s: nothing resident", what);
        p[0] = 1;
        p[big / 2 + 12345] = 2;
        p[big - 1] = 3;
        ok(p[0] == 1 && p[big / 2 + 12345] == 2 && p[big - 1] == 3 && p[big - 2] == 0 && p[1] == 0,
           "%s: its first, middle and last pages work", what);
        umm_stats(&s1);
        ok(s1.frames - s0.frames <= 3 * 32, "%s: a few frames for three touched pages (%llu)", what,
           (unsigned long long)(s1.frames - s0.frames));
        is_int(umm_munmap(p, big), 0, "%s: umm_munmap", what);
        umm_stats(&s1);
        is_int(s1.frames, s0.frames, "%s: every frame freed", what);
    }
    check_released();
    return tap_done();
}
