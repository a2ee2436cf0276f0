/*
 * pager-checkpoint: incremental checkpoints of a running computation with
 * umm_dirty, restored in a new process by a pager.
 *
 * The computation (a cellular automaton over a region of private memory)
 * runs in steps.  After each step umm_dirty(UMM_DIRTY_CLEAR) says which
 * pages the step wrote, and only those are appended to a checkpoint log
 * (page number, bytes) -- the first checkpoint has every page, the later
 * ones only what changed.  Then the program runs itself again as a new
 * process (exec), which restores the region lazily: a pager whose fill
 * reads each page's last version from the log, so a page is read only when
 * the restored program touches it.  The new process checks the restored
 * memory byte for byte against the same computation redone in plain
 * memory.  It speaks TAP, so make check runs it as a test.
 *
 *   pager-checkpoint [LOG]           compute, checkpoint to LOG, restore
 *   pager-checkpoint --restore LOG   (the new process)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <umm.h>

#define PAGE 4096
#define NPAGES 1024 /* 4 MiB */
#define STEPS 12

static int tests;
static int check(int cond, const char *what)
{
    printf("%s %d - %s\n", cond ? "ok" : "not ok", ++tests, what);
    fflush(stdout);
    return cond;
}

/* One step of the computation: a few cells of a few pages change, as in a
 * long computation whose working set moves; deterministic. */
static void step(unsigned char *m, int s)
{
    uint64_t r = 0x9e3779b97f4a7c15ull * (uint64_t)(s + 1);
    for (int k = 0; k < 40; k++) {
        r ^= r << 13, r ^= r >> 7, r ^= r << 17;
        size_t pg = (r >> 8) % NPAGES, at = pg * PAGE + (r % (PAGE - 64));
        for (int i = 0; i < 64; i++)
            m[at + i] = (unsigned char)(m[at + i] * 31 + s + i);
    }
}

static void init(unsigned char *m)
{
    for (size_t i = 0; i < (size_t)NPAGES * PAGE; i++)
        m[i] = (unsigned char)(i * 7 + i / PAGE);
}

/* The log: records of (uint64_t page, PAGE bytes).  Appended to only. */
static int log_pages(int fd, const unsigned char *m, const unsigned char *vec, long *n)
{
    for (uint64_t pg = 0; pg < NPAGES; pg++) {
        if (!vec[pg])
            continue;
        if (write(fd, &pg, sizeof pg) != sizeof pg || write(fd, m + pg * PAGE, PAGE) != PAGE)
            return -1;
        (*n)++;
    }
    return 0;
}

static int checkpoint_run(const char *path)
{
    unsigned char *m = umm_mmap(NULL, (size_t)NPAGES * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                                -1, 0);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (!check(m != MAP_FAILED && fd >= 0, "a region for the computation and a log"))
        return 1;
    static unsigned char vec[NPAGES];
    init(m);
    long total = 0, first = 0;
    int err = 0;
    for (int s = 0; s <= STEPS && !err; s++) {
        if (s > 0)
            step(m, s);
        if (umm_dirty(m, (size_t)NPAGES * PAGE, vec, UMM_DIRTY_CLEAR) < 0)
            err = 1;
        else
            err = log_pages(fd, m, vec, &total) != 0;
        if (s == 0)
            first = total;
    }
    close(fd);
    check(!err && first == NPAGES, "the first checkpoint has every page");
    printf("# %d incremental checkpoints: %ld pages logged after the first (a full copy each time: %d)\n", STEPS,
           total - first, STEPS * NPAGES);
    check(total - first < (long)STEPS * NPAGES / 4, "the later ones log only the pages written");
    umm_munmap(m, (size_t)NPAGES * PAGE);
    return 0;
}

/* ------------------------------------------------- restore: the pager */

struct restore {
    int fd;
    off_t where[NPAGES]; /* each page's last record in the log (bytes after its number) */
    long fills;
};

static ssize_t ck_fill(void *cookie, off_t off, void *buf, size_t len)
{
    struct restore *r = cookie;
    for (size_t done = 0; done < len; done += PAGE) {
        size_t pg = (size_t)off / PAGE + done / PAGE;
        if (pread(r->fd, (char *)buf + done, PAGE, r->where[pg]) != PAGE)
            return -EIO;
        r->fills++;
    }
    return (ssize_t)len;
}

static uint64_t ck_size(void *cookie)
{
    (void)cookie;
    return (uint64_t)NPAGES * PAGE;
}

static const struct umm_pager_ops restore_ops = { .fill = ck_fill, .size = ck_size };

static int restore_run(const char *path)
{
    static struct restore r;
    const char *c = getenv("PAGER_CHECKPOINT_TESTS");
    tests = c ? atoi(c) : 0; /* TAP: go on numbering from the first process */
    r.fd = open(path, O_RDONLY);
    if (!check(r.fd >= 0, "the new process opens the log"))
        return 1;
    uint64_t pg;
    off_t at = 0;
    int seen = 0;
    while (pread(r.fd, &pg, sizeof pg, at) == sizeof pg && pg < NPAGES) {
        r.where[pg] = at + (off_t)sizeof pg;
        at += (off_t)(sizeof pg + PAGE);
        seen++;
    }
    check(seen >= NPAGES, "the log indexed: each page's last version");
    /* MAP_PRIVATE: the restored computation may go on writing its own
     * copies; the log is never written. */
    unsigned char *m = umm_mmap_pager(NULL, (size_t)NPAGES * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE,
                                      &restore_ops, &r, 0);
    if (!check(m != MAP_FAILED, "the region restored lazily by a pager over the log"))
        return 1;
    check(r.fills == 0, "nothing read before a touch");
    unsigned char *truth = malloc((size_t)NPAGES * PAGE);
    init(truth);
    for (int s = 1; s <= STEPS; s++)
        step(truth, s);
    check(memcmp(m, truth, (size_t)NPAGES * PAGE) == 0,
          "restored byte for byte as the computation left it (redone in plain memory)");
    step(m, STEPS + 1);
    step(truth, STEPS + 1);
    check(memcmp(m, truth, (size_t)NPAGES * PAGE) == 0, "and the computation goes on from there");
    umm_munmap(m, (size_t)NPAGES * PAGE);
    free(truth);
    close(r.fd);
    printf("1..%d\n", tests);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "--restore") == 0)
        return restore_run(argv[2]);
    char path[4096];
    const char *dir = getenv("UMM_TEST_TMPDIR");
    if (argc > 1)
        snprintf(path, sizeof path, "%s", argv[1]);
    else
        snprintf(path, sizeof path, "%s/pager-checkpoint.%d.log", dir && *dir ? dir : "/tmp", (int)getpid());
    if (checkpoint_run(path) != 0)
        return 1;
    /* A new process: nothing of the old one's memory, only the log.  Its
     * TAP points follow ours. */
    char count[16];
    snprintf(count, sizeof count, "%d", tests);
    setenv("PAGER_CHECKPOINT_TESTS", count, 1);
    char self[4096]; /* this program's file (Valgrind answers with its client's, not itself) */
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    self[n > 0 ? n : 0] = 0;
    pid_t pid = fork();
    if (pid == 0) {
        execl(self, argv[0], "--restore", path, (char *)NULL);
        _exit(127);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    if (argc <= 1)
        unlink(path);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
}
