/*
 * bench-fileio: what libumm's file I/O layer (src/fileio.c) costs a
 * program's own read/write calls, against the system call itself in the
 * same run (these machines are shared and noisy: ratios, medians).
 *
 * Each row times N calls of 4 KiB pread (from a file in the host's page
 * cache) or of 1-byte write (to /dev/null), median of REPS runs:
 *   syscall      the system call itself: the floor
 *   nothing      through libumm's pread/write, nothing mapped: the price
 *                every program linked with libumm pays
 *   other file   while another file is mapped with libumm: which file
 *                the descriptor is (src/fdtable.c: an fstat the first
 *                time; UMM_FDCACHE=0, one per call)
 *   mapped file  pread of a file mapped with libumm (pages resident): the
 *                copy of dirty frames over the result is skipped for clean
 *                pages, but the lock and the frame walk are paid
 *   anon buffer  pread into a libumm anonymous buffer, resident
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <umm.h>

#include "bench.h"

#define PAGE 4096
#define N 20000
#define REPS 7

enum how { SYSCALL_PREAD, LIB_PREAD, SYSCALL_WRITE, LIB_WRITE };

/* Microseconds per call, median of REPS runs of N calls. */
static double per_call(enum how how, int fd, char *buf)
{
    double t[REPS];
    for (int r = 0; r < REPS; r++) {
        double t0 = now();
        for (int i = 0; i < N; i++) {
            off_t off = (off_t)(i % 64) * PAGE;
            switch (how) {
            case SYSCALL_PREAD: syscall(SYS_pread64, fd, buf, PAGE, off); break;
            case LIB_PREAD: (void)!pread(fd, buf, PAGE, off); break;
            case SYSCALL_WRITE: syscall(SYS_write, fd, buf, 1); break;
            case LIB_WRITE: (void)!write(fd, buf, 1); break;
            }
        }
        t[r] = (now() - t0) / N * 1e6;
    }
    qsort(t, REPS, sizeof t[0], cmp);
    return t[REPS / 2];
}

static int make_file(const char *tag)
{
    char path[] = "/tmp/bench-fileio-XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0) {
        perror(tag);
        exit(1);
    }
    unlink(path);
    char page[PAGE];
    memset(page, 'x', sizeof page);
    for (int i = 0; i < 64; i++)
        if (write(fd, page, PAGE) != PAGE)
            exit(1);
    return fd;
}

static void row(const char *name, double us, double floor)
{
    printf("  %-34s %7.3f us/call  %5.2fx the system call\n", name, us, us / floor);
}

int main(void)
{
    int fd = make_file("data"), other = make_file("other"), null = open("/dev/null", O_WRONLY);
    char *buf = malloc(PAGE);
    printf("bench-fileio: the program's own calls through libumm, %d calls, median of %d runs\n", N, REPS);

    double sp = per_call(SYSCALL_PREAD, fd, buf), sw = per_call(SYSCALL_WRITE, null, buf);
    printf(" pread 4 KiB (host page cache)\n");
    row("system call (floor)", sp, sp);
    row("libumm, nothing mapped", per_call(LIB_PREAD, fd, buf), sp);
    void *o = umm_mmap(NULL, 64 * PAGE, PROT_READ, MAP_SHARED, other, 0);
    row("libumm, another file mapped", per_call(LIB_PREAD, fd, buf), sp);
    char *m = umm_mmap(NULL, 64 * PAGE, PROT_READ, MAP_SHARED, fd, 0);
    for (int i = 0; i < 64; i++)
        (void)*(volatile char *)(m + i * PAGE);
    row("libumm, this file mapped, resident", per_call(LIB_PREAD, fd, buf), sp);
    char *a = umm_mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    a[0] = 1;
    row("libumm, into a libumm anonymous page", per_call(LIB_PREAD, fd, a), sp);
    umm_munmap(m, 64 * PAGE);
    umm_munmap(a, PAGE);

    printf(" write 1 byte to /dev/null\n");
    umm_munmap(o, 64 * PAGE);
    row("system call (floor)", sw, sw);
    row("libumm, nothing mapped", per_call(LIB_WRITE, null, buf), sw);
    o = umm_mmap(NULL, 64 * PAGE, PROT_READ, MAP_SHARED, other, 0);
    row("libumm, a file mapped", per_call(LIB_WRITE, null, buf), sw);
    umm_munmap(o, 64 * PAGE);
    free(buf);
    return 0;
}
