/* Promise (issue 12, item 9): MAP_FIXED into address space the program
 * released with munmap succeeds, as under the kernel.  libumm refuses
 * MAP_FIXED over memory it does not own (README difference 3), so its own
 * memory -- page tables, its array of VMAs, threads' signal stacks -- must
 * never land in a range a program's munmap left free.
 *
 * The same sequences run against the kernel and against libumm:
 *  - rounds of mappings placed by the host, all unmapped, then mapped again
 *    with MAP_FIXED in pieces of varied sizes and types: each piece makes
 *    libumm allocate a page table while the other released ranges wait;
 *  - the same with one mapping cut into thousands of VMAs (mprotect) while
 *    the released ranges wait, so that libumm's array of VMAs grows;
 *  - a thread started while released ranges wait, alive while they are
 *    mapped again (libumm gives each thread a signal stack): starting it
 *    on a stack the test mapped must not map anything.
 * Before each MAP_FIXED the test also asks the host whether the range is
 * free: it must be, for libumm as for the kernel.  Results, errno and
 * bytes must agree. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdlib.h>
#include <unistd.h>
#include "kcmp.h"

#define SEED 41
#define FILE_PAGES 64
#define MAXREC 4096
#define MAXRANGES 24

/* What one MAP_FIXED into a released range did. */
struct rec {
    int was_free; /* the range was free on the host just before */
    struct outcome o;
    int bytes_ok; /* a fresh anonymous page reads 0, a file page the file */
};

struct trace {
    int n;
    struct rec r[MAXREC];
};

struct range {
    unsigned char *p;
    size_t pages;
};

static uint64_t rng;

/* /proc/self/maps, read without malloc: under Valgrind the program's
 * malloc takes new memory where mmap would, in the ranges just released
 * (and the kernel run would clobber it); natively it is the brk heap. */
static char maps[8 << 20];

static const char *maps_read(void)
{
    int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
    size_t len = 0;
    ssize_t got;
    if (fd < 0)
        tap_bail("/proc/self/maps: %s", strerror(errno));
    while (len < sizeof maps - 1 && (got = read(fd, maps + len, sizeof maps - 1 - len)) > 0)
        len += (size_t)got;
    close(fd);
    maps[len] = 0;
    return maps;
}

/* Is [a, a+len) free on the host? */
static int host_free(uintptr_t a, size_t len)
{
    for (const char *l = maps_read(); *l;) {
        unsigned long s = strtoul(l, NULL, 16), e = strtoul(strchr(l, '-') + 1, NULL, 16);
        if (s < a + len && e > a)
            return 0;
        l = strchr(l, '\n');
        if (!l)
            break;
        l++;
    }
    return 1;
}

static size_t rn(size_t n)
{
    return (size_t)(xorshift64(&rng) % n);
}

/* A size with a page table of every size: a few entries, a page of them,
 * many pages of them. */
static size_t some_pages(void)
{
    switch (rn(3)) {
    case 0:
        return 1 + rn(8);
    case 1:
        return 64 + rn(1024);
    default:
        return 1024 + rn(8192);
    }
}

static void shuffle(size_t *ix, size_t n)
{
    for (size_t i = 0; i < n; i++)
        ix[i] = i;
    for (size_t i = n; i > 1; i--) {
        size_t j = rn(i), t = ix[i - 1];
        ix[i - 1] = ix[j];
        ix[j] = t;
    }
}

/* Map the released range [p, p+pages) again with MAP_FIXED: one mapping of
 * a random type, then look at its first page.  Returns whether it is
 * mapped. */
static int map_again(const struct mm_ops *ops, int fd, unsigned char *p, size_t pages, struct trace *t)
{
    static const int types[] = { MAP_PRIVATE | MAP_ANONYMOUS, MAP_SHARED | MAP_ANONYMOUS, MAP_PRIVATE,
                                 MAP_SHARED };
    int flags = types[rn(4)];
    off_t off = (off_t)rn(FILE_PAGES) * PAGE;
    struct rec *r = &t->r[t->n < MAXREC ? t->n++ : MAXREC - 1];
    r->was_free = host_free((uintptr_t)p, pages * PAGE);
    r->bytes_ok = 0;
    if (!r->was_free && !ops->is_umm) {
        /* Something is in the way: MAP_FIXED would clobber it. */
        r->o.rc = -2;
        r->o.err = 0;
        return 0;
    }
    errno = 0;
    unsigned char *q = ops->mmap(p, pages * PAGE, PROT_READ | PROT_WRITE, flags | MAP_FIXED,
                                 (flags & MAP_ANONYMOUS) ? -1 : fd, off);
    r->o = outcome_of(q == MAP_FAILED ? -1 : 0);
    if (q != p)
        return 0;
    if (flags & MAP_ANONYMOUS)
        r->bytes_ok = q[0] == 0 && q[pages * PAGE - 1] == 0;
    else
        r->bytes_ok = q[1] == pattern((uint64_t)off + 1, SEED);
    q[0] = 0xa5; /* in the file too, for MAP_SHARED: byte 1 is what is checked */
    r->bytes_ok &= q[0] == 0xa5;
    return 1;
}

/* Map n ranges where the host puts them, touch them, unmap them all. */
static size_t release_some(const struct mm_ops *ops, struct range *r, size_t n, size_t min_pages)
{
    size_t ix[MAXRANGES];
    for (size_t i = 0; i < n; i++) {
        r[i].pages = some_pages();
        if (r[i].pages < min_pages)
            r[i].pages += min_pages;
        r[i].p = ops->mmap(NULL, r[i].pages * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (r[i].p == MAP_FAILED)
            tap_bail("%s: mmap of %zu pages: %s", ops->name, r[i].pages, strerror(errno));
        r[i].p[0] = 1;
        r[i].p[r[i].pages * PAGE - 1] = 1;
    }
    shuffle(ix, n);
    for (size_t i = 0; i < n; i++)
        if (ops->munmap(r[ix[i]].p, r[ix[i]].pages * PAGE) != 0)
            tap_bail("%s: munmap: %s", ops->name, strerror(errno));
    return n;
}

/* Map every released range again, each in one to four pieces, in a random
 * order; then unmap what was mapped (only that: what else is there is not
 * the test's). */
static void map_all_again(const struct mm_ops *ops, int fd, struct range *r, size_t n, struct trace *t)
{
    size_t ix[MAXRANGES], nm = 0;
    struct range mapped[4 * MAXRANGES];
    shuffle(ix, n);
    for (size_t i = 0; i < n; i++) {
        struct range *g = &r[ix[i]];
        size_t cuts[5], k = 1 + rn(4), np = 1;
        cuts[0] = 0;
        for (size_t c = 1; c < k; c++) {
            size_t at = rn(g->pages);
            if (at > cuts[np - 1])
                cuts[np++] = at;
        }
        cuts[np] = g->pages;
        size_t order[5];
        shuffle(order, np);
        for (size_t c = 0; c < np; c++) {
            struct range m = { g->p + cuts[order[c]] * PAGE, cuts[order[c] + 1] - cuts[order[c]] };
            if (map_again(ops, fd, m.p, m.pages, t))
                mapped[nm++] = m;
        }
    }
    for (size_t i = 0; i < nm; i++)
        ops->munmap(mapped[i].p, mapped[i].pages * PAGE);
}

/* Page tables: rounds of release, then MAP_FIXED in pieces. */
static void page_tables(const struct mm_ops *ops, int fd, int rounds, struct trace *t)
{
    struct range r[MAXRANGES];
    rng = 0x9e3779b97f4a7c15ull;
    for (int round = 0; round < rounds; round++) {
        size_t n = release_some(ops, r, 4 + rn(MAXRANGES - 4), 0);
        map_all_again(ops, fd, r, n, t);
    }
}

/* The array of VMAs: one mapping cut into `cuts` pieces by mprotect while
 * released ranges wait. */
static void vma_array(const struct mm_ops *ops, int fd, size_t cuts, struct trace *t)
{
    struct range r[MAXRANGES];
    rng = 0x2545f4914f6cdd1dull;
    size_t pages = 2 * cuts + 1;
    unsigned char *big = ops->mmap(NULL, pages * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (big == MAP_FAILED)
        tap_bail("%s: mmap of %zu pages: %s", ops->name, pages, strerror(errno));
    for (int round = 0; round < 2; round++) {
        size_t n = release_some(ops, r, 8, 64);
        for (size_t i = round; i < cuts; i += 2)
            if (ops->mprotect(big + (2 * i + 1) * PAGE, PAGE, PROT_READ) != 0)
                tap_bail("%s: mprotect: %s", ops->name, strerror(errno));
        map_all_again(ops, fd, r, n, t);
    }
    ops->munmap(big, pages * PAGE);
}

/* A thread alive while released ranges are mapped again.  Its stack is
 * the test's own, mapped before, so that creating it maps nothing: the
 * host's mappings must be the same before and after (but the brk heap,
 * which glibc may grow, and which is never where mappings go). */
static sem_t started, done;

static void *waiter(void *arg)
{
    (void)arg;
    sem_post(&started);
    while (sem_wait(&done) != 0)
        ;
    return NULL;
}

/* The host's mappings but the brk heap (glibc may grow it). */
static char *maps_now(void)
{
    static char buf[2][sizeof maps];
    static int which;
    char *out = buf[which ^= 1];
    size_t len = 0;
    for (const char *l = maps_read(); *l;) {
        const char *e = strchr(l, '\n');
        size_t n = e ? (size_t)(e + 1 - l) : strlen(l);
        /* Under Valgrind, its own memory comes and goes with the code it
         * translates (anonymous rwx regions: its translation cache), which
         * a new thread's first code grows; libumm never maps rwx. */
        int vg_own = under_valgrind() && memmem(l, n, " rwxp ", 6) && n > 0 && l[n - 2] == ' ';
        if (!memmem(l, n, "[heap]", 6) && !vg_own) {
            memcpy(out + len, l, n);
            len += n;
        }
        l += n;
    }
    out[len] = 0;
    return out;
}

__attribute__((unused)) static void thread_stack(const struct mm_ops *ops, int fd, struct trace *t, int *unchanged)
{
    struct range r[MAXRANGES];
    const size_t stack = (size_t)8 << 20;
    void *sp = mmap(NULL, stack, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
    if (sp == MAP_FAILED)
        tap_bail("mmap of a stack: %s", strerror(errno));
    rng = 0xd1b54a32d192ed03ull;
    *unchanged = 0;
    for (int round = 0; round < 4; round++) {
        size_t n = release_some(ops, r, 8, 0);
        char *before = maps_now();
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setstack(&attr, sp, stack);
        pthread_t th;
        if (pthread_create(&th, &attr, waiter, NULL) != 0)
            tap_bail("pthread_create");
        pthread_attr_destroy(&attr);
        while (sem_wait(&started) != 0)
            ;
        char *after = maps_now();
        if (strcmp(before, after) == 0)
            ++*unchanged;
        else if (ops->is_umm)
            tap_diag("thread: the host's mappings were\n%s\nand are now\n%s", before, after);
        map_all_again(ops, fd, r, n, t);
        sem_post(&done);
        pthread_join(th, NULL);
    }
    munmap(sp, stack);
}

static int same(const char *what, const struct trace *k, const struct trace *u)
{
    int bad = 0;
    if (k->n != u->n) {
        tap_diag("%s: %d calls with the kernel, %d with libumm", what, k->n, u->n);
        return 0;
    }
    for (int i = 0; i < k->n; i++) {
        const struct rec *a = &k->r[i], *b = &u->r[i];
        if (a->was_free != b->was_free || a->o.rc != b->o.rc || a->o.err != b->o.err || a->bytes_ok != b->bytes_ok) {
            if (bad++ < 5)
                tap_diag("%s: call %d: kernel free %d rc %d errno %d bytes %d; libumm free %d rc %d errno %d bytes %d",
                         what, i, a->was_free, a->o.rc, a->o.err, a->bytes_ok, b->was_free, b->o.rc, b->o.err,
                         b->bytes_ok);
        }
    }
    if (bad)
        tap_diag("%s: %d of %d calls differ", what, bad, k->n);
    return bad == 0;
}

static int all_fine(const struct trace *k)
{
    for (int i = 0; i < k->n; i++)
        if (!k->r[i].was_free || k->r[i].o.rc != 0 || !k->r[i].bytes_ok)
            return 0;
    return k->n > 0;
}

int main(void)
{
    static struct trace k1, u1, k2, u2, k3, u3;
    int kfd = tmpfile_make(FILE_PAGES * PAGE + 1, SEED, O_RDWR, NULL);
    int ufd = tmpfile_make(FILE_PAGES * PAGE + 1, SEED, O_RDWR, NULL);
    /* VMAs past 2^14: the array grows past 128 KiB, where glibc's malloc
     * would map it.  Under Valgrind, whose malloc takes any new memory
     * where mmap would, fewer of everything do (its mprotect and
     * /proc/self/maps are slow with 18,000 VMAs). */
    const int rounds = under_valgrind() ? 6 : 24;
    const size_t cuts = under_valgrind() ? 1000 : 9000;
    sem_init(&started, 0, 0);
    sem_init(&done, 0, 0);

    page_tables(&kernel_ops, kfd, rounds, &k1);
    ok(all_fine(&k1), "kernel: %d MAP_FIXED into released ranges all succeed (the test is right)", k1.n);
    page_tables(&umm_ops, ufd, rounds, &u1);
    ok(same("page tables", &k1, &u1), "libumm: each range is free and MAP_FIXED succeeds, as with the kernel");

    vma_array(&kernel_ops, kfd, cuts, &k2);
    ok(all_fine(&k2), "kernel: with a mapping cut in %zu VMAs, the same (the test is right)", 2 * cuts + 1);
    vma_array(&umm_ops, ufd, cuts, &u2);
    ok(same("VMA array", &k2, &u2), "libumm: its array of VMAs grows elsewhere");

    int kun, uun;
#if defined(__SANITIZE_ADDRESS__)
    /* AddressSanitizer maps memory of its own for every new thread (its
     * allocator caches and fake stacks), where the host puts it. */
    const char *why = "AddressSanitizer maps memory of its own for a new thread";
    tap_skip(why, "kernel: a thread started meanwhile takes nothing of them");
    tap_skip(why, "libumm: nor does the thread's signal stack");
    tap_skip(why, "starting a thread on a stack of the program's own maps nothing");
    (void)kun, (void)uun, (void)k3, (void)u3;
#else
    thread_stack(&kernel_ops, kfd, &k3, &kun);
    ok(all_fine(&k3), "kernel: a thread started meanwhile (through libumm's pthread_create) takes nothing of them");
    thread_stack(&umm_ops, ufd, &u3, &uun);
    ok(same("thread", &k3, &u3), "libumm: nor does the thread's signal stack");
    is_int(uun, 4, "starting a thread on a stack of the program's own maps nothing (libumm's signal stack is its own)");
#endif

    close(kfd);
    close(ufd);
    check_released();
    return tap_done();
}
