/* Promise: a fault libumm handles leaves errno as it was.  The program
 * cannot see the trap, so it cannot expect errno to change across a load
 * or a store (the kernel's own page faults never touch it), while libumm's
 * handler makes system calls (futex waits that lose a race return EAGAIN).
 * Eight threads touch the same fresh pages at once, in the same order,
 * reading and writing, in private and shared anonymous
 * memory and in private and shared mappings of a file, with MADV_RANDOM so
 * that every page is a trap of its own; before each touch a thread sets
 * errno to a sentinel of its own and checks it after.  Pages are made
 * fresh again with MADV_DONTNEED between passes. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include "util.h"

#define NT 8      /* threads */
#define NPAGES 256 /* pages of each mapping */
#define BATCH 16   /* pages all threads go for at once */


#define SEED 19
#define SENTINEL(t) (4000 + (t)) /* no errno value: nothing sets it by accident */

enum kind { PRIV_ANON, SHARED_ANON, SHARED_FILE, PRIV_FILE, NKINDS };
static const char *const kind_name[NKINDS] = { "private anonymous", "shared anonymous", "shared file",
                                               "private file" };

static pthread_barrier_t start, done;
static unsigned char *volatile area;
static volatile size_t batch_first;
static volatile int stop, write_pass;
static unsigned long touches[NT], changed[NT];
static int seen_errno[NT]; /* the first value found instead of the sentinel */

/* Set errno to the sentinel, touch *p, return errno.  The compiler barriers
 * make errno really stored before the access and loaded after it (the
 * trap is invisible to the compiler). */
static int touch(volatile unsigned char *p, int wr, int sentinel, unsigned char val)
{
    errno = sentinel;
    __asm__ volatile("" ::: "memory");
    if (wr)
        *p = val;
    else
        (void)*p;
    __asm__ volatile("" ::: "memory");
    return errno;
}

static void *worker(void *arg)
{
    int t = (int)(intptr_t)arg;
    for (;;) {
        pthread_barrier_wait(&start);
        if (stop)
            return NULL;
        unsigned char *base = area + batch_first * PAGE;
        /* All threads walk the same pages in the same order, so that all
         * of them fault the same page at the same time (the most
         * contention: lock waits in the trap).  Half the threads write in
         * a write pass, at bytes of their own. */
        int wr = write_pass && t % 2;
        for (size_t i = 0; i < BATCH; i++) {
            int e = touch(base + i * PAGE + 64 * t, wr, SENTINEL(t), (unsigned char)(t + 1));
            touches[t]++;
            if (e != SENTINEL(t)) {
                if (!changed[t])
                    seen_errno[t] = e;
                changed[t]++;
            }
        }
        pthread_barrier_wait(&done);
    }
}

static unsigned char *map_kind(enum kind k, int fd)
{
    int prot = PROT_READ | PROT_WRITE;
    switch (k) {
    case PRIV_ANON: return umm_mmap(NULL, NPAGES * PAGE, prot, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    case SHARED_ANON: return umm_mmap(NULL, NPAGES * PAGE, prot, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    case SHARED_FILE: return umm_mmap(NULL, NPAGES * PAGE, prot, MAP_SHARED, fd, 0);
    default: return umm_mmap(NULL, NPAGES * PAGE, prot, MAP_PRIVATE, fd, 0);
    }
}

int main(void)
{
    int passes = under_valgrind() ? 2 : 24;
    int fd = tmpfile_make(NPAGES * PAGE, SEED, O_RDWR, NULL);
    pthread_t th[NT];
    pthread_barrier_init(&start, NULL, NT + 1);
    pthread_barrier_init(&done, NULL, NT + 1);
    for (int t = 0; t < NT; t++)
        if (pthread_create(&th[t], NULL, worker, (void *)(intptr_t)t) != 0)
            tap_bail("pthread_create");

    for (int k = 0; k < NKINDS; k++) {
        unsigned char *m = map_kind((enum kind)k, fd);
        ok(m != MAP_FAILED, "%s: umm_mmap", kind_name[k]);
        if (m == MAP_FAILED)
            continue;
        vg_racy(m, NPAGES * PAGE);
        /* One trap per page: no read-ahead, no fault-around. */
        is_int(umm_madvise(m, NPAGES * PAGE, MADV_RANDOM), 0, "%s: MADV_RANDOM", kind_name[k]);
        area = m;
        memset(touches, 0, sizeof touches);
        memset(changed, 0, sizeof changed);
        uint64_t faults0 = stat_get("faults");
        for (int pass = 0; pass < passes; pass++) {
            write_pass = pass % 2;
            for (size_t b = 0; b < NPAGES; b += BATCH) {
                batch_first = b;
                pthread_barrier_wait(&start);
                pthread_barrier_wait(&done);
            }
            /* Fresh again for the next pass (a shared file's pages are
             * read from the page cache again; anonymous pages are zero). */
            if (umm_madvise(m, NPAGES * PAGE, MADV_DONTNEED) != 0)
                tap_diag("%s: MADV_DONTNEED: %s", kind_name[k], strerror(errno));
        }
        uint64_t faults = stat_get("faults") - faults0;
        unsigned long all = 0, bad = 0;
        for (int t = 0; t < NT; t++) {
            all += touches[t];
            bad += changed[t];
            if (changed[t])
                tap_diag("%s: thread %d: errno changed across %lu of %lu touches (first to %d, %s)", kind_name[k],
                         t, changed[t], touches[t], seen_errno[t], strerror(seen_errno[t]));
        }
        /* The test's own check: the touches did trap, many times. */
        ok(faults >= (uint64_t)passes * NPAGES / 2, "%s: the touches trapped (%llu faults for %d pages x %d passes)",
           kind_name[k], (unsigned long long)faults, NPAGES, passes);
        is_int(bad, 0, "%s: errno unchanged across all %lu touches of fresh pages by %d threads", kind_name[k], all,
               NT);
        is_int(umm_munmap(m, NPAGES * PAGE), 0, "%s: umm_munmap", kind_name[k]);
    }
    stop = 1;
    pthread_barrier_wait(&start);
    for (int t = 0; t < NT; t++)
        pthread_join(th[t], NULL);

    /* The shared file mapping's writes reached the file: thread t (odd)
     * wrote t+1 at byte 64*t of every page. */
    size_t wrong = 0;
    unsigned char page[PAGE];
    for (size_t p = 0; p < NPAGES; p++) {
        if (read_file(fd, page, PAGE, (off_t)(p * PAGE)) != 0)
            tap_bail("read_file");
        for (int t = 0; t < NT; t++) {
            size_t at = 64 * (size_t)t;
            unsigned char want = t % 2 ? (unsigned char)(t + 1) : pattern(p * PAGE + at, SEED);
            wrong += page[at] != want;
        }
    }
    is_int(wrong, 0, "the shared file holds what the writing threads stored");
    close(fd);
    pthread_barrier_destroy(&start);
    pthread_barrier_destroy(&done);
    check_released();
    return tap_done();
}
