/* Promise: every call and every fault is safe from any thread at any time.
 *
 * Several worker threads, for a bounded time (--seconds N, default 4):
 * each owns mappings (private and shared anonymous memory, private
 * mappings of its own file and of a file every thread shares, shared
 * mappings of its own file) and does random reads and writes of whole
 * pages, checking every word against its model, umm_mmap and umm_munmap,
 * partial umm_munmap and umm_mprotect, MADV_DONTNEED, umm_prefault,
 * umm_msync (then compares the file with the model), and touches pages its
 * protections forbid (expecting SIGSEGV there).  All of them also read and
 * write one shared mapping of a common file, each page written by one
 * thread only, so what a reader may see is known: a version between the
 * last one finished and the last one begun.
 *
 * Meanwhile a remapper thread keeps replacing one region (MAP_FIXED over
 * it, umm_munmap then umm_mmap, umm_mprotect) with mappings of other kinds,
 * and a toucher thread reads and writes that region the whole time,
 * catching SIGSEGV per thread: an access that succeeds must see a word of
 * the mapping that was there before or after, never garbage or another
 * mapping's page; a SIGSEGV must come from a mapping that forbade the
 * access or from an unmapping in flight.  At the end every file is
 * compared with the model, and everything must have been released.
 *
 * Every word written is hash(source, page, word) << 32 | version, so a
 * word shows where it belongs.  Background write-back runs every 20 ms
 * meanwhile.  Options: --seconds N, --threads N (workers, 1..8), --seed N
 * (the operations' choices; the interleaving is the machine's).
 * `make stress` runs it ten times for 20 s each. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "util.h"
#include "config.h"
#ifdef HAVE_VALGRIND_VALGRIND_H
#include <valgrind/valgrind.h>
#else
#define VALGRIND_DISABLE_ERROR_REPORTING
#define VALGRIND_ENABLE_ERROR_REPORTING
#endif

#define WPP (PAGE / 8) /* words per page */
#define MAXW 8         /* workers at most */
#define NSLOT 6        /* mappings a worker owns at most */
#define MAXP 16        /* pages of a worker's mapping at most */
#define FP 64          /* pages of the common file F */
#define OWNP 64        /* pages of a worker's own files */
#define RP 16          /* pages of the remapped region */
#define HP 64          /* pages of file H (the remapper's private source) */

/* Sources of words. */
enum { SRC_F = 1, SRC_H = 2, SRC_H2 = 3, SRC_T = 4, SRC_P = 16, SRC_G = 32, SRC_MAP = 1000 };

static uint32_t h32(uint32_t src, uint32_t page, uint32_t idx)
{
    uint64_t x = ((uint64_t)src << 32) ^ ((uint64_t)page << 9) ^ idx;
    x *= 0x9e3779b97f4a7c15ull;
    x ^= x >> 31;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 29;
    return (uint32_t)x | 1; /* never 0: a zero word is a zero page */
}
static uint64_t word(uint32_t src, uint32_t page, uint32_t idx, uint32_t ver)
{
    return (uint64_t)h32(src, page, idx) << 32 | ver;
}
static uint32_t hi(uint64_t w)
{
    return (uint32_t)(w >> 32);
}

/* ------------------------------------------------------------ errors */

static _Atomic int nerrors;
static char errmsg[8][256];

static void error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void error(const char *fmt, ...)
{
    int n = atomic_fetch_add(&nerrors, 1);
    if (n >= 8)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(errmsg[n], sizeof errmsg[n], fmt, ap);
    va_end(ap);
}

static uint64_t rnd(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}
#define RND(s, n) ((uint32_t)(rnd(s) % (uint64_t)(n)))

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* A file of npages pages of word(src, page, k, 0). */
static int make_wfile(uint32_t src, uint32_t npages, char *path)
{
    int fd = tmpfile_sparse((uint64_t)npages * PAGE, O_RDWR, path);
    uint64_t buf[WPP];
    for (uint32_t p = 0; p < npages; p++) {
        for (uint32_t k = 0; k < WPP; k++)
            buf[k] = word(src, p, k, 0);
        if (pwrite(fd, buf, PAGE, (off_t)p * PAGE) != PAGE)
            tap_bail("pwrite: %s", strerror(errno));
    }
    return fd;
}

static void file_page(int fd, uint32_t p, uint64_t *buf)
{
    if (read_file(fd, buf, PAGE, (off_t)p * PAGE) != 0)
        error("pread of page %u failed", p);
}

/* ------------------------------------------- the common file F */

static int fdF;
static uint64_t *volatile gF; /* one shared mapping of F, for everyone */
static _Atomic uint32_t Fwriting[FP], Fdone[FP]; /* versions begun, finished */
static int nw = 5;

/* Check a view of F page fp (through any mapping, or a private page not
 * yet copied): each word is F's, of a version in [done before, begun after]. */
static int check_F_view(const volatile uint64_t *pg, uint32_t fp, const char *what)
{
    uint32_t d0 = atomic_load_explicit(&Fdone[fp], memory_order_acquire);
    uint64_t buf[WPP];
    for (uint32_t k = 0; k < WPP; k++)
        buf[k] = pg[k];
    atomic_thread_fence(memory_order_acquire);
    uint32_t w1 = atomic_load_explicit(&Fwriting[fp], memory_order_relaxed);
    for (uint32_t k = 0; k < WPP; k++) {
        uint32_t v = (uint32_t)buf[k];
        if (hi(buf[k]) != h32(SRC_F, fp, k) || v < d0 || v > w1) {
            error("%s: F page %u word %u is %#llx, want F's of version %u..%u", what, fp, k,
                  (unsigned long long)buf[k], d0, w1);
            return 1;
        }
    }
    return 0;
}

static void write_F(uint32_t fp, uint32_t v)
{
    volatile uint64_t *pg = gF + (size_t)fp * WPP;
    atomic_store_explicit(&Fwriting[fp], v, memory_order_relaxed);
    atomic_thread_fence(memory_order_release);
    for (uint32_t k = 0; k < WPP; k++)
        pg[k] = word(SRC_F, fp, k, v);
    atomic_store_explicit(&Fdone[fp], v, memory_order_release);
}

/* ------------------------------------------------------------ workers */

enum stype { S_ANON, S_SANON, S_PRIV_P, S_PRIV_F, S_SHARED_G, S_NTYPES };
static const char *tname[] = { "private anon", "shared anon", "private own file", "private common file",
                               "shared own file" };

struct pagem {
    uint8_t mapped, prot;
    uint32_t ver; /* private and anonymous pages: 0 = as mapped (source) */
    /* A private page of F copied without a write of ours (MAP_POPULATE or
     * umm_prefault for writing): F's words of a version in [slo, shi]. */
    uint8_t snap;
    uint32_t slo, shi;
};
struct slot {
    int used;
    enum stype type;
    volatile uint64_t *base;
    uint32_t n, fpage0, mid;
    struct pagem pg[MAXP];
};

enum op { OP_READ, OP_WRITE, OP_FREAD, OP_FWRITE, OP_MMAP, OP_MUNMAP, OP_PMUNMAP, OP_MPROTECT, OP_MSYNC,
          OP_FSYNC, OP_SEGV, OP_DONTNEED, OP_PREFAULT, OP_N };
static const char *opname[] = { "read", "write", "read F", "write F", "mmap", "munmap", "partial munmap",
                                "mprotect", "msync", "msync F", "expected SIGSEGV", "MADV_DONTNEED",
                                "prefault" };

struct worker {
    int id;
    pthread_t th;
    uint64_t rng;
    int fdP, fdG;
    char pathP[256], pathG[256];
    uint32_t ver;            /* versions this worker writes, increasing */
    uint32_t gver[OWNP];     /* model of file G: version of each page */
    struct slot s[NSLOT];
    _Atomic uint64_t iters, ops[OP_N], segv_expected;
};
static struct worker W[MAXW];
static _Atomic int stop;
static _Atomic uint32_t next_mid = SRC_MAP;

/* What word k of page j of slot s must be (F views are checked apart). */
static uint64_t expect(struct worker *w, struct slot *s, uint32_t j, uint32_t k)
{
    uint32_t v = s->pg[j].ver;
    switch (s->type) {
    case S_SHARED_G:
        return word(SRC_G + (uint32_t)w->id, s->fpage0 + j, k, w->gver[s->fpage0 + j]);
    case S_PRIV_P:
        return v ? word(s->mid, j, k, v) : word(SRC_P + (uint32_t)w->id, s->fpage0 + j, k, 0);
    default:
        return v ? word(s->mid, j, k, v) : 0;
    }
}

static void check_page(struct worker *w, struct slot *s, uint32_t j)
{
    const volatile uint64_t *pg = s->base + (size_t)j * WPP;
    if (s->type == S_PRIV_F && s->pg[j].ver == 0 && !s->pg[j].snap) {
        check_F_view(pg, s->fpage0 + j, "private mapping of F");
        return;
    }
    if (s->type == S_PRIV_F && s->pg[j].ver == 0) {
        uint32_t fp = s->fpage0 + j;
        for (uint32_t k = 0; k < WPP; k++) {
            uint64_t got = pg[k];
            if (hi(got) != h32(SRC_F, fp, k) || (uint32_t)got < s->pg[j].slo || (uint32_t)got > s->pg[j].shi) {
                error("worker %d: private copy of F page %u word %u is %#llx, want F's of version %u..%u", w->id, fp,
                      k, (unsigned long long)got, s->pg[j].slo, s->pg[j].shi);
                return;
            }
        }
        return;
    }
    for (uint32_t k = 0; k < WPP; k++) {
        uint64_t got = pg[k], want = expect(w, s, j, k);
        if (got != want) {
            error("worker %d, %s mapping page %u (ver %u) word %u: %#llx, want %#llx", w->id, tname[s->type], j,
                  s->pg[j].ver, k, (unsigned long long)got, (unsigned long long)want);
            return;
        }
    }
}

static void write_page(struct worker *w, struct slot *s, uint32_t j)
{
    volatile uint64_t *pg = s->base + (size_t)j * WPP;
    uint32_t v = ++w->ver;
    if (s->type == S_SHARED_G)
        w->gver[s->fpage0 + j] = v;
    else
        s->pg[j].ver = v;
    s->pg[j].snap = 0;
    for (uint32_t k = 0; k < WPP; k++)
        pg[k] = expect(w, s, j, k);
}

/* Run fn on page j of slot s, catching signals; report one if it comes. */
static int guarded(struct worker *w, struct slot *s, uint32_t j, void (*fn)(struct worker *, struct slot *, uint32_t),
                   const char *what)
{
    struct tcatch tc;
    tcatch_arm(&tc);
    if (sigsetjmp(tc.jb, 1) == 0)
        fn(w, s, j);
    tcatch_disarm();
    if (tc.sig)
        error("worker %d: %s of page %u of a %s mapping (prot %d): signal %d code %d at %p", w->id, what, j,
              tname[s->type], s->pg[j].prot, tc.sig, tc.code, tc.addr);
    return tc.sig;
}

static void touch_r(struct worker *w, struct slot *s, uint32_t j)
{
    (void)w;
    (void)*(volatile uint64_t *)(s->base + (size_t)j * WPP + 3);
}
static void touch_w(struct worker *w, struct slot *s, uint32_t j)
{
    (void)w;
    *(volatile uint64_t *)(s->base + (size_t)j * WPP + 5) = 0xbad;
}

/* A random slot in use, or NULL. */
static struct slot *pick_slot(struct worker *w)
{
    int k = RND(&w->rng, NSLOT);
    for (int i = 0; i < NSLOT; i++) {
        struct slot *s = &w->s[(k + i) % NSLOT];
        if (s->used)
            return s;
    }
    return NULL;
}

/* A random mapped page of s whose protection includes `need`, or -1. */
static int pick_page(struct worker *w, struct slot *s, int need, int exact)
{
    uint32_t k = RND(&w->rng, s->n);
    for (uint32_t i = 0; i < s->n; i++) {
        uint32_t j = (k + i) % s->n;
        if (s->pg[j].mapped && (exact ? s->pg[j].prot == need : (s->pg[j].prot & need) == need))
            return (int)j;
    }
    return -1;
}

/* A random run [*a, *b) of mapped pages of s (within one maximal run). */
static int pick_run(struct worker *w, struct slot *s, uint32_t *a, uint32_t *b)
{
    int j = pick_page(w, s, 0, 0);
    if (j < 0)
        return 0;
    uint32_t lo = (uint32_t)j, hi = (uint32_t)j + 1;
    while (lo > 0 && s->pg[lo - 1].mapped && RND(&w->rng, 3))
        lo--;
    while (hi < s->n && s->pg[hi].mapped && RND(&w->rng, 3))
        hi++;
    *a = lo;
    *b = hi;
    return 1;
}

static int slot_empty(struct slot *s)
{
    for (uint32_t j = 0; j < s->n; j++)
        if (s->pg[j].mapped)
            return 0;
    return 1;
}

/* Pages [a, b) of a private mapping of F are about to be copied by a call
 * (not by our writes): note what they may hold. */
static void snap_begin(struct slot *s, uint32_t a, uint32_t b)
{
    for (uint32_t j = a; j < b; j++)
        if (s->type == S_PRIV_F && s->pg[j].ver == 0 && !s->pg[j].snap)
            s->pg[j].slo = atomic_load_explicit(&Fdone[s->fpage0 + j], memory_order_acquire);
}
static void snap_end(struct slot *s, uint32_t a, uint32_t b)
{
    for (uint32_t j = a; j < b; j++)
        if (s->type == S_PRIV_F && s->pg[j].ver == 0 && !s->pg[j].snap) {
            s->pg[j].shi = atomic_load_explicit(&Fwriting[s->fpage0 + j], memory_order_acquire);
            s->pg[j].snap = 1;
        }
}

static void do_mmap(struct worker *w)
{
    struct slot *s = NULL;
    for (int i = 0; i < NSLOT && !s; i++)
        if (!w->s[i].used)
            s = &w->s[i];
    if (!s)
        return;
    memset(s, 0, sizeof *s);
    s->type = (enum stype)RND(&w->rng, S_NTYPES);
    s->n = 1 + RND(&w->rng, MAXP);
    s->fpage0 = RND(&w->rng, OWNP - s->n + 1);
    s->mid = atomic_fetch_add(&next_mid, 1);
    int prot = RND(&w->rng, 4) ? PROT_READ | PROT_WRITE : PROT_READ;
    int flags = RND(&w->rng, 8) ? 0 : MAP_POPULATE, fd = -1;
    switch (s->type) {
    case S_ANON: flags |= MAP_PRIVATE | MAP_ANONYMOUS; break;
    case S_SANON: flags |= MAP_SHARED | MAP_ANONYMOUS; break;
    case S_PRIV_P: flags |= MAP_PRIVATE; fd = w->fdP; break;
    case S_PRIV_F: flags |= MAP_PRIVATE; fd = fdF; s->fpage0 = RND(&w->rng, FP - s->n + 1); break;
    case S_SHARED_G: flags |= MAP_SHARED; fd = w->fdG; break;
    default: break;
    }
    /* MAP_POPULATE of a private writable mapping copies every page. */
    int copies = (flags & MAP_POPULATE) && (prot & PROT_WRITE);
    if (copies)
        snap_begin(s, 0, s->n);
    void *p = umm_mmap(NULL, (size_t)s->n * PAGE, prot, flags, fd, fd < 0 ? 0 : (off_t)s->fpage0 * PAGE);
    if (p == MAP_FAILED) {
        error("worker %d: umm_mmap of a %s mapping: %s", w->id, tname[s->type], strerror(errno));
        return;
    }
    if (copies)
        snap_end(s, 0, s->n);
    s->base = p;
    s->used = 1;
    for (uint32_t j = 0; j < s->n; j++) {
        s->pg[j].mapped = 1;
        s->pg[j].prot = (uint8_t)prot;
    }
}

/* Unmap [a, b) of s, all mapped. */
static void unmap_run(struct worker *w, struct slot *s, uint32_t a, uint32_t b)
{
    if (umm_munmap((void *)(s->base + (size_t)a * WPP), (size_t)(b - a) * PAGE) != 0)
        error("worker %d: umm_munmap: %s", w->id, strerror(errno));
    for (uint32_t j = a; j < b; j++)
        s->pg[j].mapped = 0;
    /* Dirty shared pages reach the file before umm_munmap returns. */
    if (s->type == S_SHARED_G) {
        uint64_t buf[WPP];
        for (uint32_t j = a; j < b; j++) {
            file_page(w->fdG, s->fpage0 + j, buf);
            for (uint32_t k = 0; k < WPP; k++)
                if (buf[k] != expect(w, s, j, k)) {
                    error("worker %d: after umm_munmap, file G page %u word %u is %#llx, want %#llx", w->id,
                          s->fpage0 + j, k, (unsigned long long)buf[k], (unsigned long long)expect(w, s, j, k));
                    break;
                }
        }
    }
    if (slot_empty(s))
        s->used = 0;
}

static void unmap_slot(struct worker *w, struct slot *s)
{
    uint32_t j = 0;
    while (j < s->n) {
        if (!s->pg[j].mapped) {
            j++;
            continue;
        }
        uint32_t e = j;
        while (e < s->n && s->pg[e].mapped)
            e++;
        unmap_run(w, s, j, e);
        j = e;
    }
    s->used = 0;
}

/* msync(MS_SYNC) [a, b) of a shared slot, then the file must equal the model. */
static void sync_run(struct worker *w, struct slot *s, uint32_t a, uint32_t b)
{
    int flags = MS_SYNC | (RND(&w->rng, 4) ? 0 : MS_INVALIDATE);
    if (umm_msync((void *)(s->base + (size_t)a * WPP), (size_t)(b - a) * PAGE, flags) != 0)
        error("worker %d: umm_msync: %s", w->id, strerror(errno));
    if (s->type != S_SHARED_G)
        return;
    uint64_t buf[WPP];
    for (uint32_t j = a; j < b; j++) {
        file_page(w->fdG, s->fpage0 + j, buf);
        for (uint32_t k = 0; k < WPP; k++)
            if (buf[k] != expect(w, s, j, k)) {
                error("worker %d: after umm_msync, file G page %u word %u is %#llx, want %#llx", w->id,
                      s->fpage0 + j, k, (unsigned long long)buf[k], (unsigned long long)expect(w, s, j, k));
                break;
            }
    }
}

static void fcheck(struct worker *w, struct slot *s, uint32_t j)
{
    (void)w;
    (void)s;
    check_F_view(gF + (size_t)j * WPP, j, "the common mapping of F");
}
static void fwrite_page(struct worker *w, struct slot *s, uint32_t j)
{
    (void)s;
    write_F(j, ++w->ver);
}

/* A page whose protection forbids the access: SIGSEGV, SEGV_ACCERR, at the
 * address, and nothing changes. */
static void expect_segv(struct worker *w, struct slot *s)
{
    int write = RND(&w->rng, 2);
    int j = pick_page(w, s, write ? PROT_READ : PROT_NONE, 1);
    if (j < 0)
        return;
    struct tcatch tc;
    tcatch_arm(&tc);
    if (sigsetjmp(tc.jb, 1) == 0)
        (write ? touch_w : touch_r)(w, s, (uint32_t)j);
    tcatch_disarm();
    void *at = (void *)(s->base + (size_t)j * WPP + (write ? 5 : 3));
    if (tc.sig != SIGSEGV || tc.code != SEGV_ACCERR || tc.addr != at)
        error("worker %d: %s of a %s page (prot %d): signal %d code %d at %p, want SIGSEGV SEGV_ACCERR at %p", w->id,
              write ? "write" : "read", tname[s->type], s->pg[j].prot, tc.sig, tc.code, tc.addr, at);
    else
        w->segv_expected++;
}

static void one_op(struct worker *w)
{
    uint32_t r = RND(&w->rng, 100), a, b;
    struct slot *s = pick_slot(w);
    enum op op = r < 26 ? OP_READ : r < 44 ? OP_WRITE : r < 54 ? OP_FREAD : r < 62 ? OP_FWRITE : r < 67 ? OP_MMAP
               : r < 70 ? OP_MUNMAP : r < 74 ? OP_PMUNMAP : r < 80 ? OP_MPROTECT : r < 84 ? OP_MSYNC
               : r < 86 ? OP_FSYNC : r < 92 ? OP_SEGV : r < 96 ? OP_DONTNEED : OP_PREFAULT;
    if (!s && op != OP_FREAD && op != OP_FWRITE && op != OP_FSYNC)
        op = OP_MMAP;
    int j;
    switch (op) {
    case OP_READ:
        if ((j = pick_page(w, s, PROT_READ, 0)) < 0)
            return;
        guarded(w, s, (uint32_t)j, check_page, "read");
        break;
    case OP_WRITE:
        if ((j = pick_page(w, s, PROT_READ | PROT_WRITE, 0)) < 0)
            return;
        guarded(w, s, (uint32_t)j, write_page, "write");
        break;
    case OP_FREAD:
        guarded(w, &w->s[0], RND(&w->rng, FP), fcheck, "read of F");
        break;
    case OP_FWRITE: {
        /* One of this worker's pages of F: those with page % nw == id. */
        uint32_t fp = (uint32_t)w->id + (uint32_t)nw * RND(&w->rng, (FP - (uint32_t)w->id + (uint32_t)nw - 1) / (uint32_t)nw);
        guarded(w, &w->s[0], fp, fwrite_page, "write of F");
        break;
    }
    case OP_MMAP:
        do_mmap(w);
        break;
    case OP_MUNMAP:
        unmap_slot(w, s);
        break;
    case OP_PMUNMAP:
        if (pick_run(w, s, &a, &b))
            unmap_run(w, s, a, b);
        break;
    case OP_MPROTECT: {
        if (!pick_run(w, s, &a, &b))
            return;
        static const int prots[] = { PROT_NONE, PROT_READ, PROT_READ | PROT_WRITE, PROT_READ | PROT_WRITE };
        int prot = prots[RND(&w->rng, 4)];
        if (umm_mprotect((void *)(s->base + (size_t)a * WPP), (size_t)(b - a) * PAGE, prot) != 0)
            error("worker %d: umm_mprotect(%d) of a %s mapping: %s", w->id, prot, tname[s->type], strerror(errno));
        for (uint32_t i = a; i < b; i++)
            s->pg[i].prot = (uint8_t)prot;
        break;
    }
    case OP_MSYNC:
        if (pick_run(w, s, &a, &b))
            sync_run(w, s, a, b);
        break;
    case OP_FSYNC: {
        /* msync the whole common mapping; this worker's pages of F must
         * then be in the file as last written (nobody else writes them). */
        int flags = MS_SYNC | (RND(&w->rng, 3) ? 0 : MS_INVALIDATE);
        if (umm_msync((void *)gF, FP * PAGE, flags) != 0)
            error("worker %d: umm_msync of F: %s", w->id, strerror(errno));
        uint64_t buf[WPP];
        for (uint32_t fp = (uint32_t)w->id; fp < FP; fp += (uint32_t)nw) {
            uint32_t v = atomic_load(&Fdone[fp]);
            file_page(fdF, fp, buf);
            for (uint32_t k = 0; k < WPP; k++)
                if (buf[k] != word(SRC_F, fp, k, v)) {
                    error("worker %d: after umm_msync, file F page %u word %u is %#llx, want version %u", w->id,
                          fp, k, (unsigned long long)buf[k], v);
                    break;
                }
        }
        break;
    }
    case OP_SEGV:
        expect_segv(w, s);
        break;
    case OP_DONTNEED:
        if (!pick_run(w, s, &a, &b))
            return;
        if (umm_madvise((void *)(s->base + (size_t)a * WPP), (size_t)(b - a) * PAGE, MADV_DONTNEED) != 0)
            error("worker %d: MADV_DONTNEED: %s", w->id, strerror(errno));
        /* Private pages go back to what was mapped; shared ones keep their bytes. */
        if (s->type == S_ANON || s->type == S_PRIV_P || s->type == S_PRIV_F)
            for (uint32_t i = a; i < b; i++)
                s->pg[i].ver = s->pg[i].snap = 0;
        break;
    case OP_PREFAULT: {
        if ((j = pick_page(w, s, PROT_READ, 0)) < 0)
            return;
        int wr = (s->pg[j].prot & PROT_WRITE) && RND(&w->rng, 2);
        if (wr) /* for writing, a private page is copied */
            snap_begin(s, (uint32_t)j, (uint32_t)j + 1);
        if (umm_prefault((void *)(s->base + (size_t)j * WPP), PAGE, PROT_READ | (wr ? PROT_WRITE : 0)) != 0)
            error("worker %d: umm_prefault of a %s page: %s", w->id, tname[s->type], strerror(errno));
        if (wr)
            snap_end(s, (uint32_t)j, (uint32_t)j + 1);
        guarded(w, s, (uint32_t)j, check_page, "read after prefault");
        break;
    }
    default:
        break;
    }
    w->ops[op]++;
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    while (!atomic_load(&stop)) {
        one_op(w);
        w->iters++;
    }
    /* Last: every page of every mapping checked, shared ones synced and
     * compared with the file, all unmapped; the whole of file G is then the
     * model, and file P never changed. */
    for (int i = 0; i < NSLOT; i++) {
        struct slot *s = &w->s[i];
        if (!s->used)
            continue;
        for (uint32_t j = 0; j < s->n; j++)
            if (s->pg[j].mapped) {
                if (!(s->pg[j].prot & PROT_READ))
                    umm_mprotect((void *)(s->base + (size_t)j * WPP), PAGE, s->pg[j].prot = PROT_READ);
                guarded(w, s, j, check_page, "final read");
            }
        uint32_t a = 0;
        while (a < s->n) {
            if (!s->pg[a].mapped) {
                a++;
                continue;
            }
            uint32_t b = a;
            while (b < s->n && s->pg[b].mapped)
                b++;
            sync_run(w, s, a, b);
            a = b;
        }
        unmap_slot(w, s);
    }
    uint64_t buf[WPP];
    for (uint32_t p = 0; p < OWNP; p++) {
        file_page(w->fdG, p, buf);
        for (uint32_t k = 0; k < WPP; k++)
            if (buf[k] != word(SRC_G + (uint32_t)w->id, p, k, w->gver[p])) {
                error("worker %d: at the end, file G page %u word %u is %#llx, want version %u", w->id, p, k,
                      (unsigned long long)buf[k], w->gver[p]);
                break;
            }
        file_page(w->fdP, p, buf);
        for (uint32_t k = 0; k < WPP; k++)
            if (buf[k] != word(SRC_P + (uint32_t)w->id, p, k, 0)) {
                error("worker %d: file P page %u changed (private writes reached it)", w->id, p);
                break;
            }
    }
    return NULL;
}

/* ------------------------------------------- remapper and toucher */

enum rtype { R_PRIV_H, R_ANON, R_SANON, R_SHARED_H2, R_NTYPES };
static const char *rname[] = { "private H", "private anon", "shared anon", "shared H2" };
struct gen {
    int type, prot, hole; /* hole: reached by umm_munmap then umm_mmap */
    uint32_t fpage0, mid;
};
#define RING 4096
static struct gen gens[RING];
static _Atomic uint32_t rseq; /* even: gen rseq/2 is in place; odd: changing */
static volatile uint64_t *rbase;
static int fdH, fdH2;
static _Atomic uint64_t r_trans[4], r_writes;
static _Atomic uint64_t t_ok[2], t_segv[2], t_maperr, t_checked_stable;

static void *map_gen(struct gen *g, int fixed_noreplace)
{
    int flags = MAP_FIXED | (fixed_noreplace ? MAP_FIXED_NOREPLACE : 0), fd = -1;
    off_t off = 0;
    switch (g->type) {
    case R_PRIV_H: flags |= MAP_PRIVATE; fd = fdH; off = (off_t)g->fpage0 * PAGE; break;
    case R_ANON: flags |= MAP_PRIVATE | MAP_ANONYMOUS; break;
    case R_SANON: flags |= MAP_SHARED | MAP_ANONYMOUS; break;
    default: flags |= MAP_SHARED; fd = fdH2; break;
    }
    void *m = umm_mmap((void *)rbase, RP * PAGE, g->prot, flags, fd, off);
    if (m != MAP_FAILED) /* the toucher races with the remapper on purpose */
        vg_racy(m, RP * PAGE);
    return m;
}

static void new_gen(uint64_t *rng, struct gen *g)
{
    static const int prots[] = { PROT_READ | PROT_WRITE, PROT_READ | PROT_WRITE, PROT_READ, PROT_NONE };
    g->type = RND(rng, R_NTYPES);
    g->prot = prots[RND(rng, 4)];
    g->fpage0 = RND(rng, HP - RP + 1);
    g->mid = atomic_fetch_add(&next_mid, 1);
    g->hole = 0;
}

/* May word w be at word k of page j in gen g? */
static int valid_word(const struct gen *g, uint64_t w, uint32_t j, uint32_t k)
{
    if (hi(w) == h32(SRC_T, j, k)) /* the toucher's own, in any kind of mapping */
        return 1;
    switch (g->type) {
    case R_PRIV_H: return w == word(SRC_H, g->fpage0 + j, k, 0) || hi(w) == h32(g->mid, j, k);
    case R_SHARED_H2: return w == word(SRC_H2, j, k, 0);
    default: return w == 0 || hi(w) == h32(g->mid, j, k);
    }
}

/* The remapper writes a page of its own current mapping. */
static void fill_region_page(const struct gen *cur, uint32_t j)
{
    struct tcatch tc;
    tcatch_arm(&tc);
    if (sigsetjmp(tc.jb, 1) == 0) {
        volatile uint64_t *pg = rbase + (size_t)j * WPP;
        for (uint32_t k = 0; k < WPP; k++)
            pg[k] = cur->type == R_SHARED_H2 ? word(SRC_H2, j, k, 0) : word(cur->mid, j, k, 1);
    }
    tcatch_disarm();
    if (tc.sig)
        error("remapper: write of page %u of its own %s mapping (prot %d): signal %d code %d at %p", j,
              rname[cur->type], cur->prot, tc.sig, tc.code, tc.addr);
}

/* One access of the toucher, catching the signal it may raise. */
static void try_access(volatile uint64_t *at, int write, uint64_t wv, uint64_t *got, struct tcatch *tc)
{
    tcatch_arm(tc);
    if (sigsetjmp(tc->jb, 1) == 0) {
        if (write)
            *at = wv;
        else
            *got = *at;
    }
    tcatch_disarm();
}

static void *remapper(void *arg)
{
    uint64_t rng = (uint64_t)(uintptr_t)arg;
    uint32_t g = atomic_load(&rseq) / 2;
    while (!atomic_load(&stop)) {
        struct gen *cur = &gens[g % RING];
        uint32_t r = RND(&rng, 10);
        if (r < 4) {
            /* Write some pages the mapping allows to be written. */
            if (cur->prot & PROT_WRITE) {
                fill_region_page(cur, RND(&rng, RP));
                r_writes++;
            }
            if (RND(&rng, 2)) {
                uint32_t j = RND(&rng, RP);
                umm_madvise((void *)(rbase + (size_t)j * WPP), PAGE, MADV_DONTNEED);
            }
            continue;
        }
        struct gen *nx = &gens[(g + 1) % RING];
        int kind = r < 6 ? 0 : r < 8 ? 1 : 2; /* 0: MAP_FIXED over, 1: munmap + mmap, 2: mprotect */
        if (kind == 2) {
            *nx = *cur;
            static const int prots[] = { PROT_READ | PROT_WRITE, PROT_READ, PROT_NONE };
            nx->prot = prots[RND(&rng, 3)];
        } else {
            new_gen(&rng, nx);
            nx->hole = kind == 1;
        }
        atomic_store_explicit(&rseq, 2 * g + 1, memory_order_release);
        if (kind == 2) {
            if (umm_mprotect((void *)rbase, RP * PAGE, nx->prot) != 0)
                error("remapper: umm_mprotect: %s", strerror(errno));
        } else {
            if (kind == 1 && umm_munmap((void *)rbase, RP * PAGE) != 0)
                error("remapper: umm_munmap: %s", strerror(errno));
            if (kind == 1 && RND(&rng, 2))
                sched_yield();
            if (map_gen(nx, 0) != (void *)rbase) {
                /* Nothing may be touched there any more: it may not be ours. */
                fprintf(stderr, "remapper: umm_mmap(MAP_FIXED) of the region: %s\n", strerror(errno));
                abort();
            }
        }
        atomic_store_explicit(&rseq, 2 * g + 2, memory_order_release);
        r_trans[kind]++;
        g++;
        if (cur->type == R_SHARED_H2 && kind != 2) {
            /* H2 was unmapped: its file holds only H2's words and the toucher's. */
            uint64_t buf[WPP];
            for (uint32_t p = 0; p < RP; p++) {
                file_page(fdH2, p, buf);
                for (uint32_t k = 0; k < WPP; k++)
                    if (buf[k] != word(SRC_H2, p, k, 0) && hi(buf[k]) != h32(SRC_T, p, k)) {
                        error("remapper: file H2 page %u word %u is %#llx", p, k, (unsigned long long)buf[k]);
                        break;
                    }
            }
        }
        r_trans[3]++;
    }
    return NULL;
}

static void *toucher(void *arg)
{
    uint64_t rng = (uint64_t)(uintptr_t)arg, ctr = 0;
    /* Its accesses race with unmapping on purpose: memcheck need not report
     * those that land in the hole (they fault, as they should). */
    VALGRIND_DISABLE_ERROR_REPORTING;
    while (!atomic_load(&stop)) {
        /* Now and then, outside any fault: a thread that faults without
         * pause can keep umm_mmap and umm_munmap waiting for the
         * address-space lock (glibc's rwlock prefers readers), which a host
         * that runs one thread at a time (Valgrind) makes last for ever. */
        if ((ctr & 255) == 0)
            sched_yield();
        uint32_t j = RND(&rng, RP), k = RND(&rng, WPP);
        int write = RND(&rng, 3) == 0;
        volatile uint64_t *at = rbase + (size_t)j * WPP + k;
        uint64_t wv = word(SRC_T, j, k, (uint32_t)++ctr);
        uint64_t got = 0;
        uint32_t s0 = atomic_load_explicit(&rseq, memory_order_acquire);
        struct tcatch tc;
        try_access(at, write, wv, &got, &tc);
        uint32_t s1 = atomic_load_explicit(&rseq, memory_order_acquire);
        uint32_t glo = s0 / 2, ghi = (s1 + 1) / 2;
        if (ghi - glo > RING / 2)
            continue; /* cannot happen: the ring moved under one access */
        int stable = s0 == s1 && s0 % 2 == 0;
        int forbids = 0, hole = 0, valid = 0;
        for (uint32_t g = glo; g <= ghi; g++) {
            const struct gen *gi = &gens[g % RING];
            forbids |= write ? !(gi->prot & PROT_WRITE) : gi->prot == PROT_NONE;
            hole |= g > glo && gi->hole;
            if (!tc.sig && !write)
                valid |= valid_word(gi, got, j, k);
        }
        if (tc.sig) {
            t_segv[write]++;
            /* SEGV_ACCERR: a mapping in the window forbids the access;
             * SEGV_MAPERR: the region was unmapped in the window. */
            int ok_sig = tc.sig == SIGSEGV && tc.addr == (void *)at &&
                         ((tc.code == SEGV_ACCERR && forbids) || (tc.code == SEGV_MAPERR && hole));
            if (!ok_sig)
                error("toucher: %s of region page %u: signal %d code %d at %p (want %p), gens %u..%u%s: %s %s prot %d",
                      write ? "write" : "read", j, tc.sig, tc.code, tc.addr, (void *)at, glo, ghi,
                      stable ? " (stable)" : "", forbids ? "forbidden" : "allowed", rname[gens[glo % RING].type],
                      gens[glo % RING].prot);
            else if (tc.code == SEGV_MAPERR)
                t_maperr++;
        } else {
            t_ok[write]++;
            t_checked_stable += stable;
            if (forbids && stable)
                error("toucher: %s of region page %u succeeded though the mapping (%s, prot %d) forbids it",
                      write ? "write" : "read", j, rname[gens[glo % RING].type], gens[glo % RING].prot);
            if (!write && !valid)
                error("toucher: read of region page %u word %u saw %#llx, not a word of gens %u..%u (%s, fpage0 %u)",
                      j, k, (unsigned long long)got, glo, ghi, rname[gens[ghi % RING].type], gens[ghi % RING].fpage0);
        }
    }
    VALGRIND_ENABLE_ERROR_REPORTING; /* a thread must not end with it off */
    return NULL;
}

/* ----------------------------------------------------------------- main */

/* Has every kind of work been done (what the end asserts)? */
static int enough(void)
{
    uint64_t segv = 0;
    for (int o = 0; o < OP_N; o++) {
        uint64_t n = 0;
        for (int i = 0; i < nw; i++)
            n += W[i].ops[o];
        if (n == 0)
            return 0;
    }
    for (int i = 0; i < nw; i++) {
        if (W[i].iters < 100)
            return 0;
        segv += W[i].segv_expected;
    }
    return segv > 0 && r_trans[0] > 0 && r_trans[1] > 0 && r_trans[2] > 0 && t_ok[0] > 0 && t_ok[1] > 0;
}

int main(int argc, char **argv)
{
    double seconds = 4;
    unsigned long seed = (unsigned long)time(NULL) ^ (unsigned long)getpid();
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--seconds") && i + 1 < argc)
            seconds = atof(argv[++i]);
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc)
            nw = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--seed") && i + 1 < argc)
            seed = strtoul(argv[++i], NULL, 0);
        else
            tap_bail("usage: %s [--seconds N] [--threads N] [--seed N]", argv[0]);
    }
    if (nw < 1 || nw > MAXW)
        tap_bail("--threads: 1..%d", MAXW);
    tap_diag("seed %lu, %d workers, %.1f s", seed, nw, seconds);
    /* Background write-back often, so that it too races with everything. */
    setenv("UMM_FLUSH_INTERVAL_MS", "20", 0);

    char pathF[256], pathH[256], pathH2[256];
    fdF = make_wfile(SRC_F, FP, pathF);
    fdH = make_wfile(SRC_H, HP, pathH);
    fdH2 = make_wfile(SRC_H2, RP, pathH2);
    gF = umm_mmap(NULL, FP * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fdF, 0);
    ok(gF != MAP_FAILED, "the common file mapped shared");
    /* F's pages are read while written, under a seqlock of relaxed atomics
     * (check_F_view), and the remapper's generations likewise (rseq): the
     * checks accept every interleaving, and races there are the point. */
    vg_racy(gF, FP * PAGE);
    vg_racy(Fwriting, sizeof Fwriting);
    vg_racy(Fdone, sizeof Fdone);
    vg_racy(gens, sizeof gens);
    vg_racy(&rseq, sizeof rseq);
    tcatch_init();

    /* The remapped region: far below where the kernel places mappings, so
     * that nothing else lands in it while it is unmapped. */
    gens[0] = (struct gen){ .type = R_ANON, .prot = PROT_READ | PROT_WRITE, .mid = atomic_fetch_add(&next_mid, 1) };
    for (uintptr_t a = (uintptr_t)0x100000000000ull; a < (uintptr_t)0x200000000000ull; a += (uintptr_t)1 << 32) {
        rbase = (volatile uint64_t *)a;
        if (map_gen(&gens[0], 1) == (void *)a)
            break;
        rbase = NULL;
    }
    ok(rbase != NULL, "the remapped region placed at %p", (void *)rbase);

    for (int i = 0; i < nw; i++) {
        struct worker *w = &W[i];
        w->id = i;
        w->rng = seed * 0x9e3779b97f4a7c15ull + (uint64_t)i * 7919 + 1;
        w->fdP = make_wfile(SRC_P + (uint32_t)i, OWNP, w->pathP);
        w->fdG = make_wfile(SRC_G + (uint32_t)i, OWNP, w->pathG);
    }
    pthread_t rt, tt;
    for (int i = 0; i < nw; i++)
        pthread_create(&W[i].th, NULL, worker_main, &W[i]);
    pthread_create(&rt, NULL, remapper, (void *)(uintptr_t)(seed * 31 + 17));
    pthread_create(&tt, NULL, toucher, (void *)(uintptr_t)(seed * 37 + 29));

    /* The main thread watches: statistics and MS_ASYNC meanwhile.  The run
     * lasts the time asked, and at least a minimum of work (for slow hosts,
     * such as Valgrind's). */
    double t0 = now();
    for (;;) {
        struct timespec ts = { 0, 10 * 1000 * 1000 };
        nanosleep(&ts, NULL);
        struct umm_stats st;
        umm_stats(&st);
        umm_msync((void *)gF, FP * PAGE, MS_ASYNC);
        if (now() - t0 >= seconds && enough())
            break;
        if (now() - t0 >= 10 * seconds + 60) /* stuck: say so rather than wait for the alarm */
            break;
    }
    atomic_store(&stop, 1);
    for (int i = 0; i < nw; i++)
        pthread_join(W[i].th, NULL);
    pthread_join(rt, NULL);
    pthread_join(tt, NULL);
    double el = now() - t0;

    uint64_t total[OP_N] = { 0 }, iters = 0, segv = 0;
    for (int i = 0; i < nw; i++) {
        iters += W[i].iters;
        segv += W[i].segv_expected;
        for (int o = 0; o < OP_N; o++)
            total[o] += W[i].ops[o];
    }
    tap_diag("%.1f s: %llu worker operations; remapper %llu changes (%llu MAP_FIXED over, %llu munmap+mmap, %llu "
             "mprotect), %llu page writes",
             el, (unsigned long long)iters, (unsigned long long)r_trans[3], (unsigned long long)r_trans[0],
             (unsigned long long)r_trans[1], (unsigned long long)r_trans[2], (unsigned long long)r_writes);
    tap_diag("toucher: %llu reads, %llu writes succeeded (%llu in a stable mapping), %llu/%llu SIGSEGV (%llu "
             "SEGV_MAPERR)",
             (unsigned long long)t_ok[0], (unsigned long long)t_ok[1], (unsigned long long)t_checked_stable,
             (unsigned long long)t_segv[0], (unsigned long long)t_segv[1], (unsigned long long)t_maperr);
    int none = 0;
    for (int o = 0; o < OP_N; o++) {
        tap_diag("  %-18s %llu", opname[o], (unsigned long long)total[o]);
        none += total[o] == 0;
    }
    int n = atomic_load(&nerrors);
    for (int i = 0; i < n && i < 8; i++)
        tap_diag("error: %s", errmsg[i]);
    is_int(n, 0, "no wrong byte, no unexpected signal, no failed call in any thread");
    ok(el < 10 * seconds + 60, "the run ended (nothing stuck)");
    is_int(none, 0, "every kind of operation ran");
    ok(segv > 0, "workers saw SIGSEGV where their protections forbid the access (%llu times)",
       (unsigned long long)segv);
    ok(t_ok[0] > 0 && t_ok[1] > 0 && r_trans[0] > 0 && r_trans[1] > 0 && r_trans[2] > 0,
       "the toucher read and wrote while the region was replaced, unmapped and reprotected");

    /* The common file: after msync, every page as its writer last left it;
     * again after umm_munmap. */
    is_int(umm_msync((void *)gF, FP * PAGE, MS_SYNC), 0, "umm_msync of the common mapping");
    for (int pass = 0; pass < 2; pass++) {
        int bad = 0;
        uint64_t buf[WPP];
        for (uint32_t p = 0; p < FP; p++) {
            file_page(fdF, p, buf);
            for (uint32_t k = 0; k < WPP; k++)
                bad += buf[k] != word(SRC_F, p, k, atomic_load(&Fdone[p]));
        }
        is_int(bad, 0, "file F holds every page's last version %s", pass ? "after umm_munmap" : "after umm_msync");
        if (!pass)
            is_int(umm_munmap((void *)gF, FP * PAGE), 0, "umm_munmap of the common mapping");
    }
    is_int(umm_munmap((void *)rbase, RP * PAGE), 0, "umm_munmap of the region");
    {
        int bad = 0;
        uint64_t buf[WPP];
        for (uint32_t p = 0; p < HP; p++) {
            file_page(fdH, p, buf);
            for (uint32_t k = 0; k < WPP; k++)
                bad += buf[k] != word(SRC_H, p, k, 0);
        }
        for (uint32_t p = 0; p < RP; p++) {
            file_page(fdH2, p, buf);
            for (uint32_t k = 0; k < WPP; k++)
                bad += buf[k] != word(SRC_H2, p, k, 0) && hi(buf[k]) != h32(SRC_T, p, k);
        }
        is_int(bad, 0, "file H unchanged, file H2 holds only its own words and the toucher's");
    }
    close(fdF);
    close(fdH);
    close(fdH2);
    unlink(pathF);
    unlink(pathH);
    unlink(pathH2);
    for (int i = 0; i < nw; i++) {
        close(W[i].fdP);
        close(W[i].fdG);
        unlink(W[i].pathP);
        unlink(W[i].pathG);
    }
    check_released();
    return tap_done();
}
