/*
 * bench-policy: how good is reclaim's choice of pages (issue 14: "an LRU
 * approximation ... measured on sequential, random and looping
 * workloads")?  bench-reclaim times paging out of core; this one counts
 * what libumm reads in on a trace of page touches, against what ideal
 * policies would need on the same trace with as many pages of memory:
 *   - OPT, Belady's MIN: evicts the page touched again furthest in the
 *     future; no demand-paging policy misses less;
 *   - LRU, exact: what CLOCK approximates;
 *   - FIFO: what second chance is meant to beat;
 *   - CLOCK: the textbook one-hand second chance, over a ring of the
 *     budget's frames (a new page referenced) -- libumm's algorithm
 *     without its implementation (watermarks, batches, a hand that goes
 *     round in address order, read-ahead).
 * The simulated caches hold exactly the budget's pages (UMM_RAM); libumm's
 * daemon brings its frames to 3/4 of the budget when they pass 7/8
 * (vmscan.c), so it works with less.
 *
 * The workloads, each a deterministic trace (a seeded xorshift), in pages
 * of a file mapped MAP_SHARED PROT_READ; each touch reads one 8-byte word
 * (the cost of paging, not of the reading).  C is the budget in pages:
 *   - sequential: one pass over 4C pages (every policy misses every page);
 *   - random: 4C touches, uniform over 4C pages;
 *   - loop 1.25x, loop 2x: 4 and 3 sequential passes over 1.25C and 2C
 *     pages: LRU, FIFO and CLOCK evict each page just before its next
 *     touch and miss every time; OPT keeps C - 1 pages of the loop and
 *     misses about (file - C) a pass after the first;
 *   - hot set: 6C touches over 4C pages, 80 % of them to a hot set of C/2
 *     pages (scattered over the file, so that read-around does not bring
 *     them in by neighbourhood), 20 % uniform over the others: a policy
 *     that sees use keeps the hot set, FIFO does not.
 *
 * What libumm is counted for (umm_stats(3)):
 *   - read: pages_read, every page read from the file (misses, and the
 *     read-ahead and read-around that came with them);
 *   - missed: touches whose page was not in libumm's page cache: those
 *     during which pages_read grew (a read happens only when the faulting
 *     page is not up to date; the daemon only reclaims); the figure to
 *     compare with the simulated policies' misses.  Counted by a call of
 *     umm_stats after every touch, in the timed runs: some 50 ns a touch
 *     on this machine, where a touch through libumm out of core costs
 *     20 us or more, so counting apart would only double the run;
 *   - traps: faults, every SIGSEGV handled: misses, first touches of pages
 *     read ahead, and second chances (a touch of a page the hand made OLD);
 *   - held: its frames in use (umm_stats' frames after every touch), a
 *     mean over the touches from the first reclaim on (before, the memory
 *     is filling, for every policy): the memory its policy really had.
 *     LRU is simulated again with that many pages: what libumm misses
 *     beyond that is its choice of pages, not the memory its watermarks
 *     leave unused.
 * Read-ahead makes read and missed differ: a sequential pass misses one
 * touch a window (32 pages) yet reads every page.  And read-around brings
 * neighbours in, which fault-around maps (young, to the hand), so that
 * they compete with the pages the trace touches.  Reclaim's choice alone
 * is seen in one more run of each trace (untimed: no kernel counterpart)
 * with MADV_RANDOM, which turns read-ahead, read-around and fault-around
 * off: there read equals missed, every trap is a miss or a second chance.
 *
 * The kernel's mmap of the same file runs the same traces, timed: the
 * ratio is libumm's time over the kernel's, medians of REPS runs, the two
 * worlds alternating, each run a fresh child process, in a memory cgroup
 * of its own where this machine allows (as bench-reclaim: limit the budget
 * plus a third, no swap; an OOM kill of libumm is a failure).  warm (the
 * default): the file is in the host's page cache before each run, the
 * kernel reads nothing; cold: dropped from it before each run, and, in a
 * cgroup, the kernel's major faults are its count of reads (one per
 * fault, whatever its read-ahead brought).
 *
 *   bench-policy [BUDGET_MIB [REPS [warm|cold]]]     (default 32 3 warm)
 *
 * A libumm miss out of core costs some 0.1-0.2 ms here (bench-reclaim's
 * random pass): the default budget keeps the whole run near a minute.
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
#include <unistd.h>

#include <umm.h>

#include "bench.h"

#include "outofcore.h"

#define PAGE 4096
#define MAXREPS 64

enum world { KERNEL, LIBUMM, LIBUMM_RANDOM };
enum { OPT, LRU, FIFO, CLOCK, NPOLICY };

struct workload {
    const char *name;
    uint64_t pages;   /* of the file, mapped from its start */
    uint64_t n;       /* touches */
    uint32_t *trace;  /* the page of each touch */
    uint64_t want;    /* the sum of the words the trace reads */
    uint64_t sim[NPOLICY]; /* simulated misses */
};

struct result {
    double secs;
    uint64_t sum;
    uint64_t pages_read, faults, missed, budget; /* libumm's */
    double held;              /* libumm's frames in use, mean once reclaim began */
    long majflt;
    int done;
};

struct run {
    struct result r;
    int status;
    long long oom_kills; /* the cgroup's; -1: none */
};

static uint64_t budget_mib = 32;
static int reps = 3, cold, fd, have_cg;
static uint64_t limit;
static char cg_why[1024];

static void die(const char *what)
{
    ooc_die("bench-policy", what);
}

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p)
        die("malloc");
    return p;
}

static uint64_t rnd(uint64_t *x)
{
    *x ^= *x << 13, *x ^= *x >> 7, *x ^= *x << 17;
    return *x;
}

/* ------------------------------------------------------------ workloads */

static void gen_loop(struct workload *w, uint64_t pages, int passes)
{
    w->pages = pages;
    w->n = pages * (uint64_t)passes;
    w->trace = xmalloc(w->n * sizeof *w->trace);
    for (uint64_t i = 0; i < w->n; i++)
        w->trace[i] = (uint32_t)(i % pages);
}

static void gen_random(struct workload *w, uint64_t pages, uint64_t n, uint64_t seed)
{
    w->pages = pages;
    w->n = n;
    w->trace = xmalloc(n * sizeof *w->trace);
    for (uint64_t i = 0; i < n; i++)
        w->trace[i] = (uint32_t)(rnd(&seed) % pages);
}

static void gen_hot(struct workload *w, uint64_t pages, uint64_t hot, uint64_t n, uint64_t seed)
{
    uint32_t *perm = xmalloc(pages * sizeof *perm); /* perm[0..hot) hot, the rest cold */
    for (uint64_t i = 0; i < pages; i++)
        perm[i] = (uint32_t)i;
    for (uint64_t i = pages - 1; i > 0; i--) {
        uint64_t j = rnd(&seed) % (i + 1);
        uint32_t t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
    w->pages = pages;
    w->n = n;
    w->trace = xmalloc(n * sizeof *w->trace);
    for (uint64_t i = 0; i < n; i++)
        w->trace[i] = rnd(&seed) % 5 ? perm[rnd(&seed) % hot] : perm[hot + rnd(&seed) % (pages - hot)];
    free(perm);
}

/* ----------------------------------------------------------- simulation */

/* A max-heap of (next touch << 32 | page), for OPT. */
static void heap_push(uint64_t *h, uint64_t *len, uint64_t v)
{
    uint64_t i = (*len)++;
    for (; i > 0 && h[(i - 1) / 2] < v; i = (i - 1) / 2)
        h[i] = h[(i - 1) / 2];
    h[i] = v;
}

static uint64_t heap_pop(uint64_t *h, uint64_t *len)
{
    uint64_t top = h[0], v = h[--*len], i = 0;
    for (;;) {
        uint64_t c = 2 * i + 1;
        if (c >= *len)
            break;
        if (c + 1 < *len && h[c + 1] > h[c])
            c++;
        if (h[c] <= v)
            break;
        h[i] = h[c];
        i = c;
    }
    h[i] = v;
    return top;
}

/*
 * Belady's MIN.  Every touch pushes its page with the time of its next
 * touch (n: never); an entry is stale when the page was touched since
 * (its time is no longer key[page]) or evicted, and is skipped when it
 * comes to the top.
 */
static uint64_t sim_opt(const struct workload *w, uint64_t cap)
{
    const uint32_t none = UINT32_MAX, n = (uint32_t)w->n;
    uint32_t *next = xmalloc(w->n * sizeof *next), *key = xmalloc(w->pages * sizeof *key);
    uint64_t *heap = xmalloc(w->n * sizeof *heap), len = 0, resident = 0, misses = 0;
    for (uint64_t p = 0; p < w->pages; p++)
        key[p] = n;
    for (uint64_t i = w->n; i-- > 0;) {
        next[i] = key[w->trace[i]];
        key[w->trace[i]] = (uint32_t)i;
    }
    for (uint64_t p = 0; p < w->pages; p++)
        key[p] = none; /* from here: the resident page's next touch */
    for (uint64_t i = 0; i < w->n; i++) {
        uint32_t p = w->trace[i];
        if (key[p] == none) {
            misses++;
            if (resident == cap) {
                for (;;) {
                    uint64_t e = heap_pop(heap, &len);
                    uint32_t q = (uint32_t)e;
                    if (key[q] == (uint32_t)(e >> 32)) {
                        key[q] = none;
                        break;
                    }
                }
            } else {
                resident++;
            }
        }
        key[p] = next[i];
        heap_push(heap, &len, (uint64_t)next[i] << 32 | p);
    }
    free(next);
    free(key);
    free(heap);
    return misses;
}

/* Exact LRU: a doubly linked list of the resident pages, most recent at
 * the head; index w->pages is the list's head and tail. */
static uint64_t sim_lru(const struct workload *w, uint64_t cap)
{
    uint64_t h = w->pages, resident = 0, misses = 0;
    uint64_t *prev = xmalloc((h + 1) * sizeof *prev), *next = xmalloc((h + 1) * sizeof *next);
    char *in = calloc(h, 1);
    if (!in)
        die("calloc");
    prev[h] = next[h] = h;
    for (uint64_t i = 0; i < w->n; i++) {
        uint64_t p = w->trace[i];
        if (in[p]) {
            next[prev[p]] = next[p];
            prev[next[p]] = prev[p];
        } else {
            misses++;
            if (resident == cap) {
                uint64_t old = prev[h];
                next[prev[old]] = h;
                prev[h] = prev[old];
                in[old] = 0;
            } else {
                resident++;
            }
            in[p] = 1;
        }
        next[p] = next[h];
        prev[p] = h;
        prev[next[h]] = p;
        next[h] = p;
    }
    free(prev);
    free(next);
    free(in);
    return misses;
}

/* FIFO (second == 0) or CLOCK (second == 1) over a ring of cap frames:
 * the hand evicts the frame it points at, unless CLOCK finds it
 * referenced since the hand last passed (then clears the bit, goes on). */
static uint64_t sim_ring(const struct workload *w, uint64_t cap, int second)
{
    uint32_t *frame = xmalloc(cap * sizeof *frame);
    char *ref = calloc(cap, 1), *in = calloc(w->pages, 1);
    if (!ref || !in)
        die("calloc");
    uint64_t used = 0, hand = 0, misses = 0;
    uint32_t *slot = xmalloc(w->pages * sizeof *slot);
    for (uint64_t i = 0; i < w->n; i++) {
        uint32_t p = w->trace[i];
        if (in[p]) {
            ref[slot[p]] = 1;
            continue;
        }
        misses++;
        uint64_t f = used < cap ? used++ : cap;
        if (f == cap) {
            while (second && ref[hand]) {
                ref[hand] = 0;
                hand = (hand + 1) % cap;
            }
            f = hand;
            in[frame[f]] = 0;
            hand = (hand + 1) % cap;
        }
        frame[f] = p;
        slot[p] = (uint32_t)f;
        ref[f] = 1;
        in[p] = 1;
    }
    free(frame);
    free(ref);
    free(in);
    free(slot);
    return misses;
}

/* ------------------------------------------------------------- the runs */

/* The file: each page's first word says which page it is. */
static void child(const struct workload *w, enum world world, struct result *out)
{
    char ram[32];
    snprintf(ram, sizeof ram, "%lluM", (unsigned long long)budget_mib);
    setenv("UMM_RAM", ram, 1); /* read when libumm starts, just below */
    size_t len = w->pages * PAGE;
    const char *p = world == KERNEL ? mmap(NULL, len, PROT_READ, MAP_SHARED, fd, 0)
                                    : umm_mmap(NULL, len, PROT_READ, MAP_SHARED | UMM_MAP_COPY, fd, 0);
    if (p == MAP_FAILED) {
        perror("bench-policy: mmap");
        _exit(3);
    }
    if (world == LIBUMM_RANDOM && umm_madvise((void *)p, len, MADV_RANDOM) != 0) {
        perror("bench-policy: umm_madvise");
        _exit(3);
    }
    const uint32_t *t = w->trace;
    uint64_t s = 0, missed = 0, frames = 0, full = 0; /* full: touches since reclaim began */
    struct umm_stats st = { 0 };
    double t0 = now();
    if (world != KERNEL) {
        uint64_t read = 0;
        for (uint64_t i = 0; i < w->n; i++) {
            s += *(const volatile uint64_t *)(p + (uint64_t)t[i] * PAGE);
            umm_stats(&st);
            missed += st.pages_read != read;
            read = st.pages_read;
            if (st.reclaimed) {
                frames += st.frames;
                full++;
            }
        }
    } else {
        for (uint64_t i = 0; i < w->n; i++)
            s += *(const volatile uint64_t *)(p + (uint64_t)t[i] * PAGE);
    }
    out->secs = now() - t0;
    out->sum = s;
    if (world != KERNEL) {
        out->pages_read = st.pages_read;
        out->faults = st.faults;
        out->missed = missed;
        out->budget = st.budget;
        out->held = full ? (double)frames / (double)full : (double)st.frames;
    }
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    out->majflt = ru.ru_majflt;
    out->done = 1;
    /* No munmap: the process ends (both worlds alike). */
}

struct job {
    const struct workload *w;
    enum world world;
};

static void work(const void *arg, void *out)
{
    const struct job *j = arg;
    child(j->w, j->world, out);
}

static void run(const struct workload *w, enum world world, struct run *rn)
{
    ooc_prepare_cache("bench-policy", fd, w->pages * PAGE, cold);
    struct ooc_cg seen;
    struct job j = { w, world };
    rn->status = ooc_run_child("bench-policy", have_cg,
                               world == KERNEL ? "umm-bench-policy-kernel" : "umm-bench-policy-libumm", limit, work, &j,
                               &rn->r, sizeof rn->r, &seen);
    rn->oom_kills = seen.oom_kills;
}

/* Did the run end well, with the right bytes?  Says why not.  An OOM kill
 * in the kernel's run is reported, not a failure (as bench-reclaim). */
static int ok(const struct workload *w, const struct run *rn, enum world world)
{
    if (rn->r.done && WIFEXITED(rn->status) && WEXITSTATUS(rn->status) == 0 && rn->r.sum == w->want)
        return 1;
    int oom = rn->oom_kills > 0 || (WIFSIGNALED(rn->status) && WTERMSIG(rn->status) == SIGKILL);
    printf("  %s, %s run: %s\n", w->name, world == KERNEL ? "the kernel's" : "libumm's",
           oom ? "OOM-KILLED"
           : !rn->r.done ? "did not finish"
                         : "WRONG BYTES READ");
    return oom && world == KERNEL;
}

enum field { SECS, READ, MISSED, TRAPS, HELD, MAJFLT };

/* The median of a field over the runs that finished. */
static double med(const struct run *rs, enum field f)
{
    double v[MAXREPS];
    int k = 0;
    for (int i = 0; i < reps; i++) {
        const struct result *r = &rs[i].r;
        if (r->done)
            v[k++] = f == SECS     ? r->secs
                     : f == READ   ? (double)r->pages_read
                     : f == MISSED ? (double)r->missed
                     : f == TRAPS  ? (double)r->faults
                     : f == HELD   ? r->held
                                   : (double)r->majflt;
    }
    return k ? median_of(v, k) : 0;
}

int main(int argc, char **argv)
{
    if (argc > 1)
        budget_mib = strtoull(argv[1], NULL, 10);
    if (argc > 2)
        reps = atoi(argv[2]);
    if (argc > 3)
        cold = strcmp(argv[3], "cold") == 0;
    if (budget_mib < 1 || budget_mib > 4096 || reps < 1 || reps > MAXREPS) {
        fprintf(stderr, "usage: bench-policy [BUDGET_MIB (1-4096) [REPS [warm|cold]]]\n");
        return 2;
    }
    uint64_t C = budget_mib << 20 >> 12; /* the budget in pages */
    limit = (budget_mib << 20) + (budget_mib << 20) / 3;

    struct workload ws[] = {
        { .name = "sequential" }, { .name = "random" },   { .name = "loop 1.25x" },
        { .name = "loop 2x" },    { .name = "hot set" },
    };
    enum { NW = sizeof ws / sizeof ws[0] };
    gen_loop(&ws[0], 4 * C, 1);
    gen_random(&ws[1], 4 * C, 4 * C, 0x2545f4914f6cdd1dull);
    gen_loop(&ws[2], C + C / 4, 4);
    gen_loop(&ws[3], 2 * C, 3);
    gen_hot(&ws[4], 4 * C, C / 2, 6 * C, 0x9e3779b97f4a7c15ull);
    for (int i = 0; i < NW; i++) {
        struct workload *w = &ws[i];
        for (uint64_t j = 0; j < w->n; j++)
            w->want += ooc_word(w->trace[j]);
        w->sim[OPT] = sim_opt(w, C);
        w->sim[LRU] = sim_lru(w, C);
        w->sim[FIFO] = sim_ring(w, C, 0);
        w->sim[CLOCK] = sim_ring(w, C, 1);
    }

    struct memcg probe;
    have_cg = memcg_create(&probe, "umm-bench-policy-probe", limit, cg_why, sizeof cg_why) == 0;
    if (have_cg)
        memcg_destroy(&probe);
    printf("bench-policy: a budget of %llu MiB (C = %llu pages: UMM_RAM, and the simulated policies' memory); "
           "page touches of a file, MAP_SHARED, one word each; %d reps, alternating, medians; host page cache %s\n",
           (unsigned long long)budget_mib, (unsigned long long)C, reps,
           cold ? "dropped before each run (cold)" : "filled before each run (warm)");
    if (have_cg)
        printf(" each run in a memory cgroup (%s) of its own, limit %llu MiB (the budget + 1/3), no swap\n",
               probe.v2 ? "v2" : "v1", (unsigned long long)(limit >> 20));
    else
        printf(" no memory cgroup: %s; the runs go without one\n", cg_why);

    fd = ooc_make_file("bench-policy", 4 * C * PAGE);
    static struct run k[NW][MAXREPS], u[NW][MAXREPS], r[NW];
    for (int i = 0; i < reps; i++)
        for (int j = 0; j < NW; j++) {
            enum world first = (i + j) % 2 ? LIBUMM : KERNEL;
            run(&ws[j], first, first == KERNEL ? &k[j][i] : &u[j][i]);
            run(&ws[j], first == KERNEL ? LIBUMM : KERNEL, first == KERNEL ? &u[j][i] : &k[j][i]);
        }
    for (int j = 0; j < NW; j++)
        run(&ws[j], LIBUMM_RANDOM, &r[j]);

    int bad = 0;
    for (int j = 0; j < NW; j++) {
        for (int i = 0; i < reps; i++) {
            bad += !ok(&ws[j], &k[j][i], KERNEL);
            bad += !ok(&ws[j], &u[j][i], LIBUMM);
        }
        bad += !ok(&ws[j], &r[j], LIBUMM_RANDOM);
    }

    printf("\n misses on the same trace: the simulated policies' with C pages, and libumm's (medians): missed = "
           "touches not in its page cache, read = pages it read in\n");
    printf("  %-11s %5s %7s | %7s %7s %7s %7s | %7s %7s | %10s %10s %8s %8s\n", "workload", "file", "touches", "OPT",
           "LRU", "FIFO", "CLOCK", "missed", "read", "missed/OPT", "missed/LRU", "read/OPT", "read/LRU");
    for (int j = 0; j < NW; j++) {
        const struct workload *w = &ws[j];
        double opt = (double)w->sim[OPT], lru = (double)w->sim[LRU];
        double rd = med(u[j], READ), ms = med(u[j], MISSED);
        printf("  %-11s %4.2fx %7llu | %7llu %7llu %7llu %7llu | %7.0f %7.0f | %10.2f %10.2f %8.2f %8.2f\n", w->name,
               (double)w->pages / (double)C, (unsigned long long)w->n, (unsigned long long)w->sim[OPT],
               (unsigned long long)w->sim[LRU], (unsigned long long)w->sim[FIFO], (unsigned long long)w->sim[CLOCK], ms,
               rd, ms / opt, ms / lru, rd / opt, rd / lru);
    }
    printf("  (file: its pages over C; libumm's own budget: %llu pages)\n", (unsigned long long)u[0][0].r.budget);

    printf("\n libumm's memory: held = its frames in use once reclaim began, mean, over C; LRU@held = LRU's misses "
           "with that many pages; traps = faults it handled (medians); with MADV_RANDOM (one run): missed = read\n");
    printf("  %-11s %5s %8s %7s | %-13s %7s %5s %8s %7s\n", "workload", "held", "LRU@held", "traps", "MADV_RANDOM:",
           "missed", "held", "LRU@held", "traps");
    for (int j = 0; j < NW; j++) {
        double held = med(u[j], HELD), rheld = r[j].r.held;
        printf("  %-11s %5.2f %8llu %7.0f | %-13s %7llu %5.2f %8llu %7llu\n", ws[j].name, held / (double)C,
               (unsigned long long)sim_lru(&ws[j], held >= 1 ? (uint64_t)(held + 0.5) : 1), med(u[j], TRAPS), "",
               (unsigned long long)r[j].r.missed, rheld / (double)C,
               (unsigned long long)sim_lru(&ws[j], rheld >= 1 ? (uint64_t)(rheld + 0.5) : 1),
               (unsigned long long)r[j].r.faults);
    }

    int majors = cold && have_cg;
    printf("\n time per touch, medians of %d; libumm's pages read in, least and most of its runs%s\n", reps,
           majors ? "; the kernel's major faults (median)" : "");
    printf("  %-11s %9s %9s %7s | %13s%s\n", "workload", "kernel", "libumm", "ratio", "read, min-max",
           majors ? "   majflt" : "");
    for (int j = 0; j < NW; j++) {
        double ks = med(k[j], SECS), us = med(u[j], SECS), n = (double)ws[j].n;
        uint64_t lo = UINT64_MAX, hi = 0;
        for (int i = 0; i < reps; i++) {
            lo = u[j][i].r.pages_read < lo ? u[j][i].r.pages_read : lo;
            hi = u[j][i].r.pages_read > hi ? u[j][i].r.pages_read : hi;
        }
        printf("  %-11s %6.2f us %6.2f us %6.2fx | %6llu-%-6llu", ws[j].name, ks / n * 1e6, us / n * 1e6,
               ks > 0 ? us / ks : 0, (unsigned long long)lo, (unsigned long long)hi);
        if (majors)
            printf(" %8.0f", med(k[j], MAJFLT));
        printf("\n");
    }
    if (!have_cg)
        printf("  no cgroup (%s): OOM not measured\n", cg_why);
    return bad ? 1 : 0;
}
