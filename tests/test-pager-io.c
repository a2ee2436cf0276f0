/* Promise (umm_pager(3): callbacks "may block, allocate, do I/O"): a
 * pager whose callbacks do file I/O through the C library -- pread,
 * pwrite, fsync on a store file, while libumm maps files (so that its file
 * I/O layer stands in front of the program's calls) and while the store
 * file is itself mapped read-only by the program, which made those calls
 * take libumm's lock -- never deadlocks with libumm's own lock, whatever
 * holds it when the callback runs (the callbacks' calls go straight to the
 * C library, umm_pager(3)):
 *   - faults, msync(MS_SYNC) and MADV_PAGEOUT;
 *   - msync(MS_INVALIDATE) in a process that has forked (libumm refills
 *     clean pages in place there, with its address-space lock held for
 *     writing: the callbacks' read() waited for that lock, for ever);
 * every byte checked, in the mapping and at the end in the file.  The
 * work runs in a child; a child that has not ended after a minute is
 * deadlocked (its signals are blocked there: no alarm would ring). */
#define _GNU_SOURCE
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>
#include "util.h"

#define NPAGES 32

struct store {
    int fd;
    long fills, writes, syncs;
};

static ssize_t st_fill(void *c, off_t off, void *buf, size_t len)
{
    struct store *s = c;
    s->fills++;
    ssize_t r = pread(s->fd, buf, len, off);
    return r < 0 ? -5 /* EIO */ : r;
}

static int st_write(void *c, off_t off, const void *buf, size_t len)
{
    struct store *s = c;
    s->writes++;
    return pwrite(s->fd, buf, len, off) == (ssize_t)len ? 0 : -5;
}

static int st_sync(void *c)
{
    struct store *s = c;
    s->syncs++;
    return fsync(s->fd) == 0 ? 0 : -5;
}

static const struct umm_pager_ops ops = { st_fill, st_write, NULL, st_sync, NULL };

static char spath[512], opath[512];
static int sfd, ofd;

static int work(void)
{
    struct store s = { 0 };
    s.fd = sfd;
    /* A file libumm maps: its file I/O layer now stands in front of every
     * read and write -- and the store file itself, mapped too. */
    unsigned char *other = umm_mmap(NULL, 4 * PAGE, PROT_READ, MAP_SHARED, ofd, 0);
    unsigned char *smap = umm_mmap(NULL, NPAGES * PAGE, PROT_READ, MAP_SHARED, s.fd, 0);
    ok(other != MAP_FAILED && smap != MAP_FAILED && other[0] == pattern(0, 8) && smap[0] == pattern(0, 7),
       "a file and the store file mapped");

    unsigned char *p = umm_mmap_pager(NULL, NPAGES * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, &ops, &s, 0);
    ok(p != MAP_FAILED, "the store mapped through a pager that does file I/O");
    int bad = 0;
    for (size_t i = 0; i < NPAGES; i++)
        bad |= p[i * PAGE + 3] != pattern(i * PAGE + 3, 7);
    ok(!bad && s.fills >= 1, "faults fill through pread (%ld fills)", s.fills);

    for (size_t i = 0; i < NPAGES; i += 2)
        p[i * PAGE] = (unsigned char)(0xC0 + i);
    int rc = umm_msync(p, NPAGES * PAGE, MS_SYNC);
    ok(rc == 0 && s.writes >= 1 && s.syncs >= 1, "msync(MS_SYNC): pwrite and fsync in the callbacks (%ld writes, %ld syncs)",
       s.writes, s.syncs);
    ok(umm_madvise(p, NPAGES * PAGE, MADV_PAGEOUT) == 0, "MADV_PAGEOUT");
    ok(p[4 * PAGE] == 0xC4 && p[5 * PAGE] == pattern(5 * PAGE, 7), "paged back in through the fill");

    /* A process of a fork family: MS_INVALIDATE refills in place. */
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        vg_abrupt_end();
        _exit(0);
    }
    int st;
    waitpid(pid, &st, 0);
    ok(WIFEXITED(st) && WEXITSTATUS(st) == 0, "forked a child");
    unsigned char v = 0x5A;
    ok(pwrite(s.fd, &v, 1, 6 * PAGE) == 1, "the store file changed behind the mapping");
    long f = s.fills;
    rc = umm_msync(p, NPAGES * PAGE, MS_INVALIDATE);
    ok(rc == 0 && s.fills > f, "msync(MS_INVALIDATE) returns, having filled again (fills %ld -> %ld)", f, s.fills);
    ok(p[6 * PAGE] == 0x5A && p[8 * PAGE] == 0xC8 && p[9 * PAGE] == pattern(9 * PAGE, 7),
       "the mapping shows the store's bytes after it");

    umm_munmap(p, NPAGES * PAGE);
    umm_munmap(smap, NPAGES * PAGE);
    umm_munmap(other, 4 * PAGE);
    unsigned char b[3];
    ok(pread(s.fd, &b[0], 1, 2 * PAGE) == 1 && pread(s.fd, &b[1], 1, 6 * PAGE) == 1 &&
           pread(s.fd, &b[2], 1, 9 * PAGE) == 1 && b[0] == 0xC2 && b[1] == 0x5A && b[2] == pattern(9 * PAGE, 7),
       "the store file holds every store at the end");
    close(s.fd);
    close(ofd);
    check_released();
    return tap_done();
}

int main(void)
{
    sfd = tmpfile_make(NPAGES * PAGE, 7, O_RDWR, spath);
    ofd = tmpfile_make(4 * PAGE, 8, O_RDWR, opath);
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        int rc = work();
        fflush(stdout);
        vg_abrupt_end();
        _exit(rc);
    }
    int st = 0, waited = 0, limit = under_valgrind() ? 1200 : 120; /* half seconds */
    while (waitpid(pid, &st, WNOHANG) == 0 && waited < limit) {
        usleep(500000);
        waited++;
    }
    if (waited >= limit) {
        kill(pid, SIGKILL);
        waitpid(pid, &st, 0);
        printf("not ok - deadlock: the work had not ended after %d s\n", limit / 2);
    }
    unlink(spath);
    unlink(opath);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 1;
}
