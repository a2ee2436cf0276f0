/*
 * outofcore.h: what bench-reclaim and bench-policy share -- a file on disk
 * whose every page says which page it is, the host's page cache filled or
 * emptied before a run, and a run in a child process of its own, in a
 * memory cgroup of its own where the machine allows one (tests/memcg.h),
 * its result handed back through shared memory.
 */
#ifndef UMM_BENCH_OUTOFCORE_H
#define UMM_BENCH_OUTOFCORE_H

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../tests/memcg.h"

#define OOC_PAGE 4096

/* The first word of page pg of the file. */
static inline uint64_t ooc_word(uint64_t pg)
{
    return pg * 0x9e3779b97f4a7c15ull + 1;
}

static inline void ooc_die(const char *bench, const char *what)
{
    fprintf(stderr, "%s: %s: %s\n", bench, what, strerror(errno));
    exit(2);
}

/* The file, in the current directory (the build directory under make
 * bench), unlinked: each page's first word says which page it is, the
 * rest of the page its low byte.  Returns its descriptor. */
static inline int ooc_make_file(const char *bench, uint64_t bytes)
{
    char path[64];
    snprintf(path, sizeof path, "./umm-%s.XXXXXX", bench);
    int fd = mkstemp(path);
    if (fd < 0)
        ooc_die(bench, "mkstemp in the current directory");
    unlink(path);
    static char buf[1 << 20];
    for (uint64_t off = 0; off < bytes; off += sizeof buf) {
        for (uint64_t i = 0; i < sizeof buf; i += OOC_PAGE) {
            uint64_t w = ooc_word((off + i) / OOC_PAGE);
            memset(buf + i, (int)(w & 0xff), OOC_PAGE);
            memcpy(buf + i, &w, sizeof w);
        }
        if (pwrite(fd, buf, sizeof buf, (off_t)off) != (ssize_t)sizeof buf)
            ooc_die(bench, "writing the file");
    }
    if (fdatasync(fd) != 0)
        ooc_die(bench, "fdatasync");
    return fd;
}

/* Before a run: warm, the file read whole into the host's page cache (by
 * this process: charged to its cgroup, not the run's); cold, its pages
 * dropped from there. */
static inline void ooc_prepare_cache(const char *bench, int fd, uint64_t bytes, int cold)
{
    if (cold) {
        if (fdatasync(fd) != 0 || posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED) != 0)
            ooc_die(bench, "dropping the file's pages");
        return;
    }
    static char buf[1 << 20];
    for (uint64_t off = 0; off < bytes; off += sizeof buf)
        if (pread(fd, buf, sizeof buf, (off_t)off) < 0)
            ooc_die(bench, "reading the file");
}

/* What a run's cgroup saw: OOM kills and peak memory (-1: no cgroup). */
struct ooc_cg {
    long long oom_kills, peak;
};

/* work(arg, out) in a child process (in cgroup cgname with limit, if
 * have_cg), out being size bytes of shared memory copied back to result;
 * returns the child's wait status. */
static inline int ooc_run_child(const char *bench, int have_cg, const char *cgname, uint64_t limit,
                                void (*work)(const void *, void *), const void *arg, void *result, size_t size,
                                struct ooc_cg *seen)
{
    struct memcg cg = { 0 };
    char why[1024];
    if (have_cg && memcg_create(&cg, cgname, limit, why, sizeof why) != 0) {
        fprintf(stderr, "%s: the cgroup went away: %s\n", bench, why);
        exit(2);
    }
    void *shared = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (shared == MAP_FAILED)
        ooc_die(bench, "mmap");
    memset(shared, 0, size);
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0)
        ooc_die(bench, "fork");
    if (pid == 0) {
        if (have_cg && memcg_enter(&cg) != 0)
            _exit(4);
        work(arg, shared);
        _exit(0);
    }
    int status = 0;
    if (waitpid(pid, &status, 0) != pid)
        ooc_die(bench, "waitpid");
    memcpy(result, shared, size);
    munmap(shared, size);
    seen->oom_kills = have_cg ? memcg_oom_kills(&cg) : -1;
    seen->peak = have_cg ? memcg_peak(&cg) : -1;
    if (have_cg)
        memcg_destroy(&cg);
    return status;
}

#endif
