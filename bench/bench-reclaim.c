/*
 * bench-reclaim: out of core (issue 14).  A file 4x the memory budget,
 * mapped MAP_SHARED PROT_READ, read sequentially (one 8-byte word of every
 * page: the cost of paging, not of the reading), then at random (every
 * page once, in a random permutation), in three worlds: the kernel's own
 * mmap; "libumm", libumm's copy mode (UMM_MAP_COPY: the file's pages are
 * copied into libumm's own frames, filled by pread, UMM_RAM = the budget);
 * "libumm-zc", libumm's zero-copy mode (UMM_MAP_ZEROCOPY: the file's clean
 * pages are the host's own page cache, mapped; umm.h "Zero-copy file
 * pages").  Each libumm mapping names its mode, so that UMM_ZEROCOPY=1 in
 * the environment changes neither world.  Goal, for each libumm world:
 * at most 1.5x the kernel's time, and never an OOM.
 *
 * Each run is a fresh child process; where this machine lets us make a
 * memory cgroup (root, a memory controller, v1 or v2: tests/memcg.h), the
 * child runs in a cgroup of its own whose limit is the same for all three
 * worlds: the budget plus a third (libumm's default budget under a limit L
 * is 3/4 L, so this is the limit under which libumm would pick this budget
 * by itself), without swap.  After each run the cgroup's OOM kills are
 * read: one in the kernel's run is reported; one in either libumm world's
 * is a failure (printed loudly, exit status 1).  Where there is no cgroup,
 * the runs go on without one and the reason is printed.  The worlds run in
 * rounds, one run of each a round, the first of the round rotating.
 *
 * The budget is the copy mode's alone.  Zero-copy pages are the host's
 * memory, not libumm's: they take none of the budget (frames_high stays
 * near 0, nothing is "reclaimed"), and what bounds them is what bounds a
 * kernel mapping's pages, the host's reclaim under the cgroup's limit.
 * The zero-copy world is therefore the kernel's paging plus libumm's
 * traps (one a read-ahead window, mapping the host's pages), and its
 * ratio measures those traps, not libumm's reclaim.
 *
 * The host's page cache.  The file lives on disk (in the current
 * directory, the build directory under make bench).  Two ways to start a
 * run, both fair in that the three worlds start alike:
 *   - warm (default): the file is read in whole by this (parent) process
 *     before each run, so every world reads it from the host's page cache,
 *     as bench-mmap does.  Those pages are charged to the parent's cgroup,
 *     not the child's: the kernel's run maps them without reading or
 *     reclaiming anything, and so does the zero-copy run.  Nothing is out
 *     of core for either: the zero-copy ratio is libumm's traps (and the
 *     host's faults in each window they map) against the kernel's faults
 *     on the same cached pages.  Its random pass is nearly free in both,
 *     once the sequential pass has mapped every page: a millisecond or so
 *     at a small budget, its ratio mostly noise.  The copy world still
 *     copies every page into its RAM (charged to the child) and reclaims:
 *     its ratio is libumm's whole cost of paging and reclaim against the
 *     kernel's cost of mapping cached pages, the hard comparison, and it
 *     is the only world of the three that pages here.
 *   - cold: the file's pages are dropped from the host's page cache before
 *     each run (fdatasync, posix_fadvise DONTNEED): every world reads it
 *     from the disk.  The kernel's run and the zero-copy run read it into
 *     page-cache pages charged to their own cgroup, which the host
 *     reclaims at the limit (the same paging, major faults alike); the
 *     copy world preads it into its frames, through page-cache pages of
 *     its own cgroup too, and reclaims the frames under its budget -- a
 *     true out-of-core run for all three, but the disk's time dominates
 *     and random reads of 4 KiB from this machine's disk are slow
 *     (minutes at 1 GiB): use a small budget.
 *
 *   bench-reclaim [BUDGET_MIB [REPS [warm|cold]]]     (default 64 3 warm)
 *
 * The default is smaller than the 256 MiB budget (1 GiB file):
 * the copy mode's random pass costs 0.15-0.3 ms a page (doc/PERFORMANCE.md,
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

enum world { KERNEL, LIBUMM, LIBUMM_ZC, WORLDS };
static const char *const world_name[WORLDS] = { "kernel", "libumm", "libumm-zc" };
static const char *const cg_name[WORLDS] = { "umm-bench-kernel", "umm-bench-libumm", "umm-bench-libumm-zc" };

/* The child's work: one world, the sequential then the random pass. */
static void child(enum world world, struct result *out)
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
    /* The mode asked for by name in both libumm worlds: UMM_ZEROCOPY=1 in
     * the environment must not turn the copy world into a second
     * zero-copy one. */
    const volatile char *p =
        world == KERNEL ? mmap(NULL, size, PROT_READ, MAP_SHARED, fd, 0)
                        : umm_mmap(NULL, size, PROT_READ,
                                   MAP_SHARED | (world == LIBUMM_ZC ? UMM_MAP_ZEROCOPY : UMM_MAP_COPY), fd, 0);
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
    if (world != KERNEL) {
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
    child(*(const enum world *)arg, out);
}

static void run(enum world world, struct run *rn)
{
    ooc_prepare_cache("bench-reclaim", fd, size, cold);
    struct ooc_cg seen;
    rn->status = ooc_run_child("bench-reclaim", have_cg, cg_name[world], limit, work, &world, &rn->r, sizeof rn->r,
                               &seen);
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
           "random (one word of each page, every page once); kernel, libumm (copy) and libumm-zc (zero-copy), %d "
           "round(s), rotating, medians; host page cache %s\n",
           (unsigned long long)(size >> 20), (unsigned long long)budget_mib, reps,
           cold ? "dropped before each run (cold: from the disk)" : "filled before each run (warm)");
    if (have_cg)
        printf(" each run in a memory cgroup (%s) of its own, limit %llu MiB (the budget + 1/3), no swap\n",
               probe.v2 ? "v2" : "v1", (unsigned long long)(limit >> 20));
    else
        printf(" no memory cgroup: %s; the runs go without one\n", cg_why);

    fd = ooc_make_file("bench-reclaim", size);
    static struct run rs[WORLDS][MAXREPS];
    for (int i = 0; i < reps; i++)
        /* Rotate which world goes first in the round: each starts from the
         * same page cache (ooc_prepare_cache), but the machine is shared
         * and noisy, and what a run leaves behind (its cgroup's memory
         * being freed, the disk's own cache) should favour no world. */
        for (int j = 0; j < WORLDS; j++) {
            enum world w = (enum world)((i + j) % WORLDS);
            run(w, &rs[w][i]);
        }

    uint64_t want = 0;
    for (uint64_t pg = 0; pg < pages; pg++)
        want += ooc_word(pg);
    int bad = 0, oom[WORLDS] = { 0 };
    for (int i = 0; i < reps; i++)
        for (int w = 0; w < WORLDS; w++) {
            const struct run *rn = &rs[w][i];
            int killed = rn->oom_kills > 0 || (WIFSIGNALED(rn->status) && WTERMSIG(rn->status) == SIGKILL);
            oom[w] += killed;
            if (!killed && (!rn->r.done || rn->r.sum_seq != want || rn->r.sum_rnd != want)) {
                printf(" %s rep %d: %s, %s\n", world_name[w], i, fate(rn),
                       rn->r.done ? "WRONG BYTES READ" : "did not finish");
                bad++;
            }
        }
    double seq[WORLDS], rnd[WORLDS];
    long long peak[WORLDS];
    for (int w = 0; w < WORLDS; w++) {
        seq[w] = median(rs[w], reps, 0);
        rnd[w] = median(rs[w], reps, 1);
        peak[w] = 0;
        for (int i = 0; i < reps; i++)
            peak[w] = rs[w][i].peak > peak[w] ? rs[w][i].peak : peak[w];
    }
    printf("  %-11s %-32s %s\n", "", "----------- per page -----------", "--- x the kernel ----");
    printf("  %-11s %10s %10s %10s %10s %10s\n", "", "kernel", "libumm", "libumm-zc", "libumm", "libumm-zc");
    const char *pass[2] = { "sequential", "random" };
    for (int k = 0; k < 2; k++) {
        const double *t = k ? rnd : seq;
        printf("  %-11s %7.2f us %7.2f us %7.2f us %9.2fx %9.2fx   (%.3f s / %.3f s / %.3f s per pass)\n", pass[k],
               t[KERNEL] / pages * 1e6, t[LIBUMM] / pages * 1e6, t[LIBUMM_ZC] / pages * 1e6,
               t[KERNEL] > 0 ? t[LIBUMM] / t[KERNEL] : 0, t[KERNEL] > 0 ? t[LIBUMM_ZC] / t[KERNEL] : 0, t[KERNEL],
               t[LIBUMM], t[LIBUMM_ZC]);
    }
    for (int w = LIBUMM; w < WORLDS; w++)
        printf("  goal: %-9s <= %.1fx the kernel (issue 14): sequential %s, random %s\n", world_name[w], GOAL,
               seq[KERNEL] > 0 && seq[w] / seq[KERNEL] <= GOAL ? "met" : "NOT met",
               rnd[KERNEL] > 0 && rnd[w] / rnd[KERNEL] <= GOAL ? "met" : "NOT met");
    /* The counters of one run of each world: the first that finished (an
     * OOM-killed run handed back nothing). */
    if (have_cg)
        printf("  per run (cgroup limit %llu MiB; peak charge: the most of any run):\n",
               (unsigned long long)(limit >> 20));
    else
        printf("  per run (no cgroup, %s: OOM not measured, only children killed):\n", cg_why);
    for (int w = 0; w < WORLDS; w++) {
        int i = 0;
        while (i < reps - 1 && !rs[w][i].r.done)
            i++;
        const struct result *r = &rs[w][i].r;
        char umm[160] = "";
        if (w != KERNEL)
            snprintf(umm, sizeof umm, "budget %llu pages, frames_high %llu, %llu faults, %llu pages reclaimed; ",
                     (unsigned long long)r->budget, (unsigned long long)r->frames_high,
                     (unsigned long long)r->faults, (unsigned long long)r->reclaimed);
        char cg[96];
        if (have_cg)
            snprintf(cg, sizeof cg, "; cgroup peak charge %.1f MiB, OOM kills %d", peak[w] / 1048576.0, oom[w]);
        else
            snprintf(cg, sizeof cg, "; killed %d", oom[w]);
        printf("  %-10s %shost faults minor %ld, major %ld%s\n", world_name[w], umm, r->minflt, r->majflt, cg);
    }
    if (oom[KERNEL])
        printf("  note: the kernel's run was OOM-killed %d time(s) in the same limit\n", oom[KERNEL]);
    int umm_oom = 0;
    for (int w = LIBUMM; w < WORLDS; w++)
        if (oom[w]) {
            printf("\n  *** bench-reclaim: %s WAS OOM-KILLED (%d of %d runs) in a limit of %llu MiB with a budget of "
                   "%llu MiB ***\n\n",
                   w == LIBUMM_ZC ? "LIBUMM ZERO-COPY" : "LIBUMM", oom[w], reps, (unsigned long long)(limit >> 20),
                   (unsigned long long)budget_mib);
            umm_oom++;
        }
    return umm_oom || bad ? 1 : 0;
}
