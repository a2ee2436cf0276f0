/*
 * umm-tour: a guided tour of the kernel that lives in this process.
 *
 * It makes a sample file in a temporary directory, maps it with umm_mmap,
 * touches pages, and after each step prints, in plain words, every trap
 * libumm handled: the address, read or write, what libumm did, how long
 * it took.  Step 7 forks with umm_fork() and shows copy-on-write between
 * parent and child; step 8 starts the tour again in a new process with a
 * small memory budget (UMM_RAM) and shows reclaim and the swap file; step 9
 * maps a store of the program's own through a pager (umm_pager(3)).  Run
 * it with `make demo`, which runs it with UMM_TRACE_FILE set and draws the
 * traces with umm-trace(1).
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <umm.h>

#define PAGE 4096
#define PAGES 64

static void *base; /* the mapping whose offsets we print */

static const char *what(const struct umm_trace_event *e)
{
    static char buf[128];
    switch (e->kind) {
    case UMM_TRACE_FILL:
        snprintf(buf, sizeof buf, "read %u page%s from file offset %#llx with one pread, installed",
                 e->pages, e->pages > 1 ? "s" : "", (unsigned long long)e->file_offset);
        return buf;
    case UMM_TRACE_CACHED:
        snprintf(buf, sizeof buf, "found file offset %#llx in the page cache, installed (no read)",
                 (unsigned long long)e->file_offset);
        return buf;
    case UMM_TRACE_ZERO: return "anonymous memory: installed a zero-filled frame";
    case UMM_TRACE_COW: return "private page: copied the frame (copy-on-write) and mapped the copy";
    case UMM_TRACE_DIRTY: return "shared page: marked dirty, made writable (it will be written back)";
    case UMM_TRACE_SIGBUS: return "beyond the end of the file: SIGBUS for the program";
    case UMM_TRACE_SWAPIN: return "reclaimed private page: read back from the swap file, installed";
    case UMM_TRACE_RECLAIM:
        snprintf(buf, sizeof buf, "reclaim took %u page%s from here out of memory (not a trap)", e->pages,
                 e->pages > 1 ? "s" : "");
        return buf;
    default: return "already handled by another thread";
    }
}

/* Print the traps recorded since the last call. */
static void show_traps(void)
{
    struct umm_trace_event ev[64];
    size_t n = umm_trace_read(ev, 64);
    if (n == 0)
        printf("      (no trap: the page was already resident)\n");
    for (size_t i = 0; i < n; i++) {
        long off = (long)((char *)ev[i].addr - (char *)base);
        if (ev[i].kind == UMM_TRACE_RECLAIM && !ev[i].addr)
            printf("      reclaim took %u page-cache page%s no mapping showed (file offset %#llx)\n", ev[i].pages,
                   ev[i].pages > 1 ? "s" : "", (unsigned long long)ev[i].file_offset);
        else if (ev[i].kind == UMM_TRACE_RECLAIM)
            printf("      at %p (mapping+%#lx): %s\n", ev[i].addr, off, what(&ev[i]));
        else
            printf("      trap at %p (mapping+%#lx), %s: %s, %.1f us\n", ev[i].addr, off,
                   ev[i].write ? "write" : "read", what(&ev[i]), ev[i].nsec / 1000.0);
    }
}

/* Count the events recorded since the last call by kind, in one line. */
static void count_traps(void)
{
    static const char *names[] = { "read from the file", "found in the page cache", "zero-filled", "copy-on-write",
                                   "dirtied", "SIGBUS", "already handled", "swapped in", "reclaim runs" };
    struct umm_trace_event ev[64];
    unsigned long n[9] = { 0 }, pages[9] = { 0 };
    size_t got;
    while ((got = umm_trace_read(ev, 64)) > 0)
        for (size_t i = 0; i < got; i++)
            if (ev[i].kind >= 0 && ev[i].kind < 9)
                n[ev[i].kind]++, pages[ev[i].kind] += ev[i].pages;
    printf("     ");
    const char *sep = " events:";
    for (int k = 0; k < 9; k++)
        if (n[k]) {
            printf("%s %lu %s (%lu pages)", sep, n[k], names[k], pages[k]);
            sep = ",";
        }
    printf("\n");
}

static void show_stats(const char *when)
{
    struct umm_stats s;
    umm_stats(&s);
    printf("   stats %s: %llu traps, %llu pages read, %llu written back, %llu resident, "
           "%llu copy-on-write copies\n",
           when, (unsigned long long)s.faults, (unsigned long long)s.pages_read,
           (unsigned long long)s.pages_written, (unsigned long long)s.resident,
           (unsigned long long)s.cow_copies);
}

static unsigned long long frames_now(void)
{
    struct umm_stats s;
    umm_stats(&s);
    return (unsigned long long)s.frames;
}

/*
 * 7. fork with copy-on-write: a private anonymous region and a private file
 * page, written by the parent, then umm_fork().  The child writes one page
 * and reports; the parent, while the child is still alive, looks at its own
 * bytes and counts frames.  Two pipes keep their output in order.
 */
static void fork_tour(int fd)
{
    enum { N = 4 };
    char *r = umm_mmap(NULL, N * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    char *f = umm_mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    if (r == MAP_FAILED || f == MAP_FAILED) {
        perror("umm_mmap");
        exit(1);
    }
    base = r;
    printf("   the parent writes the %d pages of a private anonymous region:\n", N);
    for (int i = 0; i < N; i++)
        snprintf(r + i * PAGE, PAGE, "the parent's page %d", i);
    show_traps();
    base = f;
    printf("   and page 0 of a new private mapping of the sample file:\n");
    memcpy(f, "the parent's private change", 28);
    show_traps();
    unsigned long long before = frames_now();
    printf("   frames in use before umm_fork: %llu\n", before);

    int up[2], down[2]; /* child -> parent: "I have spoken"; parent -> child: "exit" */
    if (pipe(up) < 0 || pipe(down) < 0) {
        perror("pipe");
        exit(1);
    }
    fflush(stdout);
    pid_t pid = umm_fork();
    if (pid < 0) {
        printf("   umm_fork: not available (%s): copy-on-write across fork has not landed yet, "
               "step skipped\n", strerror(errno));
    } else if (pid == 0) {
        char c;
        base = r;
        printf("   [child %d] writes anonymous page 1: its frame is shared, so the write traps\n",
               (int)getpid());
        memcpy(r + PAGE, "the child's own page 1", 23);
        show_traps();
        printf("   [child] sees page 0 \"%s\", page 1 \"%s\", file page \"%s\"\n", r, r + PAGE, f);
        fflush(stdout);
        if (write(up[1], "", 1) != 1 || read(down[0], &c, 1) != 1)
            _exit(1);
        exit(0);
    } else {
        char c;
        int st;
        if (read(up[0], &c, 1) != 1) /* the child has spoken, and is still alive */
            printf("   [parent] the child died before it reported\n");
        base = r;
        printf("   [parent %d] reads its own pages (still mapped: no trap expected):\n", (int)getpid());
        printf("   [parent] sees page 0 \"%s\", page 1 \"%s\", file page \"%s\"\n", r, r + PAGE, f);
        show_traps();
        printf("   [parent] page 1 is %s by the child's write\n",
               strcmp(r + PAGE, "the parent's page 1") == 0 ? "untouched" : "CHANGED (a bug)");
        unsigned long long alive = frames_now();
        long long d = (long long)(alive - before);
        printf("   frames in use with both processes alive: %llu (%+lld)%s\n", alive, d,
               d == 1 ? ": only the page the child wrote was copied; the other anonymous pages\n"
                        "   and the file page, written by nobody since the fork, are one frame each, "
                        "shared by both processes"
                      : " (expected +1: the child's copy)");
        if (write(down[1], "", 1) != 1 || waitpid(pid, &st, 0) != pid)
            perror("waitpid");
        unsigned long long after = frames_now();
        printf("   the child exited (status %d); frames in use now: %llu%s\n",
               WIFEXITED(st) ? WEXITSTATUS(st) : -1, after,
               after != before ? " (not as before the fork: the child's frames were not given back)"
               : d > 0         ? ", as before the fork: its copy went with it"
                               : ", as before the fork");
    }
    close(up[0]);
    close(up[1]);
    close(down[0]);
    close(down[1]);
    umm_munmap(f, PAGE);
    umm_munmap(r, N * PAGE);
}

/*
 * 8. Reclaim, in a process of its own started with UMM_RAM=256K (the
 * budget is read at start-up): a file 4x the budget read in order, then
 * private anonymous memory 2x the budget written and read back.
 */
static int reclaim_tour(const char *dir)
{
    struct umm_stats s;
    char path[256];
    snprintf(path, sizeof path, "%s/big", dir);
    umm_trace(1);
    unsigned long budget = 256 * 1024 / PAGE, big = 4 * budget; /* UMM_RAM=256K */
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    char page[PAGE];
    memset(page, '.', PAGE);
    for (unsigned long i = 0; i < big; i++)
        if (pwrite(fd, page, PAGE, (off_t)(i * PAGE)) != PAGE)
            return perror("pwrite"), 1;
    char *p = umm_mmap(NULL, big * PAGE, PROT_READ, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED)
        return perror("umm_mmap"), 1;
    base = p;
    umm_stats(&s);
    printf("   [new process %d, UMM_RAM=256K] the budget: %llu frames (%llu KiB)\n", (int)getpid(),
           (unsigned long long)s.budget, (unsigned long long)s.budget * PAGE / 1024);
    printf("   read a %lu-page file (4x the budget) in order: read-ahead brings 32 pages a trap; at the\n"
           "   budget the fault first reclaims, and the clock takes the pages read longest ago:\n",
           big);
    volatile char c = 0;
    for (unsigned long i = 0; i < big; i++)
        c += p[i * PAGE];
    (void)c;
    show_traps();
    umm_stats(&s);
    printf("   frames in use at most: %llu of %lu; reclaimed: %llu (clean file pages: dropped, not written)\n",
           (unsigned long long)s.frames_high, budget, (unsigned long long)s.reclaimed);
    umm_munmap(p, big * PAGE);
    close(fd);
    unlink(path);

    unsigned long anon = 2 * budget;
    char *a = umm_mmap(NULL, anon * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (a == MAP_FAILED)
        return perror("umm_mmap"), 1;
    printf("   write %lu pages of private anonymous memory (2x the budget): no file to drop them to,\n"
           "   so reclaim writes them to libumm's swap file\n",
           anon);
    for (unsigned long i = 0; i < anon; i++)
        snprintf(a + i * PAGE, PAGE, "anonymous page %lu", i);
    count_traps();
    printf("   read them all back: the ones in the swap file fault and come back\n");
    unsigned long right = 0;
    char want[32];
    for (unsigned long i = 0; i < anon; i++) {
        snprintf(want, sizeof want, "anonymous page %lu", i);
        right += strcmp(a + i * PAGE, want) == 0;
    }
    count_traps();
    umm_stats(&s);
    printf("   %lu of %lu pages as written; swapped out %llu, swapped in %llu, frames at most %llu of %lu\n", right,
           anon, (unsigned long long)s.swapped_out, (unsigned long long)s.swapped_in,
           (unsigned long long)s.frames_high, budget);
    umm_munmap(a, anon * PAGE);
    return right == anon ? 0 : 1;
}

/* Run step 8 in a new process: this program again, with UMM_RAM=256K and
 * its own trace file (UMM_TRACE_FILE, with -reclaim before .trace). */
static void reclaim_step(const char *dir)
{
    extern char **environ;
    size_t n = 0;
    while (environ[n])
        n++;
    char **env = calloc(n + 3, sizeof *env), trace[4096];
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (strncmp(environ[i], "UMM_RAM=", 8) != 0 && strncmp(environ[i], "UMM_TRACE_FILE=", 15) != 0)
            env[k++] = environ[i];
    env[k++] = "UMM_RAM=256K";
    const char *t = getenv("UMM_TRACE_FILE");
    if (t && *t) {
        size_t l = strlen(t);
        if (l > 6 && strcmp(t + l - 6, ".trace") == 0)
            l -= 6;
        snprintf(trace, sizeof trace, "UMM_TRACE_FILE=%.*s-reclaim.trace", (int)l, t);
        env[k++] = trace;
    }
    char *args[] = { "umm-tour", "--reclaim", (char *)dir, NULL };
    pid_t pid;
    int st;
    fflush(stdout);
    if ((errno = posix_spawn(&pid, "/proc/self/exe", NULL, NULL, args, env)) != 0)
        perror("posix_spawn");
    else if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
        printf("   the reclaim step failed\n");
    free(env);
}

/* Step 9: a store of the program's own behind a mapping (umm_pager(3)):
 * here 8 pages in an array, each fill and write-back printed. */
#define STORE_PAGES 8
static char store[STORE_PAGES * PAGE];

static ssize_t store_fill(void *cookie, off_t off, void *buf, size_t len)
{
    (void)cookie;
    printf("      pager fill: store bytes [%lld, %lld) -> the page (libumm's pager thread; the fault waits)\n",
           (long long)off, (long long)(off + (off_t)len));
    memcpy(buf, store + off, len);
    return (ssize_t)len;
}

static int store_writeback(void *cookie, off_t off, const void *buf, size_t len)
{
    (void)cookie;
    printf("      pager write-back: the page -> store bytes [%lld, %lld)\n", (long long)off,
           (long long)(off + (off_t)len));
    memcpy(store + off, buf, len);
    return 0;
}

static uint64_t store_size(void *cookie)
{
    (void)cookie;
    return sizeof store;
}

static void pager_tour(void)
{
    static const struct umm_pager_ops ops = { .fill = store_fill, .writeback = store_writeback, .size = store_size };
    for (int i = 0; i < STORE_PAGES; i++)
        snprintf(store + i * PAGE, PAGE, "store page %d", i);
    char *m = umm_mmap_pager(NULL, sizeof store, PROT_READ | PROT_WRITE, MAP_SHARED, &ops, NULL, 0);
    if (m == MAP_FAILED) {
        printf("   umm_mmap_pager: %s; step skipped\n", strerror(errno));
        return;
    }
    base = m;
    /* Touched outside printf: a callback that prints needs stdout's lock,
     * which printf would hold while it faulted (umm_pager(3), "Callbacks"). */
    char line[32];
    memcpy(line, m + 2 * PAGE, sizeof line);
    printf("   read page 2: \"%s\"\n", line);
    show_traps();
    printf("   write page 6, then umm_dirty says which pages were written:\n");
    memcpy(m + 6 * PAGE, "written through the mapping", 28);
    show_traps();
    unsigned char vec[STORE_PAGES];
    umm_dirty(m, sizeof store, vec, UMM_DIRTY_CLEAR);
    printf("   written:");
    for (int i = 0; i < STORE_PAGES; i++)
        if (vec[i])
            printf(" page %d", i);
    printf("\n   umm_msync(MS_SYNC) hands the dirty page to the pager:\n");
    umm_msync(m, sizeof store, MS_SYNC);
    printf("   the store now says \"%s\"\n", store + 6 * PAGE);
    fflush(stdout);
    umm_munmap(m, sizeof store);
}

static sigjmp_buf jb;
static void on_sigbus(int sig, siginfo_t *si, void *uc)
{
    (void)uc;
    printf("      the program's SIGBUS handler ran: signal %d, si_addr %p\n", sig, si->si_addr);
    siglongjmp(jb, 1);
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "--reclaim") == 0)
        return reclaim_tour(argv[2]);
    char dir[] = "/tmp/umm-tour.XXXXXX", path[64];
    if (!mkdtemp(dir))
        return perror("mkdtemp"), 1;
    snprintf(path, sizeof path, "%s/sample", dir);
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    char page[PAGE];
    for (int i = 0; i < PAGES; i++) {
        memset(page, '.', PAGE);
        int n = snprintf(page, PAGE, "This is page %d of the sample file.", i);
        page[n] = ' ';
        if (pwrite(fd, page, PAGE, (off_t)i * PAGE) != PAGE)
            return perror("pwrite"), 1;
    }
    printf("libumm tour: a virtual-memory kernel inside this process\n");
    printf("sample file: %s (%d pages of 4 KiB)\n\n", path, PAGES);
    umm_trace(1);

    printf("1. Lazy loading. umm_mmap reserves address space and reads nothing.\n");
    char *p = umm_mmap(NULL, PAGES * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED)
        return perror("umm_mmap"), 1;
    base = p;
    show_stats("after umm_mmap");
    printf("   read a byte of page 5: the CPU faults, libumm's trap reads the page, the read resumes\n");
    printf("   -> \"%.35s\"\n", p + 5 * PAGE);
    show_traps();
    printf("   read page 5 again:\n");
    volatile char c = p[5 * PAGE + 1];
    (void)c;
    show_traps();

    printf("\n2. Read-ahead. Reading pages 20..40 in order: the window doubles while access is sequential.\n");
    for (int i = 20; i <= 40; i++)
        c = p[i * PAGE];
    show_traps();

    printf("\n3. Writes to a shared mapping. Clean pages are installed read-only, so the first write traps.\n");
    memcpy(p + 5 * PAGE, "PAGE FIVE WAS WRITTEN THROUGH umm", 33);
    show_traps();
    char buf[40] = { 0 };
    pread(fd, buf, 33, 5 * PAGE);
    printf("   the file still says \"%.33s\" (libumm's page cache holds the write)\n", buf);
    umm_msync(p, PAGES * PAGE, MS_SYNC);
    pread(fd, buf, 33, 5 * PAGE);
    printf("   after umm_msync(MS_SYNC): \"%.33s\"\n", buf);
    show_stats("after msync");
    printf("   msync wrote exactly the dirty page and write-protected it again; the next write traps:\n");
    p[5 * PAGE] = 'p';
    show_traps();

    printf("\n4. Copy-on-write. A MAP_PRIVATE mapping of the same file shares the page-cache frames.\n");
    char *q = umm_mmap(NULL, PAGES * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    base = q;
    printf("   read page 5 through it: \"%.33s\"\n", q + 5 * PAGE);
    show_traps();
    printf("   write to page 5 through it:\n");
    memcpy(q + 5 * PAGE, "a private change", 16);
    show_traps();
    printf("   private view: \"%.16s\", shared view: \"%.16s\"\n", q + 5 * PAGE, p + 5 * PAGE);

    printf("\n5. Anonymous memory: zero-filled frames, given on first touch.\n");
    char *a = umm_mmap(NULL, 1 << 30, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    base = a;
    printf("   a 1 GiB reservation; write one byte in the middle:\n");
    a[512 << 20] = 1;
    show_traps();

    printf("\n6. Past the end of the file. A page wholly beyond EOF raises SIGBUS, as the kernel does.\n");
    char *b = umm_mmap(NULL, (PAGES + 4) * PAGE, PROT_READ, MAP_SHARED, fd, 0);
    base = b;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_sigbus;
    sa.sa_flags = SA_SIGINFO;
    sigaction(SIGBUS, &sa, NULL);
    if (sigsetjmp(jb, 1) == 0)
        c = b[(PAGES + 1) * PAGE];
    show_traps();

    printf("\n7. fork with copy-on-write. umm_fork() gives the child the parent's private pages without\n"
           "   copying them: both processes share the frames, write-protected; the first write copies.\n");
    fork_tour(fd);

    printf("\n8. Reclaim. libumm keeps its frames under a memory budget (UMM_RAM, read at start-up):\n"
           "   past it, pages go back to their file or to libumm's swap file, and come back when touched.\n");
    reclaim_step(dir);

    printf("\n9. Your own pager. umm_mmap_pager maps a store the program provides: its callbacks fill\n"
           "   pages and take dirty ones back, with copy-on-write, fork, msync and reclaim as for a file.\n");
    pager_tour();

    umm_munmap(b, (PAGES + 4) * PAGE);
    umm_munmap(a, 1 << 30);
    umm_munmap(q, PAGES * PAGE);
    umm_munmap(p, PAGES * PAGE);
    printf("\n");
    show_stats("at the end");
    close(fd);
    unlink(path);
    rmdir(dir);
    printf("\nThe tour is over. Read src/fault.c for the state machine of a page.\n");
    return 0;
}
