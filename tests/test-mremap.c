/* Promise: umm_mremap behaves as the kernel's mremap on every kind of
 * mapping (shared and private file, shared and private anonymous, and
 * after fork): the same return value (the same address, or a move), the
 * same errno for each bad argument in the kernel's order, the same bytes
 * and the same access (SIGSEGV at the old place after a move, SIGBUS past
 * a shared anonymous mapping's size) at the old and the new place, and the
 * same file bytes after msync.  Every scenario runs against the kernel and
 * against libumm at the same addresses and the two are compared.  Also:
 * the C library's mremap on libumm memory reaches umm_mremap, and on
 * memory that is not libumm's goes to the kernel. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include "kcmp.h"

#ifndef MREMAP_DONTUNMAP
#define MREMAP_DONTUNMAP 4
#endif

#define SEED 18
#define B KCMP_BASE
#define NW 24 /* pages looked at from B */
#define NN 8  /* pages looked at where a move the kernel placed went */

struct ops {
    const struct mm_ops *mm;
    void *(*mremap)(void *, size_t, size_t, int, void *);
};

static void *kernel_mremap(void *o, size_t os, size_t ns, int flags, void *na)
{
    return (void *)syscall(SYS_mremap, o, os, ns, flags, na);
}
static void *libumm_mremap(void *o, size_t os, size_t ns, int flags, void *na)
{
    return umm_mremap(o, os, ns, flags, na);
}
static const struct ops K = { &kernel_ops, kernel_mremap };
static const struct ops U = { &umm_ops, libumm_mremap };

/* What a scenario saw. */
struct res {
    long ret[4];  /* per mremap: offset from B, or -1 (failed), or -2 (placed by the kernel) */
    int err[4];
    struct pageview w[NW];
    struct pageview n[NN]; /* at the last address placed by the kernel */
    long fsize;
    unsigned char file[8 * PAGE];
    uint64_t child; /* after fork: what the other process saw */
};

enum kind { PRIV_ANON, SHARED_ANON, PRIV_FILE, SHARED_FILE, NKINDS };
static const char *kind_name[] = { "private anonymous", "shared anonymous", "private file", "shared file" };

static int cur_fd = -1;
static uintptr_t placed; /* where the kernel placed the last move */
static size_t placed_len;

/* A mapping of `kind` at B + page*PAGE, n pages, file page fpage. */
static unsigned char *map(const struct ops *o, enum kind k, int page, int n, int prot, int fpage)
{
    int flags = MAP_FIXED | (k == SHARED_ANON || k == SHARED_FILE ? MAP_SHARED : MAP_PRIVATE);
    int fd = -1;
    if (k == PRIV_ANON || k == SHARED_ANON)
        flags |= MAP_ANONYMOUS;
    else
        fd = cur_fd;
    unsigned char *p = o->mm->mmap((void *)(B + (uintptr_t)page * PAGE), (size_t)n * PAGE, prot, flags, fd,
                                   (off_t)fpage * PAGE);
    if (p == MAP_FAILED)
        tap_bail("%s: mmap: %s", o->mm->name, strerror(errno));
    return p;
}

/* Write a byte of its own into each of n pages at p. */
static void scribble(unsigned char *p, int n, int tag)
{
    for (int i = 0; i < n; i++)
        p[(size_t)i * PAGE + 17 + i] = (unsigned char)(tag + i);
}

/* One mremap; records its outcome in r->ret[i], r->err[i]. */
static unsigned char *remap(const struct ops *o, struct res *r, int i, void *old, int os, int ns, int flags,
                            void *na)
{
    errno = 0;
    void *p = o->mremap(old, (size_t)os * PAGE, (size_t)ns * PAGE, flags, na);
    r->err[i] = p == MAP_FAILED ? errno : 0;
    if (p == MAP_FAILED) {
        r->ret[i] = -1;
    } else if ((uintptr_t)p >= B && (uintptr_t)p < B + NW * PAGE && ((flags & MREMAP_FIXED) || p == old)) {
        r->ret[i] = (long)(((uintptr_t)p - B) / PAGE);
    } else {
        r->ret[i] = -2;
        placed = (uintptr_t)p;
        placed_len = (size_t)ns * PAGE;
    }
    return p == MAP_FAILED ? NULL : p;
}

typedef void scenario_fn(const struct ops *o, enum kind k, struct res *r);

/* Shrink 4 pages to 2: the tail goes. */
static void sc_shrink(const struct ops *o, enum kind k, struct res *r)
{
    unsigned char *p = map(o, k, 0, 4, PROT_READ | PROT_WRITE, 0);
    scribble(p, 4, 0x10);
    remap(o, r, 0, p, 4, 2, 0, NULL);
}

/* Grow 2 pages to 5 in place (the space after is free), then write the
 * new pages. */
static void sc_grow(const struct ops *o, enum kind k, struct res *r)
{
    unsigned char *p = map(o, k, 0, 2, PROT_READ | PROT_WRITE, 1);
    scribble(p, 2, 0x20);
    if (remap(o, r, 0, p, 2, 5, 0, NULL) && k != SHARED_ANON)
        scribble(p + 2 * PAGE, 2, 0x28);
}

/* Grow where the next page is taken: ENOMEM without MREMAP_MAYMOVE, a
 * move with it; the old place then faults SIGSEGV. */
static void sc_grow_blocked(const struct ops *o, enum kind k, struct res *r)
{
    unsigned char *p = map(o, k, 0, 2, PROT_READ | PROT_WRITE, 0);
    map(o, PRIV_ANON, 2, 1, PROT_READ, 0);
    scribble(p, 2, 0x30);
    remap(o, r, 0, p, 2, 3, 0, NULL);
    unsigned char *q = remap(o, r, 1, p, 2, 3, MREMAP_MAYMOVE, NULL);
    if (q)
        scribble(q + PAGE, 1, 0x38);
}

/* MREMAP_FIXED: onto free space, onto an existing mapping (replaced), and
 * growing and shrinking on the way; msync after. */
static void sc_fixed(const struct ops *o, enum kind k, struct res *r)
{
    unsigned char *p = map(o, k, 0, 3, PROT_READ | PROT_WRITE, 0);
    scribble(p, 3, 0x40);
    map(o, PRIV_ANON, 12, 4, PROT_READ | PROT_WRITE, 0)[5] = 1;
    unsigned char *q = remap(o, r, 0, p, 3, 3, MREMAP_MAYMOVE | MREMAP_FIXED, (void *)(B + 6 * PAGE));
    if (q) {
        scribble(q + PAGE, 1, 0x48);
        q = remap(o, r, 1, q, 3, 4, MREMAP_MAYMOVE | MREMAP_FIXED, (void *)(B + 13 * PAGE));
    }
    if (q) {
        if (k != SHARED_ANON)
            scribble(q + 3 * PAGE, 1, 0x4c);
        q = remap(o, r, 2, q, 4, 2, MREMAP_MAYMOVE | MREMAP_FIXED, (void *)(B + 1 * PAGE));
    }
    if (q)
        o->mm->msync(q, 2 * PAGE, MS_SYNC);
}

/* MREMAP_FIXED without a resize over several mappings and a hole: every
 * mapping in the range moves (Linux 6.17). */
static void sc_fixed_multi(const struct ops *o, enum kind k, struct res *r)
{
    unsigned char *p = map(o, k, 0, 2, PROT_READ | PROT_WRITE, 0);
    map(o, PRIV_ANON, 3, 2, PROT_READ | PROT_WRITE, 0)[PAGE] = 9;
    scribble(p, 2, 0x50);
    remap(o, r, 0, p, 5, 5, MREMAP_MAYMOVE | MREMAP_FIXED, (void *)(B + 10 * PAGE));
}

/* MREMAP_DONTUNMAP: the pages move, the old range stays mapped afresh. */
static void sc_dontunmap(const struct ops *o, enum kind k, struct res *r)
{
    unsigned char *p = map(o, k, 0, 3, PROT_READ | PROT_WRITE, 0);
    scribble(p, 3, 0x60);
    unsigned char *q = remap(o, r, 0, p, 3, 3, MREMAP_MAYMOVE | MREMAP_DONTUNMAP | MREMAP_FIXED,
                             (void *)(B + 8 * PAGE));
    if (q)
        scribble(q, 1, 0x68);
    remap(o, r, 1, p, 3, 3, MREMAP_MAYMOVE | MREMAP_DONTUNMAP, NULL);
}

/* old_size 0: a second mapping of the same pages (shared only). */
static void sc_duplicate(const struct ops *o, enum kind k, struct res *r)
{
    unsigned char *p = map(o, k, 0, 2, PROT_READ | PROT_WRITE, 0);
    scribble(p, 2, 0x70);
    unsigned char *q = remap(o, r, 0, p, 0, 2, MREMAP_MAYMOVE | MREMAP_FIXED, (void *)(B + 4 * PAGE));
    if (q) {
        scribble(q + PAGE, 1, 0x78);
        o->mm->msync(q, 2 * PAGE, MS_SYNC);
    }
    remap(o, r, 1, p + PAGE, 0, 1, 0, NULL); /* no room without MAYMOVE: ENOMEM */
}

/* Two mappings the kernel merges (mprotect back) are one to mremap; a
 * range across mappings it keeps apart is EFAULT when it grows or moves,
 * and a shrink across them is a munmap. */
static void sc_merge(const struct ops *o, enum kind k, struct res *r)
{
    unsigned char *p = map(o, k, 0, 4, PROT_READ | PROT_WRITE, 0);
    scribble(p, 4, 0x80);
    o->mm->mprotect(p + PAGE, PAGE, PROT_READ);
    remap(o, r, 0, p, 3, 5, MREMAP_MAYMOVE, NULL); /* across: EFAULT */
    o->mm->mprotect(p + PAGE, PAGE, PROT_READ | PROT_WRITE);
    remap(o, r, 1, p, 4, 6, 0, NULL); /* merged again: grows */
    o->mm->mprotect(p + 2 * PAGE, PAGE, PROT_READ);
    remap(o, r, 2, p + PAGE, 5, 1, 0, NULL); /* shrink across three */
    remap(o, r, 3, p + 2 * PAGE, 2, 2, MREMAP_MAYMOVE, NULL); /* no resize: the address, nothing checked */
}

/* The argument checks, in the kernel's order. */
static void sc_args(const struct ops *o, enum kind k, struct res *r)
{
    unsigned char *p = map(o, k, 0, 4, PROT_READ | PROT_WRITE, 0);
    scribble(p, 4, 0x90);
    int MF = MREMAP_MAYMOVE | MREMAP_FIXED;
    void *d = (void *)(B + 10 * PAGE);
    struct { void *old; size_t os, ns; int flags; void *na; } c[] = {
        { p, PAGE, PAGE, 8, d },                                  /* unknown flag */
        { p + 1, PAGE, PAGE, 8 | MREMAP_MAYMOVE, d },             /* both: the flag first */
        { p + 1, PAGE, 0, 0, NULL },                              /* unaligned before size 0 */
        { p, PAGE, 0, MREMAP_FIXED, NULL },                       /* size 0 before FIXED alone */
        { p, PAGE, PAGE, MREMAP_FIXED, d },                       /* FIXED without MAYMOVE */
        { p, PAGE, PAGE, MREMAP_DONTUNMAP, d },                   /* DONTUNMAP without MAYMOVE */
        { p, PAGE, 2 * PAGE, MREMAP_DONTUNMAP | MREMAP_MAYMOVE, d }, /* DONTUNMAP resizing */
        { p, PAGE, PAGE, MF, (char *)d + 1 },                     /* unaligned new address */
        { p, 2 * PAGE, 2 * PAGE, MF, p + PAGE },                  /* overlap */
        { p, PAGE, (size_t)1 << 62, MREMAP_MAYMOVE, NULL },       /* too big */
        { (void *)(B + 20 * PAGE), PAGE, 2 * PAGE, MREMAP_MAYMOVE, NULL }, /* nothing mapped */
        { p + 2 * PAGE, 3 * PAGE, 4 * PAGE, MREMAP_MAYMOVE, NULL },/* past the mapping's end */
        { p, 0, PAGE, MREMAP_MAYMOVE, NULL },                     /* duplicate: shared only */
        { p, 5 * PAGE, 5 * PAGE, 0, NULL },                       /* no resize past the end */
        { p + 3 * PAGE, 2 * PAGE, PAGE, 0, NULL },                /* shrink past the end */
    };
    for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
        errno = 0;
        void *q = o->mremap(c[i].old, c[i].os, c[i].ns, c[i].flags, c[i].na);
        long rr = q == MAP_FAILED ? -1 : q == c[i].old ? 0 : -2;
        r->ret[i % 4] = r->ret[i % 4] * 7 + rr;
        r->err[i % 4] = r->err[i % 4] * 131 + (q == MAP_FAILED ? errno : 0);
        if (q != MAP_FAILED && q != c[i].old)
            o->mm->munmap(q, c[i].ns); /* the duplicate */
    }
}

/* After fork: the parent moves and grows a private mapping whose pages
 * the child shares copy-on-write, writes it, and the child must still see
 * the bytes of the fork; the child moves its own and writes too. */
static void sc_fork(const struct ops *o, enum kind k, struct res *r)
{
    unsigned char *p = map(o, k, 0, 3, PROT_READ | PROT_WRITE, 0);
    scribble(p, 3, 0xa0);
    int go[2], back[2];
    if (pipe(go) != 0 || pipe(back) != 0)
        tap_bail("pipe");
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        char c;
        if (read(go[0], &c, 1) != 1)
            _exit(1);
        uint64_t h = page_hash(p) ^ (page_hash(p + PAGE) * 3) ^ (page_hash(p + 2 * PAGE) * 5);
        unsigned char *q = o->mremap(p, 3 * PAGE, 4 * PAGE, MREMAP_MAYMOVE | MREMAP_FIXED, (void *)(B + 16 * PAGE));
        if (q != MAP_FAILED) {
            q[PAGE + 3] = 0x5c;
            h = h * 31 + page_hash(q + PAGE) + (k == SHARED_ANON ? 0 : page_hash(q + 3 * PAGE) * 7);
        }
        if (write(back[1], &h, sizeof h) != sizeof h)
            _exit(1);
        vg_abrupt_end(); /* _exit with libumm's daemon running (util.h) */
        _exit(0);
    }
    unsigned char *q = remap(o, r, 0, p, 3, 4, MREMAP_MAYMOVE | MREMAP_FIXED, (void *)(B + 8 * PAGE));
    if (q) {
        scribble(q, k == SHARED_ANON ? 3 : 4, 0xb0); /* its 4th page is past its size: SIGBUS */
        q = remap(o, r, 1, q, 4, 2, 0, NULL);
    }
    if (write(go[1], "g", 1) != 1 || read(back[0], &r->child, sizeof r->child) != sizeof r->child)
        tap_bail("fork: the child did not answer");
    int st;
    waitpid(pid, &st, 0);
    close(go[0]);
    close(go[1]);
    close(back[0]);
    close(back[1]);
}

static void run(const struct ops *o, scenario_fn *fn, enum kind k, struct res *r)
{
    memset(r, 0, sizeof *r);
    placed = 0;
    cur_fd = tmpfile_make(8 * PAGE, SEED, O_RDWR, NULL);
    kcmp_require_free(B, NW * PAGE);
    fn(o, k, r);
    snap(B, NW, r->w, 1);
    if (placed)
        snap(placed, placed_len / PAGE < NN ? placed_len / PAGE : NN, r->n, 1);
    /* The file after munmap, which writes back what msync did not. */
    o->mm->munmap((void *)B, NW * PAGE);
    if (placed)
        o->mm->munmap((void *)placed, placed_len);
    r->fsize = file_bytes(cur_fd, r->file, sizeof r->file);
    close(cur_fd);
}

static int same(const struct res *k, const struct res *u)
{
    int ok = 1;
    for (int i = 0; i < 4; i++)
        if (k->ret[i] != u->ret[i] || k->err[i] != u->err[i]) {
            tap_diag("call %d: kernel %ld errno %d, libumm %ld errno %d", i, k->ret[i], k->err[i], u->ret[i],
                     u->err[i]);
            ok = 0;
        }
    if (!same_views(k->w, u->w, NW))
        ok = 0;
    if (!same_views(k->n, u->n, NN)) {
        tap_diag("(at the address the kernel placed)");
        ok = 0;
    }
    if (k->fsize != u->fsize || memcmp(k->file, u->file, sizeof k->file) != 0) {
        tap_diag("file bytes differ (size %ld and %ld)", k->fsize, u->fsize);
        ok = 0;
    }
    if (k->child != u->child) {
        tap_diag("the child saw other bytes");
        ok = 0;
    }
    return ok;
}

int main(void)
{
    static const struct { const char *name; scenario_fn *fn; } sc[] = {
        { "shrink", sc_shrink },
        { "grow in place", sc_grow },
        { "grow where the space is taken (ENOMEM, then MAYMOVE)", sc_grow_blocked },
        { "MREMAP_FIXED moves (over a mapping, growing, shrinking) and msync", sc_fixed },
        { "MREMAP_FIXED over several mappings and a hole", sc_fixed_multi },
        { "MREMAP_DONTUNMAP", sc_dontunmap },
        { "old_size 0 duplicates", sc_duplicate },
        { "merged and separate mappings", sc_merge },
        { "argument checks in the kernel's order", sc_args },
        { "after fork", sc_fork },
    };
    static struct res k, u;
    for (size_t s = 0; s < sizeof sc / sizeof sc[0]; s++)
        for (int kind = 0; kind < NKINDS; kind++) {
            run(&K, sc[s].fn, (enum kind)kind, &k);
            run(&U, sc[s].fn, (enum kind)kind, &u);
            int eq = same(&k, &u);
            if (!eq && under_valgrind())
                /* The kernel's side is then Valgrind's own mremap (3.19):
                 * no growth in place, no moves of several mappings, its own
                 * errno for some checks.  libumm's side still runs under
                 * memcheck. */
                tap_skip("under Valgrind the kernel's mremap is Valgrind's", "%s: %s mapping", sc[s].name,
                         kind_name[kind]);
            else
                ok(eq, "%s: %s mapping", sc[s].name, kind_name[kind]);
        }

    /* The C library's mremap: on libumm memory it is umm_mremap (the
     * mapping grows in libumm's statistics, and still traps); elsewhere
     * the kernel's. */
    kcmp_require_free(B, NW * PAGE);
    unsigned char *p = umm_mmap((void *)B, PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
    p[5] = 42;
    uint64_t before = stat_get("mappings");
    unsigned char *q = mremap(p, PAGE, 3 * PAGE, MREMAP_MAYMOVE | MREMAP_FIXED, (void *)(B + 8 * PAGE));
    ok(q == (void *)(B + 8 * PAGE) && q[5] == 42, "mremap on libumm memory moves it");
    ok(stat_get("mappings") >= before && umm_munmap(q, 3 * PAGE) == 0 && stat_get("mappings") == before - 1,
       "through umm_mremap: libumm maps the new place");
    unsigned char *h = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    h[3] = 7;
    unsigned char *h2 = mremap(h, PAGE, 64 * PAGE, MREMAP_MAYMOVE);
    ok(h2 != MAP_FAILED && h2[3] == 7 && stat_get("mappings") == before - 1,
       "mremap elsewhere is the kernel's");
    munmap(h2, 64 * PAGE);
    check_released();
    return tap_done();
}
