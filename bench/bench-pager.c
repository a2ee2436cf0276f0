/*
 * bench-pager: the cost per page of a pager fault against a file fault
 * (issue 16).  The same 4 KiB reads, one page per fault (MADV_RANDOM, every
 * other page so no fault-around helps), of:
 *   - a file, warm in the host's page cache: libumm's pread into a frame;
 *   - a pager whose fill is a memcpy from the heap: libumm hands the fill
 *     to its pager thread and waits (two futex hand-offs per fault);
 *   - the same pager, writes: fill, then the page marked dirty, then the
 *     write-back at munmap through the pager.
 * Medians of REPS runs, microseconds per page; the ratio is what running the
 * program's callback on another thread adds to a fault.
 *
 *   bench-pager [MiB]   region size (default 32)
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <umm.h>

#include "bench.h"

#define PAGE 4096
#define REPS 5

static unsigned char *heap;
static ssize_t fill(void *c, off_t off, void *buf, size_t len)
{
    (void)c;
    memcpy(buf, heap + off, len);
    return (ssize_t)len;
}
static int wb(void *c, off_t off, const void *buf, size_t len)
{
    (void)c;
    memcpy(heap + off, buf, len);
    return 0;
}
static const struct umm_pager_ops ops = { .fill = fill, .writeback = wb };

/* Touch every other page of a fresh mapping; seconds per page touched. */
static double run(int kind, int fd, size_t len)
{
    unsigned char *p = kind == 0 ? umm_mmap(NULL, len, PROT_READ, MAP_SHARED, fd, 0)
                                 : umm_mmap_pager(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, &ops, NULL, 0);
    if (p == MAP_FAILED) {
        perror("bench-pager: map");
        exit(1);
    }
    umm_madvise(p, len, MADV_RANDOM);
    volatile unsigned sum = 0;
    double t0 = now();
    for (size_t i = 0; i < len; i += 2 * PAGE) {
        if (kind == 2)
            p[i] = 1;
        else
            sum += p[i];
    }
    double t = now() - t0;
    if (kind == 2) { /* the write-back belongs to the cost of a dirty page */
        double t1 = now();
        umm_munmap(p, len);
        t += now() - t1;
    } else {
        umm_munmap(p, len);
    }
    return t / (double)(len / (2 * PAGE));
}

int main(int argc, char **argv)
{
    size_t mib = argc > 1 ? strtoul(argv[1], NULL, 10) : 32, len = mib << 20;
    heap = malloc(len);
    memset(heap, 7, len);
    char path[] = "/tmp/bench-pager.XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0 || write(fd, heap, len) != (ssize_t)len) {
        perror("bench-pager: file");
        return 1;
    }
    unlink(path);
    static const char *names[] = { "file fault (read, warm host cache)", "pager fault (read)",
                                   "pager fault (write + write-back)" };
    double med[3];
    for (int k = 0; k < 3; k++) {
        double v[REPS];
        for (int r = 0; r < REPS; r++)
            v[r] = run(k, fd, len);
        qsort(v, REPS, sizeof *v, cmp);
        med[k] = v[REPS / 2];
    }
    printf("bench-pager: %zu MiB, one page per fault, medians of %d runs\n", mib, REPS);
    for (int k = 0; k < 3; k++)
        printf("  %-38s %7.2f us/page  (%.2fx the file's)\n", names[k], med[k] * 1e6, med[k] / med[0]);
    close(fd);
    return 0;
}
