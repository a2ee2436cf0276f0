/* Promise (src/fdtable.c, "libumm's own numbers"; README difference 1):
 * a program that closes every descriptor but 0, 1 and 2 -- closefrom(3),
 * close_range(3, ~0U, 0), a loop of close() up to its limit -- keeps what
 * it has mapped, as under the kernel, whose mappings hold no numbers:
 *   - after the close, files opened anew take the low numbers; a store
 *     through the shared mapping and msync(MS_SYNC) reach the mapped file,
 *     and nothing of it reaches the new files;
 *   - fork works afterwards (it aborted in the daemon's event loop, whose
 *     descriptors were gone), and the child sees the mapping's bytes;
 *   - munmap releases every frame and file;
 *   - close() or dup2() onto one of libumm's numbers fails with EBADF and
 *     leaves it open; a number libumm closed is the program's again;
 *   - a program started with descriptor 0 closed gets 0 from its first
 *     open(): libumm's own numbers sit above 2.
 * Each closer runs in a child of its own, which reports failures as bits
 * of its exit status.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/close_range.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include "util.h"

#define NPAGES 4

static char path[512];

/* Even bits: 1 is Valgrind's exit status for an error it found. */
enum { BAD_MSYNC = 2, BAD_FILE = 4, BAD_OTHERS = 8, BAD_FORK = 16, BAD_CHILD = 32, BAD_RELEASED = 64, BAD_OPEN = 128 };

static void close_loop(int lo)
{
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    rlim_t max = rl.rlim_cur > 65536 ? 65536 : rl.rlim_cur;
    for (int fd = lo; (rlim_t)fd < max; fd++)
        close(fd);
}

/* In a child: map, dirty, close everything above 2 the way asked, then
 * check that the mapping's file, and only it, gets the bytes. */
static int scenario(int how)
{
    int fd = open(path, O_RDWR);
    unsigned char *map = umm_mmap(NULL, NPAGES * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (map == MAP_FAILED)
        return 127;
    for (int i = 0; i < NPAGES; i++)
        map[i * PAGE] = (unsigned char)(0xA0 + i); /* dirty, not yet written back */

    if (how == 0)
        closefrom(3);
    else if (how == 1)
        close_range(3, ~0u, 0);
    else
        close_loop(3);

    int bad = 0;
    /* New files take the numbers; each gets 3 bytes of its own. */
    char others[8][600];
    int ofd[8];
    for (int i = 0; i < 8; i++) {
        snprintf(others[i], sizeof others[i], "%s.o%d", path, i);
        ofd[i] = open(others[i], O_RDWR | O_CREAT | O_TRUNC, 0600);
        if (ofd[i] < 0 || write(ofd[i], "new", 3) != 3)
            bad |= BAD_OPEN;
    }
    for (int i = 0; i < NPAGES; i++)
        map[i * PAGE + 1] = (unsigned char)(0xB0 + i);
    if (umm_msync(map, NPAGES * PAGE, MS_SYNC) != 0) {
        fprintf(stderr, "msync: %s\n", strerror(errno));
        bad |= BAD_MSYNC;
    }

    int check = open(path, O_RDONLY);
    for (int i = 0; i < NPAGES; i++) {
        unsigned char b[2];
        if (pread(check, b, 2, (off_t)i * PAGE) != 2 || b[0] != 0xA0 + i || b[1] != 0xB0 + i)
            bad |= BAD_FILE;
    }
    close(check);
    for (int i = 0; i < 8; i++) {
        struct stat st;
        if (fstat(ofd[i], &st) != 0 || st.st_size != 3)
            bad |= BAD_OTHERS;
        close(ofd[i]);
        unlink(others[i]);
    }

    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        int rc = map[PAGE] == 0xA1 && map[PAGE + 1] == 0xB1 ? 0 : 2;
        vg_abrupt_end();
        _exit(rc);
    }
    int st;
    if (pid < 0 || waitpid(pid, &st, 0) != pid)
        bad |= BAD_FORK;
    else if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
        bad |= BAD_CHILD;

    umm_munmap(map, NPAGES * PAGE);
    if (stat_get("frames") != 0 || stat_get("files") != 0)
        bad |= BAD_RELEASED;
    return bad;
}

static void run(int how, const char *name)
{
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        int rc = scenario(how);
        vg_abrupt_end();
        _exit(rc);
    }
    int st;
    waitpid(pid, &st, 0);
    if (!WIFEXITED(st)) {
        ok(0, "%s: the child ended by signal %d", name, WIFSIGNALED(st) ? WTERMSIG(st) : -1);
        return;
    }
    int bad = WEXITSTATUS(st);
    ok(bad != 127, "%s: mapped", name);
    if (bad == 127)
        return;
    ok(!(bad & 1), "%s: no error under Valgrind", name);
    ok(!(bad & BAD_OPEN), "%s: files open afterwards", name);
    ok(!(bad & BAD_MSYNC), "%s: msync(MS_SYNC) succeeds", name);
    ok(!(bad & BAD_FILE), "%s: the mapped file holds every store, before and after", name);
    ok(!(bad & BAD_OTHERS), "%s: the files opened afterwards hold only their own bytes", name);
    ok(!(bad & BAD_FORK), "%s: fork works afterwards", name);
    ok(!(bad & BAD_CHILD), "%s: the forked child sees the mapping's bytes", name);
    ok(!(bad & BAD_RELEASED), "%s: munmap releases every frame and file", name);
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "stdin-closed") == 0) {
        /* Started with 0 closed: libumm's numbers must not sit there. */
        unsigned char *p = umm_mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED)
            return 2;
        p[0] = 1; /* libumm's memory and daemon started */
        int own[16];
        int n = fds_named("memfd:libumm-", own, 16);
        int low = 0;
        for (int i = 0; i < n; i++)
            low |= own[i] <= 2;
        int fd = open("/dev/null", O_RDONLY);
        if (!(n >= 1 && !low && fd == 0))
            fprintf(stderr, "stdin-closed: %d memfds, lowest %d, open() gave %d\n", n, n ? own[0] : -1, fd);
        return n >= 1 && !low && fd == 0 ? 0 : 1;
    }

    int fd = tmpfile_make(NPAGES * PAGE, 3, O_RDWR, path);
    close(fd);
    /* Starts libumm's memory and daemon, so that their numbers exist. */
    unsigned char *probe = umm_mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    probe[0] = 1;
    umm_munmap(probe, PAGE);

    run(0, "closefrom(3)");
    run(1, "close_range(3, ~0U, 0)");
    run(2, "close() of every number from 3 up");

    /* close and dup2 onto libumm's own numbers. */
    int own[16];
    int n = fds_named("memfd:libumm-", own, 16);
    ok(n >= 1, "libumm holds memfds of its own (%d)", n);
    if (n >= 1) {
        errno = 0;
        ok(close(own[0]) == -1 && errno == EBADF, "close() of libumm's number %d: EBADF", own[0]);
        ok(fcntl(own[0], F_GETFD) >= 0, "the number is still open");
        int other = open("/dev/null", O_RDONLY);
        errno = 0;
        ok(dup2(other, own[0]) == -1 && errno == EBADF, "dup2() onto libumm's number: EBADF");
        errno = 0;
        ok(dup3(other, own[0], O_CLOEXEC) == -1 && errno == EBADF, "dup3() onto libumm's number: EBADF");
        close(other);
        int m2 = 0, again[16];
        m2 = fds_named("memfd:libumm-", again, 16);
        is_int(m2, n, "libumm's memfds are all still open");
    }

    /* A number libumm closed (a mapped file's, at munmap) is the program's. */
    fd = open(path, O_RDWR);
    unsigned char *map = umm_mmap(NULL, NPAGES * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    ok(map != MAP_FAILED && map[0] == 0xA0, "mapped again: the first child's store is in the file");
    umm_munmap(map, NPAGES * PAGE);
    int fds[64], nf = 0, closed_all = 1;
    for (nf = 0; nf < 64; nf++)
        if ((fds[nf] = open(path, O_RDONLY)) < 0)
            break;
    for (int i = 0; i < nf; i++)
        closed_all &= close(fds[i]) == 0;
    ok(nf == 64 && closed_all, "64 numbers opened after munmap all close (none is taken for libumm's)");

    /* Started with descriptor 0 closed. */
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        close(0);
        execl(argv[0], argv[0], "stdin-closed", (char *)NULL);
        _exit(127);
    }
    int st;
    waitpid(pid, &st, 0);
    ok(WIFEXITED(st) && WEXITSTATUS(st) == 0,
       "started with 0 closed: libumm's numbers sit above 2 and open() hands out 0 (status %d)",
       WIFEXITED(st) ? WEXITSTATUS(st) : -1);

    unlink(path);
    check_released();
    return tap_done();
}
