/* Promise: MAP_FIXED_NOREPLACE over any part of an existing mapping fails
 * with EEXIST and leaves it alone (its bytes, and its dirty pages still to
 * be written back), whatever the new mapping's type; at a free address it
 * maps exactly there.  Each case runs against the kernel and libumm. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <unistd.h>
#include "kcmp.h"

#define SEED 35
#define B ((unsigned char *)KCMP_BASE)

struct ncase {
    const char *name;
    long page, npages; /* the new mapping, relative to the existing one (4 pages at B) */
    int prot, flags;   /* MAP_FIXED_NOREPLACE is added */
    int file;          /* 1: a file mapping, 0: anonymous */
};

static const struct ncase cases[] = {
    { "private file mapping over all of it", 0, 4, PROT_READ, MAP_PRIVATE, 1 },
    { "shared file mapping over all of it", 0, 4, PROT_READ, MAP_SHARED, 1 },
    { "shared writable file mapping over the middle", 1, 2, PROT_READ | PROT_WRITE, MAP_SHARED, 1 },
    { "private anonymous over one page", 2, 1, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, 0 },
    { "shared anonymous over one page", 0, 1, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, 0 },
    { "over its last page and a free page", 3, 2, PROT_READ, MAP_SHARED, 1 },
    { "over a free page and its first page", -1, 2, PROT_READ, MAP_PRIVATE, 1 },
    { "at the free page right after it", 4, 1, PROT_READ, MAP_SHARED, 1 },
    { "at the free page right before it", -1, 1, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, 0 },
};

struct result {
    struct outcome o;
    int at;        /* success: at the address asked for */
    int intact;    /* the existing mapping still shows its bytes */
    int dirty_ok;  /* its write reached the file at munmap */
    int clean;     /* munmap of the whole area left nothing behind */
};

static struct result run(const struct mm_ops *ops, int fd, int other, const struct ncase *c)
{
    struct result res;
    kcmp_require_free(KCMP_BASE - PAGE, 6 * PAGE);
    unsigned char *ex = ops->mmap(B, 4 * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED_NOREPLACE, fd, 0);
    if (ex != B)
        tap_bail("%s: mapping the existing region: %s", ops->name, strerror(errno));
    ex[2 * PAGE + 7] ^= 0xff; /* one dirty page */
    unsigned char *want = B + c->page * (long)PAGE;
    errno = 0;
    unsigned char *r = ops->mmap(want, (size_t)c->npages * PAGE, c->prot, c->flags | MAP_FIXED_NOREPLACE,
                                 c->file ? other : -1, 0);
    res.o = outcome_of(r == MAP_FAILED ? -1 : 0);
    res.at = r == want;
    res.intact = ex[2 * PAGE + 7] == (unsigned char)~pattern(2 * PAGE + 7, SEED) &&
                 diff_pattern(ex, 2 * PAGE, 0, SEED) == 0 && diff_pattern(ex + 3 * PAGE, PAGE, 3 * PAGE, SEED) == 0;
    if (r != MAP_FAILED)
        ops->munmap(r, (size_t)c->npages * PAGE);
    ops->munmap(B - PAGE, 6 * PAGE);
    res.clean = kcmp_is_free(KCMP_BASE - PAGE, 6 * PAGE);
    if (!res.clean)
        munmap(B - PAGE, 6 * PAGE); /* what the call left behind, so the next case can run */
    unsigned char byte;
    res.dirty_ok = read_file(fd, &byte, 1, 2 * PAGE + 7) == 0 && byte == (unsigned char)~pattern(2 * PAGE + 7, SEED);
    /* Put the file back for the next case. */
    byte = pattern(2 * PAGE + 7, SEED);
    if (pwrite(fd, &byte, 1, 2 * PAGE + 7) != 1)
        tap_bail("pwrite: %s", strerror(errno));
    return res;
}

int main(void)
{
    int fd = tmpfile_make(4 * PAGE, SEED, O_RDWR, NULL);
    int other = tmpfile_make(4 * PAGE, SEED + 1, O_RDWR, NULL);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const struct ncase *c = &cases[i];
        struct result k = run(&kernel_ops, fd, other, c);
        struct result u = run(&umm_ops, fd, other, c);
        int overlaps = c->page < 4 && c->page + c->npages > 0;
        if (overlaps && under_valgrind()) {
            /* Valgrind's own mmap takes the address as a hint and maps
             * elsewhere: the kernel's side is not Linux here.  libumm
             * decides from its own mappings, so it is held to Linux's
             * answer. */
            const char *why = "Valgrind's mmap (3.19) takes a MAP_FIXED_NOREPLACE address as a hint: over a "
                              "mapping it maps elsewhere";
            tap_skip(why, "[%s] kernel: EEXIST (the test is right)", c->name);
            ok(u.o.rc == -1 && u.o.err == EEXIST, "[%s] libumm returns what Linux returns: EEXIST", c->name);
            if (u.o.rc != -1 || u.o.err != EEXIST)
                tap_diag("libumm: %d %s", u.o.rc, strerror(u.o.err));
        } else {
            is_int(k.o.err, overlaps ? EEXIST : 0, "[%s] kernel: %s (the test is right)", c->name,
                   overlaps ? "EEXIST" : "maps");
            ok(u.o.rc == k.o.rc && u.o.err == k.o.err, "[%s] libumm returns as the kernel: %s", c->name,
               k.o.rc ? strerror(k.o.err) : "success");
            if (u.o.rc != k.o.rc || u.o.err != k.o.err)
                tap_diag("kernel: %d %s, libumm: %d %s", k.o.rc, strerror(k.o.err), u.o.rc, strerror(u.o.err));
        }
        if (!overlaps)
            ok(u.at, "[%s] mapped exactly at the address", c->name);
        else
            ok(u.intact, "[%s] the existing mapping is untouched", c->name);
        ok(u.dirty_ok, "[%s] its dirty page reached the file", c->name);
        ok(k.clean, "[%s] kernel: munmap of the area leaves it free (the test is right)", c->name);
        ok(u.clean, "[%s] libumm: the call left nothing behind: munmap of the area leaves it free", c->name);
    }
    close(fd);
    close(other);
    check_released();
    return tap_done();
}
