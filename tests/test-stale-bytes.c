/* Promise: the program never sees bytes that another mapping or an earlier
 * file left in a frame.  Fresh anonymous memory, private and shared, reads
 * zero; a file page reads the file; the bytes past the end of the file in
 * its last page read zero -- however often libumm's frames were used
 * before.  The test makes libumm reuse its frames: its frame space is made
 * small (UMM_RAM and UMM_FRAME_SPACE, set before the first call), and many
 * rounds map and unmap several files (distinct bytes, one of a size that is
 * not a page multiple) and anonymous regions, with junk written into every
 * frame that may be handed out again (copies of file pages, anonymous
 * pages), MADV_DONTNEED, partial munmap, and forks in which one process
 * lets go of frames and the other maps fresh memory on them.  Every byte of
 * every page read is checked: a file's bytes are pattern(offset, its seed),
 * anonymous bytes are zero. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>
#include "util.h"

#define RW (PROT_READ | PROT_WRITE)
#define NFILES 4
#define SPACE "4M" /* libumm's frame space: 64 chunks of 64 KiB, reused many times over */
#define SPACE_PAGES 1024

static const uint64_t fsize[NFILES] = { 3 * PAGE, 37 * PAGE + 123, 64 * PAGE, 20 * PAGE + 1 };
static int fds[NFILES];
static unsigned seed_of(int f)
{
    return 700 + (unsigned)f;
}
static size_t maplen(int f)
{
    return (size_t)((fsize[f] + PAGE - 1) / PAGE * PAGE);
}

/* What is being checked: one TAP point each at the end. */
enum {
    K_FILE_SHARED,  /* pages of a shared file mapping read the file */
    K_FILE_PRIVATE, /* unwritten pages of a private file mapping read the file */
    K_EOF,          /* bytes past the end of the file in its last page read zero */
    K_ANON_PRIVATE, /* fresh private anonymous pages read zero */
    K_ANON_SHARED,  /* fresh shared anonymous pages read zero */
    K_DONTNEED,     /* pages after MADV_DONTNEED read zero */
    K_KEPT,         /* what a partial munmap or MADV_DONTNEED left keeps its bytes */
    K_FORK,         /* a fork's other side: fresh memory after frames were let go there */
    K_MAX
};
static const char *const kind_text[K_MAX] = {
    "every page of a shared file mapping reads the file",
    "every unwritten page of a private file mapping reads the file",
    "the bytes past the end of the file in its last page read zero",
    "fresh private anonymous memory reads zero",
    "fresh shared anonymous memory reads zero",
    "pages read zero again after MADV_DONTNEED",
    "what partial munmap and MADV_DONTNEED leave keeps its own bytes",
    "after a fork, memory mapped fresh on one side reads zero (or the file) when the other side let frames go",
};
static uint64_t checked[K_MAX], bad[K_MAX];
static int first_bad_round[K_MAX];
static int round_no, mmap_failures, munmap_failures;

/* Count the bytes of page p that differ from what it must hold: junk (a
 * byte written over the whole page), or a file's bytes at offset off
 * (zero past fsize), or zero when seed < 0. */
static size_t page_diff(const unsigned char *p, int seed, uint64_t off, uint64_t size, int junk)
{
    size_t n = 0;
    if (junk >= 0) {
        for (size_t i = 0; i < PAGE; i++)
            n += p[i] != (unsigned char)junk;
    } else if (seed < 0) {
        for (size_t i = 0; i < PAGE; i++)
            n += p[i] != 0;
    } else {
        for (size_t i = 0; i < PAGE; i++)
            n += p[i] != (off + i < size ? pattern(off + i, (unsigned)seed) : 0);
    }
    return n;
}

/* One page (or one fork's check) with nbad wrong bytes: the first wrong
 * one of each kind is told, with where (an address, or NULL for a fork's
 * other side). */
static void note(int kind, size_t nbad, const void *where)
{
    checked[kind]++;
    if (!nbad)
        return;
    if (!bad[kind]) {
        first_bad_round[kind] = round_no;
        if (where)
            tap_diag("round %d: %zu wrong bytes at %p (%s)", round_no, nbad, where, kind_text[kind]);
        else
            tap_diag("round %d: wrong bytes in a fork (%s)", round_no, kind_text[kind]);
    }
    bad[kind]++;
}

/* Check every page of a mapping of file f at p (file page 0 at p). */
static void check_file(const unsigned char *p, int f, int kind)
{
    size_t pages = maplen(f) / PAGE;
    for (size_t i = 0; i < pages; i++) {
        uint64_t off = (uint64_t)i * PAGE;
        note(kind, page_diff(p + off, (int)seed_of(f), off, fsize[f], -1), p + off);
        if (off + PAGE > fsize[f]) /* the last, partial page: its tail on its own */
            note(K_EOF, page_diff(p + off, (int)seed_of(f), off, fsize[f], -1), p + off);
    }
}

static void check_zero(const unsigned char *p, size_t pages, int kind)
{
    for (size_t i = 0; i < pages; i++)
        note(kind, page_diff(p + i * PAGE, -1, 0, 0, -1), p + i * PAGE);
}

static void check_junk(const unsigned char *p, size_t pages, int junk)
{
    for (size_t i = 0; i < pages; i++)
        note(K_KEPT, page_diff(p + i * PAGE, -1, 0, 0, junk), p + i * PAGE);
}

static void *map(size_t len, int prot, int flags, int fd)
{
    void *p = umm_mmap(NULL, len, prot, flags, fd, 0);
    if (p == MAP_FAILED) {
        if (!mmap_failures++)
            tap_diag("round %d: umm_mmap of %zu bytes: %s", round_no, len, strerror(errno));
        return NULL;
    }
    return p;
}

static void unmap(void *p, size_t len)
{
    if (p && umm_munmap(p, len) != 0 && !munmap_failures++)
        tap_diag("round %d: umm_munmap: %s", round_no, strerror(errno));
}

static uint64_t rng = 0x5eed5eed12345ull;
static size_t rnd(size_t lo, size_t hi) /* in [lo, hi] */
{
    return lo + (size_t)(xorshift64(&rng) % (hi - lo + 1));
}

/* A junk byte for round r: never zero, never the same twice in a row. */
static int junk_of(int r, int k)
{
    return 1 + (r * 7 + k * 31) % 255;
}

/* One round of map, check, scribble, unmap. */
static void one_round(int r)
{
    int f = r % NFILES, g = (r + 1) % NFILES, h = (r + 2) % NFILES;
    round_no = r;

    /* A file shared, another private; junk copied into half the private
     * pages (frames of their own, freed at munmap). */
    unsigned char *a = map(maplen(f), PROT_READ, MAP_SHARED, fds[f]);
    if (a)
        check_file(a, f, K_FILE_SHARED);
    unsigned char *b = map(maplen(g), RW, MAP_PRIVATE, fds[g]);
    if (b) {
        check_file(b, g, K_FILE_PRIVATE);
        for (size_t i = r % 2; i < maplen(g) / PAGE; i += 2)
            memset(b + i * PAGE, junk_of(r, 1), PAGE);
        for (size_t i = 0; i < maplen(g) / PAGE; i++) {
            uint64_t off = (uint64_t)i * PAGE;
            if (i % 2 == (size_t)(r % 2))
                note(K_KEPT, page_diff(b + off, -1, 0, 0, junk_of(r, 1)), b + off);
            else
                note(K_FILE_PRIVATE, page_diff(b + off, (int)seed_of(g), off, fsize[g], -1), b + off);
        }
    }
    unmap(a, maplen(f));

    /* Private anonymous memory on frames just let go: zero; scribbled
     * over; MADV_DONTNEED; a hole punched in it. */
    size_t np = rnd(8, 40);
    unsigned char *p = map(np * PAGE, RW, MAP_PRIVATE | MAP_ANONYMOUS, -1);
    if (p) {
        check_zero(p, np, K_ANON_PRIVATE);
        memset(p, junk_of(r, 2), np * PAGE);
        size_t d0 = rnd(0, np / 2), dn = rnd(1, np / 4);
        if (umm_madvise(p + d0 * PAGE, dn * PAGE, MADV_DONTNEED) != 0)
            tap_diag("round %d: madvise: %s", r, strerror(errno));
        check_junk(p, d0, junk_of(r, 2));
        check_zero(p + d0 * PAGE, dn, K_DONTNEED);
        check_junk(p + (d0 + dn) * PAGE, np - d0 - dn, junk_of(r, 2));
        memset(p + d0 * PAGE, junk_of(r, 2), dn * PAGE);
    }

    /* Shared anonymous memory: zero, scribbled over, its head unmapped. */
    size_t ns = rnd(4, 24), cut = rnd(1, ns - 1);
    unsigned char *s = map(ns * PAGE, RW, MAP_SHARED | MAP_ANONYMOUS, -1);
    if (s) {
        check_zero(s, ns, K_ANON_SHARED);
        memset(s, junk_of(r, 3), ns * PAGE);
        unmap(s, cut * PAGE);
        check_junk(s + cut * PAGE, ns - cut, junk_of(r, 3));
    }

    /* The private file mapping goes (its copies with it), and the middle
     * of the private anonymous region. */
    unmap(b, maplen(g));
    size_t h0 = 0, hn = 0;
    if (p) {
        h0 = rnd(1, np / 2);
        hn = rnd(1, np / 4);
        unmap(p + h0 * PAGE, hn * PAGE);
        check_junk(p, h0, junk_of(r, 2));
        check_junk(p + (h0 + hn) * PAGE, np - h0 - hn, junk_of(r, 2));
    }

    /* Fresh memory of both kinds on what was let go, and a third file. */
    size_t nq = rnd(8, 48);
    unsigned char *q = map(nq * PAGE, RW, MAP_PRIVATE | MAP_ANONYMOUS, -1);
    if (q)
        check_zero(q, nq, K_ANON_PRIVATE);
    size_t nt = rnd(4, 32);
    unsigned char *t = map(nt * PAGE, RW, MAP_SHARED | MAP_ANONYMOUS, -1);
    if (t)
        check_zero(t, nt, K_ANON_SHARED);
    unsigned char *c = map(maplen(h), PROT_READ, MAP_PRIVATE, fds[h]);
    if (c)
        check_file(c, h, K_FILE_PRIVATE);
    if (q)
        memset(q, junk_of(r, 4), nq * PAGE);
    if (t)
        memset(t, junk_of(r, 5), nt * PAGE);

    unmap(c, maplen(h));
    unmap(q, nq * PAGE);
    unmap(t, nt * PAGE);
    if (s)
        unmap(s + cut * PAGE, (ns - cut) * PAGE);
    if (p) {
        unmap(p, h0 * PAGE);
        unmap(p + (h0 + hn) * PAGE, (np - h0 - hn) * PAGE);
    }
}

/* ------------------------------------------------------------- forks */

/* In a child: count wrong bytes of fresh memory and of a file, exit with
 * 0 (all right), 1 (wrong bytes), 2 (a call failed). */
static int fresh_everything(int r)
{
    int f = r % NFILES;
    unsigned char *p = umm_mmap(NULL, 32 * PAGE, RW, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    unsigned char *s = umm_mmap(NULL, 16 * PAGE, RW, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    unsigned char *a = umm_mmap(NULL, maplen(f), PROT_READ, MAP_PRIVATE, fds[f], 0);
    if (p == MAP_FAILED || s == MAP_FAILED || a == MAP_FAILED)
        return 2;
    size_t n = 0;
    for (int i = 0; i < 32; i++)
        n += page_diff(p + i * PAGE, -1, 0, 0, -1);
    for (int i = 0; i < 16; i++)
        n += page_diff(s + i * PAGE, -1, 0, 0, -1);
    for (size_t i = 0; i < maplen(f) / PAGE; i++)
        n += page_diff(a + i * PAGE, (int)seed_of(f), i * PAGE, fsize[f], -1);
    memset(p, 0xee, 32 * PAGE);
    memset(s, 0xef, 16 * PAGE);
    if (umm_munmap(p, 32 * PAGE) || umm_munmap(s, 16 * PAGE) || umm_munmap(a, maplen(f)))
        return 2;
    return n ? 1 : 0;
}

static int hear(int fd)
{
    char c;
    return read(fd, &c, 1) == 1;
}
static void say(int fd)
{
    (void)!write(fd, "x", 1);
}

static int reap(pid_t pid)
{
    int st;
    if (pid < 0 || waitpid(pid, &st, 0) != pid)
        return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 100 + (WIFSIGNALED(st) ? WTERMSIG(st) : 0);
}

/*
 * Fork with a file mapped (shared, and private with junk copies) and a
 * private anonymous region full of junk.  child_lets_go_last says which
 * side lets go last (and so frees the frames): the other one then maps
 * fresh memory and checks it.  The child reports its check in its exit
 * status.
 */
static void fork_round(int r, int child_lets_go_last)
{
    int f = r % NFILES, g = (r + 1) % NFILES;
    round_no = r;
    unsigned char *a = map(maplen(f), PROT_READ, MAP_SHARED, fds[f]);
    unsigned char *b = map(maplen(g), RW, MAP_PRIVATE, fds[g]);
    unsigned char *p = map(24 * PAGE, RW, MAP_PRIVATE | MAP_ANONYMOUS, -1);
    if (!a || !b || !p) {
        unmap(a, maplen(f));
        unmap(b, maplen(g));
        unmap(p, 24 * PAGE);
        return;
    }
    check_file(a, f, K_FILE_SHARED);
    memset(b, junk_of(r, 6), maplen(g));
    memset(p, junk_of(r, 7), 24 * PAGE);
    int to_child[2], to_parent[2];
    if (pipe(to_child) || pipe(to_parent))
        tap_bail("pipe: %s", strerror(errno));
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        tap_quiet();
        vg_abrupt_end(); /* _exit with libumm's daemon running */
        alarm(30);
        close(to_child[1]); /* a parent gone is an end of file, not a hang */
        close(to_parent[0]);
        int rc = 0;
        /* The child's own copies of the private pages: more junk to free. */
        memset(p, junk_of(r, 8), 12 * PAGE);
        memset(b, junk_of(r, 9), PAGE);
        if (child_lets_go_last) {
            if (!hear(to_child[0]))
                _exit(3);
            /* The parent has let go: the child's munmaps free the frames. */
            if (umm_munmap(a, maplen(f)) || umm_munmap(b, maplen(g)) || umm_munmap(p, 24 * PAGE))
                _exit(2);
            say(to_parent[1]);
            _exit(0);
        }
        if (umm_munmap(a, maplen(f)) || umm_munmap(b, maplen(g)) || umm_munmap(p, 24 * PAGE))
            _exit(2);
        say(to_parent[1]);
        /* The parent lets go last: then fresh memory here. */
        if (!hear(to_child[0]))
            _exit(3);
        rc = fresh_everything(r);
        _exit(rc);
    }
    if (pid < 0)
        tap_bail("fork: %s", strerror(errno));
    close(to_child[0]); /* a child gone is an end of file, not a hang */
    close(to_parent[1]);
    int rc;
    if (child_lets_go_last) {
        unmap(a, maplen(f));
        unmap(b, maplen(g));
        unmap(p, 24 * PAGE);
        say(to_child[1]);
        int heard = hear(to_parent[0]);
        rc = reap(pid);
        if (!heard && !rc)
            rc = 3;
        /* The child freed the frames (or its exit did): fresh memory here. */
        if (!rc) {
            int n = fresh_everything(r);
            note(K_FORK, n == 1, NULL);
            if (n == 2 && !mmap_failures++)
                tap_diag("round %d: fresh memory in the parent: a call failed", r);
        }
    } else {
        int heard = hear(to_parent[0]);
        unmap(a, maplen(f));
        unmap(b, maplen(g));
        unmap(p, 24 * PAGE);
        say(to_child[1]);
        rc = reap(pid);
        if (!heard && !rc)
            rc = 3;
        note(K_FORK, rc == 1, NULL);
    }
    if (rc != 0 && rc != 1 && !mmap_failures++)
        tap_diag("round %d: the child ended with %d (2: a call failed, 3: no message, 100+: a signal)", r, rc);
    close(to_child[1]);
    close(to_parent[0]);
}

int main(void)
{
    /* Before the first call into libumm: a small frame space, so that the
     * allocator wraps round and hands out the same chunks again and again
     * (UMM_RAM is its size today; UMM_FRAME_SPACE names it once UMM_RAM
     * becomes a budget of resident memory). */
    setenv("UMM_RAM", SPACE, 1);
    setenv("UMM_FRAME_SPACE", SPACE, 1);
    for (int f = 0; f < NFILES; f++)
        fds[f] = tmpfile_make(fsize[f], seed_of(f), O_RDONLY, NULL);

    int rounds = under_valgrind() ? 12 : 64;
    for (int r = 0; r < rounds; r++) {
        one_round(r);
        if (r % 4 == 3)
            fork_round(r, (r / 4) % 2);
    }
    uint64_t pages = 0;
    for (int k = 0; k < K_MAX; k++)
        pages += checked[k];
    tap_diag("%llu pages checked: %.1f times libumm's frame space", (unsigned long long)pages,
             (double)pages / SPACE_PAGES);
    for (int k = 0; k < K_MAX; k++) {
        ok(checked[k] > 0 && bad[k] == 0, "%s (%llu checks, %llu wrong%s)", kind_text[k],
           (unsigned long long)checked[k], (unsigned long long)bad[k], bad[k] ? ", see above" : "");
        if (bad[k])
            tap_diag("first wrong in round %d", first_bad_round[k]);
    }
    is_int(mmap_failures, 0, "every umm_mmap, fork and child succeeded in a %s frame space (frames came back)", SPACE);
    is_int(munmap_failures, 0, "every umm_munmap succeeded");
    for (int f = 0; f < NFILES; f++)
        close(fds[f]);
    check_released();
    return tap_done();
}
