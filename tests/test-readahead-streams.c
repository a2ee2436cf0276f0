/* Promise (issue 15, read-ahead per stream): two threads reading the two
 * halves of one mapping sequentially are two streams, each with its own
 * read-ahead window: they take about the traps one thread reading the
 * whole mapping takes, not a trap every few pages because each resets the
 * other's window (0.14 traps a page against 0.03 with one state per
 * mapping).  Counts, not times: the threads take turns page by page (the
 * interleaving that broke the window, made certain), then run free.
 * And a stream over pages already in the page cache (another mapping read
 * them, or the daemon read them ahead for another thread's stream) is a
 * stream too: its window grows past what fault-around maps, instead of a
 * trap every 16 pages (CI once saw 53 traps for two threads running free:
 * the second thread's half had been read ahead by the first's stream). */
#include <fcntl.h>
#include <pthread.h>
#include <semaphore.h>
#include <unistd.h>
#include "util.h"

#define PAGES 2048 /* 8 MiB: a half is 1024 pages, windows double to 512 */

struct half {
    const unsigned char *p;   /* the mapping */
    size_t from, to;          /* its pages this thread reads */
    unsigned seed;
    sem_t *mine, *other;      /* taking turns: NULL to run free */
    int bad;
};

static void *read_half(void *arg)
{
    struct half *h = arg;
    for (size_t i = h->from; i < h->to; i++) {
        if (h->mine)
            sem_wait(h->mine);
        h->bad += h->p[i * PAGE + 5] != pattern(i * PAGE + 5, h->seed);
        if (h->other)
            sem_post(h->other);
    }
    return NULL;
}

/* Map a fresh file of PAGES pages (nothing of it in the page cache yet),
 * read it by the given halves, and return the traps taken. */
static uint64_t read_file_by(int nthreads, int turns, unsigned seed, const char *what)
{
    int fd = tmpfile_make((uint64_t)PAGES * PAGE, seed, O_RDONLY, NULL);
    unsigned char *p = umm_mmap(NULL, (size_t)PAGES * PAGE, PROT_READ, MAP_SHARED, fd, 0);
    ok(p != MAP_FAILED, "%s: map %d pages", what, PAGES);
    sem_t sem[2];
    sem_init(&sem[0], 0, 1);
    sem_init(&sem[1], 0, 0);
    struct half h[2];
    for (int t = 0; t < nthreads; t++)
        h[t] = (struct half){p, (size_t)t * PAGES / nthreads, (size_t)(t + 1) * PAGES / nthreads, seed,
                             turns ? &sem[t] : NULL, turns ? &sem[1 - t] : NULL, 0};
    uint64_t f0 = stat_get("faults"), r0 = stat_get("pages_read");
    pthread_t th[2];
    for (int t = 0; t < nthreads; t++)
        pthread_create(&th[t], NULL, read_half, &h[t]);
    for (int t = 0; t < nthreads; t++)
        pthread_join(th[t], NULL);
    uint64_t traps = stat_get("faults") - f0;
    is_int(h[0].bad + (nthreads > 1 ? h[1].bad : 0), 0, "%s: every page shows the file", what);
    is_int(stat_get("pages_read") - r0, PAGES, "%s: every page read once", what);
    is_int(umm_munmap(p, (size_t)PAGES * PAGE), 0, "%s: umm_munmap", what);
    sem_destroy(&sem[0]);
    sem_destroy(&sem[1]);
    close(fd);
    return traps;
}

int main(void)
{
    uint64_t one = read_file_by(1, 0, 31, "one thread");
    ok(one < PAGES / 16, "one thread: %llu traps for %d pages", (unsigned long long)one, PAGES);
    /* Two streams each ramp their own window from one page (~10 traps to
     * 2 MiB): at most twice one stream's traps, and a few; one state per
     * mapping took 0.14 traps a page (287 here). */
    uint64_t turns = read_file_by(2, 1, 32, "two threads taking turns");
    ok(turns <= one * 2 + 4 && turns < PAGES / 16,
       "two threads taking turns page by page: %llu traps, one thread %llu", (unsigned long long)turns,
       (unsigned long long)one);
    uint64_t free_run = read_file_by(2, 0, 33, "two threads running free");
    ok(free_run <= one * 2 + 4 && free_run < PAGES / 16, "two threads running free: %llu traps, one thread %llu",
       (unsigned long long)free_run, (unsigned long long)one);
    /* A second mapping read sequentially over pages the first one brought
     * into the page cache: nothing read, and the traps of one stream, not
     * one per fault-around window (128 here). */
    int fd = tmpfile_make((uint64_t)PAGES * PAGE, 34, O_RDONLY, NULL);
    unsigned char *a = umm_mmap(NULL, (size_t)PAGES * PAGE, PROT_READ, MAP_SHARED, fd, 0);
    unsigned char *b = umm_mmap(NULL, (size_t)PAGES * PAGE, PROT_READ, MAP_SHARED, fd, 0);
    ok(a != MAP_FAILED && b != MAP_FAILED, "cached: two mappings of one file");
    int bad = 0;
    for (size_t i = 0; i < PAGES; i++)
        bad += a[i * PAGE + 7] != pattern(i * PAGE + 7, 34);
    uint64_t f0 = stat_get("faults"), r0 = stat_get("pages_read");
    for (size_t i = 0; i < PAGES; i++)
        bad += b[i * PAGE + 9] != pattern(i * PAGE + 9, 34);
    uint64_t cached = stat_get("faults") - f0;
    is_int(bad, 0, "cached: both mappings show the file");
    is_int(stat_get("pages_read") - r0, 0, "cached: the second mapping read nothing");
    ok(cached <= one + 4, "cached: a stream over cached pages took %llu traps, one thread reading %llu",
       (unsigned long long)cached, (unsigned long long)one);
    is_int(umm_munmap(a, (size_t)PAGES * PAGE) | umm_munmap(b, (size_t)PAGES * PAGE), 0, "cached: umm_munmap");
    close(fd);
    check_released();
    return tap_done();
}
