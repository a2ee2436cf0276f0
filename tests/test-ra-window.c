/* Promise (issue 15, README "Memory budget and reclaim"): read-ahead
 * windows double on a sequential stream up to 2 MiB (512 pages), but never
 * past a 64th of the budget (and never under 32 pages), since a window is
 * what a faulting thread may take past the budget.  Counted in traps and
 * pages read, not times: a stream of 8192 pages takes about 24 traps with
 * 512-page windows (a ramp of 10, then 14 windows), 256 or more with
 * 32-page ones.  The small budget runs in a program of its own (the budget
 * is read once, at start): this one spawned again with UMM_RAM set. */
#include <fcntl.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include "util.h"

#define PAGES 8192 /* 32 MiB */

extern char **environ;

/* Read a fresh file of PAGES pages sequentially through one mapping; the
 * traps it took, and whether every page read once and shows the file. */
static uint64_t stream(unsigned seed, int *good)
{
    int fd = tmpfile_make((uint64_t)PAGES * PAGE, seed, O_RDONLY, NULL);
    unsigned char *p = umm_mmap(NULL, (size_t)PAGES * PAGE, PROT_READ, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) {
        *good = 0;
        close(fd);
        return 0;
    }
    uint64_t f0 = stat_get("faults"), r0 = stat_get("pages_read");
    int bad = 0;
    for (size_t i = 0; i < PAGES; i++)
        bad += p[i * PAGE + 9] != pattern(i * PAGE + 9, seed);
    uint64_t traps = stat_get("faults") - f0;
    *good = bad == 0 && stat_get("pages_read") - r0 == PAGES;
    umm_munmap(p, (size_t)PAGES * PAGE);
    close(fd);
    return traps;
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--small") == 0) { /* UMM_RAM=4M: 1024 pages, windows of 32 */
        int good;
        uint64_t traps = stream(42, &good);
        printf("%llu\n", (unsigned long long)traps);
        return good ? 0 : 1;
    }
    struct umm_stats st;
    void *start = umm_mmap(NULL, PAGE, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0); /* libumm reads its budget */
    umm_munmap(start, PAGE);
    umm_stats(&st);
    if (st.budget < 512 * 64)
        tap_skip_all("the budget here is under 32,768 pages (128 MiB): its windows stay under 2 MiB");
    int good;
    uint64_t traps = stream(41, &good);
    ok(good, "a sequential stream of %d pages: every page shows the file, read once", PAGES);
    ok(traps <= 32, "windows grow to 512 pages: %llu traps for %d pages (32-page windows: 256 or more)",
       (unsigned long long)traps, PAGES);

    /* The same stream under a budget of 4 MiB: windows stay at 32 pages. */
    char *self = argv[0];
    char *args[] = { self, (char *)"--small", NULL };
    int out[2];
    if (pipe(out) != 0)
        return 1;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, out[1], 1);
    posix_spawn_file_actions_addclose(&fa, out[0]);
    size_t n = 0;
    while (environ[n])
        n++;
    char **env = calloc(n + 2, sizeof *env);
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (strncmp(environ[i], "UMM_RAM=", 8) != 0)
            env[k++] = environ[i];
    env[k++] = (char *)"UMM_RAM=4M";
    env[k] = NULL;
    pid_t pid = -1;
    int status = 0;
    char buf[64] = "";
    if (posix_spawn(&pid, self, &fa, NULL, args, env) == 0) {
        close(out[1]);
        ssize_t r = read(out[0], buf, sizeof buf - 1);
        buf[r > 0 ? r : 0] = 0;
        waitpid(pid, &status, 0);
    } else {
        close(out[1]);
        status = 99 << 8;
    }
    close(out[0]);
    posix_spawn_file_actions_destroy(&fa);
    free(env);
    uint64_t small = strtoull(buf, NULL, 10);
    is_int(WIFEXITED(status) ? WEXITSTATUS(status) : 100 + WTERMSIG(status), 0,
           "under UMM_RAM=4M the stream shows the file, every page read once");
    ok(small >= PAGES / 32 && small <= PAGES / 16,
       "under a budget of 1024 pages windows stay at 32 pages (a 64th is 16; never under 32): %llu traps",
       (unsigned long long)small);
    check_released();
    return tap_done();
}
