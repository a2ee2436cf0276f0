/* Promise: a mapping of /dev/zero may later be given only the access the
 * descriptor's mode allows, as a file's: MAP_SHARED of /dev/zero opened
 * O_RDONLY cannot be made writable (mprotect: EACCES; MADV_REMOVE, which
 * needs a writable shared mapping: EACCES), while MAP_PRIVATE of it, MAP_SHARED
 * of it opened O_RDWR, and MAP_SHARED|MAP_ANONYMOUS can.  Each case is run
 * against the kernel and against libumm: same result, same errno, and the
 * page left as readable, writable and zero as the kernel leaves it. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <unistd.h>
#include "kcmp.h"

struct dcase {
    const char *name;
    int mode;  /* open mode of /dev/zero; -1: MAP_ANONYMOUS */
    int type;  /* MAP_SHARED or MAP_PRIVATE */
    int prot;  /* at mmap */
    int op;    /* 0: mprotect(arg), 1: madvise(arg) */
    int arg;
    int expect; /* the kernel's errno as the issue names it (0: success), -1: whatever it says */
};

#define R PROT_READ
#define RW (PROT_READ | PROT_WRITE)

static const struct dcase cases[] = {
    { "O_RDONLY, shared: mprotect(PROT_WRITE)", O_RDONLY, MAP_SHARED, R, 0, RW, EACCES },
    { "O_RDONLY, shared: mprotect(PROT_WRITE) alone", O_RDONLY, MAP_SHARED, R, 0, PROT_WRITE, EACCES },
    { "O_RDONLY, shared: mprotect(PROT_READ|PROT_EXEC)", O_RDONLY, MAP_SHARED, R, 0, R | PROT_EXEC, -1 },
    { "O_RDONLY, shared: mprotect(PROT_NONE)", O_RDONLY, MAP_SHARED, R, 0, PROT_NONE, 0 },
    { "O_RDONLY, shared: MADV_REMOVE", O_RDONLY, MAP_SHARED, R, 1, MADV_REMOVE, EACCES },
    { "O_RDONLY, shared PROT_NONE: mprotect(PROT_WRITE)", O_RDONLY, MAP_SHARED, PROT_NONE, 0, RW, EACCES },
    { "O_RDONLY, private: mprotect(PROT_WRITE)", O_RDONLY, MAP_PRIVATE, R, 0, RW, 0 },
    { "O_RDWR, shared: mprotect(PROT_WRITE)", O_RDWR, MAP_SHARED, R, 0, RW, 0 },
    { "O_RDWR, shared: MADV_REMOVE", O_RDWR, MAP_SHARED, RW, 1, MADV_REMOVE, -1 },
    { "MAP_ANONYMOUS, shared: mprotect(PROT_WRITE)", -1, MAP_SHARED, R, 0, RW, 0 },
};

struct result {
    struct outcome map, o;
    int read, write, zero;
};

static struct result run(const struct mm_ops *ops, const struct dcase *c)
{
    struct result r = { { 0, 0 }, { 0, 0 }, 0, 0, 0 };
    int fd = c->mode >= 0 ? open("/dev/zero", c->mode) : -1;
    if (c->mode >= 0 && fd < 0)
        tap_bail("/dev/zero: %s", strerror(errno));
    errno = 0;
    char *p = ops->mmap(NULL, 2 * PAGE, c->prot, c->type | (fd < 0 ? MAP_ANONYMOUS : 0), fd, 0);
    r.map = outcome_of(p == MAP_FAILED ? -1 : 0);
    if (p == MAP_FAILED) {
        if (fd >= 0)
            close(fd);
        return r;
    }
    errno = 0;
    r.o = outcome_of(c->op == 0 ? ops->mprotect(p, PAGE, c->arg) : ops->madvise(p, PAGE, c->arg));
    r.read = probe_read(p);
    r.write = probe_write(p);
    r.zero = r.read == ACC_OK && p[0] == 0 && p[PAGE - 1] == 0;
    if (ops->munmap(p, 2 * PAGE) != 0)
        tap_bail("%s: munmap: %s", ops->name, strerror(errno));
    if (fd >= 0)
        close(fd);
    return r;
}

int main(void)
{
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const struct dcase *c = &cases[i];
        struct result k = run(&kernel_ops, c), u = run(&umm_ops, c);
        if (k.map.rc != 0)
            tap_bail("kernel: %s: the mmap failed: %s", c->name, strerror(k.map.err));
        if (c->expect >= 0)
            is_int(k.o.err, c->expect, "kernel: %s: %s (the test is right)", c->name,
                   c->expect ? strerror(c->expect) : "success");
        ok(u.map.rc == 0, "libumm: %s: the mmap succeeds", c->name);
        int same = k.o.rc == u.o.rc && k.o.err == u.o.err;
        ok(same, "libumm: %s: returns as the kernel: %s", c->name, k.o.rc ? strerror(k.o.err) : "success");
        if (!same)
            tap_diag("kernel: %d %s, libumm: %d %s", k.o.rc, strerror(k.o.err), u.o.rc, strerror(u.o.err));
        int pages = k.read == u.read && k.write == u.write && k.zero == u.zero;
        ok(pages, "libumm: %s: the page is left as the kernel leaves it", c->name);
        if (!pages)
            tap_diag("kernel: read %d write %d zero %d; libumm: read %d write %d zero %d", k.read, k.write, k.zero,
                     u.read, u.write, u.zero);
    }
    check_released();
    return tap_done();
}
