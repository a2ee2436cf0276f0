/* Promise (src/frame.c, the pool; issue 15): page-cache chunks let go at
 * the last munmap are kept, not punched, while frames in use plus pooled
 * pages stay at the budget's low mark (3/4), and the next allocation
 * takes them first -- so a file mapped again, or another file, is filled
 * into host pages that are already there, whose first touch the host
 * does not charge again.  A pooled chunk still holds its old bytes until
 * the daemon (or the allocation that takes it) zeroes it: whatever takes
 * it reads zeros where a fresh frame would.  Reclaim gives pooled pages
 * back before any other, and a pool nobody used for a whole flush
 * interval goes back to the host.  Checked from the host's view too: the
 * blocks of libumm's RAM memfd. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "util.h"

#define MIB (1u << 20)

static int file_ok(const unsigned char *p, uint64_t len, unsigned seed)
{
    for (uint64_t off = 0; off < len; off += 61)
        if (p[off] != pattern(off, seed))
            return 0;
    return 1;
}

static int all_zero(const unsigned char *p, uint64_t len)
{
    const uint64_t *w = (const uint64_t *)p;
    for (uint64_t i = 0; i < len / 8; i++)
        if (w[i])
            return 0;
    return 1;
}

/* Map a file of len bytes (pattern seed) MAP_SHARED, read it all, unmap. */
static int map_read_unmap(uint64_t len, unsigned seed)
{
    int fd = tmpfile_make(len, seed, O_RDONLY, NULL);
    unsigned char *p = fd < 0 ? MAP_FAILED : umm_mmap(NULL, len, PROT_READ, MAP_SHARED, fd, 0);
    int good = p != MAP_FAILED && file_ok(p, len, seed);
    if (p != MAP_FAILED)
        umm_munmap(p, len);
    if (fd >= 0)
        close(fd);
    return good;
}

/* A child with a flush interval of 100 ms: its unused pool goes back. */
static int ageing_child(void)
{
    setenv("UMM_FLUSH_INTERVAL_MS", "100", 1);
    setenv("UMM_RAM", "64M", 1);
    if (!map_read_unmap(4 * MIB, 4))
        return 1;
    if (stat_get("frames_pooled") != 4 * MIB / PAGE)
        return 2;
    uint64_t held = ram_host_pages();
    if (held == UINT64_MAX)
        return 4;
    /* Up to 3 s: two ticks are 0.2.  The count drops before the daemon
     * punches what it took out of the pool (frame.c, outside the
     * allocator's lock): the memfd is waited for too (a loaded machine
     * saw it between the two). */
    for (int i = 0; i < 300 && (stat_get("frames_pooled") != 0 || ram_host_pages() + 4 * MIB / PAGE > held); i++)
        usleep(10000);
    if (stat_get("frames_pooled") != 0)
        return 3;
    if (ram_host_pages() + 4 * MIB / PAGE > held)
        return 4;
    return 0;
}

/* A child with UMM_FRAME_POOL set to `cap`: what a 4 MiB file's munmap
 * leaves pooled (pages), or -1. */
static int capped_child(const char *cap)
{
    setenv("UMM_FRAME_POOL", cap, 1);
    setenv("UMM_RAM", "64M", 1);
    setenv("UMM_FLUSH_INTERVAL_MS", "0", 1);
    if (!map_read_unmap(4 * MIB, 6))
        return 255;
    uint64_t pooled = stat_get("frames_pooled");
    return pooled > 254 ? 254 : (int)pooled;
}

static int run_child(int (*fn)(const char *), const char *arg)
{
    pid_t pid = fork();
    if (pid == 0) {
        int rc = fn(arg);
        vg_abrupt_end(); /* _exit with libumm's daemon running */
        _exit(rc);
    }
    int status = -1;
    waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 1000 + WTERMSIG(status);
}

/* A child of the family that lets frames go and takes them again as fast
 * as it can (each a trip through the allocator's lock, and work for its
 * daemon: zeroing, taking, giving back) for `ms` milliseconds, then ends
 * with _exit() from its main thread, whatever the daemon is doing. */
static void churn(unsigned ms)
{
    int fd = tmpfile_make(MIB, 12, O_RDONLY, NULL);
    struct timespec t0, t1;
    vg_abrupt_end(); /* it ends by _exit with libumm's daemon running */
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        unsigned char *p = umm_mmap(NULL, MIB, PROT_READ, MAP_SHARED, fd, 0);
        if (p == MAP_FAILED)
            _exit(1);
        for (uint64_t off = 0; off < MIB; off += PAGE * 16)
            (void)*(volatile unsigned char *)(p + off);
        umm_munmap(p, MIB);
        unsigned char *a = umm_mmap(NULL, 256 * 1024, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
        if (a != MAP_FAILED) {
            a[0] = 1;
            umm_munmap(a, 256 * 1024);
        }
        clock_gettime(CLOCK_MONOTONIC, &t1);
        if ((t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000 >= ms)
            _exit(0);
    }
}

/* Children of the family that end with _exit() at random moments while
 * they and their daemons use the frame allocator: none may leave the
 * family stuck on the allocator's lock or on a zeroing run it began.
 * Returns the rounds the parent came through. */
static int exiting_children(int rounds)
{
    int done = 0;
    unsigned seed = 12345;
    for (int r = 0; r < rounds; r++) {
        seed = seed * 1103515245 + 12345;
        pid_t pid = umm_fork();
        if (pid < 0)
            break;
        if (pid == 0)
            churn(1 + (seed >> 8) % 30);
        int status = -1;
        waitpid(pid, &status, 0);
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
            break;
        if (!map_read_unmap(2 * MIB, 14))
            break;
        unsigned char *s = umm_mmap(NULL, 4 * MIB, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
        int zero = s != MAP_FAILED && all_zero(s, 4 * MIB);
        if (s != MAP_FAILED)
            umm_munmap(s, 4 * MIB);
        if (!zero)
            break;
        done++;
    }
    return done;
}

int main(void)
{
    /* The ageing case first, in a child that starts libumm afresh with
     * its own environment. */
    pid_t pid = fork();
    if (pid == 0) {
        int rc = ageing_child();
        vg_abrupt_end(); /* _exit with libumm's daemon running */
        _exit(rc);
    }
    int status = -1;
    waitpid(pid, &status, 0);
    is_int(WIFEXITED(status) ? WEXITSTATUS(status) : 100 + WTERMSIG(status), 0,
           "a pool unused for a whole flush interval (100 ms) goes back to the host "
           "(1: bytes wrong, 2: not pooled, 3: not emptied, 4: memfd kept its pages)");

    /* UMM_FRAME_POOL: 0 turns the pool off, a size caps it. */
    is_int(run_child(capped_child, "0"), 0, "UMM_FRAME_POOL=0: nothing pooled at munmap");
    is_int(run_child(capped_child, "512K"), 128, "UMM_FRAME_POOL=512K: 128 pages pooled of the 1,024 let go");

    setenv("UMM_RAM", "64M", 1); /* budget 16,384 pages; pool up to 12,288 with what is in use */
    setenv("UMM_FLUSH_INTERVAL_MS", "0", 1); /* no ageing here: the pool stays while the test looks */
    const uint64_t len = 16 * MIB, pages = len / PAGE;

    ok(map_read_unmap(len, 3), "a 16 MiB file mapped, read whole, unmapped");
    is_int(stat_get("frames"), 0, "no frame in use after the last munmap");
    is_int(stat_get("frames_pooled"), pages, "its 4,096 frames are pooled, not punched");
    uint64_t h1 = ram_host_pages();
    ok(h1 != UINT64_MAX && h1 >= pages, "the host still holds them (memfd %llu pages)", (unsigned long long)h1);

    /* Another file, not a whole number of pages, into the pooled frames. */
    const uint64_t blen = len - 1000;
    int fd = tmpfile_make(blen, 9, O_RDONLY, NULL);
    unsigned char *b = umm_mmap(NULL, blen, PROT_READ, MAP_SHARED, fd, 0);
    ok(b != MAP_FAILED && file_ok(b, blen, 9), "another file mapped: every byte its own, none the last file's");
    ok(b != MAP_FAILED && all_zero(b + blen, 1000 & ~7u) && b[len - 1] == 0,
       "zeros past its end in its last page");
    uint64_t h2 = ram_host_pages();
    ok(stat_get("frames_pooled") < pages / 8, "it took the pooled frames (%llu left pooled)",
       (unsigned long long)stat_get("frames_pooled"));
    ok(h2 != UINT64_MAX && h2 < h1 + pages / 8,
       "the host allocated no new memory for it (memfd %llu -> %llu pages)", (unsigned long long)h1,
       (unsigned long long)h2);
    umm_munmap(b, blen);
    close(fd);
    is_int(stat_get("frames_pooled"), pages, "pooled again at munmap");

    /* Memory that must read zeros, taken from the pool at once (before
     * the daemon zeroed all of it) and after it had time to. */
    for (int round = 0; round < 2; round++) {
        unsigned char *s = umm_mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
        ok(s != MAP_FAILED && all_zero(s, len), "shared anonymous memory from the pool reads zeros (%s)",
           round ? "after a pause" : "at once");
        if (s != MAP_FAILED) {
            memset(s, 0xa5, len);
            umm_munmap(s, len);
        }
        unsigned char *a = umm_mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        int zero = a != MAP_FAILED && all_zero(a, len);
        if (a != MAP_FAILED) {
            memset(a, 0x5a, len);
            zero = zero && a[len - 1] == 0x5a;
            umm_munmap(a, len);
        }
        ok(zero, "private anonymous memory in pooled frames reads zeros, then what was written (%s)",
           round ? "after a pause" : "at once");
        int fd2 = tmpfile_make(len, 11, O_RDWR, NULL);
        ok(fd2 >= 0 && ftruncate(fd2, 0) == 0 && ftruncate(fd2, (off_t)len) == 0, "a file of 16 MiB of holes");
        unsigned char *h = umm_mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd2, 0);
        ok(h != MAP_FAILED && all_zero(h, len), "its mapping reads zeros (%s)", round ? "after a pause" : "at once");
        if (h != MAP_FAILED)
            umm_munmap(h, len);
        close(fd2);
        usleep(200000);
    }

    /* A file 4x the budget: the pool never takes frames past the low mark. */
    uint64_t budget = stat_get("budget");
    ok(map_read_unmap(4 * budget * PAGE, 5), "a file 4x the budget read whole");
    uint64_t pooled = stat_get("frames_pooled"), h3 = ram_host_pages();
    ok(pooled > 0 && pooled <= budget * 3 / 4, "pooled after it: %llu pages, within 3/4 of the budget (%llu)",
       (unsigned long long)pooled, (unsigned long long)budget);
    ok(h3 != UINT64_MAX && h3 <= budget + budget / 8, "the host holds %llu pages of libumm's RAM (budget %llu)",
       (unsigned long long)h3, (unsigned long long)budget);

    /* Reclaim gives the pool back before it takes a page: private memory
     * up to 7/8 of the budget finds the pool drained, and nothing of its
     * own reclaimed or swapped. */
    uint64_t want = budget * 7 / 8 - 64, swapped = stat_get("swapped_out");
    unsigned char *a = umm_mmap(NULL, want * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    ok(a != MAP_FAILED, "private memory of 7/8 of the budget");
    int good = a != MAP_FAILED;
    for (uint64_t i = 0; good && i < want; i++)
        a[i * PAGE] = (unsigned char)i;
    for (uint64_t i = 0; good && i < want; i++)
        good = a[i * PAGE] == (unsigned char)i;
    ok(good, "written and read back");
    uint64_t h4 = ram_host_pages();
    ok(stat_get("frames_pooled") + want <= budget, "the pool made room: %llu pooled with %llu in use",
       (unsigned long long)stat_get("frames_pooled"), (unsigned long long)want);
    is_int(stat_get("swapped_out") - swapped, 0, "no page of it swapped out to make room for the pool");
    ok(h4 != UINT64_MAX && h4 <= budget + budget / 8, "the host holds %llu pages (budget %llu)",
       (unsigned long long)h4, (unsigned long long)budget);
    if (a != MAP_FAILED)
        umm_munmap(a, want * PAGE);
    is_int(stat_get("frames"), 0, "every frame released");

    /* A process of the family ends while its daemon works on pooled
     * frames: the others go on.  The test's alarm is what fails if not. */
    is_int(exiting_children(40), 40,
           "40 children ended by _exit() at random moments while using frames: the parent maps, reads and gets "
           "zeros after each");
    return tap_done();
}
