/* Promise: umm_munmap, umm_msync, umm_mprotect and umm_madvise check their
 * arguments as the kernel's calls do: a table of cases (unaligned
 * addresses, zero and wrapping lengths, unknown flags, MS_SYNC|MS_ASYNC,
 * unknown advice, ranges with unmapped pages, two errors at once) is run
 * against the kernel and against libumm on the same layout, and each gives
 * the same result, the same errno, and leaves every page in the same state
 * (readable, writable, same bytes) as the kernel leaves it: a bad call
 * changes nothing, a call the kernel carries out in part is carried out in
 * the same part. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include "kcmp.h"

#define SEED 22
#define NPAGES 8                              /* the layout: pages 0-2 and 4-7 mapped, 3 a hole */
#define PROBE_PAGES 10                        /* and 8-9, free, probed too */
#define BASE ((uintptr_t)0x200000000000)     /* far from heap, stack and mmap_base */
#define TOP ((uintptr_t)1 << 47)

#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22
#endif

enum op { MUNMAP, MSYNC, MPROTECT, MADVISE };
static const char *const opname[] = { "munmap", "msync", "mprotect", "madvise" };

/* The address: a page of the layout plus a byte offset, or absolute. */
struct ocase {
    enum op op;
    const char *name;
    long page;      /* page of the layout; -1: absolute address in `abs` */
    long byte;      /* added to the address */
    uintptr_t abs;
    size_t len;
    int arg;        /* msync flags, mprotect prot, madvise advice */
    int expect;     /* errno the issue names (0: success), -1: whatever Linux says */
};

#define P PAGE
#define RW (PROT_READ | PROT_WRITE)

static const struct ocase cases[] = {
    { MUNMAP, "unaligned address", 0, 1, 0, P, 0, EINVAL },
    { MUNMAP, "length 0", 0, 0, 0, 0, 0, EINVAL },
    { MUNMAP, "length 0, unaligned", 0, 1, 0, 0, 0, EINVAL },
    { MUNMAP, "length SIZE_MAX", 0, 0, 0, SIZE_MAX, 0, EINVAL },
    { MUNMAP, "length wraps past the address space", 0, 0, 0, SIZE_MAX - 2 * P, 0, EINVAL },
    { MUNMAP, "address at the end of the address space", -1, 0, TOP, P, 0, EINVAL },
    { MUNMAP, "the last user page", -1, 0, TOP - P, P, 0, -1 },
    { MUNMAP, "a range with a hole", 2, 0, 0, 3 * P, 0, 0 },
    { MUNMAP, "a range wholly unmapped", 8, 0, 0, 2 * P, 0, 0 },
    { MUNMAP, "a length not a multiple of the page size", 5, 0, 0, P + 1, 0, 0 },

    { MSYNC, "unknown flag", 0, 0, 0, P, 0x8, EINVAL },
    { MSYNC, "MS_SYNC|MS_ASYNC", 0, 0, 0, P, MS_SYNC | MS_ASYNC, EINVAL },
    { MSYNC, "unaligned address", 0, 1, 0, P, MS_SYNC, EINVAL },
    { MSYNC, "length 0", 0, 0, 0, 0, MS_SYNC, 0 },
    { MSYNC, "length 0, unaligned", 0, 1, 0, 0, MS_SYNC, EINVAL },
    { MSYNC, "length 0, unknown flag", 0, 0, 0, 0, 0x8, EINVAL },
    { MSYNC, "unaligned + MS_SYNC|MS_ASYNC", 0, 1, 0, P, MS_SYNC | MS_ASYNC, EINVAL },
    { MSYNC, "length wraps", 1, 0, 0, SIZE_MAX - P, MS_SYNC, ENOMEM },
    { MSYNC, "whole first mapping, MS_SYNC", 0, 0, 0, 3 * P, MS_SYNC, 0 },
    { MSYNC, "whole first mapping, MS_ASYNC|MS_INVALIDATE", 0, 0, 0, 3 * P, MS_ASYNC | MS_INVALIDATE, 0 },
    { MSYNC, "whole first mapping, flags 0", 0, 0, 0, 3 * P, 0, 0 },
    { MSYNC, "MS_SYNC|MS_INVALIDATE", 4, 0, 0, 4 * P, MS_SYNC | MS_INVALIDATE, 0 },
    { MSYNC, "a range with a hole, MS_SYNC", 2, 0, 0, 3 * P, MS_SYNC, ENOMEM },
    { MSYNC, "a range with a hole, MS_ASYNC", 2, 0, 0, 3 * P, MS_ASYNC, ENOMEM },
    { MSYNC, "a range with a hole, MS_INVALIDATE", 2, 0, 0, 3 * P, MS_INVALIDATE, ENOMEM },
    { MSYNC, "a range with a hole, flags 0", 2, 0, 0, 3 * P, 0, ENOMEM },
    { MSYNC, "a range ending in the hole, MS_SYNC", 2, 0, 0, 2 * P, MS_SYNC, ENOMEM },
    { MSYNC, "a range ending in the hole, MS_ASYNC", 2, 0, 0, 2 * P, MS_ASYNC, ENOMEM },
    { MSYNC, "a range ending in the hole, MS_INVALIDATE", 2, 0, 0, 2 * P, MS_INVALIDATE, ENOMEM },
    { MSYNC, "the hole alone, MS_SYNC", 3, 0, 0, P, MS_SYNC, ENOMEM },
    { MSYNC, "the hole alone, MS_ASYNC", 3, 0, 0, P, MS_ASYNC, ENOMEM },
    { MSYNC, "beyond the last mapping, MS_SYNC", 7, 0, 0, 2 * P, MS_SYNC, ENOMEM },
    { MSYNC, "beyond the last mapping, MS_ASYNC", 7, 0, 0, 2 * P, MS_ASYNC, ENOMEM },
    { MSYNC, "wholly unmapped, MS_ASYNC", 8, 0, 0, 2 * P, MS_ASYNC, ENOMEM },

    { MPROTECT, "unaligned address", 0, 1, 0, P, PROT_READ, EINVAL },
    { MPROTECT, "length 0", 0, 0, 0, 0, PROT_READ, 0 },
    { MPROTECT, "length 0, unaligned", 0, 1, 0, 0, PROT_READ, EINVAL },
    { MPROTECT, "length 0, unknown prot bits", 0, 0, 0, 0, 0x10, 0 },
    { MPROTECT, "unknown prot bits", 0, 0, 0, P, PROT_READ | 0x10, EINVAL },
    { MPROTECT, "PROT_GROWSDOWN|PROT_GROWSUP", 0, 0, 0, P, PROT_READ | PROT_GROWSDOWN | PROT_GROWSUP, EINVAL },
    { MPROTECT, "PROT_GROWSDOWN on a mapping that does not grow", 1, 0, 0, P, PROT_READ | PROT_GROWSDOWN, -1 },
    { MPROTECT, "PROT_GROWSUP on a mapping that does not grow", 1, 0, 0, P, PROT_READ | PROT_GROWSUP, -1 },
    { MPROTECT, "length wraps", 1, 0, 0, SIZE_MAX - P, PROT_READ, ENOMEM },
    { MPROTECT, "unaligned + unknown prot bits", 0, 1, 0, P, 0x10, EINVAL },
    { MPROTECT, "a hole + unknown prot bits", 3, 0, 0, P, 0x10, EINVAL },
    { MPROTECT, "PROT_READ on the middle page", 1, 0, 0, P, PROT_READ, 0 },
    { MPROTECT, "PROT_SEM", 1, 0, 0, P, RW | 0x8, -1 },
    { MPROTECT, "PROT_EXEC", 1, 0, 0, P, PROT_READ | PROT_EXEC, 0 },
    { MPROTECT, "a length not a multiple of the page size", 4, 0, 0, P + 1, PROT_READ, 0 },
    { MPROTECT, "a range with a hole", 1, 0, 0, 4 * P, PROT_READ, ENOMEM },
    { MPROTECT, "a range starting in the hole", 3, 0, 0, 2 * P, PROT_READ, ENOMEM },
    { MPROTECT, "beyond the last mapping", 6, 0, 0, 3 * P, PROT_NONE, ENOMEM },
    { MPROTECT, "wholly unmapped", 8, 0, 0, 2 * P, PROT_READ, ENOMEM },

    { MADVISE, "unknown advice", 0, 0, 0, P, 999, EINVAL },
    { MADVISE, "negative advice", 0, 0, 0, P, -1, EINVAL },
    { MADVISE, "unaligned address", 0, 1, 0, P, MADV_NORMAL, EINVAL },
    { MADVISE, "length 0", 0, 0, 0, 0, MADV_DONTNEED, 0 },
    { MADVISE, "length 0, unknown advice", 0, 0, 0, 0, 999, EINVAL },
    { MADVISE, "length 0, unaligned", 0, 1, 0, 0, MADV_NORMAL, EINVAL },
    { MADVISE, "unaligned + unknown advice", 0, 1, 0, P, 999, EINVAL },
    { MADVISE, "length SIZE_MAX", 0, 0, 0, SIZE_MAX, MADV_NORMAL, EINVAL },
    { MADVISE, "length wraps", 1, 0, 0, SIZE_MAX - P, MADV_NORMAL, EINVAL },
    { MADVISE, "the hole + unknown advice", 3, 0, 0, P, 999, EINVAL },
    { MADVISE, "MADV_NORMAL", 0, 0, 0, 3 * P, MADV_NORMAL, 0 },
    { MADVISE, "MADV_RANDOM on part of a mapping", 1, 0, 0, P, MADV_RANDOM, 0 },
    { MADVISE, "MADV_SEQUENTIAL", 4, 0, 0, 4 * P, MADV_SEQUENTIAL, 0 },
    { MADVISE, "MADV_WILLNEED", 4, 0, 0, 4 * P, MADV_WILLNEED, 0 },
    { MADVISE, "MADV_DONTNEED, shared", 0, 0, 0, 3 * P, MADV_DONTNEED, 0 },
    { MADVISE, "MADV_FREE on a file mapping", 0, 0, 0, P, MADV_FREE, EINVAL },
    { MADVISE, "MADV_WIPEONFORK on a file mapping", 0, 0, 0, P, MADV_WIPEONFORK, EINVAL },
    { MADVISE, "MADV_DONTFORK", 0, 0, 0, P, MADV_DONTFORK, 0 },
    { MADVISE, "MADV_DODUMP", 0, 0, 0, P, MADV_DODUMP, 0 },
    { MADVISE, "MADV_POPULATE_READ", 4, 0, 0, 2 * P, MADV_POPULATE_READ, 0 },
    { MADVISE, "a length not a multiple of the page size", 4, 0, 0, P + 1, MADV_DONTNEED, 0 },
    { MADVISE, "a range with a hole, MADV_NORMAL", 2, 0, 0, 3 * P, MADV_NORMAL, ENOMEM },
    { MADVISE, "a range with a hole, MADV_WILLNEED", 2, 0, 0, 3 * P, MADV_WILLNEED, ENOMEM },
    { MADVISE, "a range with a hole, MADV_DONTNEED", 2, 0, 0, 3 * P, MADV_DONTNEED, ENOMEM },
    { MADVISE, "the hole alone", 3, 0, 0, P, MADV_NORMAL, ENOMEM },
    { MADVISE, "beyond the last mapping", 7, 0, 0, 2 * P, MADV_RANDOM, ENOMEM },
    { MADVISE, "wholly unmapped", 8, 0, 0, 2 * P, MADV_NORMAL, ENOMEM },
    { MADVISE, "a hole + MADV_FREE on a file mapping", 2, 0, 0, 3 * P, MADV_FREE, EINVAL },
};

static int fd;

/* The state of each page after a call, to compare. */
struct pstate {
    int read, write, bytes;
};

struct result {
    struct outcome o;
    struct pstate page[PROBE_PAGES];
};

static void layout(const struct mm_ops *ops)
{
    /* Make sure nothing is in the way (MAP_FIXED would clobber it). */
    void *r = mmap((void *)BASE, PROBE_PAGES * PAGE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE,
                   -1, 0);
    if (r != (void *)BASE)
        tap_bail("the area at %#lx is not free", (unsigned long)BASE);
    munmap(r, PROBE_PAGES * PAGE);
    r = ops->mmap((void *)BASE, NPAGES * PAGE, RW, MAP_SHARED | MAP_FIXED_NOREPLACE, fd, 0);
    if (r != (void *)BASE)
        tap_bail("%s: mapping the layout: %s", ops->name, strerror(errno));
    if (ops->munmap((void *)(BASE + 3 * PAGE), PAGE) != 0)
        tap_bail("%s: making the hole: %s", ops->name, strerror(errno));
    /* Touch every mapped page, so that libumm has them resident. */
    for (int i = 0; i < NPAGES; i++)
        if (i != 3 && *(volatile unsigned char *)(BASE + (uintptr_t)i * PAGE + 7) != pattern(i * PAGE + 7, SEED))
            tap_bail("%s: the layout does not read the file", ops->name);
}

static struct result run(const struct mm_ops *ops, const struct ocase *c)
{
    struct result res;
    layout(ops);
    uintptr_t a = (c->page >= 0 ? BASE + (uintptr_t)c->page * PAGE : c->abs) + (uintptr_t)c->byte;
    long rc = -2;
    /* Many cases hand the kernel a range with unmapped pages on purpose;
     * memcheck need not report the kernel's calls (libumm's, it must). */
    if (!ops->is_umm)
        vg_quiet(1);
    errno = 0;
    switch (c->op) {
    case MUNMAP: rc = ops->munmap((void *)a, c->len); break;
    case MSYNC: rc = ops->msync((void *)a, c->len, c->arg); break;
    case MPROTECT: rc = ops->mprotect((void *)a, c->len, c->arg); break;
    case MADVISE: rc = ops->madvise((void *)a, c->len, c->arg); break;
    }
    res.o = outcome_of(rc);
    if (!ops->is_umm)
        vg_quiet(0);
    for (int i = 0; i < PROBE_PAGES; i++) {
        unsigned char *p = (unsigned char *)(BASE + (uintptr_t)i * PAGE);
        struct pstate *s = &res.page[i];
        s->read = probe_read(p);
        s->bytes = 1;
        if (s->read == ACC_OK)
            for (size_t k = 0; k < PAGE; k++)
                if (p[k] != pattern(i * PAGE + k, SEED))
                    s->bytes = 0;
        s->write = probe_write(p);
    }
    if (ops->munmap((void *)BASE, PROBE_PAGES * PAGE) != 0)
        tap_bail("%s: cleaning up: %s", ops->name, strerror(errno));
    return res;
}

int main(void)
{
    char path[512];
    fd = tmpfile_make(NPAGES * PAGE, SEED, O_RDWR, path);
    unlink(path);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const struct ocase *c = &cases[i];
        struct result k = run(&kernel_ops, c);
        struct result u = run(&umm_ops, c);
        if (c->expect >= 0)
            is_int(k.o.err, c->expect, "%s [%s]: the kernel gives %s (the test is right)", opname[c->op], c->name,
                   c->expect ? strerror(c->expect) : "success");
        int same = k.o.rc == u.o.rc && k.o.err == u.o.err;
        ok(same, "%s [%s]: libumm returns as the kernel: %s", opname[c->op], c->name,
           k.o.rc ? strerror(k.o.err) : "success");
        if (!same)
            tap_diag("kernel: %d %s, libumm: %d %s", k.o.rc, k.o.rc ? strerror(k.o.err) : "", u.o.rc,
                     u.o.rc ? strerror(u.o.err) : "");
        int pages_same = 1;
        for (int p = 0; p < PROBE_PAGES; p++) {
            struct pstate *ks = &k.page[p], *us = &u.page[p];
            if (ks->read != us->read || ks->write != us->write || ks->bytes != us->bytes) {
                pages_same = 0;
                tap_diag("page %d: kernel read %d write %d bytes %d; libumm read %d write %d bytes %d", p,
                         ks->read, ks->write, ks->bytes, us->read, us->write, us->bytes);
            }
        }
        ok(pages_same, "%s [%s]: every page left as the kernel leaves it", opname[c->op], c->name);
    }

    /* Protection the file's mode does not allow. */
    int ro = open(path, O_RDONLY); /* unlinked: reopen through /proc */
    if (ro < 0) {
        char proc[64];
        snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
        ro = open(proc, O_RDONLY);
    }
    const struct mm_ops *sides[2] = { &kernel_ops, &umm_ops };
    struct outcome o[2][3];
    for (int s = 0; s < 2; s++) {
        char *sh = sides[s]->mmap(NULL, 2 * PAGE, PROT_READ, MAP_SHARED, ro, 0);
        char *pr = sides[s]->mmap(NULL, 2 * PAGE, PROT_READ, MAP_PRIVATE, ro, 0);
        if (sh == MAP_FAILED || pr == MAP_FAILED)
            tap_bail("%s: mapping O_RDONLY: %s", sides[s]->name, strerror(errno));
        errno = 0;
        o[s][0] = outcome_of(sides[s]->mprotect(sh, PAGE, RW));
        errno = 0;
        o[s][1] = outcome_of(sides[s]->mprotect(pr, PAGE, RW));
        errno = 0;
        o[s][2] = outcome_of(sides[s]->mprotect(sh, PAGE, PROT_READ | PROT_EXEC));
        if (o[s][1].rc == 0)
            pr[5] = 'x'; /* a private copy: allowed */
        ok(probe_write(sh) == ACC_ACCERR, "%s: the shared page of O_RDONLY is still read-only", sides[s]->name);
        sides[s]->munmap(sh, 2 * PAGE);
        sides[s]->munmap(pr, 2 * PAGE);
    }
    is_int(o[0][0].err, EACCES, "kernel: PROT_WRITE on MAP_SHARED of O_RDONLY is EACCES (the test is right)");
    ok(o[1][0].rc == o[0][0].rc && o[1][0].err == o[0][0].err, "libumm: PROT_WRITE on MAP_SHARED of O_RDONLY as the kernel");
    ok(o[1][1].rc == o[0][1].rc && o[1][1].err == o[0][1].err, "libumm: PROT_WRITE on MAP_PRIVATE of O_RDONLY as the kernel");
    ok(o[1][2].rc == o[0][2].rc && o[1][2].err == o[0][2].err, "libumm: PROT_EXEC on MAP_SHARED of O_RDONLY as the kernel");
    char buf[2 * PAGE];
    ok(read_file(fd, buf, sizeof buf, 0) == 0 && buf[5] == (char)pattern(5, SEED),
       "the private write did not reach the file");
    close(ro);
    close(fd);
    check_released();
    return tap_done();
}
