/* Promise (umm.h, UMM_MAP_ZEROCOPY; issue 15's zero-copy switch): a
 * zero-copy mapping of a regular file shows the host's own page cache of
 * that file -- nothing is copied into libumm's frames, as the host sees
 * (the blocks of libumm's RAM memfd, /proc/self/maps) -- so it is one truth
 * with every writer of the file, inside the fork family or not, at once,
 * as under the kernel: raw system calls that libumm does not stand in
 * front of, stores through MAP_SHARED (no msync needed for another reader
 * to see them), a child killed by SIGKILL (its stores are in the file
 * already), truncation (SIGBUS past the new end on a page that was
 * resident).  MAP_PRIVATE stays copy-on-write: a written page is the
 * mapping's own, the others follow the file.  A file page takes the kind
 * of the mapping that placed it first and keeps it while any mapping in
 * the family holds it, so a copy mapping and a zero-copy one of the same
 * pages see each other's stores at once.  Zero-copy pages are the host's
 * memory: they take none of libumm's budget.  The flags are libumm's own:
 * MAP_SHARED_VALIDATE accepts them and still refuses unknown ones. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include "util.h"

#define MIB (1u << 20)

/* Read every page's first byte: the whole mapping resident. */
static void touch_all(const unsigned char *p, uint64_t len)
{
    for (uint64_t off = 0; off < len; off += PAGE)
        (void)*(const volatile unsigned char *)(p + off);
}

static int bytes_ok(const unsigned char *p, uint64_t from, uint64_t len, unsigned seed)
{
    for (uint64_t off = from; off < from + len; off += 97)
        if (p[off] != pattern(off, seed))
            return 0;
    return 1;
}

/* Does /proc/self/maps show file `path` mapped at addr? */
static int maps_file_at(const void *addr, const char *path)
{
    FILE *f = fopen("/proc/self/maps", "r");
    char line[4096];
    int found = 0;
    uintptr_t a = (uintptr_t)addr;
    while (f && fgets(line, sizeof line, f)) {
        unsigned long lo, hi;
        if (sscanf(line, "%lx-%lx", &lo, &hi) == 2 && a >= lo && a < hi)
            found = strstr(line, path) != NULL;
    }
    if (f)
        fclose(f);
    return found;
}

/* The raw system calls: no libumm in front of them, as another program. */
static ssize_t raw_pwrite(int fd, const void *b, size_t n, off_t off)
{
    return syscall(SYS_pwrite64, fd, b, n, off);
}

static unsigned char raw_byte(int fd, off_t off)
{
    unsigned char c = 0;
    if (read_file(fd, &c, 1, off) != 0)
        return 0xee;
    return c;
}

static void read_one(void *p)
{
    (void)*(volatile unsigned char *)p;
}

/* The SIGKILL case, run as a program of its own (main). */
static int sigkill_case(const char *path)
{
    int fd = open(path, O_RDWR);
    unsigned char *w = fd < 0 ? MAP_FAILED
                              : umm_mmap(NULL, 4 * MIB, PROT_READ | PROT_WRITE, MAP_SHARED | UMM_MAP_ZEROCOPY, fd, 0);
    if (w == MAP_FAILED)
        return 1;
    pid_t pid = umm_fork();
    if (pid < 0)
        return 1;
    if (pid == 0) {
        w[3 * PAGE + 1] = 0x33;
        raise(SIGKILL);
        _exit(1);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGKILL)
        return 2;
    if (w[3 * PAGE + 1] != 0x33)
        return 3;
    if (raw_byte(fd, 3 * PAGE + 1) != 0x33)
        return 4;
    vg_abrupt_end();
    _exit(0);
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "--sigkill") == 0)
        return sigkill_case(argv[2]);
    char path[256];
    const uint64_t len = 4 * MIB;
    setenv("UMM_FLUSH_INTERVAL_MS", "0", 1); /* no background write-back: what is seen is zero-copy's */

    /* ---- reading: the file's bytes, and none copied into libumm's RAM */
    int fd = tmpfile_make(len, 1, O_RDWR, path);
    unsigned char *c = umm_mmap(NULL, len, PROT_READ, MAP_SHARED | UMM_MAP_COPY, fd, 0);
    ok(c != MAP_FAILED, "a copy mapping (UMM_MAP_COPY) of a 4 MiB file");
    uint64_t before = ram_host_pages();
    touch_all(c, len);
    int64_t grew_copy = (int64_t)(ram_host_pages() - before);
    ok(before != UINT64_MAX && grew_copy >= (int64_t)(len / PAGE) * 3 / 4,
       "control: reading it copies the file into libumm's RAM (%lld pages)", (long long)grew_copy);
    umm_munmap(c, len);
    close(fd);

    fd = tmpfile_make(len, 2, O_RDWR, path);
    unsigned char *z = umm_mmap(NULL, len, PROT_READ, MAP_SHARED | UMM_MAP_ZEROCOPY, fd, 0);
    ok(z != MAP_FAILED, "a zero-copy mapping (UMM_MAP_ZEROCOPY) of a 4 MiB file");
    before = ram_host_pages();
    touch_all(z, len);
    int64_t grew = (int64_t)(ram_host_pages() - before);
    ok(bytes_ok(z, 0, len, 2), "it shows the file's bytes");
    ok(before != UINT64_MAX && grew < 64, "reading it puts nothing in libumm's RAM (%lld pages, copy: %lld)", (long long)grew,
       (long long)grew_copy);
    ok(maps_file_at(z + len / 2, path), "the host maps the file itself there (/proc/self/maps)");
    is_int(stat_get("frames"), 0, "its pages are the host's memory: none counts in libumm's budget (frames)");

    /* ---- writers outside libumm, seen at once */
    unsigned char b = 0xa5;
    ok(raw_pwrite(fd, &b, 1, 12345) == 1 && z[12345] == 0xa5,
       "a raw pwrite(2) (libumm not in front) shows at once in the resident page");
    umm_munmap(z, len);

    /* ---- MAP_SHARED stores: in the file at once, no msync */
    unsigned char *w = umm_mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | UMM_MAP_ZEROCOPY, fd, 0);
    ok(w != MAP_FAILED, "a writable shared zero-copy mapping");
    w[5 * PAGE + 7] = 0x5a;
    ok(raw_byte(fd, 5 * PAGE + 7) == 0x5a, "a store through it is in the file at once (raw pread, no msync)");
    unsigned char vec[len / PAGE];
    ok(umm_dirty(w, len, vec, 0) >= 1 && vec[5] && !vec[6], "dirty tracking sees the written page only");
    is_int(umm_msync(w, len, MS_SYNC), 0, "msync(MS_SYNC) of it");

    /* A copy mapping of the same pages, made now, shares them: one truth. */
    unsigned char *c2 = umm_mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | UMM_MAP_COPY, fd, 0);
    ok(c2 != MAP_FAILED && c2[5 * PAGE + 7] == 0x5a, "a copy mapping made later shows the zero-copy store");
    c2[9 * PAGE] = 0x77;
    ok(w[9 * PAGE] == 0x77 && raw_byte(fd, 9 * PAGE) == 0x77,
       "its store is seen through the zero-copy mapping and in the file at once (it took the pages' kind)");
    umm_munmap(c2, len);

    /* ---- fork: the child's stores, even when SIGKILL ends it (in a program
     * of its own: a child killed by SIGKILL leaves its holds on the
     * family's frames, README "fork", which the leak oracle here would
     * count) */
    /* posix_spawn, not fork + exec: a child forked here would be of this
     * family, and exec would leave its holds behind (README).  argv[0],
     * not /proc/self/exe, which under Valgrind is the tool. */
    char *self = argv[0];
    char *args[] = { self, (char *)"--sigkill", path, NULL };
    pid_t pid = -1;
    int status = 0;
    if (posix_spawn(&pid, self, NULL, NULL, args, environ) == 0)
        waitpid(pid, &status, 0);
    else
        status = 99 << 8;
    is_int(WIFEXITED(status) ? WEXITSTATUS(status) : 100 + WTERMSIG(status), 0,
           "a child of the family stores through its shared mapping, then SIGKILL: the store is in the parent's "
           "mapping and in the file (1: no fork, 2: not killed, 3: not in the mapping, 4: not in the file)");
    ok(w[3 * PAGE + 1] == 0x33, "and in this process's mapping of the file");

    /* ---- MAP_PRIVATE: copy-on-write as always */
    unsigned char *pv = umm_mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | UMM_MAP_ZEROCOPY, fd, 0);
    ok(pv != MAP_FAILED, "a private zero-copy mapping");
    touch_all(pv, len);
    pv[20 * PAGE] = 0x11;
    ok(pv[20 * PAGE] == 0x11 && raw_byte(fd, 20 * PAGE) == pattern(20 * PAGE, 2),
       "a private write is the mapping's own, the file keeps its byte");
    ok(bytes_ok(pv, 20 * PAGE + 1, PAGE - 1, 2), "the rest of the written page was copied from the file");
    b = 0x44;
    ok(raw_pwrite(fd, &b, 1, 21 * PAGE) == 1 && pv[21 * PAGE] == 0x44,
       "a page it never wrote follows the file at once");
    w[20 * PAGE] = 0x22;
    ok(pv[20 * PAGE] == 0x11, "the written page does not follow a later store");
    umm_munmap(pv, len);

    /* ---- truncation from outside: SIGBUS on a page that was resident */
    (void)*(volatile unsigned char *)(w + 900 * PAGE);
    ok(syscall(SYS_ftruncate, fd, (off_t)(512 * PAGE)) == 0, "the file is cut to 2 MiB with the raw system call");
    int code = 0;
    void *addr = NULL;
    is_int(catch_signal(read_one, w + 900 * PAGE, &code, &addr), SIGBUS,
           "a resident page past the new end raises SIGBUS, as under the kernel");
    ok(addr == (void *)(w + 900 * PAGE), "at its address");
    ok(w[511 * PAGE] == pattern(511 * PAGE, 2), "the last page inside still reads");
    umm_munmap(w, len);

    /* ---- mremap keeps the pages and what they show */
    unsigned char *m = umm_mmap(NULL, 2 * MIB, PROT_READ, MAP_SHARED | UMM_MAP_ZEROCOPY, fd, 0);
    touch_all(m, 2 * MIB);
    unsigned char *m2 = umm_mremap(m, 2 * MIB, 4 * MIB, MREMAP_MAYMOVE);
    ok(m2 != MAP_FAILED && m2[5 * PAGE + 7] == 0x5a && maps_file_at(m2 + MIB, path),
       "umm_mremap moves a zero-copy mapping: the same bytes, the file still mapped");
    if (m2 != MAP_FAILED)
        umm_munmap(m2, 4 * MIB);
    close(fd);

    /* ---- the kernel's VMAs know no zero-copy: a copy mapping and a
     * zero-copy one of the next pages of a file are one VMA to mremap */
    fd = tmpfile_make(MIB, 5, O_RDWR, NULL);
    unsigned char *h = umm_mmap(NULL, MIB, PROT_READ, MAP_SHARED | UMM_MAP_COPY, fd, 0);
    unsigned char *h2 = h == MAP_FAILED ? MAP_FAILED
                                        : umm_mmap(h + MIB / 2, MIB / 2, PROT_READ, MAP_SHARED | MAP_FIXED | UMM_MAP_ZEROCOPY,
                                                   fd, MIB / 2);
    unsigned char *h3 = h2 == MAP_FAILED ? MAP_FAILED : umm_mremap(h, MIB, 2 * MIB, MREMAP_MAYMOVE);
    ok(h3 != MAP_FAILED && h3[MIB / 2 + 3] == pattern(MIB / 2 + 3, 5) && h3[5] == pattern(5, 5),
       "umm_mremap of a copy mapping and the zero-copy mapping after it, as one (errno %d)",
       h3 == MAP_FAILED ? errno : 0);
    if (h3 != MAP_FAILED)
        umm_munmap(h3, 2 * MIB);
    else if (h != MAP_FAILED)
        umm_munmap(h, MIB);
    close(fd);

    /* ---- the flags are libumm's own */
    fd = tmpfile_make(MIB, 3, O_RDWR, NULL);
    void *v = umm_mmap(NULL, MIB, PROT_READ, MAP_SHARED_VALIDATE | UMM_MAP_ZEROCOPY, fd, 0);
    ok(v != MAP_FAILED && bytes_ok(v, 0, MIB, 3), "MAP_SHARED_VALIDATE accepts UMM_MAP_ZEROCOPY");
    if (v != MAP_FAILED)
        umm_munmap(v, MIB);
    errno = 0;
    v = umm_mmap(NULL, MIB, PROT_READ, MAP_SHARED_VALIDATE | 0x800000, fd, 0);
    ok(v == MAP_FAILED && errno == EOPNOTSUPP, "and still refuses a flag nobody knows (EOPNOTSUPP)");
    close(fd);
    unsigned char *an = umm_mmap(NULL, MIB, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | UMM_MAP_ZEROCOPY, -1, 0);
    ok(an != MAP_FAILED && an[PAGE] == 0 && (an[PAGE] = 9) == 9, "anonymous memory ignores UMM_MAP_ZEROCOPY");
    if (an != MAP_FAILED)
        umm_munmap(an, MIB);
    fd = open("/dev/zero", O_RDWR);
    an = umm_mmap(NULL, MIB, PROT_READ | PROT_WRITE, MAP_PRIVATE | UMM_MAP_ZEROCOPY, fd, 0);
    ok(an != MAP_FAILED && an[PAGE] == 0 && (an[PAGE] = 9) == 9 && !maps_file_at(an + PAGE, "/dev/zero"),
       "so does a device (/dev/zero: zeros, writable, not the device mapped)");
    if (an != MAP_FAILED)
        umm_munmap(an, MIB);
    close(fd);
    fd = open("/proc/self/status", O_RDONLY);
    errno = 0;
    void *ps = umm_mmap(NULL, PAGE, PROT_READ, MAP_SHARED | UMM_MAP_ZEROCOPY, fd, 0);
    ok(ps == MAP_FAILED && errno == ENODEV, "a file the kernel cannot map (/proc/self/status): ENODEV, as the kernel");
    close(fd);

    check_released();
    return tap_done();
}
