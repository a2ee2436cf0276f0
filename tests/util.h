/*
 * util.h: what the tests share: temporary files with known bytes, catching
 * an expected signal, and the leak oracle every test ends with.
 */
#ifndef UMM_TEST_UTIL_H
#define UMM_TEST_UTIL_H

#include <setjmp.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "tap.h"
#include "umm.h"

#define PAGE 4096

/* The byte the test files hold at offset off (depends on a seed). */
static inline unsigned char pattern(uint64_t off, unsigned seed)
{
    uint64_t x = off * 0x9e3779b97f4a7c15ull + seed * 0x85ebca6bu;
    x ^= x >> 29;
    return (unsigned char)(x ^ (x >> 17));
}

/* A small fast random sequence (Marsaglia's xorshift) for the tests that
 * touch pages at random; *s must not start at 0. */
static inline uint64_t xorshift64(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* Create a temporary file of size bytes filled with pattern(seed), opened
 * with flags (O_RDWR, O_RDONLY ...).  Its path is stored in path (>= 256
 * bytes) when path is not NULL; the file is unlinked when path is NULL. */
int tmpfile_make(uint64_t size, unsigned seed, int flags, char *path);
/* Create a sparse temporary file (ftruncate only). */
int tmpfile_sparse(uint64_t size, int flags, char *path);
/* Read the whole of [off, off+len) of fd into buf with the pread system
 * call itself: what the file holds, as another program would see it (the
 * C library's pread, which libumm stands in front of, sees its cache). */
int read_file(int fd, void *buf, size_t len, off_t off);

/* Run fn(arg) and report whether it raised a signal: returns 0 if not,
 * else the signal number, with si_code and si_addr in *code and *addr.
 * fn touches arg (reads, writes or jumps there); under memcheck the bytes
 * there are taken as fine first (vg_expect_fault), so memcheck does not
 * report the touch that is meant to fault, while everything else -- libumm's
 * trap included -- is still checked. */
int catch_signal(void (*fn)(void *), void *arg, int *code, void **addr);

/*
 * The same for threads: catch_signal() is process-global (one sigaction,
 * one jmp_buf).  tcatch_init() installs one process-wide SIGSEGV/SIGBUS
 * handler (call it once, after libumm started, so that libumm's trap stays
 * in front and passes only foreign faults on); each thread then arms its
 * own struct tcatch around the accesses that may fault:
 *
 *     struct tcatch tc;
 *     tcatch_arm(&tc);
 *     if (sigsetjmp(tc.jb, 1) == 0)
 *         access...;
 *     tcatch_disarm();
 *     if (tc.sig) ... tc.code, tc.addr ...
 *
 * A signal on a thread that has nothing armed is reported on stderr and
 * aborts the program.
 */
struct tcatch {
    sigjmp_buf jb;
    volatile int sig, code;
    void *volatile addr;
};
void tcatch_init(void);
void tcatch_arm(struct tcatch *tc);
void tcatch_disarm(void);

/* Touch helpers for catch_signal. */
void touch_read(void *p);
void touch_write(void *p);

/*
 * Valgrind (make check-valgrind).  under_valgrind(): is this process
 * running under Valgrind?  Its "kernel" is then Valgrind's emulation of the
 * system calls and of signal delivery, which differs from Linux in places;
 * a test that compares libumm with the kernel skips (tap_skip) exactly the
 * points where it does, and says why.
 *
 * vg_quiet(1) ... vg_quiet(0), on one thread, around a call that is meant
 * to be wrong (a bad range handed to the kernel): memcheck need not report
 * it.  Only around the kernel's calls, never around libumm's.
 *
 * vg_expect_fault(addr, len) before an access that is meant to fault (a
 * stray pointer, a PROT_NONE page that is not libumm's): memcheck takes
 * the bytes as fine, so it reports nothing, while the access still faults
 * and libumm's trap and the program's handlers run with error reporting on.
 *
 * vg_abrupt_end() in a process about to end by a fatal signal or by _exit()
 * while a thread it cannot join still runs (libumm's daemon thread): glibc
 * points at a running thread's DTV only from inside the thread's own
 * descriptor (dtv + 1), which memcheck calls "possibly lost" (and counts
 * as an error, which would also turn the exit status into Valgrind's
 * --error-exitcode).  It loads a suppression for exactly that into this
 * process only, so that a thread left running at a normal exit is still
 * reported everywhere else.
 *
 * For helgrind and drd, which see pthread's locks but not what C11 atomics
 * order: vg_hb_before(obj) just before an atomic store that publishes
 * (release), vg_hb_after(obj) just after the load that saw it (acquire):
 * what came before the store happens before what follows the load.
 * vg_racy(addr, len): memory a test races on purpose (a seqlock's data
 * read while written, a word another thread changes under the reader's
 * feet, a region touched while another thread remaps it) -- its races are
 * the test's point, not reported.  Call it again after each umm_mmap
 * there: a new mapping is new memory to helgrind, as the kernel's.
 *
 * All of these are no-ops outside Valgrind.
 */
int under_valgrind(void);
void vg_quiet(int on);
void vg_expect_fault(const void *addr, size_t len);
void vg_abrupt_end(void);
void vg_hb_before(const volatile void *obj);
void vg_hb_after(const volatile void *obj);
void vg_racy(const volatile void *addr, size_t len);

/* The leak oracle: every frame, mapping and file released. */
void check_released(void);

uint64_t stat_get(const char *which);

/* Wait (up to 20 s: Valgrind is slow) for counter `which` to grow by want
 * from `from`, for what libumm's daemon does on its own thread (reading
 * ahead); returns how much it grew. */
uint64_t stat_wait(const char *which, uint64_t from, uint64_t want);

/* libumm's shared memory as the host counts it: RssShmem of
 * /proc/self/status, in kB (-1 if not found). */
long rss_shmem_kb(void);
/* Pages libumm's RAM memfd holds now (its blocks), as the host counts
 * them; UINT64_MAX if the memfd is not found (libumm not started). */
uint64_t ram_host_pages(void);

/* The open descriptors whose link contains `what` ("memfd:libumm-" for
 * libumm's memfds), at most max of them into out; their number, or -1. */
int fds_named(const char *what, int *out, int max);

/* Lines of /proc/self/maps; in *libumm (if not NULL) those of libumm's
 * pages: mappings of its memfds, less its direct map of the RAM. */
int maps_lines(int *libumm);

#endif
