/*
 * bench-reclaim: out of core (issue 14).  A file 4x the memory budget,
 * mapped MAP_SHARED PROT_READ, read sequentially (one 8-byte word of every
 * page: the cost of paging, not of the reading), then at random (every
 * page once, in a random permutation), through libumm (UMM_RAM = the
 * budget) against the kernel's own mmap.  Goal: libumm at most 1.5x the
 * kernel's time, and never an OOM.
 *
 * Each run is a fresh child process; where this machine lets us make a
 * memory cgroup (root, a memory controller, v1 or v2: tests/memcg.h), the
 * child runs in a cgroup of its own whose limit is the same for both
 * worlds: the budget plus a third (libumm's default budget under a limit L
 * is 3/4 L, so this is the limit under which libumm would pick this budget
 * by itself), without swap.  After each run the cgroup's OOM kills are
 * read: one in the kernel's run is reported; one in libumm's is a failure
 * (printed loudly, exit status 1).  Where there is no cgroup, the runs go
 * on without one and the reason is printed.
 *
 * The host's page cache.  The file lives on disk (in the current
 * directory, the build directory under make bench).  Two ways to start a
 * run, both fair in that the two worlds start alike:
 *   - warm (default): the file is read in whole by this (parent) process
 *     before each run, so both worlds read it from the host's page cache,
 *     as bench-mmap does.  Those pages are charged to the parent's cgroup,
 *     not the child's: the kernel's run maps them without reading or
 *     reclaiming anything, while libumm still copies every page into its
 *     RAM (charged to the child) and reclaims.  The ratio is libumm's
 *     whole cost of paging and reclaim against the kernel's cost of mapping
 *     cached pages: the hard comparison.
 *   - cold: the file's pages are dropped from the host's page cache before
 *     each run (fdatasync, posix_fadvise DONTNEED): both worlds read it
 *     from the disk, into page-cache pages charged to their own cgroup,
 *     and the kernel reclaims too -- a true out-of-core run, but the
 *     disk's time dominates and random reads of 4 KiB from this machine's
 *     disk are slow (minutes at 1 GiB): use a small budget.
 *
 *   bench-reclaim [BUDGET_MIB [REPS [warm|cold]]]     (default 64 3 warm)
 *
 * The default is smaller than the 256 MiB budget (1 GiB file):
 * libumm's random pass costs 0.15-0.3 ms a page (doc/PERFORMANCE.md,
 * 2026-12-05 later; it was 1 ms before read-around learned to stop).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <umm.h>

#include "bench.h"

#include "outofcore.h"

#define PAGE 4096
#define GOAL 1.5
#define MAXREPS 64

static uint64_t budget_mib = 64, size, pages;
static int reps = 3, cold;
static int fd;
static int have_cg;
static char cg_why[1024];
static uint64_t limit;

struct result {
    double seq, rnd;            /* seconds */
    uint64_t sum_seq, sum_rnd;  /* what was read */
    uint64_t faults, reclaimed, frames_high, budget; /* libumm's */
    long majflt, minflt;
    int done;
};

struct run {
    struct result r;
    int status;               /* the child's wait status */
    long long oom_kills, peak; /* the cgroup's; -1: none */
};

/* The child's work: one world, the sequential then the random pass. */
static void child(int libumm, struct result *out)
{
    uint32_t *perm = malloc(pages * sizeof *perm);
    if (!perm)
        _exit(3);
    uint64_t x = 0x2545f4914f6cdd1dull;
    for (uint64_t i = 0; i < pages; i++)
        perm[i] = (uint32_t)i;
    for (uint64_t i = pages - 1; i > 0; i--) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        uint64_t j = x % (i + 1);
        uint32_t t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
    char ram[32];
    snprintf(ram, sizeof ram, "%lluM", (unsigned long long)budget_mib);
    setenv("UMM_RAM", ram, 1); /* read when libumm starts, just below */
    const volatile char *p = libumm ? umm_mmap(NULL, size, PROT_READ, MAP_SHARED, fd, 0)
                                    : mmap(NULL, size, PROT_READ, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) {
        perror("bench-reclaim: mmap");
        _exit(3);
    }
    double t = now();
    uint64_t s = 0;
    for (uint64_t pg = 0; pg < pages; pg++)
        s += *(const volatile uint64_t *)(p + pg * PAGE);
    out->seq = now() - t;
    out->sum_seq = s;
    s = 0;
    t = now();
    for (uint64_t i = 0; i < pages; i++)
        s += *(const volatile uint64_t *)(p + (uint64_t)perm[i] * PAGE);
    out->rnd = now() - t;
    out->sum_rnd = s;
    if (libumm) {
        struct umm_stats st;
        umm_stats(&st);
        out->faults = st.faults;
        out->reclaimed = st.reclaimed;
        out->frames_high = st.frames_high;
        out->budget = st.budget;
    }
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    out->majflt = ru.ru_majflt;
    out->minflt = ru.ru_minflt;
    out->done = 1;
    /* No munmap: the process ends (both worlds alike). */
}

static void work(const void *arg, void *out)
{
    child(*(const int *)arg, out);
}

static void run(int libumm, struct run *rn)
{
    ooc_prepare_cache("bench-reclaim", fd, size, cold);
    struct ooc_cg seen;
    rn->status = ooc_run_child("bench-reclaim", have_cg, libumm ? "umm-bench-libumm" : "umm-bench-kernel", limit, work,
                               &libumm, &rn->r, sizeof rn->r, &seen);
    rn->oom_kills = seen.oom_kills;
    rn->peak = seen.peak;
}

static double median(const struct run *rs, int n, int rnd)
{
    double v[MAXREPS];
    int k = 0;
    for (int i = 0; i < n; i++)
        if (rs[i].r.done)
            v[k++] = rnd ? rs[i].r.rnd : rs[i].r.seq;
    if (!k)
        return 0;
    qsort(v, (size_t)k, sizeof v[0], cmp);
    return v[k / 2];
}

static const char *fate(const struct run *rn)
{
    static char buf[64];
    if (WIFSIGNALED(rn->status))
        snprintf(buf, sizeof buf, "killed by signal %d%s", WTERMSIG(rn->status),
                 rn->oom_kills > 0 ? " (OOM)" : "");
    else if (!WIFEXITED(rn->status) || WEXITSTATUS(rn->status) != 0)
        snprintf(buf, sizeof buf, "exit status %d", WEXITSTATUS(rn->status));
    else
        snprintf(buf, sizeof buf, "ok");
    return buf;
}

int main(int argc, char **argv)
{
    if (argc > 1)
        budget_mib = strtoull(argv[1], NULL, 10);
    if (argc > 2)
        reps = atoi(argv[2]);
    if (argc > 3)
        cold = strcmp(argv[3], "cold") == 0;
    if (budget_mib < 1 || reps < 1 || reps > MAXREPS) {
        fprintf(stderr, "usage: bench-reclaim [BUDGET_MIB [REPS [warm|cold]]]\n");
        return 2;
    }
    size = budget_mib << 22; /* 4x */
    pages = size / PAGE;
    limit = (budget_mib << 20) + (budget_mib << 20) / 3;

    struct memcg probe;
    have_cg = memcg_create(&probe, "umm-bench-probe", limit, cg_why, sizeof cg_why) == 0;
    if (have_cg)
        memcg_destroy(&probe);

    printf("bench-reclaim: a file of %llu MiB (4x the budget, %llu MiB), MAP_SHARED, read sequentially then at "
           "random (one word of each page, every page once); %d reps, alternating, medians; host page cache %s\n",
           (unsigned long long)(size >> 20), (unsigned long long)budget_mib, reps,
           cold ? "dropped before each run (cold: from the disk)" : "filled before each run (warm)");
    if (have_cg)
        printf(" each run in a memory cgroup (%s) of its own, limit %llu MiB (the budget + 1/3), no swap\n",
               probe.v2 ? "v2" : "v1", (unsigned long long)(limit >> 20));
    else
        printf(" no memory cgroup: %s; the runs go without one\n", cg_why);

    fd = ooc_make_file("bench-reclaim", size);
    static struct run k[MAXREPS], u[MAXREPS];
    for (int i = 0; i < reps; i++) {
        if (i % 2 == 0) {
            run(0, &k[i]);
            run(1, &u[i]);
        } else {
            run(1, &u[i]);
            run(0, &k[i]);
        }
    }

    uint64_t want = 0;
    for (uint64_t pg = 0; pg < pages; pg++)
        want += ooc_word(pg);
    int bad = 0, umm_oom = 0, kern_oom = 0;
    for (int i = 0; i < reps; i++) {
        const struct run *w[2] = { &k[i], &u[i] };
        for (int j = 0; j < 2; j++) {
            const struct run *rn = w[j];
            int oom = rn->oom_kills > 0 || (WIFSIGNALED(rn->status) && WTERMSIG(rn->status) == SIGKILL);
            if (j)
                umm_oom += oom;
            else
                kern_oom += oom;
            if (!oom && (!rn->r.done || rn->r.sum_seq != want || rn->r.sum_rnd != want)) {
                printf(" %s rep %d: %s, %s\n", j ? "libumm" : "kernel", i, fate(rn),
                       rn->r.done ? "WRONG BYTES READ" : "did not finish");
                bad++;
            }
        }
    }
    double kseq = median(k, reps, 0), useq = median(u, reps, 0);
    double krnd = median(k, reps, 1), urnd = median(u, reps, 1);
    long long kpeak = 0, upeak = 0;
    for (int i = 0; i < reps; i++) {
        kpeak = k[i].peak > kpeak ? k[i].peak : kpeak;
        upeak = u[i].peak > upeak ? u[i].peak : upeak;
    }
    printf("  %-11s %9s %9s %7s\n", "", "kernel", "libumm", "ratio");
    printf("  %-11s %6.2f us %6.2f us %6.2fx   (%.3f s / %.3f s per pass)\n", "sequential", kseq / pages * 1e6,
           useq / pages * 1e6, kseq > 0 ? useq / kseq : 0, kseq, useq);
    printf("  %-11s %6.2f us %6.2f us %6.2fx   (%.3f s / %.3f s per pass)\n", "random", krnd / pages * 1e6,
           urnd / pages * 1e6, krnd > 0 ? urnd / krnd : 0, krnd, urnd);
    printf("  per page; goal: libumm <= %.1fx the kernel (issue 14): sequential %s, random %s\n", GOAL,
           kseq > 0 && useq / kseq <= GOAL ? "met" : "NOT met", krnd > 0 && urnd / krnd <= GOAL ? "met" : "NOT met");
    const struct result *r0 = &u[0].r;
    printf("  libumm: budget %llu pages, frames_high %llu, %llu faults, %llu pages reclaimed per run; host minor "
           "faults kernel %ld, libumm %ld; major %ld / %ld\n",
           (unsigned long long)r0->budget, (unsigned long long)r0->frames_high, (unsigned long long)r0->faults,
           (unsigned long long)r0->reclaimed, k[0].r.minflt, r0->minflt, k[0].r.majflt, r0->majflt);
    if (have_cg)
        printf("  cgroup peak charge: kernel %.1f MiB, libumm %.1f MiB (limit %llu MiB); OOM kills: kernel %d, "
               "libumm %d\n",
               kpeak / 1048576.0, upeak / 1048576.0, (unsigned long long)(limit >> 20), kern_oom, umm_oom);
    else
        printf("  no cgroup (%s): OOM not measured; children killed: kernel %d, libumm %d\n", cg_why, kern_oom,
               umm_oom);
    if (kern_oom)
        printf("  note: the kernel's run was OOM-killed %d time(s) in the same limit\n", kern_oom);
    if (umm_oom) {
        printf("\n  *** bench-reclaim: LIBUMM WAS OOM-KILLED (%d of %d runs) in a limit of %llu MiB with a budget of "
               "%llu MiB ***\n\n",
               umm_oom, reps, (unsigned long long)(limit >> 20), (unsigned long long)budget_mib);
        return 1;
    }
    return bad ? 1 : 0;
}
