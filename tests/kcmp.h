/*
 * kcmp.h: run the same operations against the kernel and against libumm.
 *
 * Linux is the reference.  A test writes its scenario once, taking a
 * `const struct mm_ops *`, and runs it with &kernel_ops and with &umm_ops;
 * then it compares what each returned, the errno, the bytes in memory and
 * the bytes in the files.  Probes report whether a page can be read or
 * written (and which signal and si_code an access raises) without
 * changing its bytes.
 */
#ifndef UMM_TEST_KCMP_H
#define UMM_TEST_KCMP_H

#include <errno.h>
#include <setjmp.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util.h"

#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE 0x100000
#endif
#ifndef MAP_SHARED_VALIDATE
#define MAP_SHARED_VALIDATE 0x03
#endif

struct mm_ops {
    const char *name;
    int is_umm;
    void *(*mmap)(void *, size_t, int, int, int, off_t);
    int (*munmap)(void *, size_t);
    int (*msync)(void *, size_t, int);
    int (*mprotect)(void *, size_t, int);
    int (*madvise)(void *, size_t, int);
};

static const struct mm_ops kernel_ops __attribute__((unused)) = {
    "kernel", 0, mmap, munmap, msync, mprotect, madvise,
};
static const struct mm_ops umm_ops __attribute__((unused)) = {
    "libumm", 1, umm_mmap, umm_munmap, umm_msync, umm_mprotect, umm_madvise,
};

/* A call's outcome: 0 or -1 (mmap: 0 for an address, -1 for MAP_FAILED)
 * and errno (0 on success). */
struct outcome {
    int rc;
    int err;
};

static inline struct outcome outcome_of(long rc)
{
    struct outcome o = { rc == -1 ? -1 : 0, rc == -1 ? errno : 0 };
    return o;
}

/* How an access to a page went: 0 (it worked), or the signal number * 1000
 * + si_code (SIGSEGV SEGV_MAPERR, SIGSEGV SEGV_ACCERR, SIGBUS BUS_ADRERR). */
static void kcmp_reread(void *p)
{
    volatile char *c = p;
    (void)*c;
}
static void kcmp_rewrite(void *p)
{
    volatile char *c = p;
    *c = *c; /* writes the byte that is there: a probe that changes nothing */
}

static inline int probe_read(void *p)
{
    int code;
    void *addr;
    int sig = catch_signal(kcmp_reread, p, &code, &addr);
    if (sig && addr != p)
        return -1; /* the signal did not come from this access */
    return sig ? sig * 1000 + code : 0;
}

static inline int probe_write(void *p)
{
    int code;
    void *addr;
    int sig = catch_signal(kcmp_rewrite, p, &code, &addr);
    if (sig && addr != p)
        return -1;
    return sig ? sig * 1000 + code : 0;
}

#define ACC_OK 0
#define ACC_MAPERR (SIGSEGV * 1000 + SEGV_MAPERR)
#define ACC_ACCERR (SIGSEGV * 1000 + SEGV_ACCERR)
#define ACC_SIGBUS (SIGBUS * 1000 + BUS_ADRERR)

/* The whole of file fd as it is now, into buf (at most max bytes); returns
 * the file's size. */
static inline long file_bytes(int fd, void *buf, size_t max)
{
    struct stat st;
    if (fstat(fd, &st) != 0)
        return -1;
    off_t size = st.st_size;
    size_t n = (size_t)size < max ? (size_t)size : max;
    if (n && read_file(fd, buf, n, 0) != 0)
        return -1;
    return (long)size;
}

/* An address far from the heap, the stack and mmap_base, where the tests
 * place mappings at known addresses (and know what is around them). */
#define KCMP_BASE ((uintptr_t)0x200000000000)

/* Is [a, a+len) wholly free on the host? */
static inline int kcmp_is_free(uintptr_t a, size_t len)
{
    FILE *f = fopen("/proc/self/maps", "r");
    char line[512];
    int is_free = 1;
    while (f && fgets(line, sizeof line, f)) {
        unsigned long s, e;
        if (sscanf(line, "%lx-%lx", &s, &e) == 2 && s < a + len && e > a)
            is_free = 0;
    }
    if (f)
        fclose(f);
    return is_free;
}

/* Bail out unless [a, a+len) is free on the host (nothing of the test may
 * be there, or MAP_FIXED would clobber it). */
static inline void kcmp_require_free(uintptr_t a, size_t len)
{
    void *r = mmap((void *)a, len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
    if (r != (void *)a) {
        /* Say what is in the way. */
        FILE *f = fopen("/proc/self/maps", "r");
        char line[512];
        while (f && fgets(line, sizeof line, f)) {
            unsigned long s, e;
            if (sscanf(line, "%lx-%lx", &s, &e) == 2 && s < a + len && e > a)
                tap_diag("in the way: %s", line);
        }
        if (f)
            fclose(f);
        tap_bail("the area at %#lx is not free", (unsigned long)a);
    }
    munmap(r, len);
}

/* How many of n bytes at p differ from the pattern of a file at offset off. */
static inline size_t diff_pattern(const unsigned char *p, size_t n, uint64_t off, unsigned seed)
{
    size_t bad = 0;
    for (size_t i = 0; i < n; i++)
        bad += p[i] != pattern(off + i, seed);
    return bad;
}

/* catch_signal, but give up after `seconds` (a libumm bug may fault
 * forever): returns -2 then, with the trap's handlers put back. */
static sigjmp_buf kcmp_timeout_jb;
static void kcmp_on_alarm(int sig)
{
    (void)sig;
    siglongjmp(kcmp_timeout_jb, 1);
}
static inline int catch_signal_within(unsigned seconds, void (*fn)(void *), void *arg, int *code, void **addr)
{
    struct sigaction sa, old_alrm, old_segv, old_bus;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = kcmp_on_alarm;
    sigaction(SIGALRM, &sa, &old_alrm);
    sigaction(SIGSEGV, NULL, &old_segv);
    sigaction(SIGBUS, NULL, &old_bus);
    unsigned left = alarm(seconds); /* the test's own timeout, restored below */
    int r;
    if (sigsetjmp(kcmp_timeout_jb, 1) == 0) {
        r = catch_signal(fn, arg, code, addr);
    } else {
        r = -2;
        sigaction(SIGSEGV, &old_segv, NULL);
        sigaction(SIGBUS, &old_bus, NULL);
        vg_quiet(0); /* catch_signal's, left on by the jump out of it */
    }
    alarm(0);
    sigaction(SIGALRM, &old_alrm, NULL);
    alarm(left > seconds ? left - seconds : 1);
    return r;
}

/* What a page looks like: can it be read, written (signal*1000+si_code,
 * 0 if it can), and a hash of its bytes when it can be read. */
struct pageview {
    int read, write;
    uint64_t hash;
};

static inline uint64_t page_hash(const unsigned char *p)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < PAGE; i++)
        h = (h ^ p[i]) * 0x100000001b3ull;
    return h;
}

/* Look at n pages from base; with_write also probes writing (which
 * rewrites a byte with its own value). */
static inline void snap(uintptr_t base, size_t n, struct pageview *v, int with_write)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char *p = (unsigned char *)(base + i * PAGE);
        v[i].read = probe_read(p);
        v[i].hash = v[i].read == ACC_OK ? page_hash(p) : 0;
        v[i].write = with_write ? probe_write(p + 1) : 0;
    }
}

/* Compare two snapshots page by page; says which pages differ.  Returns
 * 1 if they are the same. */
static inline int same_views(const struct pageview *k, const struct pageview *u, size_t n)
{
    int same = 1;
    for (size_t i = 0; i < n; i++)
        if (k[i].read != u[i].read || k[i].write != u[i].write || k[i].hash != u[i].hash) {
            same = 0;
            tap_diag("page %zu: kernel read %d write %d hash %016llx; libumm read %d write %d hash %016llx", i,
                     k[i].read, k[i].write, (unsigned long long)k[i].hash, u[i].read, u[i].write,
                     (unsigned long long)u[i].hash);
        }
    return same;
}

#endif
