/*
 * bench-mmap: libumm against the kernel's own mmap, side by side in the
 * same run, reported as ratios (these machines are shared and noisy: an
 * absolute time means little).  Each case runs REPS times per world,
 * alternating worlds, and the medians are compared.  The file is re-read
 * before each run so that both worlds read from the host page cache, not
 * the disk.
 *
 *   bench-mmap [MiB]      (default 256)
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <umm.h>

#include "bench.h"

#define PAGE 4096
#define REPS 5

struct world {
    const char *name;
    void *(*mmap)(void *, size_t, int, int, int, off_t);
    int (*munmap)(void *, size_t);
    int (*msync)(void *, size_t, int);
};
static const struct world kernel = { "kernel", mmap, munmap, msync };
static const struct world umm = { "libumm", umm_mmap, umm_munmap, umm_msync };

static int fd;
static size_t size, pages;
static volatile unsigned long sink;

static void warm_file(void)
{
    static char buf[1 << 20];
    for (size_t off = 0; off < size; off += sizeof buf)
        if (pread(fd, buf, sizeof buf, (off_t)off) < 0)
            abort();
}

/* The cases: each maps, does its work, unmaps, and returns seconds spent
 * on the work (mmap/munmap excluded unless the case is about them). */
static double seq_read(const struct world *w)
{
    char *p = w->mmap(NULL, size, PROT_READ, MAP_SHARED, fd, 0);
    double t = now();
    unsigned long s = 0;
    for (size_t i = 0; i < size; i += PAGE)
        s += (unsigned char)p[i];
    t = now() - t;
    sink += s;
    w->munmap(p, size);
    return t;
}

static double rand_read(const struct world *w)
{
    char *p = w->mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    unsigned long s = 0, x = 12345;
    double t = now();
    for (size_t i = 0; i < pages / 16; i++) {
        x = x * 6364136223846793005ul + 1442695040888963407ul;
        s += (unsigned char)p[((x >> 20) % pages) * PAGE];
    }
    t = now() - t;
    sink += s;
    w->munmap(p, size);
    return t;
}

/* Write one byte of every page of a private mapping; with read_first, read
 * every page before the clock starts, so that each write is a copy. */
static double private_write(const struct world *w, int anon, int read_first)
{
    char *p = w->mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | (anon ? MAP_ANONYMOUS : 0),
                      anon ? -1 : fd, 0);
    unsigned long s = 0;
    for (size_t i = 0; read_first && i < size; i += PAGE)
        s += (unsigned char)p[i];
    sink += s;
    double t = now();
    for (size_t i = 0; i < size; i += PAGE)
        p[i] = 1;
    t = now() - t;
    w->munmap(p, size);
    return t;
}

static double anon_write(const struct world *w)
{
    return private_write(w, 1, 0);
}

static double cow_write(const struct world *w)
{
    return private_write(w, 0, 1);
}

static double shared_write_msync(const struct world *w)
{
    size_t n = size / 8; /* keep the file's bytes mostly intact */
    char *p = w->mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    double t = now();
    for (size_t i = 0; i < n; i += PAGE)
        ((volatile char *)p)[i] = (char)(p[i] + 1);
    w->msync(p, n, MS_SYNC);
    t = now() - t;
    w->munmap(p, n);
    return t;
}

struct bench {
    const char *name;
    double (*fn)(const struct world *);
    size_t pages_per_run; /* for per-page figures; 0 = derived below */
};

int main(int argc, char **argv)
{
    size_t mib = argc > 1 ? strtoul(argv[1], NULL, 10) : 256;
    size = mib << 20;
    pages = size / PAGE;
    char path[] = "/tmp/umm-bench.XXXXXX";
    fd = mkstemp(path);
    unlink(path);
    char *buf = malloc(1 << 20);
    for (size_t off = 0; off < size; off += 1 << 20) {
        memset(buf, (int)(off >> 20), 1 << 20);
        if (pwrite(fd, buf, 1 << 20, (off_t)off) != 1 << 20)
            return perror("pwrite"), 1;
    }
    free(buf);

    struct bench b[] = {
        { "sequential read, file, MAP_SHARED", seq_read, pages },
        { "random read (1/16 of pages), MAP_PRIVATE", rand_read, pages / 16 },
        { "first write, anonymous", anon_write, pages },
        { "copy-on-write, private file page", cow_write, pages },
        { "shared write + msync(MS_SYNC), 1/8", shared_write_msync, pages / 8 },
    };
    printf("libumm vs kernel, %zu MiB, median of %d runs each\n", mib, REPS);
    printf("%-44s %12s %12s %8s\n", "case", "kernel/page", "libumm/page", "ratio");
    for (size_t k = 0; k < sizeof b / sizeof b[0]; k++) {
        double tk[REPS], tu[REPS];
        for (int r = 0; r < REPS; r++) {
            warm_file();
            tk[r] = b[k].fn(&kernel);
            warm_file();
            tu[r] = b[k].fn(&umm);
        }
        double mk = median_of(tk, REPS) / b[k].pages_per_run * 1e6, mu = median_of(tu, REPS) / b[k].pages_per_run * 1e6;
        printf("%-44s %9.3f us %9.3f us %7.1fx\n", b[k].name, mk, mu, mu / mk);
    }
    struct umm_stats s;
    umm_stats(&s);
    printf("libumm: %llu traps, %llu pages read, %llu written back, %llu copies\n",
           (unsigned long long)s.faults, (unsigned long long)s.pages_read,
           (unsigned long long)s.pages_written, (unsigned long long)s.cow_copies);
    close(fd);
    return 0;
}
