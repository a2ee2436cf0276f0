/* Promise: MAP_32BIT places a mapping where the kernel places it on x86-64:
 * without MAP_FIXED, in the first 2 GiB (the kernel searches from 1 GiB up
 * to 2 GiB), a hint inside that window honoured when the range is free
 * there and ignored otherwise, a length the window cannot hold refused
 * with ENOMEM; with MAP_FIXED, at the address given.  The same calls are
 * made on the kernel and on libumm, for anonymous and file mappings,
 * private and shared, and the mappings work as any other. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdint.h>
#include <unistd.h>
#include "kcmp.h"

#ifndef MAP_32BIT
#define MAP_32BIT 0x40
#endif

#define SEED 62
#define G1 ((uintptr_t)1 << 30)
#define G2 ((uintptr_t)2 << 30)
#define LOW_HINT ((uintptr_t)0x50000000)  /* inside the window */
#define HIGH_HINT ((uintptr_t)0x200000000000)

static int fd;

struct res {
    struct outcome o;
    uintptr_t at;
};

static struct res map(const struct mm_ops *ops, uintptr_t hint, size_t len, int flags, int file)
{
    struct res r;
    errno = 0;
    void *p = ops->mmap((void *)hint, len, PROT_READ | PROT_WRITE, flags | MAP_32BIT | (file ? 0 : MAP_ANONYMOUS),
                        file ? fd : -1, 0);
    r.o = outcome_of(p == MAP_FAILED ? -1 : 0);
    r.at = p == MAP_FAILED ? 0 : (uintptr_t)p;
    return r;
}

static int in_window(uintptr_t a, size_t len)
{
    return a >= G1 && a + len <= G2;
}

int main(void)
{
#if !defined(__x86_64__)
    tap_skip_all("MAP_32BIT is x86-64's");
#endif
    fd = tmpfile_make(4 * PAGE, SEED, O_RDWR, NULL);
    const struct mm_ops *sides[2] = { &kernel_ops, &umm_ops };
    static const struct { int flags, file; const char *name; } kinds[] = {
        { MAP_PRIVATE, 0, "private anonymous" },
        { MAP_SHARED, 0, "shared anonymous" },
        { MAP_PRIVATE, 1, "private file" },
        { MAP_SHARED, 1, "shared file" },
    };
    /* Under Valgrind both sides are Valgrind's mmap (libumm's reservation
     * goes through it with the flag): where it places MAP_32BIT is its own
     * address-space manager's choice, not Linux's. */
    int vg = under_valgrind();
    const char *vgwhy = "Valgrind's mmap (3.19) places MAP_32BIT where its address-space manager chooses (below 2 "
                        "GiB, not from 1 GiB) and refuses it with a hint above 2 GiB; libumm's reservation goes "
                        "through it";

    /* No hint, and a hint above the window: the window. */
    for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++)
        for (int h = 0; h < 2; h++)
            for (int s = 0; s < 2; s++) {
                const struct mm_ops *ops = sides[s];
                uintptr_t hint = h ? HIGH_HINT : 0;
                struct res r = map(ops, hint, 4 * PAGE, kinds[k].flags, kinds[k].file);
                const char *hname = h ? "a hint above 2 GiB" : "no hint";
                if (vg)
                    tap_skip(vgwhy, "%s: %s, %s: placed in [1 GiB, 2 GiB)", ops->name, kinds[k].name, hname);
                else
                    ok(r.o.rc == 0 && in_window(r.at, 4 * PAGE), "%s: %s, %s: placed in [1 GiB, 2 GiB) (%#lx)",
                       ops->name, kinds[k].name, hname, (unsigned long)r.at);
                if (r.o.rc)
                    continue;
                unsigned char *p = (unsigned char *)r.at;
                int good = 1;
                for (size_t i = 0; i < 4 * PAGE; i += 97)
                    good &= p[i] == (kinds[k].file ? pattern(i, SEED) : 0);
                p[5] = p[5];
                ok(good, "%s: %s, %s: reads %s", ops->name, kinds[k].name, hname,
                   kinds[k].file ? "the file" : "zeros");
                if (ops->munmap(p, 4 * PAGE) != 0)
                    tap_bail("%s: munmap: %s", ops->name, strerror(errno));
            }

    /* A hint inside the window where the range is free: honoured; where it
     * does not fit below 2 GiB: ignored; over a mapping: ignored. */
    kcmp_require_free(LOW_HINT, 2 * PAGE);
    for (int s = 0; s < 2; s++) {
        const struct mm_ops *ops = sides[s];
        struct res r = map(ops, LOW_HINT, PAGE, MAP_PRIVATE, 0);
        if (vg) {
            tap_skip(vgwhy, "%s: a hint in the window", ops->name);
        } else {
            ok(r.o.rc == 0 && r.at == LOW_HINT, "%s: a free hint in the window is honoured", ops->name);
            struct res r2 = map(ops, LOW_HINT, PAGE, MAP_PRIVATE, 0);
            ok(r2.o.rc == 0 && r2.at != LOW_HINT && in_window(r2.at, PAGE),
               "%s: a hint over a mapping is ignored, the window still kept (%#lx)", ops->name,
               (unsigned long)r2.at);
            if (r2.o.rc == 0)
                ops->munmap((void *)r2.at, PAGE);
            errno = 0;
            void *q = ops->mmap((void *)LOW_HINT, PAGE, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_32BIT |
                                MAP_FIXED_NOREPLACE, -1, 0);
            ok(q == MAP_FAILED && errno == EEXIST, "%s: MAP_FIXED_NOREPLACE over it: EEXIST", ops->name);
        }
        if (r.o.rc == 0)
            ops->munmap((void *)r.at, PAGE);
        uintptr_t top = G2 - PAGE;
        struct res r3 = map(ops, top, 2 * PAGE, MAP_PRIVATE, 0);
        if (vg)
            tap_skip(vgwhy, "%s: a hint whose range crosses 2 GiB", ops->name);
        else
            ok(r3.o.rc == 0 && in_window(r3.at, 2 * PAGE), "%s: a hint whose range crosses 2 GiB is ignored (%#lx)",
               ops->name, (unsigned long)r3.at);
        if (r3.o.rc == 0)
            ops->munmap((void *)r3.at, 2 * PAGE);
    }

    /* MAP_FIXED: the address given, MAP_32BIT or not. */
    kcmp_require_free(HIGH_HINT, PAGE);
    for (int s = 0; s < 2; s++) {
        const struct mm_ops *ops = sides[s];
        struct res r = map(ops, HIGH_HINT, PAGE, MAP_PRIVATE | MAP_FIXED, 0);
        ok(r.o.rc == 0 && r.at == HIGH_HINT, "%s: MAP_FIXED above 2 GiB maps there", ops->name);
        if (r.o.rc == 0)
            ops->munmap((void *)r.at, PAGE);
    }

    /* A length the window cannot hold. */
    struct outcome big[2];
    for (int s = 0; s < 2; s++) {
        struct res r = map(sides[s], 0, G1, MAP_PRIVATE | MAP_NORESERVE, 0);
        big[s] = r.o;
        if (r.o.rc == 0)
            sides[s]->munmap((void *)r.at, G1);
    }
    if (vg) {
        tap_skip(vgwhy, "1 GiB does not fit the window");
    } else {
        is_int(big[0].err, ENOMEM, "kernel: 1 GiB does not fit the window: ENOMEM (the test is right)");
        ok(big[1].rc == big[0].rc && big[1].err == big[0].err, "libumm: 1 GiB: as the kernel");
    }

    close(fd);
    check_released();
    return tap_done();
}
