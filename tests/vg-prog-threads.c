/* Run by test-race-tools.sh under helgrind and drd: a correct threaded
 * program, which must get no report.  Threads take their first touches of
 * the same fresh pages at once (each its own word: anonymous, private file
 * and shared file pages, so zero-fill, copy-on-write and page-cache faults
 * race inside libumm), update a counter in a mapping under a mutex, map
 * and unmap mappings of their own meanwhile, and msync; the main thread
 * reads everything after joining them.  At the end it prints the process's
 * peak memory (VmHWM), the tool's own included. */
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include "vg-prog.h"

#define NT 4
#define NPAGES 16
#define SEED 23
#define RW (PROT_READ | PROT_WRITE)

static unsigned char *anon, *cow, *shared;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_barrier_t go;
static int fd;

static void *worker(void *arg)
{
    int t = (int)(intptr_t)arg;
    pthread_barrier_wait(&go);
    for (int p = 0; p < NPAGES; p++) {
        /* Everyone's first touch of page p at about the same time. */
        ((volatile uint64_t *)(void *)(anon + p * PAGE))[t] = (uint64_t)(p * NT + t + 1);
        ((volatile uint64_t *)(void *)(cow + p * PAGE))[t] = (uint64_t)(p * NT + t + 1);
        ((volatile uint64_t *)(void *)(shared + p * PAGE))[8 + t] = (uint64_t)(p * NT + t + 1);
        pthread_mutex_lock(&mu);
        ((volatile uint64_t *)(void *)anon)[NT]++; /* a counter, under the mutex */
        pthread_mutex_unlock(&mu);
        /* A mapping of its own, come and gone while the others fault. */
        unsigned char *own = umm_mmap(NULL, 2 * PAGE, RW, MAP_PRIVATE, fd, 0);
        if (own == MAP_FAILED || own[PAGE + 1] != pattern(PAGE + 1, SEED))
            return (void *)1;
        own[7] = 1;
        if (umm_munmap(own, 2 * PAGE) != 0)
            return (void *)1;
    }
    return umm_msync(shared, NPAGES * PAGE, MS_SYNC) == 0 ? NULL : (void *)1;
}

int main(void)
{
    fd = tmpfile_make(NPAGES * PAGE, SEED, O_RDWR, NULL);
    anon = umm_mmap(NULL, NPAGES * PAGE, RW, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    cow = umm_mmap(NULL, NPAGES * PAGE, RW, MAP_PRIVATE, fd, 0);
    shared = umm_mmap(NULL, NPAGES * PAGE, RW, MAP_SHARED, fd, 0);
    if (anon == MAP_FAILED || cow == MAP_FAILED || shared == MAP_FAILED)
        return 2;
    pthread_barrier_init(&go, NULL, NT);
    pthread_t th[NT];
    for (int t = 0; t < NT; t++)
        if (pthread_create(&th[t], NULL, worker, (void *)(intptr_t)t) != 0)
            return 3;
    int bad = 0;
    for (int t = 0; t < NT; t++) {
        void *r;
        pthread_join(th[t], &r);
        bad += r != NULL;
    }
    for (int p = 0; p < NPAGES; p++)
        for (int t = 0; t < NT; t++) {
            uint64_t want = (uint64_t)(p * NT + t + 1);
            bad += ((uint64_t *)(void *)(anon + p * PAGE))[t] != want;
            bad += ((uint64_t *)(void *)(cow + p * PAGE))[t] != want;
            bad += ((uint64_t *)(void *)(shared + p * PAGE))[8 + t] != want;
        }
    bad += ((uint64_t *)(void *)anon)[NT] != (uint64_t)(NT * NPAGES);
    bad += umm_munmap(anon, NPAGES * PAGE) + umm_munmap(cow, NPAGES * PAGE) + umm_munmap(shared, NPAGES * PAGE);
    char line[256];
    FILE *f = fopen("/proc/self/status", "r");
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, "VmHWM:", 6) == 0)
            fputs(line, stdout);
    if (f)
        fclose(f);
    return bad ? 4 : 0;
}
