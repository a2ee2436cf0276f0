/* Promise (src/fdtable.c; README difference 1; doc/PERFORMANCE.md): the
 * file I/O layer remembers which file each descriptor is, so that a
 * program's reads and writes on files libumm does not map cost no fstat()
 * while it maps others -- and never takes a descriptor for the file it was
 * before its number was closed and handed out again:
 *   - 1000 pwrites on an unmapped file, while another is mapped: at most a
 *     couple of fstat() calls (this program counts the ones libumm makes
 *     on that descriptor: its fstat stands in front of the C library's);
 *   - for every call that closes a number (close, dup2, dup3, fclose,
 *     closedir, freopen, close_range; the number then taken by a raw
 *     open libumm does not see) and for calls that hand
 *     one out after a close libumm cannot see (syscall(SYS_close), then
 *     fopen, dup, fcntl(F_DUPFD)): a number
 *     first used on an unmapped file (or a directory), then given to the
 *     mapped file, and written there with pwrite, shows the bytes in the
 *     mapping at once (the kernel's one page cache);
 *   - with UMM_FDCACHE=0 (run again by itself) even a close and an open
 *     by raw system calls are seen: fstat() every call.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include "util.h"

/* libumm's fstat calls, counted for one descriptor. */
static int watched = -1;
static long fstats;
int fstat(int fd, struct stat *st)
{
    if (fd == watched)
        fstats++;
    return (int)syscall(SYS_fstat, fd, st);
}

/* F_GETFL asked of one descriptor, counted the same way (and passed on to
 * the next fcntl: libumm's). */
static int watched_fl = -1;
static long getfls;
int fcntl(int fd, int cmd, ...)
{
    static int (*next)(int, int, ...);
    if (!next)
        *(void **)&next = dlsym(RTLD_NEXT, "fcntl");
    va_list ap;
    va_start(ap, cmd);
    void *arg = va_arg(ap, void *);
    va_end(ap);
    if (fd == watched_fl && cmd == F_GETFL)
        getfls++;
    return next(fd, cmd, arg);
}

/* libumm asks its own F_GETFL with a system call of the host's (host.c,
 * not through the program's fcntl): counted here too.  The words passed on
 * are read as the calls take them: five come in registers, a sixth only
 * for the calls that have one (reading past the caller's arguments is
 * what AddressSanitizer calls a stack underflow). */
long syscall(long n, ...)
{
    static long (*next)(long, ...);
    if (!next)
        *(void **)&next = dlsym(RTLD_NEXT, "syscall");
    int six = n == SYS_futex || n == SYS_io_uring_enter || n == SYS_mmap || n == SYS_copy_file_range ||
              n == SYS_splice || n == SYS_epoll_pwait || n == SYS_pselect6 || n == SYS_sendto || n == SYS_recvfrom;
    va_list ap;
    va_start(ap, n);
    long a[6] = { 0 };
    for (int i = 0; i < (six ? 6 : 5); i++)
        a[i] = va_arg(ap, long);
    va_end(ap);
    if (n == SYS_fcntl && a[0] == watched_fl && a[1] == F_GETFL)
        getfls++;
    return next(n, a[0], a[1], a[2], a[3], a[4], a[5]);
}

static char path_a[512], path_b[512], dir[600];
static unsigned char *map;
static unsigned char mark = 1;

/* Number fd now names file A: write a fresh byte at offset 0 with pwrite and see it in the mapping. */
static int coherent(int fd)
{
    mark++;
    if (pwrite(fd, &mark, 1, 0) != 1)
        return 0;
    return map[0] == mark;
}

/* Make the file I/O layer learn number fd as file B: a write there. */
static void learn_b(int fd)
{
    unsigned char x = 7;
    if (pwrite(fd, &x, 1, 100) != 1)
        tap_bail("pwrite to B: %s", strerror(errno));
}

static int open_b(void)
{
    return open(path_b, O_RDWR);
}

static int raw_open_a(void)
{
    return (int)syscall(SYS_openat, AT_FDCWD, path_a, O_RDWR, 0);
}

static void raw_scenario(void)
{
    int b = open_b();
    learn_b(b);
    syscall(SYS_close, b);
    int a = raw_open_a();
    is_int(a, b, "the raw open takes the raw close's number");
    ok(coherent(a), "UMM_FDCACHE=0: a number closed and handed out by raw system calls is seen");
    syscall(SYS_close, a);
}

int main(int argc, char **argv)
{
    int fda = tmpfile_make(16 * PAGE, 1, O_RDWR, path_a);
    int fdb = tmpfile_make(16 * PAGE, 2, O_RDWR, path_b);
    close(fdb);
    map = umm_mmap(NULL, 16 * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fda, 0);
    ok(map != MAP_FAILED, "file A mapped shared");
    close(fda);
    /* Page 0 resident: a write that missed the cache would leave it stale
     * (a first touch after it would read the file and hide the miss). */
    ok(map[0] == pattern(0, 1), "file A's first byte through the mapping");

    if (argc > 1 && strcmp(argv[1], "raw") == 0) { /* run again by itself, UMM_FDCACHE=0 */
        raw_scenario();
        umm_munmap(map, 16 * PAGE);
        unlink(path_a);
        unlink(path_b);
        return tap_done();
    }

    pid_t pid;
    int st;
    /* The cost: fstat once, not per call. */
    int b = open_b();
    watched = b;
    int bad = 0;
    for (int i = 0; i < 1000; i++) {
        unsigned char x = (unsigned char)i;
        bad += pwrite(b, &x, 1, i) != 1;
    }
    watched = -1;
    is_int(bad, 0, "1000 pwrites on unmapped file B");
    ok(fstats <= 2, "libumm asked fstat() about B %ld times for them (at most 2)", fstats);

    /* close */
    learn_b(b);
    close(b);
    int a = raw_open_a(); /* unseen: only the close says the number changed */
    is_int(a, b, "a raw open after close takes the same number");
    ok(coherent(a), "close: the number's new file is seen");
    syscall(SYS_close, a);

    /* dup2 and dup3 onto a learnt number */
    b = open_b();
    learn_b(b);
    a = open(path_a, O_RDWR);
    is_int(dup2(a, b), b, "dup2 of A onto B's number");
    ok(coherent(b), "dup2: the number's new file is seen");
    close(a);
    close(b);
    b = open_b();
    learn_b(b);
    a = open(path_a, O_RDWR);
    is_int(dup3(a, b, O_CLOEXEC), b, "dup3 of A onto B's number");
    ok(coherent(b), "dup3: the number's new file is seen");
    close(a);
    close(b);

    /* fclose */
    FILE *f = fopen(path_b, "r+");
    b = fileno(f);
    learn_b(b);
    fclose(f);
    a = raw_open_a();
    is_int(a, b, "a raw open after fclose takes the stream's number");
    ok(coherent(a), "fclose: the number's new file is seen");
    syscall(SYS_close, a);

    /* closedir: a directory's number, learnt as "not a regular file" */
    snprintf(dir, sizeof dir, "%s.d", path_a);
    mkdir(dir, 0700);
    DIR *d = opendir(dir);
    int dn = dirfd(d);
    char c;
    ok(read(dn, &c, 1) < 0 && errno == EISDIR, "read on a directory's number: EISDIR");
    closedir(d);
    a = raw_open_a();
    is_int(a, dn, "a raw open after closedir takes the directory's number");
    ok(coherent(a), "closedir: the number's new file is seen");
    syscall(SYS_close, a);
    rmdir(dir);

    /* freopen: the stream's number names A after it */
    f = fopen(path_b, "r+");
    learn_b(fileno(f));
    f = freopen(path_a, "r+", f);
    ok(f != NULL && coherent(fileno(f)), "freopen: the stream's new file is seen");
    fclose(f);

    /* close_range */
    b = open_b();
    learn_b(b);
    ok(close_range((unsigned)b, (unsigned)b, 0) == 0, "close_range of B's number");
    a = raw_open_a();
    ok(a == b && coherent(a), "close_range: the number's new file is seen");
    syscall(SYS_close, a);
    /* (closefrom: tests/test-own-fds, which checks that it leaves
     * libumm's own descriptors.) */

    /* Numbers handed out after a close libumm cannot see. */
    b = open_b();
    learn_b(b);
    syscall(SYS_close, b);
    f = fopen(path_a, "r+");
    ok(f && fileno(f) == b && coherent(b), "syscall close, then fopen: the number's new file is seen");
    fclose(f);
    a = open(path_a, O_RDWR);
    b = open_b();
    learn_b(b);
    syscall(SYS_close, b);
    int n = dup(a);
    ok(n == b && coherent(n), "syscall close, then dup: the number it hands out is seen");
    close(n);
    b = open_b();
    learn_b(b);
    syscall(SYS_close, b);
    n = fcntl(a, F_DUPFD, b);
    ok(n == b && coherent(n), "syscall close, then fcntl(F_DUPFD): the number it hands out is seen");
    close(n);
    close(a);

    /* O_APPEND is asked once per descriptor, not per write of a mapped
     * file -- and a change through another number of the same
     * description, or in another process of the family, is seen. */
    a = open(path_a, O_RDWR);
    watched_fl = a;
    bad = 0;
    for (int i = 0; i < 1000; i++) {
        unsigned char x = (unsigned char)(i | 1);
        bad |= pwrite(a, &x, 1, 8) != 1 || map[8] != x;
    }
    ok(!bad, "1000 pwrites to the mapped file: each seen in the mapping");
    ok(getfls >= 1 && getfls <= 2, "... and F_GETFL asked %ld times (once, not per write)", getfls);
    watched_fl = -1;
    const off_t end = 16 * PAGE - 8;
    ok(ftruncate(a, end) == 0, "file A cut to 8 bytes short of the mapping");
    ok(map[end - 1] == pattern(end - 1, 1), "its last page resident in the mapping");
    unsigned char first = map[0];
    int twin = dup(a);
    ok(fcntl(twin, F_SETFL, O_APPEND) == 0, "O_APPEND set through a dup of the descriptor");
    ok(pwrite(a, "Z", 1, 0) == 1, "pwrite(offset 0) on the first number");
    ok(map[end] == 'Z' && map[0] == first, "it went to the end (O_APPEND: pwrite appends), as the mapping shows (end %#x, first %#x)", map[end],
       map[0]);
    close(twin);
    ok(fcntl(a, F_SETFL, 0) == 0 && pwrite(a, "y", 1, 16) == 1 && map[16] == 'y', "O_APPEND cleared: pwrite at 16");
    fflush(stdout);
    pid = fork();
    if (pid == 0) {
        int rc = fcntl(a, F_SETFL, O_APPEND) == 0 ? 0 : 1;
        vg_abrupt_end();
        _exit(rc);
    }
    waitpid(pid, &st, 0);
    ok(WIFEXITED(st) && WEXITSTATUS(st) == 0, "a child of fork sets O_APPEND on the shared description");
    ok(pwrite(a, "Y", 1, 0) == 1, "pwrite(offset 0) after it");
    ok(map[end + 1] == 'Y' && map[0] == first, "it went to the end (O_APPEND: pwrite appends), as the mapping shows");
    close(a);

    umm_munmap(map, 16 * PAGE);

    /* UMM_FDCACHE=0, in a new process (the setting is read at start). */
    fflush(stdout);
    pid = fork();
    if (pid == 0) {
        setenv("UMM_FDCACHE", "0", 1);
        int out = open("/dev/null", O_WRONLY);
        dup2(out, 1);
        execl(argv[0], argv[0], "raw", (char *)NULL);
        _exit(127);
    }
    waitpid(pid, &st, 0);
    ok(WIFEXITED(st) && WEXITSTATUS(st) == 0, "UMM_FDCACHE=0: a close and an open by raw system calls are seen (status %d)",
       WIFEXITED(st) ? WEXITSTATUS(st) : -1);
    unlink(path_a);
    unlink(path_b);
    check_released();
    return tap_done();
}
