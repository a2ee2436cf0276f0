/*
 * pager-zswap: compressed memory with a pager of the program's own.
 *
 * A mapping eight times libumm's memory budget (UMM_RAM) whose pages, when
 * reclaim takes them away, live compressed with lz4 in the program's heap
 * -- what the kernel's zswap does for swapped pages.  libumm calls
 * zs_writeback for a dirty page reclaim (or msync) takes, and zs_fill when
 * a page comes back; the program never sees the difference.
 *
 * It writes every page, reads every one back, rewrites a few at random and
 * checks again, then says how much memory the store took.  It speaks TAP
 * (ok / not ok lines), so make check runs it as a test.
 *
 *   pager-zswap [MiB]      the mapping's size (default 32; budget: 1/8)
 */
#define _GNU_SOURCE
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif
#if defined(HAVE_CONFIG_H) && !defined(HAVE_LZ4)
#include <stdio.h>
int main(void)
{
    printf("1..0 # SKIP liblz4 not found by configure (Debian: liblz4-dev; ./bootstrap installs it)\n");
    return 0;
}
#else
#include <lz4.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <umm.h>

#define PAGE 4096

/* The store: one compressed blob per page of the mapping (NULL: zeros). */
struct zstore {
    size_t npages;
    char **blob;
    int *blen;
    size_t bytes; /* compressed bytes held */
    long stored, filled;
};

static ssize_t zs_fill(void *cookie, off_t off, void *buf, size_t len)
{
    struct zstore *z = cookie;
    for (size_t done = 0; done < len; done += PAGE) {
        size_t pg = (size_t)off / PAGE + done / PAGE;
        if (pg >= z->npages || !z->blob[pg]) {
            memset((char *)buf + done, 0, PAGE); /* never written: zeros */
            continue;
        }
        if (LZ4_decompress_safe(z->blob[pg], (char *)buf + done, z->blen[pg], PAGE) != PAGE)
            return -5; /* -EIO: the access gets SIGBUS */
        z->filled++;
    }
    return (ssize_t)len;
}

static int zs_writeback(void *cookie, off_t off, const void *buf, size_t len)
{
    struct zstore *z = cookie;
    char tmp[LZ4_COMPRESSBOUND(PAGE)];
    for (size_t done = 0; done < len; done += PAGE) {
        size_t pg = (size_t)off / PAGE + done / PAGE;
        if (pg >= z->npages)
            return -28; /* -ENOSPC */
        int n = LZ4_compress_default((const char *)buf + done, tmp, PAGE, (int)sizeof tmp);
        char *b = n > 0 ? malloc((size_t)n) : NULL;
        if (!b)
            return -12; /* -ENOMEM: the page stays dirty, nothing is lost */
        memcpy(b, tmp, (size_t)n);
        if (z->blob[pg])
            z->bytes -= (size_t)z->blen[pg];
        free(z->blob[pg]);
        z->blob[pg] = b;
        z->blen[pg] = n;
        z->bytes += (size_t)n;
        z->stored++;
    }
    return 0;
}

static uint64_t zs_size(void *cookie)
{
    return ((struct zstore *)cookie)->npages * PAGE;
}

static void zs_release(void *cookie)
{
    struct zstore *z = cookie;
    for (size_t i = 0; i < z->npages; i++)
        free(z->blob[i]);
    free(z->blob);
    free(z->blen);
    z->blob = NULL;
}

static const struct umm_pager_ops zswap_ops = {
    .fill = zs_fill, .writeback = zs_writeback, .size = zs_size, .release = zs_release,
};

/* What page pg holds after `round` rewrites: text, as compressible as a
 * program's data often is. */
static void page_text(char *p, size_t pg, unsigned round)
{
    int n = snprintf(p, PAGE, "page %zu, round %u: ", pg, round);
    for (size_t i = (size_t)n; i < PAGE; i++)
        p[i] = "the quick brown fox jumps over the lazy dog "[(i + pg + round) % 44];
}

static int tests;
static int check(int cond, const char *what)
{
    printf("%s %d - %s\n", cond ? "ok" : "not ok", ++tests, what);
    return cond;
}

int main(int argc, char **argv)
{
    size_t mib = argc > 1 ? strtoul(argv[1], NULL, 10) : 32;
    char ram[32];
    snprintf(ram, sizeof ram, "%zuK", mib * 1024 / 8);
    setenv("UMM_RAM", ram, 0); /* before libumm's first call */

    struct zstore z = { .npages = mib * 256 };
    z.blob = calloc(z.npages, sizeof *z.blob);
    z.blen = calloc(z.npages, sizeof *z.blen);
    size_t len = z.npages * PAGE;
    char *m = umm_mmap_pager(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, &zswap_ops, &z, 0);
    if (!check(m != MAP_FAILED, "a pager mapping backed by lz4-compressed memory"))
        return 1;

    for (size_t pg = 0; pg < z.npages; pg++)
        page_text(m + pg * PAGE, pg, 0);
    char want[PAGE];
    int same = 1;
    for (size_t pg = 0; pg < z.npages && same; pg++) {
        page_text(want, pg, 0);
        same = memcmp(m + pg * PAGE, want, PAGE) == 0;
    }
    check(same, "every page written and read back through the compressed store");

    unsigned *round = calloc(z.npages, sizeof *round);
    uint64_t r = 88172645463325252ull;
    for (int k = 0; k < 2000; k++) {
        r ^= r << 13, r ^= r >> 7, r ^= r << 17;
        size_t pg = r % z.npages;
        page_text(m + pg * PAGE, pg, ++round[pg]);
    }
    same = 1;
    for (size_t pg = 0; pg < z.npages && same; pg++) {
        page_text(want, pg, round[pg]);
        same = memcmp(m + pg * PAGE, want, PAGE) == 0;
    }
    check(same, "2000 random rewrites, every page as last written");

    struct umm_stats s;
    umm_stats(&s);
    check(s.frames_high <= s.budget + 64, "libumm's memory stayed within its budget");
    check(z.stored > 0 && z.filled > 0, "cold pages went to the store and came back");
    check(umm_msync(m, len, MS_SYNC) == 0, "msync puts every dirty page in the store");
    printf("# %zu MiB mapped, budget %llu KiB: %zu KiB compressed in the store (%.1fx), "
           "%ld pages stored, %ld filled\n",
           mib, (unsigned long long)s.budget * 4, z.bytes / 1024, (double)len / (double)(z.bytes ? z.bytes : 1),
           z.stored, z.filled);
    check(z.bytes < len / 4, "the store is smaller than a quarter of the mapping");
    umm_munmap(m, len);
    check(z.blob == NULL, "munmap released the store");
    free(round);
    printf("1..%d\n", tests);
    return 0;
}
#endif /* HAVE_LZ4 */
