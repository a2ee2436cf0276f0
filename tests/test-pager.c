/* Promise (umm_pager(3), README "Pagers"; issue 16): a mapping whose pages
 * come from the program's own store behaves as a file's:
 *   - pages are filled lazily through the fill callback, on libumm's pager
 *     thread (not the faulting one);
 *   - MAP_SHARED stores reach the store at msync (with sync called), and
 *     every mapping of the same store sees them at once; MAP_PRIVATE stores
 *     never reach it (copy-on-write);
 *   - under a memory budget 4x smaller than the mapping, reclaim writes
 *     dirty pages back through the pager and drops clean ones: every byte
 *     survives, frames stay under the budget;
 *   - MADV_PAGEOUT writes back and drops; MADV_REMOVE is EOPNOTSUPP;
 *   - after fork the family shares the page cache: a child's store to a
 *     shared page is seen by the parent, its private stores are its own;
 *   - release is called when the last mapping goes;
 *   - the store going away mid-run under reclaim loses nothing;
 *   - bad input: a failing fill is SIGBUS for the access (and the page
 *     comes in once the store is back), a failing write-back is EIO from
 *     msync with nothing lost (the next msync writes it), a short fill
 *     reads zeros after what the store gave, a page past the store's size
 *     is SIGBUS, and a shared writable mapping of a store that cannot be
 *     written is EACCES. */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>
#include "util.h"

struct store {
    unsigned char *bytes;
    size_t size;
    long fills, writes, syncs, releases;
    int fail_fill, fail_write; /* a negative errno to return, or 0 */
    size_t short_fill;         /* give at most this many bytes a fill */
    int fill_on_faulting_thread;
    pthread_t faulting;
};

static ssize_t st_fill(void *c, off_t off, void *buf, size_t len)
{
    struct store *s = c;
    s->fills++;
    if (pthread_equal(pthread_self(), s->faulting))
        s->fill_on_faulting_thread = 1;
    if (s->fail_fill)
        return s->fail_fill;
    size_t n = len;
    if ((size_t)off >= s->size)
        n = 0;
    else if (n > s->size - (size_t)off)
        n = s->size - (size_t)off;
    if (s->short_fill && n > s->short_fill)
        n = s->short_fill;
    memcpy(buf, s->bytes + off, n);
    return (ssize_t)n;
}

static int st_write(void *c, off_t off, const void *buf, size_t len)
{
    struct store *s = c;
    if (s->fail_write)
        return s->fail_write;
    if ((size_t)off + len > s->size)
        return -ENOSPC;
    memcpy(s->bytes + off, buf, len);
    s->writes++;
    return 0;
}

static uint64_t st_size(void *c)
{
    return ((struct store *)c)->size;
}

static int st_sync(void *c)
{
    ((struct store *)c)->syncs++;
    return 0;
}

static void st_release(void *c)
{
    ((struct store *)c)->releases++;
}

static const struct umm_pager_ops ops = { st_fill, st_write, st_size, st_sync, st_release };
static const struct umm_pager_ops ro_ops = { st_fill, NULL, st_size, NULL, NULL };

static void store_init(struct store *s, size_t size, unsigned seed)
{
    memset(s, 0, sizeof *s);
    s->bytes = malloc(size);
    s->size = size;
    for (size_t i = 0; i < size; i++)
        s->bytes[i] = pattern(i, seed);
    s->faulting = pthread_self();
}

static int all_pattern(const unsigned char *p, size_t off, size_t len, unsigned seed)
{
    for (size_t i = 0; i < len; i++)
        if (p[i] != pattern(off + i, seed))
            return 0;
    return 1;
}

static void basics(void)
{
    struct store s;
    size_t len = 64 * PAGE;
    store_init(&s, len, 1);
    unsigned char *p = umm_mmap_pager(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, &ops, &s, 0);
    ok(p != MAP_FAILED, "umm_mmap_pager maps a store MAP_SHARED");
    if (p == MAP_FAILED)
        return;
    ok(s.fills == 0, "nothing is filled before a touch");
    ok(p[5 * PAGE + 7] == pattern(5 * PAGE + 7, 1), "a touch reads the store's byte");
    ok(s.fills >= 1 && !s.fill_on_faulting_thread, "fill ran %ld time(s), never on the faulting thread", s.fills);
    ok(all_pattern(p, 0, len, 1), "every byte is the store's");

    unsigned char *q = umm_mmap_pager(NULL, len, PROT_READ, MAP_SHARED, &ops, &s, 0);
    unsigned char *r = umm_mmap_pager(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE, &ops, &s, 0);
    ok(q != MAP_FAILED && r != MAP_FAILED, "a second shared and a private mapping of the same store");
    memset(p + 3 * PAGE, 0xab, PAGE);
    ok(q[3 * PAGE + 100] == 0xab, "a store through one shared mapping is seen at once through the other");
    ok(s.bytes[3 * PAGE] == pattern(3 * PAGE, 1), "the store does not have it before msync");
    r[10 * PAGE] = 0x5a;
    is_int(umm_msync(p, len, MS_SYNC), 0, "msync(MS_SYNC)");
    ok(s.bytes[3 * PAGE + 100] == 0xab && s.writes >= 1 && s.syncs >= 1,
       "it reached the store through writeback (%ld) and sync (%ld)", s.writes, s.syncs);
    is_int(umm_msync(r, len, MS_SYNC), 0, "msync of the private mapping");
    ok(s.bytes[10 * PAGE] == pattern(10 * PAGE, 1) && p[10 * PAGE] == pattern(10 * PAGE, 1) && r[10 * PAGE] == 0x5a,
       "a private store is the mapping's own: copy-on-write");

    /* MADV_PAGEOUT: written back through the pager and dropped; the next
     * touch fills again. */
    p[20 * PAGE] = 0x42;
    long w = s.writes, f = s.fills;
    is_int(umm_madvise(p + 20 * PAGE, PAGE, MADV_PAGEOUT), 0, "MADV_PAGEOUT");
    ok(s.writes > w && s.bytes[20 * PAGE] == 0x42, "MADV_PAGEOUT wrote the dirty page back through the pager");
    umm_madvise(q + 20 * PAGE, PAGE, MADV_PAGEOUT);
    umm_madvise(r + 20 * PAGE, PAGE, MADV_PAGEOUT);
    ok(p[20 * PAGE] == 0x42 && s.fills > f, "and the next touch filled it again");
    errno = 0;
    ok(umm_madvise(p, PAGE, MADV_REMOVE) == -1 && errno == EOPNOTSUPP, "MADV_REMOVE: EOPNOTSUPP (no holes in a store)");

    umm_munmap(q, len);
    umm_munmap(r, len);
    ok(s.releases == 0, "release waits for the last mapping");
    p[30 * PAGE] = 0x77;
    umm_munmap(p, len);
    ok(s.releases == 1 && s.bytes[30 * PAGE] == 0x77, "munmap of the last wrote back, then released once");
    free(s.bytes);
}

/* A mapping 4x the budget: reclaim goes through the pager. */
static void reclaim(uint64_t budget)
{
    struct store s;
    size_t len = (size_t)budget * 4 * PAGE;
    store_init(&s, len, 2);
    unsigned char *p = umm_mmap_pager(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, &ops, &s, 0);
    ok(p != MAP_FAILED, "a pager mapping 4x the budget");
    if (p == MAP_FAILED)
        return;
    ok(all_pattern(p, 0, len, 2), "read through: every byte is the store's");
    for (size_t i = 0; i < len; i += PAGE)
        p[i + 1] = (unsigned char)~pattern(i + 1, 2);
    ok(s.writes > 0, "reclaim wrote dirty pages back through the pager before msync (%ld runs)", s.writes);
    int same = 1;
    for (size_t i = 0; i < len && same; i += PAGE)
        same = p[i + 1] == (unsigned char)~pattern(i + 1, 2) && p[i] == pattern(i, 2);
    ok(same, "every store survived reclaim");
    is_int(umm_msync(p, len, MS_SYNC), 0, "msync");
    same = 1;
    for (size_t i = 0; i < len && same; i += PAGE)
        same = s.bytes[i + 1] == (unsigned char)~pattern(i + 1, 2) && s.bytes[i + 2] == pattern(i + 2, 2);
    ok(same, "the store has every page as written");
    ok(stat_get("frames_high") <= budget + 64, "frames stayed under the budget: %llu <= %llu + 64",
       (unsigned long long)stat_get("frames_high"), (unsigned long long)budget);
    umm_munmap(p, len);
    free(s.bytes);
}

static void child_writes(void *p)
{
    ((unsigned char *)p)[0] = 0x99;
}

static void forked(void)
{
    struct store s;
    size_t len = 16 * PAGE;
    store_init(&s, len, 3);
    unsigned char *p = umm_mmap_pager(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, &ops, &s, 0);
    unsigned char *r = umm_mmap_pager(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE, &ops, &s, 0);
    if (p == MAP_FAILED || r == MAP_FAILED) {
        ok(0, "pager mappings for fork");
        return;
    }
    (void)p[0];
    r[PAGE] = 1;
    pid_t pid = fork();
    if (pid == 0) {
        tap_quiet();
        child_writes(p);              /* resident: the family's frame */
        r[PAGE] = 2;                  /* private: its own copy */
        int ok_child = p[8 * PAGE] == pattern(8 * PAGE, 3) && r[2 * PAGE] == pattern(2 * PAGE, 3);
        vg_abrupt_end(); /* _exit with the pager thread running (util.h) */
        _exit(ok_child ? 0 : 1);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    ok(WIFEXITED(status) && WEXITSTATUS(status) == 0,
       "a child fills pages through its own copy of the pager, shared and private");
    ok(p[0] == 0x99, "the child's store to a shared page is seen by the parent");
    ok(r[PAGE] == 1, "the child's private store is its own");
    umm_munmap(p, len);
    umm_munmap(r, len);
    ok(s.bytes[0] == 0x99, "and reaches the parent's store at its write-back");
    free(s.bytes);
}

/* A store in memory the family shares (a host MAP_SHARED mapping): what a
 * child's write-back puts there, the parent sees. */
static void exit_paths(void)
{
    const char *how[] = { "exit", "SIGTERM left at its default" };
    for (int k = 0; k < 2; k++) {
        struct store *s = mmap(NULL, sizeof *s, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
        unsigned char *bytes = mmap(NULL, 8 * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
        memset(s, 0, sizeof *s);
        s->bytes = bytes;
        s->size = 8 * PAGE;
        pid_t pid = fork();
        if (pid == 0) {
            tap_quiet();
            s->faulting = pthread_self();
            /* The child's own mapping: it is the pager's owner. */
            unsigned char *p = umm_mmap_pager(NULL, 8 * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, &ops, s, 0);
            if (p == MAP_FAILED)
                _exit(3);
            memset(p + PAGE, 0x3c, 2 * PAGE);
            if (k == 1) {
                vg_abrupt_end(); /* dies with the pager thread running (util.h) */
                raise(SIGTERM);
            }
            exit(0);
        }
        int status = 0;
        waitpid(pid, &status, 0);
        int ended = k == 0 ? WIFEXITED(status) && WEXITSTATUS(status) == 0
                           : WIFSIGNALED(status) && WTERMSIG(status) == SIGTERM;
        ok(ended && bytes[PAGE] == 0x3c && bytes[3 * PAGE - 1] == 0x3c && bytes[0] == 0,
           "a process ending by %s writes its dirty pager pages back through the pager", how[k]);
        munmap(s, sizeof *s);
        munmap(bytes, 8 * PAGE);
    }
}

/* Threads faulting one pager mapping at once, under reclaim: the pager
 * thread serves them all, one callback at a time; no byte goes wrong. */
struct th {
    unsigned char *p;
    size_t npages;
    int id, bad;
};

static void *th_run(void *arg)
{
    struct th *t = arg;
    uint64_t r = 0x9e3779b97f4a7c15ull * (uint64_t)(t->id + 1);
    for (int k = 0; k < 3000; k++) {
        size_t pg = xorshift64(&r) % t->npages;
        size_t at = pg * PAGE + (size_t)t->id * 8; /* each thread its own bytes of the page */
        if (t->p[at] != (unsigned char)(pg + t->id) && t->p[at] != pattern(at, 5))
            t->bad++;
        t->p[at] = (unsigned char)(pg + t->id);
    }
    return NULL;
}

static int busy; /* a callback is running: callbacks must never overlap */
static int overlap;
static ssize_t slow_fill(void *c, off_t off, void *buf, size_t len)
{
    if (__atomic_exchange_n(&busy, 1, __ATOMIC_SEQ_CST))
        overlap = 1;
    ssize_t n = st_fill(c, off, buf, len);
    __atomic_store_n(&busy, 0, __ATOMIC_SEQ_CST);
    return n;
}

static int slow_write(void *c, off_t off, const void *buf, size_t len)
{
    if (__atomic_exchange_n(&busy, 1, __ATOMIC_SEQ_CST))
        overlap = 1;
    int e = st_write(c, off, buf, len);
    __atomic_store_n(&busy, 0, __ATOMIC_SEQ_CST);
    return e;
}

static const struct umm_pager_ops th_ops = { slow_fill, slow_write, st_size, NULL, NULL };

static void threads(uint64_t budget)
{
    struct store s;
    size_t npages = (size_t)budget * 2, len = npages * PAGE;
    store_init(&s, len, 5);
    s.faulting = (pthread_t)0;
    unsigned char *p = umm_mmap_pager(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, &th_ops, &s, 0);
    if (!ok(p != MAP_FAILED, "a pager mapping 2x the budget for four threads"))
        return;
    vg_racy(p, len); /* each thread has its own bytes; pages are shared on purpose */
    struct th t[4];
    pthread_t id[4];
    for (int i = 0; i < 4; i++) {
        t[i] = (struct th){ p, npages, i, 0 };
        pthread_create(&id[i], NULL, th_run, &t[i]);
    }
    int bad = 0;
    for (int i = 0; i < 4; i++) {
        pthread_join(id[i], NULL);
        bad += t[i].bad;
    }
    ok(bad == 0 && !overlap, "four threads faulting at once under reclaim: every byte right, callbacks never overlapped");
    is_int(umm_msync(p, len, MS_SYNC), 0, "msync");
    umm_munmap(p, len);
    free(s.bytes);
}

/* The store goes away in the middle of a run under reclaim: dirty pages
 * cannot go, so frames pass the budget (as without swap room) rather than
 * lose a byte; msync says EIO; once the store is back, everything reaches it. */
static void store_gone(uint64_t budget)
{
    struct store s;
    size_t len = (size_t)budget * 4 * PAGE;
    store_init(&s, len, 6);
    unsigned char *p = umm_mmap_pager(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, &ops, &s, 0);
    if (!ok(p != MAP_FAILED, "a pager mapping 4x the budget"))
        return;
    for (size_t i = 0; i < len / 2; i += PAGE)
        p[i] = 0x11;
    s.fail_write = -ECONNRESET; /* the server went away */
    for (size_t i = len / 2; i < len; i += PAGE)
        p[i] = 0x22;
    int same = 1;
    for (size_t i = 0; i < len && same; i += PAGE)
        same = p[i] == (i < len / 2 ? 0x11 : 0x22) && p[i + 1] == pattern(i + 1, 6);
    ok(same, "with the store gone mid-run, every store to the mapping still reads back");
    errno = 0;
    ok(umm_msync(p, len, MS_SYNC) == -1 && errno == EIO, "msync fails with EIO while it is gone");
    s.fail_write = 0;
    is_int(umm_msync(p, len, MS_SYNC), 0, "the store is back: msync succeeds");
    same = 1;
    for (size_t i = 0; i < len && same; i += PAGE)
        same = s.bytes[i] == (i < len / 2 ? 0x11 : 0x22) && s.bytes[i + 1] == pattern(i + 1, 6);
    ok(same, "and the store has every page: nothing was lost");
    umm_munmap(p, len);
    free(s.bytes);
}

static void bad_input(void)
{
    struct store s;
    size_t len = 8 * PAGE;
    store_init(&s, len, 4);
    errno = 0;
    ok(umm_mmap_pager(NULL, len, PROT_READ, MAP_SHARED, NULL, &s, 0) == MAP_FAILED && errno == EINVAL,
       "no ops: EINVAL");
    errno = 0;
    ok(umm_mmap_pager(NULL, len, PROT_READ, MAP_SHARED, &ops, &s, 1) == MAP_FAILED && errno == EINVAL,
       "an offset not page aligned: EINVAL");
    errno = 0;
    ok(umm_mmap_pager(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, &ro_ops, &s, 0) == MAP_FAILED &&
           errno == EACCES,
       "MAP_SHARED with PROT_WRITE and no writeback: EACCES");
    unsigned char *ro = umm_mmap_pager(NULL, len, PROT_READ, MAP_SHARED, &ro_ops, &s, 0);
    errno = 0;
    ok(ro != MAP_FAILED && umm_mprotect(ro, len, PROT_READ | PROT_WRITE) == -1 && errno == EACCES,
       "and it cannot be made writable later (EACCES)");
    if (ro != MAP_FAILED)
        umm_munmap(ro, len);

    /* A store with more mapped than it has: SIGBUS past its size. */
    unsigned char *p = umm_mmap_pager(NULL, 2 * len, PROT_READ | PROT_WRITE, MAP_SHARED, &ops, &s, 0);
    int code;
    void *addr;
    ok(p != MAP_FAILED && catch_signal(touch_read, p + len, &code, &addr) == SIGBUS && addr == p + len,
       "a page past the store's size raises SIGBUS");
    if (p == MAP_FAILED)
        return;

    /* A fill that fails: SIGBUS, nothing else changes. */
    s.fail_fill = -EIO;
    ok(catch_signal(touch_read, p + PAGE, &code, &addr) == SIGBUS && addr == p + PAGE,
       "a failing fill raises SIGBUS at the access");
    s.fail_fill = 0;
    ok(p[PAGE] == pattern(PAGE, 4), "once the store is back the page comes in");

    /* A write-back that fails (the store went away): EIO, the pages stay
     * dirty and go at the next msync. */
    memset(p + 2 * PAGE, 0xcd, PAGE);
    s.fail_write = -ECONNRESET;
    errno = 0;
    ok(umm_msync(p, len, MS_SYNC) == -1 && errno == EIO, "a failing write-back: msync fails with EIO");
    ok(s.bytes[2 * PAGE] == pattern(2 * PAGE, 4), "the store has nothing of it");
    ok(umm_madvise(p + 2 * PAGE, PAGE, MADV_PAGEOUT) == 0 && p[2 * PAGE + 9] == 0xcd,
       "reclaim does not drop a page it could not write back");
    s.fail_write = 0;
    is_int(umm_msync(p, len, MS_SYNC), 0, "the store is back: msync succeeds");
    ok(s.bytes[2 * PAGE + 9] == 0xcd, "and nothing was lost");

    /* A short fill: zeros after what the store gave. */
    umm_munmap(p, 2 * len);
    s.short_fill = 100;
    p = umm_mmap_pager(NULL, len, PROT_READ, MAP_PRIVATE, &ops, &s, 0);
    ok(p != MAP_FAILED && p[3 * PAGE + 99] == pattern(3 * PAGE + 99, 4) && p[3 * PAGE + 100] == 0 &&
           p[4 * PAGE - 1] == 0,
       "a short fill: the store's bytes, then zeros");
    if (p != MAP_FAILED)
        umm_munmap(p, len);
    free(s.bytes);
}

int main(void)
{
    uint64_t mib = under_valgrind() ? 2 : 4;
    char ram[32];
    snprintf(ram, sizeof ram, "%lluM", (unsigned long long)mib);
    setenv("UMM_RAM", ram, 1);
    const char *dir = getenv("UMM_TEST_TMPDIR");
    setenv("UMM_SWAP", dir && *dir ? dir : "/tmp", 1);
    umm_stats(&(struct umm_stats){ 0 });
    basics();
    reclaim(stat_get("budget"));
    forked();
    exit_paths();
    threads(stat_get("budget"));
    store_gone(stat_get("budget"));
    bad_input();
    check_released();
    return tap_done();
}
