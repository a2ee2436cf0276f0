/*
 * bench-dirty: an incremental checkpoint with umm_dirty against a full copy
 * (issue 16).  A region of private anonymous memory, every page resident;
 * each round stores one byte to a fraction of its pages, at random, then
 * takes a checkpoint:
 *   - full: memcpy of the whole region (what a program without dirty
 *     tracking does);
 *   - dirty: umm_dirty(UMM_DIRTY_CLEAR) and a copy of the pages it reports.
 * The cost of tracking is in two places, both reported: the call itself
 * (and the copies), and the stores, whose first one to each page after a
 * clear traps once (the "stores" columns: the same stores with tracking
 * cleared before them, and without: the region made writable again by
 * stores before the clock starts).  Medians of REPS rounds.
 *
 *   bench-dirty [MiB]   region size (default 64)
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <umm.h>

#include "bench.h"

#define PAGE 4096
#define REPS 7

static uint64_t rnd = 88172645463325252ull;
static uint64_t next(void)
{
    rnd ^= rnd << 13;
    rnd ^= rnd >> 7;
    rnd ^= rnd << 17;
    return rnd;
}

int main(int argc, char **argv)
{
    size_t mib = argc > 1 ? strtoul(argv[1], NULL, 10) : 64, npages = mib * 256, len = npages * PAGE;
    unsigned char *p = umm_mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    unsigned char *snap = malloc(len), *vec = malloc(npages);
    size_t *pick = malloc(npages * sizeof *pick);
    if (p == MAP_FAILED || !snap || !vec || !pick) {
        perror("bench-dirty");
        return 1;
    }
    memset(p, 1, len);
    memcpy(snap, p, len); /* the snapshot's pages resident too */
    printf("bench-dirty: %zu MiB of private anonymous memory, %d rounds, medians\n", mib, REPS);
    printf("%8s %12s %12s %8s %14s %14s\n", "written", "full copy", "umm_dirty", "ratio", "stores(track)",
           "stores(none)");
    static const double fractions[] = { 0.001, 0.01, 0.1, 0.5, 1.0 };
    for (size_t fi = 0; fi < sizeof fractions / sizeof *fractions; fi++) {
        size_t k = (size_t)(npages * fractions[fi]);
        if (k == 0)
            k = 1;
        double full[REPS], inc[REPS], st_track[REPS], st_none[REPS];
        for (int r = 0; r < REPS; r++) {
            for (size_t i = 0; i < k; i++)
                pick[i] = next() % npages;
            /* Stores without tracking: every page already writable. */
            umm_dirty(p, len, NULL, UMM_DIRTY_CLEAR);
            memset(p, 2, len); /* all writable again (traps outside the clock) */
            double t0 = now();
            for (size_t i = 0; i < k; i++)
                p[pick[i] * PAGE + (i & (PAGE - 1))]++;
            st_none[r] = now() - t0;
            double t1 = now();
            memcpy(snap, p, len);
            full[r] = now() - t1;
            /* The same stores with tracking on. */
            umm_dirty(p, len, NULL, UMM_DIRTY_CLEAR);
            double t2 = now();
            for (size_t i = 0; i < k; i++)
                p[pick[i] * PAGE + (i & (PAGE - 1))]++;
            st_track[r] = now() - t2;
            double t3 = now();
            long n = umm_dirty(p, len, vec, UMM_DIRTY_CLEAR);
            for (size_t i = 0; i < npages; i++)
                if (vec[i])
                    memcpy(snap + i * PAGE, p + i * PAGE, PAGE);
            inc[r] = now() - t3;
            if (n <= 0 || memcmp(snap, p, len) != 0) {
                fprintf(stderr, "bench-dirty: the checkpoint differs from the memory\n");
                return 1;
            }
        }
        double f = median_of(full, REPS), d = median_of(inc, REPS);
        printf("%7.1f%% %10.2fms %10.2fms %7.2fx %12.2fms %12.2fms\n", fractions[fi] * 100, f * 1e3, d * 1e3, f / d,
               median_of(st_track, REPS) * 1e3, median_of(st_none, REPS) * 1e3);
    }
    umm_munmap(p, len);
    return 0;
}
