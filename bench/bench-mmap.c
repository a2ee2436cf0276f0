/*
 * bench-mmap: issue 15's table.  libumm against the kernel's own mmap and
 * against floors -- what the host operations libumm is built from cost on
 * this machine -- all in the same run, reported as ratios (these machines
 * are shared and noisy: an absolute time means little, a ratio to
 * something measured a second earlier more).
 *
 * Method.  A file of BENCH_MIB (default 256 MiB) is written once, then
 * kept hot in the host's page cache: it is read whole (pread) before every
 * run, so that no world reads the disk.  Each workload is run REPS times
 * per side, the sides alternating within each round (floor, kernel,
 * libumm, libumm-zc, floor, kernel, ...), and the median of each side's
 * runs is reported.  libumm is two worlds: "libumm" maps files with
 * UMM_MAP_COPY (its own frames, filled by pread: the default, forced so
 * that UMM_ZEROCOPY=1 in the environment cannot turn the copy rows into
 * something else), "libumm-zc" with UMM_MAP_ZEROCOPY (the host's page
 * cache mapped, nothing copied; umm.h).  Every figure is per 4 KiB page
 * touched, in microseconds; a "touch" is one byte read or written.  Each
 * run maps, works, unmaps: libumm's page cache is empty at the start of
 * each (the last munmap of a file releases it, and with it the kind a
 * page took from the world that placed it), the host's is full.
 *
 * The floors, measured with the system calls themselves (syscall(2): the
 * program's pread goes through libumm's file I/O layer, and its sigaction
 * through libumm's trap, which would put libumm inside its own floor):
 *
 *  - pread 64 KiB, per page: the file read in 64 KiB calls into fresh
 *    pages of a memfd, as libumm's frames are, allocated first by one
 *    MADV_POPULATE_WRITE inside the clock.  Fresh, because a copying mmap
 *    must put every page of the file somewhere new; on this host (a PVM
 *    guest) the first touch of a page costs far more than the copy
 *    (doc/PERFORMANCE.md, session 11), so the same calls into one reused
 *    buffer are shown too, as "the copy alone".
 *  - pread 64 KiB into pages written before: the same calls into memfd
 *    pages allocated and written outside the clock, what a fill into the
 *    frames libumm's pool keeps (frame.c) costs; the sequential read is
 *    shown against it too, as the fill libumm now does once its pool holds
 *    frames.
 *  - pread 4 KiB, per page: every page once, in the random order of the
 *    random-read workload, into fresh memfd pages populated the same way.
 *  - trap + mprotect: a SIGSEGV handler of our own (installed beside
 *    libumm's, then put back) that mprotects the faulting page read-write;
 *    the pages are populated before they are made PROT_NONE, so the touch
 *    costs the signal, the mprotect and the return, nothing else.
 *  - mprotect of one page: the same mprotects without the trap.
 *  - trap + mprotect + pread 4 KiB: the handler also preads the page from
 *    the file into a fresh memfd page (which the pread allocates: one
 *    fault has no batch to spread an allocation over): the least a fault
 *    of a copying user-space mmap can cost, the isolated fault's reference.
 *
 * The workloads (issue 15):
 *
 *  - sequential read, copy: one byte of every page, in order, MAP_SHARED;
 *    reference: the pread 64 KiB floor, goal 1.5x, 1.25x where the host's
 *    page cache holds the file in large folios (checked in /proc/kpageflags
 *    when readable, as root).
 *  - sequential read, zero-copy: the same workload on libumm-zc, in the
 *    same rounds; reference: the kernel's mmap, goal 3x.
 *  - random read: every page once, in a random order, MAP_PRIVATE;
 *    reference: the pread 4 KiB floor, goal 2x.
 *  - random read, zero-copy: the same workload on libumm-zc, in the same
 *    rounds; reference: the kernel's mmap, goal 5x.
 *  - sparse: one touch per 64 KiB, in order; ratio to the kernel only.
 *  - one isolated fault: pages 128 KiB apart (no read-around cluster, no
 *    fault-around window shared), in a random order; the median touch,
 *    against the trap + mprotect + pread floor's median, goal 1.3x.
 *  - private write: an eighth of the file, every page read first, then one
 *    byte written to each: a copy-on-write per page; goal 2x the kernel.
 *  - shared write + msync(MS_SYNC): an eighth of the file (the file's bytes
 *    stay mostly as written); goal 2x the kernel.
 *  - private write and shared write + msync, zero-copy: the same two
 *    workloads on libumm-zc, in the same rounds, against the kernel; no
 *    goal, reported (a private write still copies, from the host's page
 *    into a frame of libumm's; a shared write stores into the host's page
 *    cache, and msync has the host write it).
 *  - anonymous first touch: a quarter of the file's size, one byte written
 *    per page; the kernel's memory MADV_NOHUGEPAGE (libumm has 4 KiB pages
 *    only); goal 1x the kernel.
 *  - two threads reading: the sequential read split in two halves, one
 *    thread each, started together; goal: 1.6x the throughput of one
 *    thread (the sequential-read row).  The kernel's own speedup is shown,
 *    and the pread 64 KiB floor's in two threads: on two shared cores they
 *    say what the machine allowed.  So do the cores each run used (the
 *    process's CPU time over the wall time): one thread of libumm reads on
 *    more than one core (the daemon reads its next window meanwhile), and
 *    two threads cannot gain more than the cores left to them.
 *  - fork of 64 MiB and 1 GiB: bench-fork, run next by make bench.
 *
 * The writes cover part of the file only: they are the slowest cases per
 * page, and 8,192 pages (at the default size) are enough for a per-page
 * figure; the whole run stays under two minutes on a loaded machine.
 *
 * Per-fault latency: for the random-read and isolated-fault workloads each
 * touch is timed (clock_gettime around it; the clock's own cost, measured
 * at start, is taken out of the per-page figures, not out of the samples).
 * The touches of each side's median run (libumm-zc's random read among
 * them) go to a CSV (world,workload,ns)
 * and, when gnuplot is installed, to an SVG of their distributions (CDF,
 * log time axis), next to the CSV.
 *
 *   bench-mmap [MiB [CSV]]   (defaults: 256, ./bench-mmap-latency.csv)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <umm.h>

#include "bench.h"

#define PAGE 4096
#define REPS 5
#define STRIDE 32 /* isolated faults: 128 KiB apart, libumm's read-around cluster */
#define SPARSE 16 /* sparse: one touch per 64 KiB */

/* glibc's own sigaction: the program's sigaction is libumm's (signals.c),
 * which would keep libumm's trap in front of the floor's handler. */
extern int __sigaction(int sig, const struct sigaction *act, struct sigaction *old);

struct world {
    const char *name;
    void *(*mmap)(void *, size_t, int, int, int, off_t);
    int (*munmap)(void *, size_t);
    int (*msync)(void *, size_t, int);
};
static const struct world kernel = { "kernel", mmap, munmap, msync };

/* libumm's two ways of mapping a file (umm.h, "Zero-copy file pages"),
 * each asked for by name, so that UMM_ZEROCOPY in the environment changes
 * neither.  Anonymous mappings ignore both flags. */
static void *umm_mmap_copy(void *addr, size_t len, int prot, int flags, int f, off_t off)
{
    return umm_mmap(addr, len, prot, flags | UMM_MAP_COPY, f, off);
}

static void *umm_mmap_zc(void *addr, size_t len, int prot, int flags, int f, off_t off)
{
    return umm_mmap(addr, len, prot, flags | UMM_MAP_ZEROCOPY, f, off);
}

static const struct world umm = { "libumm", umm_mmap_copy, umm_munmap, umm_msync };
static const struct world umm_zc = { "libumm-zc", umm_mmap_zc, umm_munmap, umm_msync };

static int fd;
static size_t size, pages;
static volatile unsigned long sink;
static size_t *perm;     /* every page once, in a random order */
static size_t *isolated; /* the isolated faults' pages, in a random order */
static size_t nisolated;
static double clock_ns;  /* one clock_gettime, ns */

static inline uint64_t ns_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static ssize_t host_pread(int f, void *buf, size_t n, off_t off)
{
    return syscall(SYS_pread64, f, buf, n, off);
}

static void die(const char *what)
{
    perror(what);
    exit(1);
}

static void warm_file(void)
{
    static char buf[1 << 20];
    for (size_t off = 0; off < size; off += sizeof buf)
        if (host_pread(fd, buf, sizeof buf, (off_t)off) < 0)
            die("pread");
}

/* ---------------------------------------------------------- latencies */

/* The touches of one side of a workload: each run's, until the median run
 * is known; then only that one is written out. */
struct lat {
    uint32_t *ns[REPS];
    size_t n[REPS];
};
static uint32_t *rec; /* the running case's touches go here, or nowhere */
static size_t nrec;

static inline void record(uint64_t t0, uint64_t t1)
{
    if (rec)
        rec[nrec++] = t1 - t0 > UINT32_MAX ? UINT32_MAX : (uint32_t)(t1 - t0);
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

/* The median of the touches recorded so far in this run, in us (sorts a
 * copy: the CSV keeps the order of the touches). */
static double p50_us(void)
{
    uint32_t *c = malloc(nrec * sizeof *c);
    if (!c)
        die("malloc");
    memcpy(c, rec, nrec * sizeof *c);
    qsort(c, nrec, sizeof *c, cmp_u32);
    double v = c[nrec / 2] / 1e3;
    free(c);
    return v;
}

/* ------------------------------------------------------------- floors */

/* A fresh memfd of the file's size, mapped read-write (prot), for a floor
 * to pread into: new pages, as libumm's frames are. */
struct fresh {
    int fd;
    char *p;
};

static struct fresh fresh_pages(int prot)
{
    struct fresh f;
    f.fd = (int)syscall(SYS_memfd_create, "bench-floor", 0);
    if (f.fd < 0 || syscall(SYS_ftruncate, f.fd, (off_t)size) < 0)
        die("memfd");
    f.p = mmap(NULL, size, prot, MAP_SHARED, f.fd, 0);
    if (f.p == MAP_FAILED)
        die("mmap");
    return f;
}

static void fresh_free(struct fresh *f)
{
    munmap(f->p, size);
    syscall(SYS_close, f->fd);
}

/* Allocate the fresh pages in one call, before the preads: on this host
 * that is cheaper than letting each pread fault its pages in (session 11
 * measured 1.8 + 7.5 us a page against 16.7), and a floor is the cheapest
 * way.  Before Linux 5.14 it fails, and the preads allocate. */
static void populate(char *p)
{
    madvise(p, size, MADV_POPULATE_WRITE);
}

/* The file into p in 64 KiB preads. */
static void preads64k(char *p)
{
    for (size_t off = 0; off < size; off += 1 << 16)
        if (host_pread(fd, p + off, 1 << 16, (off_t)off) < 0)
            die("pread");
}

static double floor_pread64k(const struct world *w)
{
    struct fresh f = fresh_pages(PROT_READ | PROT_WRITE);
    double t = now();
    populate(f.p);
    preads64k(f.p);
    t = now() - t;
    fresh_free(&f);
    return t / pages * 1e6;
}

static double floor_pread64k_reused(const struct world *w)
{
    static char buf[1 << 16];
    double t = now();
    for (size_t off = 0; off < size; off += sizeof buf)
        if (host_pread(fd, buf, sizeof buf, (off_t)off) < 0)
            die("pread");
    t = now() - t;
    return t / pages * 1e6;
}

/* The same preads into memfd pages allocated and written before the clock
 * starts: what a fill into frames libumm's pool kept costs the host (the
 * pages are there; only the copy and the page walks are left). */
static double floor_pread64k_warm(const struct world *w)
{
    (void)w;
    struct fresh f = fresh_pages(PROT_READ | PROT_WRITE);
    populate(f.p);
    memset(f.p, 1, size);
    double t = now();
    preads64k(f.p);
    t = now() - t;
    fresh_free(&f);
    return t / pages * 1e6;
}

static double floor_pread4k(const struct world *w)
{
    struct fresh f = fresh_pages(PROT_READ | PROT_WRITE);
    double t = now();
    populate(f.p);
    for (size_t i = 0; i < pages; i++) {
        size_t off = perm[i] * PAGE;
        uint64_t t0 = ns_now();
        if (host_pread(fd, f.p + off, PAGE, (off_t)off) < 0)
            die("pread");
        record(t0, ns_now());
    }
    t = now() - t;
    fresh_free(&f);
    return (t * 1e9 - 2 * clock_ns * (double)pages) / (double)pages / 1e3;
}

/* Two threads, one half of the file each (h->p: the mapping or the
 * floor's pages), started together: seconds from the start they share
 * until both are done. */
struct half {
    char *p;
    size_t from, to;
    pthread_barrier_t *go;
};

static double in_two_threads(void *(*fn)(void *), char *p)
{
    pthread_barrier_t go;
    pthread_barrier_init(&go, NULL, 3);
    struct half h[2] = { { p, 0, size / 2, &go }, { p, size / 2, size, &go } };
    pthread_t th[2];
    for (int i = 0; i < 2; i++)
        if ((errno = pthread_create(&th[i], NULL, fn, &h[i])) != 0)
            die("pthread_create");
    pthread_barrier_wait(&go);
    double t = now();
    pthread_barrier_wait(&go);
    t = now() - t;
    for (int i = 0; i < 2; i++)
        pthread_join(th[i], NULL);
    pthread_barrier_destroy(&go);
    return t;
}

static void *pread_half(void *arg)
{
    struct half *h = arg;
    pthread_barrier_wait(h->go);
    madvise(h->p + h->from, h->to - h->from, MADV_POPULATE_WRITE);
    for (size_t off = h->from; off < h->to; off += 1 << 16)
        if (host_pread(fd, h->p + off, 1 << 16, (off_t)off) < 0)
            die("pread");
    pthread_barrier_wait(h->go);
    return NULL;
}

/* The pread 64 KiB floor in two threads: how far a copy into fresh pages
 * scales here at all. */
static double floor_pread64k_2threads(const struct world *w)
{
    struct fresh f = fresh_pages(PROT_READ | PROT_WRITE);
    double t = in_two_threads(pread_half, f.p);
    fresh_free(&f);
    return t / pages * 1e6;
}

/* The floor's own trap handler: mprotect the page, and pread it from the
 * file when trap_fill says where (trap + mprotect + pread 4 KiB). */
static char *trap_base;
static int trap_fill;

static void floor_trap(int sig, siginfo_t *si, void *uc)
{
    (void)sig, (void)uc;
    char *page = (char *)((uintptr_t)si->si_addr & ~(uintptr_t)(PAGE - 1));
    if (mprotect(page, PAGE, PROT_READ | PROT_WRITE) < 0)
        abort();
    if (trap_fill && host_pread(fd, page, PAGE, page - trap_base) != PAGE)
        abort();
}

/* Touches the isolated pages of a PROT_NONE region through floor_trap;
 * fill: the handler preads too (the region is then fresh memfd pages),
 * else the pages were populated before they were made PROT_NONE.  With
 * no_trap, mprotects them instead of touching: the mprotect alone. */
static double floor_trapped(int fill, int no_trap)
{
    struct fresh f = { -1, NULL };
    char *p;
    if (fill) {
        f = fresh_pages(PROT_NONE);
        p = f.p;
    } else {
        p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED)
            die("mmap");
        madvise(p, size, MADV_NOHUGEPAGE);
        for (size_t i = 0; i < nisolated; i++)
            p[isolated[i] * PAGE] = 1;
        mprotect(p, size, PROT_NONE);
    }
    struct sigaction sa, old;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = floor_trap;
    sa.sa_flags = SA_SIGINFO;
    sigemptyset(&sa.sa_mask);
    trap_base = p;
    trap_fill = fill;
    if (__sigaction(SIGSEGV, &sa, &old) < 0)
        die("sigaction");
    unsigned long s = 0;
    for (size_t i = 0; i < nisolated; i++) {
        char *a = p + isolated[i] * PAGE;
        uint64_t t0 = ns_now();
        if (no_trap) {
            if (mprotect(a, PAGE, PROT_READ | PROT_WRITE) < 0)
                die("mprotect");
        } else {
            s += *(volatile unsigned char *)a;
        }
        record(t0, ns_now());
    }
    if (__sigaction(SIGSEGV, &old, NULL) < 0)
        die("sigaction");
    sink += s;
    if (fill)
        fresh_free(&f);
    else
        munmap(p, size);
    return p50_us();
}

static double floor_trap_mprotect(const struct world *w)
{
    return floor_trapped(0, 0);
}

static double floor_mprotect(const struct world *w)
{
    return floor_trapped(0, 1);
}

static double floor_isolated(const struct world *w)
{
    return floor_trapped(1, 0);
}

/* ---------------------------------------------------------- workloads */

/* Each maps, works, unmaps, and returns its figure: us per page touched,
 * mmap and munmap excluded unless the case is about them. */

static char *map_file(const struct world *w, size_t n, int prot, int flags)
{
    char *p = w->mmap(NULL, n, prot, flags, fd, 0);
    if (p == MAP_FAILED)
        die(w->name);
    return p;
}

static double seq_read(const struct world *w)
{
    char *p = map_file(w, size, PROT_READ, MAP_SHARED);
    double t = now();
    unsigned long s = 0;
    for (size_t i = 0; i < size; i += PAGE)
        s += (unsigned char)p[i];
    t = now() - t;
    sink += s;
    w->munmap(p, size);
    return t / pages * 1e6;
}

static void *read_half(void *arg)
{
    struct half *h = arg;
    unsigned long s = 0;
    pthread_barrier_wait(h->go);
    for (size_t i = h->from; i < h->to; i += PAGE)
        s += (unsigned char)h->p[i];
    sink += s;
    pthread_barrier_wait(h->go);
    return NULL;
}

/* The sequential read by two threads, one half each. */
static double seq_read_2threads(const struct world *w)
{
    char *p = map_file(w, size, PROT_READ, MAP_SHARED);
    double t = in_two_threads(read_half, p);
    w->munmap(p, size);
    return t / pages * 1e6;
}

static double rand_read(const struct world *w)
{
    char *p = map_file(w, size, PROT_READ, MAP_PRIVATE);
    unsigned long s = 0;
    double t = now();
    for (size_t i = 0; i < pages; i++) {
        uint64_t t0 = ns_now();
        s += *(volatile unsigned char *)(p + perm[i] * PAGE);
        record(t0, ns_now());
    }
    t = now() - t;
    sink += s;
    w->munmap(p, size);
    return (t * 1e9 - 2 * clock_ns * (double)pages) / (double)pages / 1e3;
}

static double sparse_read(const struct world *w)
{
    char *p = map_file(w, size, PROT_READ, MAP_SHARED);
    unsigned long s = 0;
    double t = now();
    for (size_t i = 0; i < size; i += SPARSE * PAGE)
        s += (unsigned char)p[i];
    t = now() - t;
    sink += s;
    w->munmap(p, size);
    return t / (pages / SPARSE) * 1e6;
}

static double isolated_fault(const struct world *w)
{
    char *p = map_file(w, size, PROT_READ, MAP_SHARED);
    unsigned long s = 0;
    for (size_t i = 0; i < nisolated; i++) {
        uint64_t t0 = ns_now();
        s += *(volatile unsigned char *)(p + isolated[i] * PAGE);
        record(t0, ns_now());
    }
    sink += s;
    w->munmap(p, size);
    return p50_us();
}

/* Write one byte of every page of a private mapping of n bytes; with
 * read_first, read every page before the clock starts, so that each write
 * is a copy. */
static double private_write(const struct world *w, size_t n, int anon, int read_first)
{
    char *p = w->mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | (anon ? MAP_ANONYMOUS : 0),
                      anon ? -1 : fd, 0);
    if (p == MAP_FAILED)
        die(w->name);
    if (w == &kernel)
        madvise(p, n, MADV_NOHUGEPAGE); /* 4 KiB pages, as libumm's */
    unsigned long s = 0;
    for (size_t i = 0; read_first && i < n; i += PAGE)
        s += (unsigned char)p[i];
    sink += s;
    double t = now();
    for (size_t i = 0; i < n; i += PAGE)
        p[i] = 1;
    t = now() - t;
    w->munmap(p, n);
    return t / (n / PAGE) * 1e6;
}

static double anon_write(const struct world *w)
{
    return private_write(w, size / 4, 1, 0);
}

static double cow_write(const struct world *w)
{
    return private_write(w, size / 8, 0, 1);
}

static double shared_write_msync(const struct world *w)
{
    size_t n = size / 8; /* keep the file's bytes mostly intact */
    char *p = map_file(w, n, PROT_READ | PROT_WRITE, MAP_SHARED);
    double t = now();
    for (size_t i = 0; i < n; i += PAGE)
        ((volatile char *)p)[i] = (char)(p[i] + 1);
    w->msync(p, n, MS_SYNC);
    t = now() - t;
    w->munmap(p, n);
    return t / (n / PAGE) * 1e6;
}

/* -------------------------------------------------------- measurement */

/* One side of a workload: a function, the world it runs in (NULL for a
 * floor), where its touches go (NULL: not recorded), and its median. */
struct side {
    double (*fn)(const struct world *);
    const struct world *w;
    struct lat *lat;
    double med;
    double traps, reads; /* libumm: traps and pages read per run */
    double cores;        /* the process's CPU time over the wall time, median run */
};

/* Runs the sides REPS times each, alternating, the file warmed before each
 * run.  Keeps each side's median and, where recorded, the touches of its
 * median run (lat->ns[0], lat->n[0]). */
static void alternate(struct side *s, int n, size_t max_touches)
{
    double fig[8][REPS], cores[8][REPS];
    if (n > 8)
        abort();
    for (int r = 0; r < REPS; r++)
        for (int k = 0; k < n; k++) {
            warm_file();
            if (s[k].lat) {
                s[k].lat->ns[r] = rec = malloc(max_touches * sizeof *rec);
                if (!rec)
                    die("malloc");
                nrec = 0;
            }
            struct umm_stats a, b;
            umm_stats(&a);
            double c0 = cpu_now(), w0 = now();
            fig[k][r] = s[k].fn(s[k].w);
            cores[k][r] = (cpu_now() - c0) / (now() - w0);
            umm_stats(&b);
            s[k].traps = (double)(b.faults - a.faults);
            s[k].reads = (double)(b.pages_read - a.pages_read);
            if (s[k].lat)
                s[k].lat->n[r] = nrec;
            rec = NULL;
        }
    for (int k = 0; k < n; k++) {
        double sorted[REPS];
        memcpy(sorted, fig[k], sizeof sorted);
        s[k].med = median_of(sorted, REPS);
        memcpy(sorted, cores[k], sizeof sorted);
        s[k].cores = median_of(sorted, REPS);
        if (!s[k].lat)
            continue;
        int keep = 0;
        for (int r = 0; r < REPS; r++)
            if (fig[k][r] == s[k].med)
                keep = r;
        for (int r = 0; r < REPS; r++)
            if (r != keep)
                free(s[k].lat->ns[r]);
        s[k].lat->ns[0] = s[k].lat->ns[keep];
        s[k].lat->n[0] = s[k].lat->n[keep];
    }
}

static void progress(const char *name, const struct side *s, int n, double touched);

/* BENCH_ONLY=key,key... runs only those workloads (seq, two, rand, sparse,
 * iso, cow, shw, anon; the floors always run), for a quick look at one
 * row while working on it; the summary leaves out the rows not run. */
static int wanted(const char *key)
{
    const char *only = getenv("BENCH_ONLY");
    if (!only || !*only)
        return 1;
    size_t k = strlen(key);
    for (const char *p = only; *p;) {
        size_t n = strcspn(p, ",");
        if (n == k && strncmp(p, key, k) == 0)
            return 1;
        p += n + (p[n] == ',');
    }
    return 0;
}

/* Runs the sides unless the workload is left out by BENCH_ONLY; then its
 * medians are NaN, and its rows are not printed. */
static void run_sides(const char *key, struct side *s, int n, size_t max_touches, const char *name, double touched)
{
    if (!wanted(key)) {
        for (int k = 0; k < n; k++)
            s[k].med = NAN;
        return;
    }
    alternate(s, n, max_touches);
    progress(name, s, n, touched);
}

/* A line as each workload is measured: where the run is, and each libumm
 * world's traps and pages read per page touched (its last run).  libumm-zc
 * reads nothing itself: its count (the same counter) is of the pages it
 * mapped from the host's page cache, and is said so. */
static double started;

static void progress(const char *name, const struct side *s, int n, double touched)
{
    printf("  %-34s", name);
    for (int k = 0; k < n; k++)
        printf(" %s %.2f", s[k].w ? s[k].w->name : "floor", s[k].med);
    for (int k = 0; k < n; k++)
        if (s[k].w == &umm || s[k].w == &umm_zc)
            printf("  (%s: %.2f traps, %.2f pages %s per page)", s[k].w->name, s[k].traps / touched,
                   s[k].reads / touched, s[k].w == &umm_zc ? "mapped" : "read");
    printf("  [%.0f s]\n", now() - started);
}

/* ------------------------------------------------------------ summary */

/* A floor's line, unless its workload was left out (NaN). */
static void floor_line(const char *name, double v, const char *also, double w)
{
    if (isnan(v))
        return;
    printf("  %-58s %8.3f", name, v);
    if (also)
        printf("  (%s: %.3f)", also, w);
    printf("\n");
}

struct row {
    const char *name;
    double k, u;      /* kernel, libumm (or libumm-zc): us per page */
    const char *ref;  /* what the goal is against */
    double refv;      /* its figure */
    double goal;      /* ratio to refv; 0: reported only */
    int speedup;      /* goal is a throughput gain over refv: refv / u */
};

static void print_row(const struct row *r)
{
    if (isnan(r->k) || isnan(r->u) || isnan(r->refv))
        return; /* left out by BENCH_ONLY */
    char k[16], u[16], rk[16], rr[16], goal[24], v[16];
    double x = r->speedup ? r->refv / r->u : r->u / r->refv;
    snprintf(k, sizeof k, "%.3f", r->k);
    snprintf(u, sizeof u, "%.3f", r->u);
    snprintf(rk, sizeof rk, "%.2fx", r->u / r->k);
    snprintf(rr, sizeof rr, "%.2fx", x);
    if (r->goal == 0) {
        snprintf(goal, sizeof goal, "(report)");
        snprintf(v, sizeof v, "-");
    } else {
        snprintf(goal, sizeof goal, "%s %.2fx", r->speedup ? ">=" : "<=", r->goal);
        snprintf(v, sizeof v, "%s", (r->speedup ? x >= r->goal : x <= r->goal) ? "met" : "NOT MET");
    }
    printf("%-34s %9s %9s %8s  %-24s %8.3f %8s  %-9s %s\n", r->name, k, u, rk, r->ref, r->refv, rr, goal, v);
}

/* -------------------------------------------------------------- setup */

static uint64_t rng = 0x9e3779b97f4a7c15u;
static size_t rnd(size_t n)
{
    rng = rng * 6364136223846793005u + 1442695040888963407u;
    return (size_t)((rng >> 16) % n);
}

static void shuffle(size_t *v, size_t n)
{
    for (size_t i = n - 1; i > 0; i--) {
        size_t j = rnd(i + 1), t = v[i];
        v[i] = v[j];
        v[j] = t;
    }
}

/* The cost of one clock_gettime, ns: taken out of the per-page figures of
 * the cases that time every touch. */
static double measure_clock(void)
{
    double best = 1e9;
    for (int r = 0; r < 5; r++) {
        uint64_t t0 = ns_now();
        for (int i = 0; i < 10000; i++)
            (void)ns_now();
        double c = (double)(ns_now() - t0) / 10001;
        if (c < best)
            best = c;
    }
    return best;
}

/* Does the host's page cache hold the file in large folios?  1 yes, 0 no,
 * -1 unknown (pagemap gives frame numbers to root only). */
static int large_folios(void)
{
    size_t n = size < (8u << 20) ? size : (8u << 20);
    unsigned char *p = mmap(NULL, n, PROT_READ, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED)
        return -1;
    unsigned long s = 0;
    for (size_t i = 0; i < n; i += PAGE)
        s += p[i];
    sink += s;
    int pm = open("/proc/self/pagemap", O_RDONLY), kf = open("/proc/kpageflags", O_RDONLY), seen = -1;
    for (size_t i = 0; pm >= 0 && kf >= 0 && i < n; i += PAGE) {
        uint64_t e, flags;
        if (pread(pm, &e, sizeof e, (off_t)((uintptr_t)(p + i) / PAGE * sizeof e)) != sizeof e)
            break;
        uint64_t pfn = e & ((UINT64_C(1) << 55) - 1);
        if (!(e >> 63) || pfn == 0 || pread(kf, &flags, sizeof flags, (off_t)(pfn * sizeof flags)) != sizeof flags)
            continue;
        if (flags & (UINT64_C(1) << 15 | UINT64_C(1) << 16)) { /* KPF_COMPOUND_HEAD, _TAIL */
            seen = 1;
            break;
        }
        seen = 0;
    }
    if (pm >= 0)
        close(pm);
    if (kf >= 0)
        close(kf);
    munmap(p, n);
    return seen;
}

/* ----------------------------------------------------------- outputs */

struct series {
    const char *world, *workload;
    const struct lat *lat;
};

static void write_csv(const char *path, const struct series *s, int n)
{
    FILE *f = fopen(path, "w");
    if (!f) {
        fprintf(stderr, "bench-mmap: %s: %s\n", path, strerror(errno));
        return;
    }
    fprintf(f, "world,workload,ns\n");
    for (int k = 0; k < n; k++)
        for (size_t i = 0; i < s[k].lat->n[0]; i++)
            fprintf(f, "%s,%s,%u\n", s[k].world, s[k].workload, (unsigned)s[k].lat->ns[0][i]);
    if (fclose(f) != 0)
        fprintf(stderr, "bench-mmap: %s: %s\n", path, strerror(errno));
}

static int in_path(const char *prog)
{
    const char *path = getenv("PATH");
    char buf[PATH_MAX];
    while (path && *path) {
        size_t len = strcspn(path, ":");
        snprintf(buf, sizeof buf, "%.*s/%s", (int)len, path, prog);
        if (access(buf, X_OK) == 0)
            return 1;
        path += len + (path[len] == ':');
    }
    return 0;
}

/* The CDF of each series (up to 400 points: its quantiles), one panel per
 * workload, time on a log axis. */
static int plot(const char *svg, const struct series *s, int n)
{
    FILE *g = popen("gnuplot", "w");
    if (!g)
        return -1;
    for (int k = 0; k < n; k++) {
        size_t m = s[k].lat->n[0];
        uint32_t *c = malloc(m * sizeof *c);
        if (!c)
            die("malloc");
        memcpy(c, s[k].lat->ns[0], m * sizeof *c);
        qsort(c, m, sizeof *c, cmp_u32);
        fprintf(g, "$d%d << EOD\n", k);
        size_t step = m > 400 ? m / 400 : 1;
        for (size_t i = 0; i < m; i += step)
            fprintf(g, "%g %g\n", c[i] / 1e3, (double)(i + 1) / (double)m);
        fprintf(g, "%g 1\nEOD\n", c[m - 1] / 1e3);
        free(c);
    }
    fprintf(g, "set terminal svg size 1200,500 dynamic background rgb 'white'\n"
               "set output '%s'\n"
               "set multiplot layout 1,2 title 'bench-mmap: latency of each touch, %zu MiB file (median run of %d)'\n"
               "set logscale x\nset grid\nset key bottom right\n"
               "set xlabel 'touch latency, us (log)'\nset ylabel 'fraction of touches'\nset yrange [0:1]\n",
            svg, size >> 20, REPS);
    const char *panels[] = { "random read", "isolated fault" };
    for (int p = 0; p < 2; p++) {
        fprintf(g, "set title '%s'\nplot ", panels[p]);
        int first = 1, floors = 0;
        for (int k = 0; k < n; k++) {
            if (strcmp(s[k].workload, panels[p]) != 0)
                continue;
            int is_floor = strncmp(s[k].world, "floor", 5) == 0;
            const char *color = strcmp(s[k].world, "kernel") == 0 ? "#1f77b4"
                              : strcmp(s[k].world, "libumm") == 0 ? "#d62728"
                              : strcmp(s[k].world, "libumm-zc") == 0 ? "#ff7f0e"
                              : floors ? "#999999" : "#333333";
            fprintf(g, "%s$d%d with lines lw 2 lc rgb '%s' dt %d title '%s'", first ? "" : ", ", k, color,
                    is_floor ? 2 + 2 * floors : 1, s[k].world);
            floors += is_floor;
            first = 0;
        }
        fprintf(g, "\n");
    }
    fprintf(g, "unset multiplot\n");
    return pclose(g);
}

int main(int argc, char **argv)
{
    size_t mib = argc > 1 && *argv[1] ? strtoul(argv[1], NULL, 10) : 256;
    const char *csv = argc > 2 ? argv[2] : "bench-mmap-latency.csv";
    if (mib < 4) {
        fprintf(stderr, "usage: bench-mmap [MiB (>= 4) [CSV]]\n");
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0); /* each line as it is measured */
    size = mib << 20;
    pages = size / PAGE;
    char path[] = "/tmp/umm-bench.XXXXXX";
    fd = mkstemp(path);
    if (fd < 0)
        die("mkstemp");
    unlink(path);
    char *buf = malloc(1 << 20);
    for (size_t off = 0; off < size; off += 1 << 20) {
        memset(buf, (int)(off >> 20), 1 << 20);
        if (pwrite(fd, buf, 1 << 20, (off_t)off) != 1 << 20)
            die("pwrite");
    }
    free(buf);

    perm = malloc(pages * sizeof *perm);
    nisolated = pages / STRIDE;
    isolated = malloc(nisolated * sizeof *isolated);
    if (!perm || !isolated)
        die("malloc");
    for (size_t i = 0; i < pages; i++)
        perm[i] = i;
    shuffle(perm, pages);
    for (size_t i = 0; i < nisolated; i++)
        isolated[i] = i * STRIDE + STRIDE / 2;
    shuffle(isolated, nisolated);

    /* Start libumm (its trap, its thread) before anything is measured, so
     * that every side runs in the same process. */
    void *p = umm_mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        die("umm_mmap");
    umm_munmap(p, PAGE);
    clock_ns = measure_clock();
    warm_file();
    int folios = large_folios();

    printf("bench-mmap: libumm vs kernel vs floors, %zu MiB file in the host's page cache "
           "(large folios: %s), median of %d alternating runs, us per 4 KiB page touched; "
           "clock_gettime %.0f ns\n",
           mib, folios > 0 ? "yes" : folios == 0 ? "no" : "unknown (not root)", REPS, clock_ns);
    started = now();

    struct lat l_rand[4], l_iso[3], l_trap, l_mprot;
    memset(l_rand, 0, sizeof l_rand);
    memset(l_iso, 0, sizeof l_iso);
    memset(&l_trap, 0, sizeof l_trap);
    memset(&l_mprot, 0, sizeof l_mprot);

    struct side f_info[] = {
        { floor_pread64k_reused, NULL, NULL, 0, 0, 0, 0 },
        { floor_trap_mprotect, NULL, &l_trap, 0, 0, 0, 0 },
        { floor_mprotect, NULL, &l_mprot, 0, 0, 0, 0 },
        { floor_pread64k_warm, NULL, NULL, 0, 0, 0, 0 },
    };
    alternate(f_info, 4, nisolated);
    progress("floors: copy, trap, mprotect, warm pread", f_info, 4, 1);

    struct side seq[] = {
        { floor_pread64k, NULL, NULL, 0, 0, 0, 0 },
        { seq_read, &kernel, NULL, 0, 0, 0, 0 },
        { seq_read, &umm, NULL, 0, 0, 0, 0 },
        { seq_read, &umm_zc, NULL, 0, 0, 0, 0 },
    };
    run_sides("seq", seq, 4, 0, "sequential read", (double)pages);

    struct side two[] = {
        { floor_pread64k_2threads, NULL, NULL, 0, 0, 0, 0 },
        { seq_read_2threads, &kernel, NULL, 0, 0, 0, 0 },
        { seq_read_2threads, &umm, NULL, 0, 0, 0, 0 },
    };
    run_sides("two", two, 3, 0, "two threads reading", (double)pages);

    struct side rnd_s[] = {
        { floor_pread4k, NULL, &l_rand[0], 0, 0, 0, 0 },
        { rand_read, &kernel, &l_rand[1], 0, 0, 0, 0 },
        { rand_read, &umm, &l_rand[2], 0, 0, 0, 0 },
        { rand_read, &umm_zc, &l_rand[3], 0, 0, 0, 0 },
    };
    run_sides("rand", rnd_s, 4, pages, "random read", (double)pages);

    struct side sparse[] = {
        { sparse_read, &kernel, NULL, 0, 0, 0, 0 },
        { sparse_read, &umm, NULL, 0, 0, 0, 0 },
    };
    run_sides("sparse", sparse, 2, 0, "sparse", (double)(pages / SPARSE));

    struct side iso[] = {
        { floor_isolated, NULL, &l_iso[0], 0, 0, 0, 0 },
        { isolated_fault, &kernel, &l_iso[1], 0, 0, 0, 0 },
        { isolated_fault, &umm, &l_iso[2], 0, 0, 0, 0 },
    };
    run_sides("iso", iso, 3, nisolated, "isolated fault (p50)", (double)nisolated);

    struct side cow[] = {
        { cow_write, &kernel, NULL, 0, 0, 0, 0 },
        { cow_write, &umm, NULL, 0, 0, 0, 0 },
        { cow_write, &umm_zc, NULL, 0, 0, 0, 0 },
    };
    run_sides("cow", cow, 3, 0, "private write", (double)(pages / 8));

    struct side shw[] = {
        { shared_write_msync, &kernel, NULL, 0, 0, 0, 0 },
        { shared_write_msync, &umm, NULL, 0, 0, 0, 0 },
        { shared_write_msync, &umm_zc, NULL, 0, 0, 0, 0 },
    };
    run_sides("shw", shw, 3, 0, "shared write + msync", (double)(pages / 8));

    struct side anon[] = {
        { anon_write, &kernel, NULL, 0, 0, 0, 0 },
        { anon_write, &umm, NULL, 0, 0, 0, 0 },
    };
    run_sides("anon", anon, 2, 0, "anonymous first touch", (double)(pages / 4));

    /* The floors, then the table. */
    double pread4k_p50 = NAN;
    if (l_rand[0].n[0]) {
        size_t m = l_rand[0].n[0];
        uint32_t *c = malloc(m * sizeof *c);
        if (!c)
            die("malloc");
        memcpy(c, l_rand[0].ns[0], m * sizeof *c);
        qsort(c, m, sizeof *c, cmp_u32);
        pread4k_p50 = c[m / 2] / 1e3;
        free(c);
    }
    printf("\nfloors (this machine, this run), us per 4 KiB page:\n");
    floor_line("pread 64 KiB into fresh memfd pages", seq[0].med, NULL, 0);
    floor_line("pread 64 KiB into fresh memfd pages, two threads", two[0].med, NULL, 0);
    floor_line("pread 64 KiB into one reused buffer (the copy alone)", f_info[0].med, NULL, 0);
    floor_line("pread 64 KiB into memfd pages written before", f_info[3].med, NULL, 0);
    floor_line("pread 4 KiB into fresh memfd pages, random order", rnd_s[0].med, "p50", pread4k_p50);
    floor_line("SIGSEGV + mprotect round trip, p50", f_info[1].med, NULL, 0);
    floor_line("mprotect of one page, p50", f_info[2].med, NULL, 0);
    floor_line("trap + mprotect + pread 4 KiB, p50", iso[0].med, "round trip + pread 4 KiB p50",
               f_info[1].med + pread4k_p50);

    double seq_goal = folios > 0 ? 1.25 : 1.5;
    struct row rows[] = {
        { "sequential read, copy", seq[1].med, seq[2].med, "pread 64K floor", seq[0].med, seq_goal, 0 },
        { "  the same, against warm pages", seq[1].med, seq[2].med, "pread 64K, warm pages", f_info[3].med, seq_goal,
          0 },
        { "sequential read, zero-copy", seq[1].med, seq[3].med, "kernel mmap", seq[1].med, 3, 0 },
        { "random read (every page once)", rnd_s[1].med, rnd_s[2].med, "pread 4K floor", rnd_s[0].med, 2, 0 },
        { "random read, zero-copy", rnd_s[1].med, rnd_s[3].med, "kernel mmap", rnd_s[1].med, 5, 0 },
        { "sparse (1 touch / 64 KiB)", sparse[0].med, sparse[1].med, "kernel", sparse[0].med, 0, 0 },
        { "one isolated fault, p50", iso[1].med, iso[2].med, "trap+mprotect+pread", iso[0].med, 1.3, 0 },
        { "private write (copy-on-write)", cow[0].med, cow[1].med, "kernel", cow[0].med, 2, 0 },
        { "private write, zero-copy", cow[0].med, cow[2].med, "kernel", cow[0].med, 0, 0 },
        { "shared write + msync", shw[0].med, shw[1].med, "kernel", shw[0].med, 2, 0 },
        { "shared write + msync, zero-copy", shw[0].med, shw[2].med, "kernel", shw[0].med, 0, 0 },
        { "anonymous first touch", anon[0].med, anon[1].med, "kernel", anon[0].med, 1, 0 },
        { "two threads reading", two[1].med, two[2].med, "libumm, one thread", seq[2].med, 1.6, 1 },
    };
    printf("\nsummary (us per page; ratio: libumm / reference, for two threads the speedup over one; "
           "the zero-copy rows' libumm is libumm-zc):\n");
    printf("%-34s %9s %9s %8s  %-24s %8s %8s  %-9s %s\n", "workload", "kernel", "libumm", "/kernel", "reference",
           "ref", "ratio", "goal", "");
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++)
        print_row(&rows[i]);
    printf("%-34s %s\n", "fork of 64 MiB and 1 GiB", "in bench-fork, run next by make bench (goal <= 1.5x the kernel)");
    if (!isnan(two[1].med) && !isnan(seq[1].med))
        printf("two threads' speedup over one: kernel %.2fx, the pread 64K floor %.2fx (what this machine allows)\n",
               seq[1].med / two[1].med, seq[0].med / two[0].med);
    if (!isnan(two[2].med) && !isnan(seq[2].med)) {
        /* What bounds the two-thread goal: the cores.  One thread of
         * libumm reads on more than one (the daemon reads its next window
         * meanwhile), so two threads can gain at most the cores left. */
        double ncpu = (double)sysconf(_SC_NPROCESSORS_ONLN), c1 = seq[2].cores;
        printf("cores used (CPU time / wall time): kernel one thread %.2f, two %.2f; libumm one thread %.2f, "
               "two %.2f: on %.0f cores, twice one thread's work can go at most %.2fx as fast\n",
               seq[1].cores, two[1].cores, c1, two[2].cores, ncpu,
               c1 > 0 ? (2 * c1 < ncpu ? 2 * c1 : ncpu) / c1 : NAN);
    }
    if (folios < 0)
        printf("large folios unknown (not root): the sequential goal is the 1.5x one\n");
    printf("umap: not installed (not packaged in Debian): no comparison\n");

    struct series ser[] = {
        { "floor pread 4K", "random read", &l_rand[0] },
        { "kernel", "random read", &l_rand[1] },
        { "libumm", "random read", &l_rand[2] },
        { "libumm-zc", "random read", &l_rand[3] },
        { "floor trap+mprotect", "isolated fault", &l_trap },
        { "floor trap+mprotect+pread", "isolated fault", &l_iso[0] },
        { "kernel", "isolated fault", &l_iso[1] },
        { "libumm", "isolated fault", &l_iso[2] },
    };
    int nser = sizeof ser / sizeof ser[0];
    for (int k = 0; k < nser; k++)
        if (ser[k].lat->n[0] == 0)
            nser = 0; /* a workload left out by BENCH_ONLY: no latencies to show */
    char *abs = realpath(".", NULL);
    if (nser == 0) {
        printf("per-touch latencies and plot: none (BENCH_ONLY left out random read or the isolated fault)\n");
    } else {
        write_csv(csv, ser, nser);
        printf("per-touch latencies: %s%s%s\n", csv[0] == '/' || !abs ? "" : abs, csv[0] == '/' || !abs ? "" : "/",
               csv);
        char svg[PATH_MAX];
        snprintf(svg, sizeof svg, "%.*s.svg", (int)(strlen(csv) > 4 && strcmp(csv + strlen(csv) - 4, ".csv") == 0
                                                        ? strlen(csv) - 4 : strlen(csv)), csv);
        if (!in_path("gnuplot"))
            printf("plot: skipped: gnuplot is not installed (apt-get install gnuplot-nox; ./bootstrap does)\n");
        else if (plot(svg, ser, nser) != 0)
            printf("plot: gnuplot failed, no %s\n", svg);
        else
            printf("plot (CDF of each touch's latency): %s%s%s\n", svg[0] == '/' || !abs ? "" : abs,
                   svg[0] == '/' || !abs ? "" : "/", svg);
    }
    free(abs);

    struct umm_stats s;
    umm_stats(&s);
    printf("libumm (both worlds, the whole run): %llu traps, %llu pages read or mapped, %llu written back, "
           "%llu copies [%.0f s]\n",
           (unsigned long long)s.faults, (unsigned long long)s.pages_read, (unsigned long long)s.pages_written,
           (unsigned long long)s.cow_copies, now() - started);
    close(fd);
    return 0;
}
