/*
 * posix-mmaptest.c: the logic of the xv6 mmap lab's user/mmaptest.c
 * (MIT 6.1810), ported to POSIX calls.  A plain program: it knows nothing
 * of libumm.  test-posix-h builds it with `-include umm/posix.h` (and
 * -DUMM_POSIX_FORK) and nothing else added, so its mmap, munmap, msync and
 * fork are libumm's; built on its own it runs on the kernel's.
 *
 * It maps a file of one and a half pages private and shared, reads and
 * writes it, unmaps part of a mapping, syncs, checks the file's bytes, maps
 * two files at once, and forks with the mappings inherited (the child
 * reads a page the parent never touched, writes a private page the parent
 * must not see and a shared page it must).  Prints the first failure and
 * returns 1, or "mmaptest: all tests succeeded" and 0.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static long pgsize;
static char path[4096], path2[4096];

#define err(...) do { printf("mmaptest: "); printf(__VA_ARGS__); printf(" (errno %d)\n", errno); return 1; } while (0)

/* A file of one and a half pages of 'A' (the lab's makefile()). */
static int makefile(const char *f)
{
    unlink(f);
    int fd = open(f, O_WRONLY | O_CREAT, 0600);
    if (fd < 0)
        return -1;
    char *buf = malloc(pgsize);
    memset(buf, 'A', pgsize);
    int ok = write(fd, buf, pgsize) == pgsize && write(fd, buf, pgsize / 2) == pgsize / 2;
    free(buf);
    close(fd);
    return ok ? 0 : -1;
}

/* Its bytes as the lab's _v1() checks them: 'A' for the 1.5 pages, zero
 * in the rest of the second page. */
static int v1(const char *p)
{
    for (long i = 0; i < pgsize * 2; i++) {
        char want = i < pgsize + pgsize / 2 ? 'A' : 0;
        if (p[i] != want) {
            printf("mmaptest: byte %ld is %d, not %d\n", i, p[i], want);
            return 0;
        }
    }
    return 1;
}

/* The file holds exactly n bytes, all c. */
static int file_is(const char *f, long n, char c)
{
    struct stat st;
    if (stat(f, &st) != 0 || st.st_size != n)
        return 0;
    int fd = open(f, O_RDONLY);
    char *buf = malloc(n);
    int ok = fd >= 0 && pread(fd, buf, n, 0) == n;
    for (long i = 0; ok && i < n; i++)
        ok = buf[i] == c;
    free(buf);
    close(fd);
    return ok;
}

static int mmap_test(void)
{
    long len = pgsize + pgsize / 2;
    if (makefile(path) != 0)
        err("makefile");

    /* Private, read-only. */
    int fd = open(path, O_RDONLY);
    char *p = mmap(NULL, pgsize * 2, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED)
        err("mmap (1)");
    if (!v1(p))
        err("mmap (1) contents");
    if (munmap(p, pgsize * 2) != 0)
        err("munmap (1)");

    /* Private and writable over a read-only descriptor: allowed, and the
     * stores stay in the process. */
    p = mmap(NULL, pgsize * 2, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED)
        err("mmap (2)");
    if (close(fd) != 0)
        err("close (2)");
    if (!v1(p))
        err("mmap (2) contents");
    for (long i = 0; i < pgsize * 2; i++)
        p[i] = 'Z';
    if (munmap(p, pgsize * 2) != 0)
        err("munmap (2)");
    if (!file_is(path, len, 'A'))
        err("a private mapping's stores reached the file");

    /* Shared and writable over a read-only descriptor: refused. */
    fd = open(path, O_RDONLY);
    p = mmap(NULL, pgsize * 3, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p != MAP_FAILED || errno != EACCES)
        err("mmap (3) should have failed with EACCES");
    close(fd);

    /* Shared and writable: stores reach the file; the mapping outlives its
     * descriptor; unmapping the first page leaves the second. */
    fd = open(path, O_RDWR);
    p = mmap(NULL, pgsize * 3, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED)
        err("mmap (4)");
    if (close(fd) != 0)
        err("close (4)");
    if (!v1(p))
        err("mmap (4) contents");
    for (long i = 0; i < len; i++)
        p[i] = 'Z';
    if (munmap(p, pgsize) != 0)
        err("munmap (4), first page");
    for (long i = pgsize; i < len; i++)
        if (p[i] != 'Z')
            err("the second page lost a store after the first was unmapped");
    if (munmap(p + pgsize, pgsize * 2) != 0)
        err("munmap (4), the rest");
    if (!file_is(path, len, 'Z'))
        err("the shared stores did not all reach the file (or its size changed)");

    /* msync: stores reach the file while still mapped. */
    fd = open(path, O_RDWR);
    p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED)
        err("mmap (5)");
    memset(p, 'M', len);
    if (msync(p, len, MS_SYNC) != 0)
        err("msync");
    if (!file_is(path, len, 'M'))
        err("msync did not write the stores to the file");
    if (mprotect(p, len, PROT_READ) != 0 || munmap(p, len) != 0)
        err("mprotect/munmap (5)");
    close(fd);

    /* Two files mapped at once. */
    int fd1 = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    int fd2 = open(path2, O_RDWR | O_CREAT | O_TRUNC, 0600);
    if (fd1 < 0 || fd2 < 0 || write(fd1, "12345", 5) != 5 || write(fd2, "67890", 5) != 5)
        err("two files");
    char *p1 = mmap(NULL, pgsize, PROT_READ, MAP_PRIVATE, fd1, 0);
    char *p2 = mmap(NULL, pgsize, PROT_READ, MAP_PRIVATE, fd2, 0);
    if (p1 == MAP_FAILED || p2 == MAP_FAILED)
        err("mmap two files");
    close(fd1);
    close(fd2);
    unlink(path2);
    if (memcmp(p1, "12345", 5) != 0 || memcmp(p2, "67890", 5) != 0)
        err("two files' contents");
    if (madvise(p1, pgsize, MADV_DONTNEED) != 0 || memcmp(p1, "12345", 5) != 0)
        err("madvise");
    munmap(p1, pgsize);
    munmap(p2, pgsize);
    return 0;
}

static int fork_test(void)
{
    if (makefile(path) != 0)
        err("makefile (fork)");
    int fd = open(path, O_RDWR);
    char *p1 = mmap(NULL, pgsize * 2, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    char *p2 = mmap(NULL, pgsize * 2, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p1 == MAP_FAILED || p2 == MAP_FAILED)
        err("mmap (fork)");
    close(fd);

    /* The parent touches only the first page. */
    if (p1[0] != 'A' || p2[0] != 'A')
        err("fork: first pages");

    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0)
        err("fork");
    if (pid == 0) {
        /* A page the parent never touched, then a private and a shared
         * store (on different pages of the file: a page of a private
         * mapping not yet written shows the file's stores). */
        int bad = !v1(p1) || !v1(p2);
        p1[0] = 'C';
        p2[pgsize] = 'S';
        _exit(bad);
    }
    int status;
    if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
        err("fork: the child failed (wait status %d)", status);
    if (p1[0] != 'A')
        err("fork: the child's private store reached the parent");
    if (p2[pgsize] != 'S')
        err("fork: the child's shared store did not reach the parent");
    p1[pgsize] = 'P';
    if (munmap(p1, pgsize * 2) != 0 || munmap(p2, pgsize * 2) != 0)
        err("munmap (fork)");
    unlink(path);
    return 0;
}

int main(void)
{
    pgsize = sysconf(_SC_PAGESIZE);
    const char *dir = getenv("TMPDIR");
    snprintf(path, sizeof path, "%s/mmaptest.%d", dir ? dir : "/tmp", (int)getpid());
    snprintf(path2, sizeof path2, "%s/mmaptest2.%d", dir ? dir : "/tmp", (int)getpid());
    if (mmap_test() != 0 || fork_test() != 0) {
        unlink(path);
        unlink(path2);
        return 1;
    }
    printf("mmaptest: all tests succeeded\n");
    return 0;
}
