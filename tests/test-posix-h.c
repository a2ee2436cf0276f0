/*
 * Promise: <umm/posix.h> sends a plain POSIX program's mmap, munmap, msync,
 * mprotect, madvise (and fork, when asked) to libumm with nothing else
 * changed.  tests/posix-mmaptest.c, the xv6 mmap lab's mmaptest ported to
 * POSIX calls, is compiled twice from the same source (Makefile.am): once
 * with `-include umm/posix.h -DUMM_POSIX_FORK`, once as it is, for the
 * kernel; only `main` is renamed on the command line so that this test can
 * call both.  Both must pass their own checks; libumm's counters must move
 * for the first (traps, file reads, copies, write-backs: the calls went to
 * libumm) and stand still for the second (so the counters tell the two
 * apart: a header that redirected nothing would fail here).  This file
 * itself includes <umm/posix.h> before <sys/mman.h> and <unistd.h>, which
 * must still compile, and checks what the names mean.
 */
#define _GNU_SOURCE 1 /* so that <sys/mman.h> declares mremap */
#include <umm/posix.h>
#include <sys/mman.h> /* after the macros: must not be broken by them */
#include <unistd.h>
#include <stdlib.h>
#include <umm.h>
#include <umm/umm.h>

#include "tap.h"
#include "util.h"

int mmaptest_umm_main(void);
int mmaptest_kernel_main(void);

typedef void *(*mmap_fn)(void *, size_t, int, int, int, off_t);
typedef int (*munmap_fn)(void *, size_t);
typedef pid_t (*fork_fn)(void);

static int run(const char *what, int (*prog)(void), struct umm_stats *delta)
{
    struct umm_stats a, b;
    umm_stats(&a);
    fflush(stdout);
    /* The program's fork child ends with _exit, leaving the DTV of the
     * parent's libumm daemon thread behind (tests/valgrind.supp); the
     * program is plain POSIX and cannot say so itself, so it is said here,
     * for the child to inherit. */
    vg_abrupt_end();
    int rc = prog();
    fflush(stdout);
    umm_stats(&b);
    delta->faults = b.faults - a.faults;
    delta->pages_read = b.pages_read - a.pages_read;
    delta->pages_written = b.pages_written - a.pages_written;
    delta->cow_copies = b.cow_copies - a.cow_copies;
    tap_diag("%s: status %d; traps %llu, pages read %llu, written back %llu, copies %llu", what, rc,
             (unsigned long long)delta->faults, (unsigned long long)delta->pages_read,
             (unsigned long long)delta->pages_written, (unsigned long long)delta->cow_copies);
    return rc;
}

int main(void)
{
    /* The names, in a file that included <sys/mman.h> after the header. */
    mmap_fn m = mmap;
    munmap_fn u = &munmap;
    ok(m == umm_mmap && u == umm_munmap && msync == umm_msync && mprotect == umm_mprotect &&
           madvise == umm_madvise,
       "mmap, munmap, msync, mprotect, madvise name libumm's functions, called or taken by address");
#ifdef MREMAP_MAYMOVE
    ok((void *(*)(void *, size_t, size_t, int, ...))mremap == umm_mremap, "mremap names umm_mremap");
#else
    tap_skip("<sys/mman.h> declares no mremap here (no _GNU_SOURCE)", "mremap names umm_mremap");
#endif
    fork_fn f = fork;
    ok(f != umm_fork, "fork stays the C library's where UMM_POSIX_FORK is not defined");
    void *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    ok(p != MAP_FAILED && stat_get("mappings") == 1, "a call through the macro makes a libumm mapping");
    munmap(p, 4096);

    const char *tmp = getenv("UMM_TEST_TMPDIR");
    if (tmp)
        setenv("TMPDIR", tmp, 1);

    struct umm_stats k, d;
    int rc = run("on the kernel (no include)", mmaptest_kernel_main, &k);
    is_int(rc, 0, "the POSIX program passes its own checks on the kernel");
    ok(k.faults == 0 && k.pages_read == 0 && k.pages_written == 0 && k.cow_copies == 0,
       "built without the include it leaves libumm's counters alone (what a redirect that did nothing looks like)");

    rc = run("on libumm (-include umm/posix.h)", mmaptest_umm_main, &d);
    is_int(rc, 0, "the same program built with -include umm/posix.h passes its own checks");
    ok(d.faults > 0, "its first touches trapped into libumm (%llu traps)", (unsigned long long)d.faults);
    ok(d.pages_read >= 4, "libumm read its files' pages (%llu)", (unsigned long long)d.pages_read);
    ok(d.cow_copies >= 2, "libumm copied its private stores (%llu copies)", (unsigned long long)d.cow_copies);
    ok(d.pages_written >= 3, "libumm wrote its shared stores back (%llu pages)", (unsigned long long)d.pages_written);

    check_released();
    return tap_done();
}
