/* Promise: MAP_POPULATE makes the pages resident at once (umm_stats
 * resident), so that touching them afterwards takes no trap; private
 * writable mappings are populated for writing, as the kernel does (the
 * kernel's smaps shows the same number of private copies); pages beyond
 * the end of the file are not populated and the call still succeeds;
 * with MAP_NONBLOCK nothing is populated, as the kernel does. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include "kcmp.h"

#define SEED 36
#define N 16

/* The kernel's count of resident pages of [p, p+n pages). */
static int kernel_resident(void *p, size_t n)
{
    unsigned char vec[N];
    if (mincore(p, n * PAGE, vec) != 0)
        return -1;
    int r = 0;
    for (size_t i = 0; i < n; i++)
        r += vec[i] & 1;
    return r;
}

/* The "Anonymous:" kB of the kernel mapping that starts at p (smaps). */
static long smaps_anon_kb(void *p)
{
    FILE *f = fopen("/proc/self/smaps", "r");
    char line[512];
    int in = 0;
    long kb = -1;
    if (!f)
        return -1;
    while (fgets(line, sizeof line, f)) {
        unsigned long s, e;
        if (sscanf(line, "%lx-%lx ", &s, &e) == 2 && strchr(line, '-') < strchr(line, ' ')) {
            in = s == (unsigned long)p;
            continue;
        }
        if (in && sscanf(line, "Anonymous: %ld kB", &kb) == 1)
            break;
    }
    fclose(f);
    return kb;
}

int main(void)
{
    int fd = tmpfile_make(N * PAGE, SEED, O_RDWR, NULL);
    struct umm_stats s0, s1;

    /* The kernel: the test's idea of MAP_POPULATE holds. */
    char *k = mmap(NULL, N * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    is_int(kernel_resident(k, N), 0, "kernel: anonymous memory is not resident before a touch (the test is right)");
    munmap(k, N * PAGE);
    k = mmap(NULL, N * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
    is_int(kernel_resident(k, N), N, "kernel: MAP_POPULATE makes it resident (the test is right)");
    munmap(k, N * PAGE);
    k = mmap(NULL, N * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_POPULATE, fd, 0);
    long kernel_copies = smaps_anon_kb(k) / 4;
    munmap(k, N * PAGE);
    is_int(kernel_copies, N, "kernel: a private writable file mapping is populated for write (the test is right)");

    /* libumm, without MAP_POPULATE: nothing resident. */
    umm_stats(&s0);
    unsigned char *p = umm_mmap(NULL, N * PAGE, PROT_READ, MAP_PRIVATE, fd, 0);
    umm_stats(&s1);
    is_int(s1.resident - s0.resident, 0, "without MAP_POPULATE nothing is resident");
    umm_munmap(p, N * PAGE);

    /* Private, read-only. */
    umm_stats(&s0);
    p = umm_mmap(NULL, N * PAGE, PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd, 0);
    umm_stats(&s1);
    ok(p != MAP_FAILED, "MAP_PRIVATE|MAP_POPULATE");
    is_int(s1.resident - s0.resident, N, "every page resident at once");
    is_int(s1.pages_read - s0.pages_read, N, "every page read from the file");
    is_int(diff_pattern(p, N * PAGE, 0, SEED), 0, "the pages show the file");
    is_int(stat_get("faults") - s1.faults, 0, "reading them takes no trap");
    umm_munmap(p, N * PAGE);

    /* Private, writable: populated for write, as the kernel does. */
    umm_stats(&s0);
    p = umm_mmap(NULL, N * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_POPULATE, fd, 0);
    umm_stats(&s1);
    is_int(s1.resident - s0.resident, N, "private writable: every page resident");
    is_int(s1.cow_copies - s0.cow_copies, kernel_copies, "as many private copies as the kernel made");
    for (int i = 0; i < N; i++)
        p[i * PAGE] ^= 1;
    is_int(stat_get("faults") - s1.faults, 0, "writing them takes no trap");
    umm_munmap(p, N * PAGE);

    /* Shared. */
    umm_stats(&s0);
    p = umm_mmap(NULL, N * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, 0);
    umm_stats(&s1);
    is_int(s1.resident - s0.resident, N, "MAP_SHARED|MAP_POPULATE: every page resident");
    is_int(diff_pattern(p, N * PAGE, 0, SEED), 0, "the pages show the file");
    is_int(stat_get("faults") - s1.faults, 0, "reading them takes no trap");
    umm_munmap(p, N * PAGE);

    /* Anonymous, private and shared. */
    int flags[2] = { MAP_PRIVATE, MAP_SHARED };
    for (int i = 0; i < 2; i++) {
        umm_stats(&s0);
        p = umm_mmap(NULL, N * PAGE, PROT_READ | PROT_WRITE, flags[i] | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
        umm_stats(&s1);
        const char *what = i ? "shared" : "private";
        is_int(s1.resident - s0.resident, N, "%s anonymous: every page resident", what);
        is_int(s1.frames - s0.frames, N, "%s anonymous: a frame for each", what);
        int nz = 0;
        for (size_t j = 0; j < N * PAGE; j++)
            nz += p[j] != 0;
        memset(p, 0x11, N * PAGE);
        is_int(nz, 0, "%s anonymous: zero-filled", what);
        is_int(stat_get("faults") - s1.faults, 0, "%s anonymous: reading and writing take no trap", what);
        umm_munmap(p, N * PAGE);
    }

    /* MAP_NONBLOCK: the kernel does not populate then. */
    k = mmap(NULL, N * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE | MAP_NONBLOCK, -1, 0);
    int knb = kernel_resident(k, N);
    munmap(k, N * PAGE);
    is_int(knb, 0, "kernel: MAP_POPULATE|MAP_NONBLOCK populates nothing (the test is right)");
    umm_stats(&s0);
    p = umm_mmap(NULL, N * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE | MAP_NONBLOCK,
                 -1, 0);
    umm_stats(&s1);
    is_int(s1.resident - s0.resident, knb, "MAP_POPULATE|MAP_NONBLOCK: as many pages resident as the kernel");
    umm_munmap(p, N * PAGE);

    /* A mapping longer than the file: the pages beyond it are not
     * populated, and the call succeeds, as in the kernel. */
    int shortfd = tmpfile_make(N / 2 * PAGE + 100, SEED, O_RDONLY, NULL);
    k = mmap(NULL, N * PAGE, PROT_READ, MAP_SHARED | MAP_POPULATE, shortfd, 0);
    ok(k != MAP_FAILED, "kernel: MAP_POPULATE beyond the end of the file succeeds (the test is right)");
    int ksig = probe_read(k + (N - 1) * PAGE);
    munmap(k, N * PAGE);
    umm_stats(&s0);
    p = umm_mmap(NULL, N * PAGE, PROT_READ, MAP_SHARED | MAP_POPULATE, shortfd, 0);
    umm_stats(&s1);
    ok(p != MAP_FAILED, "libumm: MAP_POPULATE beyond the end of the file succeeds");
    is_int(s1.resident - s0.resident, N / 2 + 1, "the pages of the file are resident");
    is_int(probe_read(p + (N - 1) * PAGE), ksig, "a page beyond the end still raises what the kernel raises");
    umm_munmap(p, N * PAGE);
    close(shortfd);
    close(fd);
    check_released();
    return tap_done();
}
