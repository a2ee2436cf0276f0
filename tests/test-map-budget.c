/* Promise (the map-count budget): a 4 GiB sparse file mapped MAP_SHARED and
 * touched at 200,000 random pages (reads, and some writes), with a private
 * file mapping and private anonymous memory written at random alongside,
 * works: every byte read is right, every byte written reaches its file (or
 * stays, for private memory), and /proc/self/maps never holds more than the
 * budget of libumm's mappings (UMM_MAP_BUDGET) plus the program's own.
 * First with a small budget (UMM_MAP_BUDGET=1000, in a child that sets it
 * before its first libumm call), then with the default one.  Last, in
 * another child, the program's own mappings fill most of the host's table,
 * so that the host refuses libumm mappings before its budget is reached:
 * still no fault fails. */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "config.h"
#include "util.h"
#ifdef HAVE_VALGRIND_VALGRIND_H
#include <valgrind/valgrind.h>
#else
#define RUNNING_ON_VALGRIND 0
#endif

#define GIB ((uint64_t)1 << 30)

struct run {
    const char *name;
    uint64_t budget;     /* what libumm was told (0: its default) */
    uint64_t file_pages; /* of the shared sparse file */
    uint64_t touches;    /* random pages of the shared file touched */
    uint64_t priv_pages; /* of the private file mapping */
    uint64_t anon_pages; /* of the private anonymous mapping */
    uint64_t side;       /* one touch of each private mapping per side */
    uint64_t squat;      /* mappings of the program's own made first */
};

/* Fill the host's table with about n mappings of the program's own (every
 * other page of a region PROT_NONE); returns the region. */
static void *squat(uint64_t n, size_t *len)
{
    *len = (size_t)(n + 1) * PAGE;
    char *m = mmap(NULL, *len, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (m == MAP_FAILED)
        tap_bail("mmap");
    for (uint64_t i = 0; i < n / 2; i++)
        if (mprotect(m + (2 * i + 1) * PAGE, PAGE, PROT_NONE) != 0)
            tap_bail("mprotect %llu: the host's table is full already", (unsigned long long)i);
    return m;
}

static uint64_t rng = 88172645463325252ull;
static uint64_t next(void)
{
    return xorshift64(&rng);
}

/* Where in page `page` the test looks: a different byte in each page. */
static size_t off(uint64_t page)
{
    return (size_t)((page * 2654435761u) % PAGE);
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* One touch of page `page` of m: a write of a fresh value (recorded in
 * shadow) or a read checked against shadow.  Returns 1 if a read was wrong. */
static int touch(unsigned char *m, unsigned char *shadow, uint64_t page, int write)
{
    volatile unsigned char *b = m + page * PAGE + off(page);
    if (write) {
        unsigned char val = (unsigned char)(1 + next() % 255);
        *b = val;
        shadow[page] = val;
        return 0;
    }
    return *b != shadow[page];
}

static void run(const struct run *r)
{
    double t0 = now();
    uint64_t budget = r->budget ? r->budget : 40000;
    int fd = tmpfile_sparse(r->file_pages * PAGE, O_RDWR, NULL);
    int pfd = tmpfile_sparse(r->priv_pages * PAGE, O_RDWR, NULL);
    unsigned char *shadow = calloc(r->file_pages, 1), *pshadow = calloc(r->priv_pages, 1);
    unsigned char *ashadow = calloc(r->anon_pages, 1), *seen = calloc(r->file_pages, 1);
    if (!shadow || !pshadow || !ashadow || !seen)
        tap_bail("calloc");
    size_t squat_len = 0;
    void *sq = r->squat ? squat(r->squat, &squat_len) : NULL;

    unsigned char *s = umm_mmap(NULL, r->file_pages * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    unsigned char *p = umm_mmap(NULL, r->priv_pages * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE, pfd, 0);
    unsigned char *a = umm_mmap(NULL, r->anon_pages * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    ok(s != MAP_FAILED && p != MAP_FAILED && a != MAP_FAILED, "%s: %llu MiB shared, %llu MiB private, %llu MiB anonymous mapped",
       r->name, (unsigned long long)(r->file_pages >> 8), (unsigned long long)(r->priv_pages >> 8),
       (unsigned long long)(r->anon_pages >> 8));
    if (s == MAP_FAILED || p == MAP_FAILED || a == MAP_FAILED)
        tap_bail("umm_mmap");
    /* The program's own mappings, libumm's RAM and page tables among them,
     * once the mappings are made; what the pages take comes on top.  (Give
     * or take a few: libumm's daemon thread maps its stacks as it starts.) */
    int lib, own = maps_lines(&lib);
    own -= lib;
    const int slack = 8;

    uint64_t bad = 0, distinct = 0, over = 0, wrong_count = 0, samples = 0, writes = 0;
    int max_all = 0, max_lib = 0;
    uint64_t every = r->touches / 25;
    for (uint64_t i = 0; i < r->touches; i++) {
        uint64_t page = next() % r->file_pages;
        distinct += !seen[page];
        seen[page] = 1;
        int w = next() % 10 == 0;
        writes += w;
        bad += touch(s, shadow, page, w);
        if (i % r->side == 0)
            bad += touch(p, pshadow, next() % r->priv_pages, next() % 3 == 0);
        if (i % r->side == r->side / 2)
            bad += touch(a, ashadow, next() % r->anon_pages, next() % 2 == 0);
        if (i % every == every - 1) {
            int all = maps_lines(&lib);
            samples++;
            over += all > own + slack + (int)budget || lib > (int)budget;
            wrong_count += (uint64_t)lib != stat_get("host_maps");
            max_all = all > max_all ? all : max_all;
            max_lib = lib > max_lib ? lib : max_lib;
        }
    }
    double t1 = now();
    {
        int all = maps_lines(&lib);
        over += all > own + slack + (int)budget || lib > (int)budget;
        wrong_count += (uint64_t)lib != stat_get("host_maps");
    }
    is_int(bad, 0, "%s: %llu random touches of the shared file, every byte read right", r->name,
           (unsigned long long)r->touches);
    is_int(over, 0,
           "%s: libumm's lines in /proc/self/maps never above the budget %llu, all lines never above it plus the "
           "program's own %d (of %llu samples)",
           r->name, (unsigned long long)budget, own, (unsigned long long)samples);
    is_int(wrong_count, 0, "%s: host_maps always the number of libumm lines in /proc/self/maps", r->name);
    tap_diag("%s: %llu touches of the shared file (%llu distinct pages, %llu writes) and %llu of each private "
             "mapping in %.1f s; at most %d lines in /proc/self/maps, %d of them libumm's (budget %llu, "
             "program's own %d)",
             r->name, (unsigned long long)r->touches, (unsigned long long)distinct, (unsigned long long)writes,
             (unsigned long long)(r->touches / r->side), t1 - t0, max_all, max_lib, (unsigned long long)budget, own);
    struct umm_stats st;
    umm_stats(&st);
    tap_diag("%s: faults %llu, pages read %llu, resident %llu, copies %llu, host_maps %llu", r->name,
             (unsigned long long)st.faults, (unsigned long long)st.pages_read, (unsigned long long)st.resident,
             (unsigned long long)st.cow_copies, (unsigned long long)st.host_maps);
    ok(st.faults >= distinct, "%s: every page was handled by a fault", r->name);
    ok(st.pages_read >= distinct, "%s: every page touched was read once at least", r->name);
    ok(st.host_maps <= budget, "%s: host_maps %llu within the budget", r->name, (unsigned long long)st.host_maps);

    /* Everything written is still there (released pages come back). */
    uint64_t lost = 0;
    for (uint64_t pg = 0; pg < r->file_pages; pg++)
        if (shadow[pg])
            lost += touch(s, shadow, pg, 0);
    for (uint64_t pg = 0; pg < r->priv_pages; pg++)
        lost += touch(p, pshadow, pg, 0);
    for (uint64_t pg = 0; pg < r->anon_pages; pg++)
        if (ashadow[pg])
            lost += touch(a, ashadow, pg, 0);
    is_int(lost, 0, "%s: every byte written reads back", r->name);
    int all = maps_lines(&lib);
    ok(all <= own + slack + (int)budget && lib <= (int)budget, "%s: within the budget after reading it all back (%d libumm lines)",
       r->name, lib);

    is_int(umm_munmap(s, r->file_pages * PAGE), 0, "%s: munmap the shared file", r->name);
    uint64_t missing = 0;
    for (uint64_t pg = 0; pg < r->file_pages; pg++) {
        unsigned char c;
        if (shadow[pg] && (read_file(fd, &c, 1, (off_t)(pg * PAGE + off(pg))) != 0 || c != shadow[pg]))
            missing++;
    }
    is_int(missing, 0, "%s: every byte written reached the file", r->name);
    is_int(umm_munmap(p, r->priv_pages * PAGE), 0, "%s: munmap the private file", r->name);
    is_int(umm_munmap(a, r->anon_pages * PAGE), 0, "%s: munmap the anonymous memory", r->name);
    if (sq)
        munmap(sq, squat_len);
    close(fd);
    close(pfd);
    free(shadow);
    free(pshadow);
    free(ashadow);
    free(seen);
    check_released();
}

/* Wait for a child run, which numbered its test points after ours, and
 * take its counts over. */
static void collect(pid_t pid, int fd, const char *what)
{
    int res[2], status;
    if (read(fd, res, sizeof res) == sizeof res) {
        tap_count = res[0];
        tap_failed = res[1];
    }
    close(fd);
    waitpid(pid, &status, 0);
    ok(WIFEXITED(status) && WEXITSTATUS(status) == 0, "%s (status %#x)", what, status);
}

int main(void)
{
    int quick = RUNNING_ON_VALGRIND != 0; /* memcheck: the small run only */
    /* Nothing but this thread changes mappings while it counts them. */
    setenv("UMM_FLUSH_INTERVAL_MS", "0", 1);
    int pipefd[2];
    if (pipe(pipefd) != 0)
        tap_bail("pipe");
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        setenv("UMM_MAP_BUDGET", "1000", 1);
        struct run r = { "budget 1000", 1000, 4 * GIB / PAGE, quick ? 5000 : 40000, 4096, 65536, 4, 0 };
        run(&r);
        int res[2] = { tap_count, tap_failed };
        if (write(pipefd[1], res, sizeof res) != sizeof res)
            _exit(1);
        exit(0); /* not _exit: libumm stops its daemon at exit */
    }
    close(pipefd[1]);
    collect(pid, pipefd[0], "the small-budget run finished");
    if (quick)
        return tap_done();

    if (pipe(pipefd) != 0)
        tap_bail("pipe");
    fflush(stdout);
    pid = fork();
    if (pid == 0) {
        /* All but 20,000 of the host's mappings are the program's own. */
        struct run r = { "crowded host", 0, 4 * GIB / PAGE, 40000, 4096, 65536, 4, 0 };
        FILE *f = fopen("/proc/sys/vm/max_map_count", "re");
        unsigned long long max = 0;
        if (!f || fscanf(f, "%llu", &max) != 1 || max < 40000 || max > 1000000)
            _exit(2);
        fclose(f);
        r.squat = max - 20000 - (uint64_t)maps_lines(NULL);
        run(&r);
        int res[2] = { tap_count, tap_failed };
        if (write(pipefd[1], res, sizeof res) != sizeof res)
            _exit(1);
        exit(0);
    }
    close(pipefd[1]);
    collect(pid, pipefd[0], "the crowded-host run finished");

    unsetenv("UMM_MAP_BUDGET");
    struct run r = { "default budget", 0, 4 * GIB / PAGE, 200000, 65536, 4 * GIB / PAGE, 8, 0 };
    run(&r);
    return tap_done();
}
