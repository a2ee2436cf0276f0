/* Promise (issue 6, Valgrind's segment table): 256 MiB touched page by page
 * at random works, also under Valgrind, whose table of the host's mappings
 * has a fixed size (VG_N_SEGMENTS: it aborted at about 15,000 separate
 * mappings).  libumm keeps its host mappings under its budget, which is
 * much smaller when it runs under Valgrind.  A 256 MiB file is mapped
 * MAP_SHARED and read and written at random pages, a 256 MiB private
 * anonymous mapping written at random pages; every byte read is the one
 * expected, the file holds every write after munmap, and libumm's host
 * mappings never pass its budget (host_maps in umm_stats). */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "config.h"
#include "util.h"
#ifdef HAVE_VALGRIND_VALGRIND_H
#include <valgrind/valgrind.h>
#else
#define RUNNING_ON_VALGRIND 0
#endif

#define MIB ((size_t)1 << 20)
#define LEN (256 * MIB)
#define PAGES (LEN / PAGE)

static uint64_t rng = 88172645463325252ull;
static uint64_t next(void)
{
    return xorshift64(&rng);
}

int main(void)
{
    setenv("UMM_FLUSH_INTERVAL_MS", "0", 1);
    int fd = tmpfile_sparse(LEN, O_RDWR, NULL);
    unsigned char *f = umm_mmap(NULL, LEN, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    unsigned char *a = umm_mmap(NULL, LEN, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    ok(f != MAP_FAILED && a != MAP_FAILED, "a 256 MiB shared file mapping and 256 MiB of private memory");
    /* What each page should hold: 0 until written, then the writing
     * touch's mark (its index, so a stale or misplaced page shows). */
    uint32_t *fm = calloc(PAGES, sizeof *fm), *am = calloc(PAGES, sizeof *am);
    uint64_t budget = 0, maxmaps = 0, bad = 0, touches = PAGES / 2;
    for (uint64_t i = 1; i <= touches; i++) {
        uint64_t r = next(), p = (r >> 8) % PAGES, q = (r >> 40) % PAGES;
        if (r & 1) { /* file: read and write */
            if (*(uint32_t *)(f + p * PAGE) != fm[p])
                bad++;
            *(uint32_t *)(f + p * PAGE) = (uint32_t)i;
            fm[p] = (uint32_t)i;
        } else if (*(uint32_t *)(f + p * PAGE) != fm[p]) {
            bad++;
        }
        if (*(uint32_t *)(a + q * PAGE) != am[q])
            bad++;
        *(uint32_t *)(a + q * PAGE) = (uint32_t)i;
        am[q] = (uint32_t)i;
        if (i % 1024 == 0) {
            struct umm_stats st;
            umm_stats(&st);
            if (st.host_maps > maxmaps)
                maxmaps = st.host_maps;
        }
    }
    budget = RUNNING_ON_VALGRIND ? 4000 : 40000;
    is_int(bad, 0, "every byte read back is the one last written (%llu random touches of each)",
           (unsigned long long)touches);
    /* The default budget (4,000 under Valgrind); the count may pass it by
     * the pages of one fault before the next release. */
    ok(maxmaps <= budget + 64, "libumm's host mappings stayed within its budget of %llu (at most %llu)",
       (unsigned long long)budget, (unsigned long long)maxmaps);
    /* munmap writes back (msync MS_SYNC would add an fdatasync of the
     * whole file, seconds of disk for nothing checked here). */
    is_int(umm_munmap(f, LEN), 0, "munmap the file");
    uint64_t wrong = 0;
    for (uint64_t p = 0; p < PAGES; p++) {
        uint32_t v;
        if (pread(fd, &v, sizeof v, (off_t)(p * PAGE)) != sizeof v || v != fm[p])
            wrong++;
    }
    is_int(wrong, 0, "the file holds every page's last write");
    is_int(umm_munmap(a, LEN), 0, "munmap the private memory");
    close(fd);
    free(fm);
    free(am);
    check_released();
    return tap_done();
}
