/* Promise: a private mapping split in pieces -- by a partial munmap, or by
 * mprotect of its head, its tail or a middle part (and merged back by
 * mprotect) -- keeps every piece's bytes, and a fresh page faulted in one
 * piece never lands on the frame of a page at the same index in another:
 * private anonymous memory and private file mappings with copies, before
 * and after fork, with MADV_DONTNEED and mremap of a piece.  Each scenario
 * runs first on the kernel, then on libumm; every snapshot of libumm's
 * pages is compared byte for byte with the kernel's at the same step (a
 * TAP point each, reported as it is taken, so that a libumm that dies on
 * a later step has said what it got wrong before), and every call must
 * return as the kernel's. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>
#include "kcmp.h"

#define RW (PROT_READ | PROT_WRITE)
#define B KCMP_BASE
#define NP 32      /* pages of the area the scenarios use, from B */
#define MAXSNAP 16 /* snapshots per scenario */
#define MAXCALL 64 /* calls per scenario (a child's from MAXCALL / 2) */
#define FSEED 77

/* ------------------------------------------------------ the recordings */

struct snapshot {
    int taken;
    int first, n;      /* pages [first, first+n) */
    int read[NP];      /* probe_read: 0, or signal * 1000 + si_code */
    unsigned char bytes[NP][PAGE];
};

struct run {
    struct snapshot snap[MAXSNAP];
    int rc[MAXCALL], err[MAXCALL], called[MAXCALL];
    const char *label[MAXSNAP]; /* string constants: the same in a child */
};

/* Both runs in memory a forked child can write (the kernel's own). */
static struct run *runs; /* [0]: the kernel's, [1]: libumm's */

struct ctx {
    const char *scenario;
    int umm;          /* 0: the kernel run, 1: libumm's */
    int in_child;     /* snapshots are compared by the parent afterwards */
    int ncall;        /* the next call's slot */
};

static void *k_mremap(void *a, size_t o, size_t n, int f, void *to)
{
    return mremap(a, o, n, f, to);
}
static void *u_mremap(void *a, size_t o, size_t n, int f, void *to)
{
    return umm_mremap(a, o, n, f, to);
}

static const struct mm_ops *ops_of(const struct ctx *c)
{
    return c->umm ? &umm_ops : &kernel_ops;
}

static unsigned char *at(int page)
{
    return (unsigned char *)(B + (uintptr_t)page * PAGE);
}

/* Record a call's outcome (-2: mmap or mremap put it elsewhere), to be
 * compared with the kernel's at the end of the scenario. */
static void called(struct ctx *c, long rc)
{
    int i = c->ncall++;
    if (i >= MAXCALL)
        tap_bail("%s: too many calls", c->scenario);
    struct run *r = &runs[c->umm];
    r->rc[i] = rc == -1 ? -1 : 0;
    r->err[i] = rc == -1 ? errno : 0;
    r->called[i] = 1;
}

static void op_mmap(struct ctx *c, int page, int n, int prot, int flags, int fd)
{
    void *p = ops_of(c)->mmap(at(page), (size_t)n * PAGE, prot, flags | MAP_FIXED_NOREPLACE, fd, 0);
    called(c, p == MAP_FAILED ? -1 : p == at(page) ? 0 : -2);
}
static void op_munmap(struct ctx *c, int page, int n)
{
    called(c, ops_of(c)->munmap(at(page), (size_t)n * PAGE));
}
static void op_mprotect(struct ctx *c, int page, int n, int prot)
{
    called(c, ops_of(c)->mprotect(at(page), (size_t)n * PAGE, prot));
}
static void op_madvise(struct ctx *c, int page, int n, int advice)
{
    called(c, ops_of(c)->madvise(at(page), (size_t)n * PAGE, advice));
}
static void op_mremap(struct ctx *c, int from, int n, int to)
{
    void *(*f)(void *, size_t, size_t, int, void *) = c->umm ? u_mremap : k_mremap;
    void *p = f(at(from), (size_t)n * PAGE, (size_t)n * PAGE, MREMAP_MAYMOVE | MREMAP_FIXED, at(to));
    called(c, p == MAP_FAILED ? -1 : p == at(to) ? 0 : -2);
}

/* Write every byte of pages [page, page+n) (a first write: a fresh page
 * faults in, a shared one is copied). */
static void fill(int page, int n, unsigned tag)
{
    for (int p = page; p < page + n; p++)
        for (size_t i = 0; i < PAGE; i++)
            at(p)[i] = pattern(i, tag * 1000 + (unsigned)p);
}

/* Write a few bytes of each of pages [page, page+n), keeping the rest. */
static void poke(int page, int n, unsigned tag)
{
    for (int p = page; p < page + n; p++)
        for (size_t i = 0; i < PAGE; i += 1000)
            at(p)[i + tag % 7] = (unsigned char)(tag * 16 + (unsigned)p);
}

/* Compare libumm's snapshot s with the kernel's: one TAP point. */
static void compare_snap(const struct ctx *c, int s, const char *label)
{
    const struct snapshot *k = &runs[0].snap[s], *u = &runs[1].snap[s];
    int same = k->taken && u->taken;
    if (!u->taken)
        tap_diag("%s: libumm never got to this step", c->scenario);
    for (int p = k->first; same && p < k->first + k->n; p++) {
        if (k->read[p] != u->read[p]) {
            tap_diag("page %d: the kernel's access %d, libumm's %d", p, k->read[p], u->read[p]);
            same = 0;
        } else if (k->read[p] == ACC_OK && memcmp(k->bytes[p], u->bytes[p], PAGE) != 0) {
            size_t i = 0, nbad = 0;
            while (k->bytes[p][i] == u->bytes[p][i])
                i++;
            for (size_t j = 0; j < PAGE; j++)
                nbad += k->bytes[p][j] != u->bytes[p][j];
            tap_diag("page %d: %zu bytes differ, the first at %zu: the kernel's %#x, libumm's %#x", p, nbad, i,
                     k->bytes[p][i], u->bytes[p][i]);
            same = 0;
        }
    }
    ok(same, "%s: %s: every byte of pages %d-%d as the kernel's", c->scenario, label, k->first,
       k->first + k->n - 1);
}

/* Look at pages [first, first+n) (reading every byte) as snapshot s. */
static void take(struct ctx *c, int s, int first, int n, const char *label)
{
    struct snapshot *v = &runs[c->umm].snap[s];
    v->first = first;
    v->n = n;
    for (int p = first; p < first + n; p++) {
        v->read[p] = probe_read(at(p));
        if (v->read[p] == ACC_OK)
            memcpy(v->bytes[p], at(p), PAGE);
    }
    v->taken = 1;
    runs[c->umm].label[s] = label;
    if (c->umm && !c->in_child)
        compare_snap(c, s, label);
}

/* The calls of both runs, compared at the end of a scenario. */
static void compare_calls(const struct ctx *c)
{
    int same = 1;
    for (int i = 0; i < MAXCALL; i++) {
        if (!runs[0].called[i] && !runs[1].called[i])
            continue;
        if (runs[0].rc[i] != runs[1].rc[i] || runs[0].err[i] != runs[1].err[i] ||
            runs[0].called[i] != runs[1].called[i]) {
            tap_diag("call %d: the kernel's %d (%s), libumm's %d (%s)%s", i, runs[0].rc[i], strerror(runs[0].err[i]),
                     runs[1].rc[i], strerror(runs[1].err[i]), runs[1].called[i] ? "" : " (not made)");
            same = 0;
        }
    }
    int kernel_ok = 1;
    for (int i = 0; i < MAXCALL; i++)
        kernel_ok &= !runs[0].called[i] || runs[0].rc[i] == 0;
    ok(kernel_ok, "%s: kernel: every call succeeded (the test is right)", c->scenario);
    ok(same, "%s: every call returned as the kernel's", c->scenario);
}

/* ----------------------------------------------------------------- fork */

static pid_t child_start(struct ctx *c)
{
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0)
        tap_bail("fork: %s", strerror(errno));
    if (pid == 0) {
        tap_quiet();
        vg_abrupt_end(); /* _exit with libumm's daemon running */
        alarm(30);
        c->in_child = 1;
        c->ncall = MAXCALL / 2;
    }
    return pid;
}

/* Reap the child; in libumm's run, compare its snapshots [s0, s1). */
static void child_done(struct ctx *c, pid_t pid, int s0, int s1)
{
    int st = 0;
    waitpid(pid, &st, 0);
    if (!c->umm) {
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
            tap_diag("%s: kernel: the child ended with status %#x", c->scenario, st);
        return;
    }
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
        tap_diag("%s: libumm: the child ended with status %#x (signal %d)", c->scenario, st,
                 WIFSIGNALED(st) ? WTERMSIG(st) : 0);
    for (int s = s0; s < s1; s++)
        compare_snap(c, s, runs[0].label[s] ? runs[0].label[s] : "in the child");
}

/* ------------------------------------------------------------ scenarios */

static int file_fd;

/* Split by mprotect, and only the tail written: then MADV_DONTNEED of part
 * of the tail, mremap of the tail, and the head written last. */
static void tail_only(struct ctx *c)
{
    op_mmap(c, 0, 16, RW, MAP_PRIVATE | MAP_ANONYMOUS, -1);
    op_mprotect(c, 6, 10, PROT_READ);
    op_mprotect(c, 6, 10, RW);
    fill(6, 6, 1);
    take(c, 0, 6, 10, "the tail written after the split");
    op_madvise(c, 6, 3, MADV_DONTNEED);
    take(c, 1, 6, 10, "the tail after MADV_DONTNEED of its first pages");
    fill(7, 2, 2);
    op_mremap(c, 6, 10, 20);
    take(c, 2, 20, 10, "the tail moved by mremap");
    fill(0, 6, 3);
    poke(20, 10, 4);
    take(c, 3, 0, NP, "the head written after the tail, the moved tail written");
    op_munmap(c, 0, NP);
}

/* Split by mprotect before fork, the tail written; the child writes the
 * tail (copy-on-write), then the head; the parent afterwards. */
static void split_then_fork(struct ctx *c)
{
    op_mmap(c, 0, 16, RW, MAP_PRIVATE | MAP_ANONYMOUS, -1);
    op_mprotect(c, 8, 8, PROT_READ);
    op_mprotect(c, 8, 8, RW);
    fill(8, 6, 5);
    pid_t pid = child_start(c);
    if (pid == 0) {
        poke(8, 8, 6);
        take(c, 0, 8, 8, "in the child: the tail after its copy-on-write");
        fill(0, 6, 7);
        take(c, 1, 0, 16, "in the child: the head written after the tail");
        _exit(0);
    }
    child_done(c, pid, 0, 2);
    take(c, 2, 0, 16, "the parent's pages after the child's writes");
    fill(0, 8, 8);
    poke(8, 8, 9);
    take(c, 3, 0, 16, "the parent's pages after it wrote both pieces");
    op_munmap(c, 0, 16);
}

/* Written, forked, then split in the child (by munmap of a hole and
 * mprotect of a middle part) and written there, and split in the parent
 * (mprotect of a middle part, then back: merged) and written. */
static void fork_then_split(struct ctx *c)
{
    op_mmap(c, 0, 24, RW, MAP_PRIVATE | MAP_ANONYMOUS, -1);
    fill(0, 12, 10); /* pages 12-23 fresh at the fork */
    pid_t pid = child_start(c);
    if (pid == 0) {
        op_munmap(c, 10, 2);
        op_mprotect(c, 4, 4, PROT_READ);
        fill(12, 12, 11); /* fresh pages, same index as resident ones before the split */
        take(c, 0, 0, 24, "in the child: split, fresh tail pages written");
        op_mprotect(c, 4, 4, RW);
        poke(0, 10, 12);
        take(c, 1, 0, 24, "in the child: every piece written");
        _exit(0);
    }
    op_mprotect(c, 8, 8, PROT_READ);
    child_done(c, pid, 0, 2);
    take(c, 2, 0, 24, "the parent after the child split its copy");
    fill(16, 8, 13);
    op_mprotect(c, 8, 8, RW);
    poke(0, 24, 14);
    take(c, 3, 0, 24, "the parent split by mprotect and back, every piece written");
    op_munmap(c, 0, 24);
}

/* The case: the head written, a hole punched, fresh tail pages at
 * the head's indices faulted in while the head's pages are resident. */
static void head_then_tail(struct ctx *c)
{
    op_mmap(c, 0, 16, RW, MAP_PRIVATE | MAP_ANONYMOUS, -1);
    fill(0, 6, 15);
    op_munmap(c, 6, 2);
    fill(8, 6, 16);
    take(c, 0, 0, 16, "head written, hole punched, tail written");
    poke(0, 6, 17);
    poke(8, 8, 17);
    take(c, 1, 0, 16, "every page written again");
    op_munmap(c, 0, 16);
}

/* mprotect of a middle part: three pieces; read fresh in the middle and
 * tail while the head is resident; back to one protection (merged). */
static void middle(struct ctx *c)
{
    op_mmap(c, 0, 24, RW, MAP_PRIVATE | MAP_ANONYMOUS, -1);
    fill(0, 8, 18);
    op_mprotect(c, 8, 8, PROT_READ);
    take(c, 0, 0, 24, "a middle part made read-only, every page read");
    op_mprotect(c, 8, 8, RW);
    fill(8, 16, 19);
    take(c, 1, 0, 24, "back to read-write, the middle and tail written");
    op_mprotect(c, 0, 24, PROT_READ);
    op_mprotect(c, 0, 24, RW);
    poke(0, 24, 20);
    take(c, 2, 0, 24, "the whole made read-only and back, every page written");
    op_munmap(c, 0, 24);
}

/* A private file mapping with copies: split by munmap and by mprotect of
 * the head, copies made on both sides at the same indices. */
static void file_copies(struct ctx *c)
{
    op_mmap(c, 0, 24, RW, MAP_PRIVATE, file_fd);
    poke(0, 6, 21); /* copies of the head */
    op_munmap(c, 6, 2);
    poke(8, 6, 22); /* copies in the tail, the head's indices */
    take(c, 0, 0, 24, "copies in the head, a hole, copies in the tail");
    op_mprotect(c, 0, 3, PROT_READ);
    take(c, 1, 0, 24, "the head's head made read-only");
    op_mprotect(c, 0, 3, RW);
    poke(0, 6, 23);
    poke(14, 10, 24);
    take(c, 2, 0, 24, "back to read-write, every page copied");
    op_madvise(c, 8, 4, MADV_DONTNEED);
    take(c, 3, 0, 24, "MADV_DONTNEED of tail copies: the file's bytes again");
    op_munmap(c, 0, 24);
}

/* A private file mapping split by mprotect, copies in both pieces, fork:
 * the child copies again, then the parent. */
static void file_fork(struct ctx *c)
{
    op_mmap(c, 0, 16, RW, MAP_PRIVATE, file_fd);
    poke(0, 4, 25);
    op_mprotect(c, 4, 12, PROT_READ);
    op_mprotect(c, 4, 12, RW);
    poke(4, 6, 26);
    pid_t pid = child_start(c);
    if (pid == 0) {
        poke(0, 16, 27);
        take(c, 0, 0, 16, "in the child: every page written");
        _exit(0);
    }
    child_done(c, pid, 0, 1);
    take(c, 1, 0, 16, "the parent's pages after the child's copies");
    poke(0, 16, 28);
    take(c, 2, 0, 16, "the parent wrote every page");
    op_munmap(c, 0, 16);
}

struct scenario {
    const char *name;
    void (*fn)(struct ctx *);
};
/* Those that can show wrong bytes before anything else goes wrong come
 * first: a libumm that dies of an internal check on a later one has told
 * what it got wrong by then. */
static const struct scenario scenarios[] = {
    { "anon, split by mprotect, tail written", tail_only },
    { "anon, split by mprotect, then fork", split_then_fork },
    { "anon, fork, then split", fork_then_split },
    { "anon, split by munmap, head then tail", head_then_tail },
    { "anon, mprotect of a middle part", middle },
    { "file copies, split by munmap and mprotect", file_copies },
    { "file copies, split, then fork", file_fork },
};

/* test-split-private [N]: only scenario N (from 0), to look at one. */
int main(int argc, char **argv)
{
    int only = argc > 1 ? atoi(argv[1]) : -1;
    runs = mmap(NULL, 2 * sizeof *runs, RW, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (runs == MAP_FAILED)
        tap_bail("mmap: %s", strerror(errno));
    file_fd = tmpfile_make(24 * PAGE, FSEED, O_RDONLY, NULL);
    for (size_t i = 0; i < sizeof scenarios / sizeof scenarios[0]; i++) {
        if (only >= 0 && (size_t)only != i)
            continue;
        memset(runs, 0, 2 * sizeof *runs);
        struct ctx c = { .scenario = scenarios[i].name };
        kcmp_require_free(B, NP * PAGE);
        scenarios[i].fn(&c);
        struct ctx u = { .scenario = scenarios[i].name, .umm = 1 };
        kcmp_require_free(B, NP * PAGE);
        scenarios[i].fn(&u);
        compare_calls(&u);
    }
    close(file_fd);
    munmap(runs, 2 * sizeof *runs);
    check_released();
    return tap_done();
}
