/* Promise: at the host's map-count limit (vm.max_map_count), an umm_munmap
 * that must split a mapping in two fails with ENOMEM and changes nothing,
 * as the kernel's munmap does (it may not leave the process above its
 * limit), while one that only trims a mapping succeeds; once the process
 * is below its limit again, the split succeeds.  Each side runs in a child
 * that fills its own address space to the real limit (about 65,530
 * mappings: every other page of a large PROT_NONE reservation made
 * readable), for an anonymous and a shared file mapping whose pages were
 * touched first.  The child reports each result, errno, and what each page
 * then allows, and both are compared. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdint.h>
#include <sys/wait.h>
#include <unistd.h>
#include "kcmp.h"

#define SEED 64
#define N 4
#define FILL_PAGES 80000 /* more than the limit allows: the fill stops at it */

static int fd;

struct report {
    int filled;          /* mappings made before the host said ENOMEM */
    int split_at_limit;  /* errno of munmap of page 1 (0: success) */
    int after_fail[N];   /* each page, read probe, after that */
    int trim_at_limit;   /* munmap of page 0 */
    int split_below;     /* munmap of page 2, two mappings freed first */
    int after[N];        /* each page, read probe, at the end */
    int bytes_ok;        /* pages 1 and 3 still hold their bytes */
    int touch_at_limit;  /* first touch of a page of another mapping, at the limit */
    int touch_below;     /* the same page touched again well below the limit */
};

static void side(const struct mm_ops *ops, int file, struct report *r)
{
    unsigned char *m = ops->mmap(NULL, N * PAGE, PROT_READ, file ? MAP_SHARED : MAP_PRIVATE | MAP_ANONYMOUS,
                                 file ? fd : -1, 0);
    if (m == MAP_FAILED)
        _exit(90);
    for (int i = 0; i < N; i++) /* resident before the limit is reached */
        (void)*(volatile unsigned char *)(m + i * PAGE + 5);
    /* Not touched; writable, so that the kernel does not merge it with m. */
    unsigned char *m2 = ops->mmap(NULL, N * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m2 == MAP_FAILED)
        _exit(94);
    char *big = mmap(NULL, 2 * (size_t)FILL_PAGES * PAGE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                     -1, 0);
    if (big == MAP_FAILED)
        _exit(91);
    int i;
    for (i = 0; i < FILL_PAGES; i++)
        if (mprotect(big + 2 * (size_t)i * PAGE, PAGE, PROT_READ) != 0)
            break;
    r->filled = i;
    if (i == FILL_PAGES || errno != ENOMEM)
        _exit(92);
    errno = 0;
    r->split_at_limit = ops->munmap(m + PAGE, PAGE) == 0 ? 0 : errno;
    for (int p = 0; p < N; p++)
        r->after_fail[p] = probe_read(m + p * PAGE);
    errno = 0;
    r->trim_at_limit = ops->munmap(m, PAGE) == 0 ? 0 : errno;
    /* The kernel needs no new mapping to fault a page in; libumm needs the
     * host to give the page one of its own (README difference 8). */
    r->touch_at_limit = probe_read(m2 + PAGE);
    /* Below the limit again: two of the filler's mappings go. */
    munmap(big + 2 * 10 * PAGE, PAGE);
    munmap(big + 2 * 20 * PAGE, PAGE);
    errno = 0;
    r->split_below = ops->munmap(m + 2 * PAGE, PAGE) == 0 ? 0 : errno;
    for (int p = 0; p < N; p++)
        r->after[p] = probe_read(m + p * PAGE);
    r->bytes_ok = 1;
    for (int p = 1; p < N; p += 2)
        for (int k = 0; k < PAGE; k += 64)
            r->bytes_ok &= m[p * PAGE + k] == (file ? pattern((uint64_t)p * PAGE + k, SEED) : 0);
    /* Well below the limit, the page a touch could not bring in works. */
    for (int k = 30; k < 40; k++)
        munmap(big + 2 * (size_t)k * PAGE, PAGE);
    r->touch_below = probe_read(m2 + PAGE);
    if (r->touch_below == ACC_OK && m2[PAGE + 7] != 0)
        r->touch_below = -3;
    munmap(big, 2 * (size_t)FILL_PAGES * PAGE);
    ops->munmap(m, N * PAGE);
    ops->munmap(m2, N * PAGE);
}

static int run(const struct mm_ops *ops, int file, struct report *r)
{
    int pfd[2];
    if (pipe(pfd) != 0)
        tap_bail("pipe: %s", strerror(errno));
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        tap_quiet();
        alarm(30); /* not inherited: a libumm that faults forever ends here */
        close(pfd[0]);
        struct report rep;
        memset(&rep, 0, sizeof rep);
        side(ops, file, &rep);
        _exit(write(pfd[1], &rep, sizeof rep) == (ssize_t)sizeof rep ? 0 : 93);
    }
    close(pfd[1]);
    ssize_t n = read(pfd[0], r, sizeof *r);
    close(pfd[0]);
    int st = 0;
    waitpid(pid, &st, 0);
    if (n != (ssize_t)sizeof *r)
        tap_diag("%s: the child said nothing (status %#x)", ops->name, st);
    return n == (ssize_t)sizeof *r;
}

int main(void)
{
    if (under_valgrind())
        tap_skip_all("Valgrind's table of the host's mappings is of fixed size (VG_N_SEGMENTS): it aborts long before "
                     "the kernel's limit");
#if defined(__SANITIZE_ADDRESS__)
    tap_skip_all("AddressSanitizer needs host mappings of its own, which the host refuses once the test fills them");
#endif
    fd = tmpfile_make(N * PAGE, SEED, O_RDWR, NULL);
    for (int file = 0; file < 2; file++) {
        const char *what = file ? "shared file" : "anonymous";
        struct report k, u;
        if (!run(&kernel_ops, file, &k) || !run(&umm_ops, file, &u)) {
            ok(0, "%s: both sides ran", what);
            continue;
        }
        tap_diag("%s: the kernel side filled %d mappings, libumm's %d", what, k.filled, u.filled);
        is_int(k.split_at_limit, ENOMEM, "kernel, %s: munmap splitting a mapping at the limit: ENOMEM (the test is right)",
               what);
        is_int(u.split_at_limit, k.split_at_limit, "libumm, %s: umm_munmap splitting a mapping at the limit: as the kernel",
               what);
        int same = 1;
        for (int p = 0; p < N; p++)
            same &= u.after_fail[p] == k.after_fail[p];
        ok(same, "libumm, %s: ... and every page is left as the kernel leaves it (%d %d %d %d)", what, u.after_fail[0],
           u.after_fail[1], u.after_fail[2], u.after_fail[3]);
        is_int(k.trim_at_limit, 0, "kernel, %s: munmap of a mapping's first page at the limit succeeds (the test is right)",
               what);
        is_int(u.trim_at_limit, k.trim_at_limit, "libumm, %s: umm_munmap of a mapping's first page at the limit: as the kernel",
               what);
        is_int(k.split_below, 0, "kernel, %s: below the limit the split succeeds (the test is right)", what);
        is_int(u.split_below, k.split_below, "libumm, %s: below the limit the split succeeds", what);
        same = 1;
        for (int p = 0; p < N; p++)
            same &= u.after[p] == k.after[p];
        ok(same, "libumm, %s: every page as the kernel leaves it at the end (%d %d %d %d)", what, u.after[0], u.after[1],
           u.after[2], u.after[3]);
        ok(k.bytes_ok && u.bytes_ok, "%s: the pages left hold their bytes", what);
        is_int(k.touch_at_limit, 0, "kernel, %s: a first touch at the limit reads (the test is right)", what);
        if (u.touch_at_limit != k.touch_at_limit)
            tap_skip("libumm needs a host mapping of its own for the page, which the host refuses at its limit "
                     "(README difference 8): SIGSEGV",
                     "libumm, %s: a first touch at the limit", what);
        else
            ok(1, "libumm, %s: a first touch at the limit reads", what);
        is_int(k.touch_below, 0, "kernel, %s: the page reads zeros below the limit (the test is right)", what);
        is_int(u.touch_below, 0, "libumm, %s: the page a touch at the limit could not bring in reads zeros below it",
               what);
    }
    close(fd);
    check_released();
    return tap_done();
}
