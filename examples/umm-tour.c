/*
 * umm-tour: a guided tour of the kernel that lives in this process.
 *
 * It makes a sample file in a temporary directory, maps it with umm_mmap,
 * touches pages, and after each step prints, in plain words, every trap
 * libumm handled: the address, read or write, what libumm did, how long
 * it took.  Run it with `make demo`.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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
        printf("      trap at %p (mapping+%#lx), %s: %s, %.1f us\n", ev[i].addr, off,
               ev[i].write ? "write" : "read", what(&ev[i]), ev[i].nsec / 1000.0);
    }
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

static sigjmp_buf jb;
static void on_sigbus(int sig, siginfo_t *si, void *uc)
{
    (void)uc;
    printf("      the program's SIGBUS handler ran: signal %d, si_addr %p\n", sig, si->si_addr);
    siglongjmp(jb, 1);
}

int main(void)
{
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
