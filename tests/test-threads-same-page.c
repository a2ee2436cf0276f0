/* Promise: two threads faulting the same page cause one read.  Eight
 * threads, released together by a barrier, touch the same page that is not
 * resident yet, page after page: the file is read once per page, every
 * thread sees the file's bytes; eight writers of the same private page make
 * one copy-on-write copy, of the same shared page one dirty page that msync
 * writes once, of the same anonymous page one frame. */
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "util.h"

#define NT 8      /* threads */
#define NPAGES 48 /* pages, one round each */

enum what {
    READ_ONE,   /* all read page p of one shared mapping */
    READ_OWN,   /* each reads page p of its own mapping of the file */
    WRITE,      /* each writes its own 8 bytes of page p */
    STOP
};

static pthread_barrier_t start, done;
static volatile enum what what;
static unsigned char *volatile maps[NT]; /* the mapping each thread uses */
static volatile size_t round_page;
static const unsigned seed = 21;
static int bad[NT];

/* Thread t's word in page p: its own 8 bytes, a value nobody else writes. */
static uint64_t word_of(int t, size_t p)
{
    return 0x5157000000000000ull | ((uint64_t)t << 32) | (uint64_t)p;
}

static void *worker(void *arg)
{
    int t = (int)(intptr_t)arg;
    for (;;) {
        pthread_barrier_wait(&start);
        if (what == STOP)
            return NULL;
        const volatile unsigned char *page = maps[t] + round_page * PAGE;
        size_t p = round_page;
        if (what == WRITE) {
            *(volatile uint64_t *)(page + 64 * t) = word_of(t, p);
        } else {
            /* Each thread starts at a different byte, then reads it all. */
            for (size_t i = 0; i < PAGE; i++) {
                size_t at = (i + (size_t)t * 509) % PAGE;
                bad[t] += page[at] != pattern(p * PAGE + at, seed);
            }
        }
        pthread_barrier_wait(&done);
    }
}

struct delta {
    uint64_t faults, pages_read, pages_written, resident, frames, cow_copies;
};
static struct delta snap(void)
{
    struct umm_stats s;
    umm_stats(&s);
    return (struct delta){ s.faults, s.pages_read, s.pages_written, s.resident, s.frames, s.cow_copies };
}

/* One round: all threads do `w` on page p of their mapping at once. */
static void run_round(enum what w, size_t p)
{
    what = w;
    round_page = p;
    pthread_barrier_wait(&start);
    pthread_barrier_wait(&done);
}

/* Counts of rounds that went wrong, reported once per part. */
struct tally {
    int rounds, bad_read, bad_faults, bad_resident, bad_frames, bad_cow, bad_written, bad_bytes;
};

static int sum_bad(void)
{
    int n = 0;
    for (int t = 0; t < NT; t++) {
        n += bad[t];
        bad[t] = 0;
    }
    return n;
}

int main(void)
{
    /* No background write-back: the counts below are exact. */
    setenv("UMM_FLUSH_INTERVAL_MS", "0", 1);
    char path[256];
    const size_t size = NPAGES * PAGE;
    int fd = tmpfile_make(size, seed, O_RDWR, path);
    pthread_t th[NT];
    pthread_barrier_init(&start, NULL, NT + 1);
    pthread_barrier_init(&done, NULL, NT + 1);
    for (int t = 0; t < NT; t++)
        pthread_create(&th[t], NULL, worker, (void *)(intptr_t)t);

    /* 1. All threads read the same page of one mapping: one read, one
     *    page resident, per page; nobody sees a wrong byte. */
    unsigned char *m = umm_mmap(NULL, size, PROT_READ, MAP_SHARED, fd, 0);
    ok(m != MAP_FAILED, "one shared read-only mapping of a %d-page file", NPAGES);
    is_int(umm_madvise(m, size, MADV_RANDOM), 0, "MADV_RANDOM: one page per fault, no read-ahead");
    for (int t = 0; t < NT; t++)
        maps[t] = m;
    struct tally a = { 0 };
    int collided = 0;
    for (size_t p = 0; p < NPAGES; p++) {
        struct delta d0 = snap();
        run_round(READ_ONE, p);
        struct delta d1 = snap();
        a.rounds++;
        collided += d1.faults - d0.faults > 1;
        a.bad_read += d1.pages_read - d0.pages_read != 1;
        a.bad_resident += d1.resident - d0.resident != 1;
        a.bad_faults += d1.faults - d0.faults < 1 || d1.faults - d0.faults > NT;
        a.bad_bytes += sum_bad();
    }
    tap_diag("in %d of %d rounds more than one thread trapped on the page", collided, a.rounds);
    is_int(a.bad_read, 0, "%d threads, one mapping: exactly one page read per page (%d pages)", NT, a.rounds);
    is_int(a.bad_resident, 0, "exactly one page made resident per page");
    is_int(a.bad_faults, 0, "between 1 and %d traps per page", NT);
    is_int(a.bad_bytes, 0, "every thread saw the file's bytes");
    is_int(umm_munmap(m, size), 0, "umm_munmap");

    /* 2. Each thread reads the same page through its own mapping: the
     *    threads meet at the page cache, not at a page-table entry. */
    int okmaps = 1;
    for (int t = 0; t < NT; t++) {
        maps[t] = umm_mmap(NULL, size, PROT_READ, t % 2 ? MAP_SHARED : MAP_PRIVATE, fd, 0);
        okmaps &= maps[t] != MAP_FAILED && umm_madvise(maps[t], size, MADV_RANDOM) == 0;
    }
    ok(okmaps, "%d mappings of the file (shared and private)", NT);
    struct tally b = { 0 };
    for (size_t p = 0; p < NPAGES; p++) {
        struct delta d0 = snap();
        run_round(READ_OWN, p);
        struct delta d1 = snap();
        b.rounds++;
        b.bad_read += d1.pages_read - d0.pages_read != 1;
        b.bad_faults += d1.faults - d0.faults != NT;
        b.bad_resident += d1.resident - d0.resident != NT;
        b.bad_bytes += sum_bad();
    }
    is_int(b.bad_read, 0, "%d mappings: exactly one page read per page (%d pages)", NT, b.rounds);
    is_int(b.bad_faults, 0, "exactly one trap per thread per page");
    is_int(b.bad_resident, 0, "the page resident once in every mapping");
    is_int(b.bad_bytes, 0, "every thread saw the file's bytes");
    for (int t = 0; t < NT; t++)
        umm_munmap(maps[t], size);
    is_int(stat_get("frames"), 0, "every frame released");

    /* 3. All threads write the same page of one private mapping, half the
     *    pages not resident, half resident read-only from the page cache:
     *    one copy per page, every thread's bytes land in it, the file is
     *    untouched. */
    m = umm_mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    ok(m != MAP_FAILED, "a private writable mapping");
    umm_madvise(m, size, MADV_RANDOM);
    for (int t = 0; t < NT; t++)
        maps[t] = m;
    struct tally c = { 0 };
    for (size_t p = 0; p < NPAGES; p++) {
        int resident = p % 2;
        if (resident) {
            volatile unsigned char x = m[p * PAGE];
            (void)x;
        }
        struct delta d0 = snap();
        run_round(WRITE, p);
        struct delta d1 = snap();
        c.rounds++;
        c.bad_cow += d1.cow_copies - d0.cow_copies != 1;
        c.bad_read += d1.pages_read - d0.pages_read != (uint64_t)!resident;
        c.bad_resident += d1.resident - d0.resident != (uint64_t)!resident;
        c.bad_frames += d1.frames - d0.frames != 1 + (uint64_t)!resident; /* the copy and the cache page */
        for (size_t i = 0; i < PAGE; i += 8) {
            uint64_t got;
            memcpy(&got, m + p * PAGE + i, 8);
            uint64_t want;
            if (i % 64 == 0 && i / 64 < NT) {
                want = word_of((int)(i / 64), p);
            } else {
                unsigned char b8[8];
                for (int k = 0; k < 8; k++)
                    b8[k] = pattern(p * PAGE + i + k, seed);
                memcpy(&want, b8, 8);
            }
            c.bad_bytes += got != want;
        }
    }
    is_int(c.bad_cow, 0, "%d writers of one private page: exactly one copy per page (%d pages)", NT, c.rounds);
    is_int(c.bad_read, 0, "one read for a page not resident, none for a resident one");
    is_int(c.bad_resident, 0, "resident count right");
    is_int(c.bad_frames, 0, "one new frame per copy");
    is_int(c.bad_bytes, 0, "every writer's bytes are in the copy, the rest is the file's");
    is_int(umm_munmap(m, size), 0, "umm_munmap");
    {
        unsigned char *buf = malloc(size);
        int diff = 0;
        read_file(fd, buf, size, 0);
        for (size_t i = 0; i < size; i++)
            diff += buf[i] != pattern(i, seed);
        is_int(diff, 0, "the file is unchanged by private writes");
        free(buf);
    }

    /* 4. All threads write the same page of one shared mapping: one dirty
     *    page, which msync writes once; twice over, so that the second
     *    round's writers race on a clean page that is already resident
     *    (dirty marking, not fill). */
    m = umm_mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    ok(m != MAP_FAILED, "a shared writable mapping");
    umm_madvise(m, size, MADV_RANDOM);
    for (int t = 0; t < NT; t++)
        maps[t] = m;
    struct tally d = { 0 };
    for (int pass = 0; pass < 2; pass++) {
        for (size_t p = 0; p < NPAGES; p++) {
            struct delta d0 = snap();
            run_round(WRITE, p);
            struct delta d1 = snap();
            d.bad_read += d1.pages_read - d0.pages_read != (uint64_t)(pass == 0);
            d.bad_resident += d1.resident - d0.resident != (uint64_t)(pass == 0);
            if (umm_msync(m + p * PAGE, PAGE, MS_SYNC) != 0)
                d.bad_written += 1000;
            struct delta d2 = snap();
            d.rounds++;
            d.bad_written += d2.pages_written - d1.pages_written != 1;
            d.bad_cow += d2.cow_copies != d0.cow_copies;
            /* A second msync has nothing to write. */
            umm_msync(m + p * PAGE, PAGE, MS_SYNC);
            d.bad_written += snap().pages_written != d2.pages_written;
        }
    }
    is_int(d.bad_read, 0, "%d writers of one shared page: one read per page, none on the second pass", NT);
    is_int(d.bad_resident, 0, "resident count right");
    is_int(d.bad_written, 0, "msync writes exactly the one dirty page, a second msync nothing (%d rounds)",
           d.rounds);
    is_int(d.bad_cow, 0, "no copy-on-write in a shared mapping");
    {
        unsigned char *buf = malloc(size);
        int diff = 0;
        read_file(fd, buf, size, 0);
        for (size_t p = 0; p < NPAGES; p++)
            for (size_t i = 0; i < PAGE; i += 8) {
                uint64_t got, want;
                memcpy(&got, buf + p * PAGE + i, 8);
                if (i % 64 == 0 && i / 64 < NT) {
                    want = word_of((int)(i / 64), p);
                } else {
                    unsigned char b8[8];
                    for (int k = 0; k < 8; k++)
                        b8[k] = pattern(p * PAGE + i + k, seed);
                    memcpy(&want, b8, 8);
                }
                diff += got != want;
            }
        is_int(diff, 0, "the file holds every writer's bytes and the rest unchanged");
        free(buf);
    }
    is_int(umm_munmap(m, size), 0, "umm_munmap");

    /* 5. Anonymous memory, private and shared: one frame per page. */
    for (int shared = 0; shared < 2; shared++) {
        m = umm_mmap(NULL, size, PROT_READ | PROT_WRITE, (shared ? MAP_SHARED : MAP_PRIVATE) | MAP_ANONYMOUS, -1, 0);
        ok(m != MAP_FAILED, "%s anonymous mapping", shared ? "a shared" : "a private");
        umm_madvise(m, size, MADV_RANDOM);
        for (int t = 0; t < NT; t++)
            maps[t] = m;
        struct tally e = { 0 };
        for (size_t p = 0; p < NPAGES; p++) {
            struct delta d0 = snap();
            run_round(WRITE, p);
            struct delta d1 = snap();
            e.rounds++;
            e.bad_frames += d1.frames - d0.frames != 1;
            e.bad_resident += d1.resident - d0.resident != 1;
            for (size_t i = 0; i < PAGE; i += 8) {
                uint64_t got, want = (i % 64 == 0 && i / 64 < NT) ? word_of((int)(i / 64), p) : 0;
                memcpy(&got, m + p * PAGE + i, 8);
                e.bad_bytes += got != want;
            }
        }
        is_int(e.bad_frames, 0, "%d writers of one %s anonymous page: exactly one frame per page (%d pages)", NT,
               shared ? "shared" : "private", e.rounds);
        is_int(e.bad_resident, 0, "one page resident per page");
        is_int(e.bad_bytes, 0, "every writer's bytes are there, the rest zeros");
        is_int(umm_munmap(m, size), 0, "umm_munmap");
    }

    what = STOP;
    pthread_barrier_wait(&start);
    for (int t = 0; t < NT; t++)
        pthread_join(th[t], NULL);
    close(fd);
    unlink(path);
    check_released();
    return tap_done();
}
