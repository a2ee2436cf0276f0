/* Run by test-memcheck.sh under memcheck: a correct program that uses
 * libumm the ways the memcheck support must follow (first touches, file and
 * anonymous, shared and private mappings, partial munmap, MAP_FIXED over
 * mappings, failing calls, mprotect and madvise, fork), and keeps some
 * mappings to the end.  memcheck must find no error and no lost block. */
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>
#include "vg-prog.h"

#define SEED 11
#define RW (PROT_READ | PROT_WRITE)

static unsigned char *kept[3]; /* still mapped at exit */

static int check_file_pages(const unsigned char *p, int first, int n)
{
    for (int i = first; i < first + n; i++)
        for (int j = 0; j < PAGE; j += 511)
            if (p[i * PAGE + j] != pattern((uint64_t)i * PAGE + j, SEED))
                return 0;
    return 1;
}

static int fill_check(const unsigned char *p, int first, int n, unsigned char c)
{
    for (int i = first; i < first + n; i++)
        if (p[i * PAGE] != c || p[i * PAGE + PAGE - 1] != c)
            return 0;
    return 1;
}

int main(void)
{
    int fd = tmpfile_make(8 * PAGE, SEED, O_RDWR, NULL);
    int ro = tmpfile_make(PAGE, SEED, O_RDONLY, NULL);

    /* A shared file mapping, read through and written back. */
    unsigned char *f = umm_mmap(NULL, 8 * PAGE, RW, MAP_SHARED, fd, 0);
    if (f == MAP_FAILED || !check_file_pages(f, 0, 8))
        return 2;
    f[5 * PAGE + 3] ^= 0x5a;
    if (umm_msync(f, 8 * PAGE, MS_SYNC) != 0)
        return 3;
    f[5 * PAGE + 3] ^= 0x5a;

    /* A private one: copy-on-write, mprotect, and MADV_DONTNEED back to
     * the file's bytes. */
    unsigned char *c = umm_mmap(NULL, 8 * PAGE, RW, MAP_PRIVATE, fd, 0);
    if (c == MAP_FAILED)
        return 4;
    c[2 * PAGE] ^= 0xff;
    if (umm_mprotect(c + PAGE, 2 * PAGE, PROT_READ) != 0 || umm_madvise(c, 8 * PAGE, MADV_DONTNEED) != 0)
        return 5;
    if (!check_file_pages(c, 0, 8))
        return 6;

    /* Anonymous memory cut at the head, the tail and in the middle. */
    unsigned char *a = umm_mmap(NULL, 10 * PAGE, RW, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (a == MAP_FAILED)
        return 7;
    memset(a, 0x11, 10 * PAGE);
    umm_munmap(a, PAGE);
    umm_munmap(a + 9 * PAGE, PAGE);
    umm_munmap(a + 4 * PAGE, 2 * PAGE);
    if (!fill_check(a, 1, 3, 0x11) || !fill_check(a, 6, 3, 0x11))
        return 8;

    /* MAP_FIXED over a piece, the hole and part of the next piece. */
    unsigned char *m = umm_mmap(a + 3 * PAGE, 4 * PAGE, RW, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
    if (m != a + 3 * PAGE || !fill_check(m, 0, 4, 0))
        return 9;
    memset(m, 0x22, 4 * PAGE);
    if (!fill_check(a, 1, 2, 0x11) || !fill_check(a, 7, 2, 0x11))
        return 10;

    /* Calls that fail leave no block, and a failed MAP_FIXED leaves the
     * mapping it was over as it was. */
    if (umm_mmap(m, PAGE, RW, MAP_SHARED | MAP_FIXED, ro, 0) != MAP_FAILED || !fill_check(m, 0, 1, 0x22))
        return 11;
    if (umm_mmap(NULL, PAGE, PROT_READ, MAP_PRIVATE, -1, 0) != MAP_FAILED)
        return 12;

    /* A child of fork reads and writes its copies and leaves with _exit. */
    pid_t pid = fork();
    if (pid == 0) {
        a[PAGE] = 0x33;
        f[7 * PAGE] = f[7 * PAGE];
        _exit(a[PAGE] == 0x33 && check_file_pages(f, 0, 8) ? 0 : 1);
    }
    int status;
    if (pid < 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
        return 13;
    if (!fill_check(a, 1, 1, 0x11))
        return 14;

    /* Kept to the end: a touched mapping, an untouched one, and a
     * PROT_NONE reservation (a process that forked gives them back as it
     * exits: no report either way).  The rest goes. */
    kept[0] = f;
    kept[1] = umm_mmap(NULL, 3 * PAGE, RW, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    kept[2] = umm_mmap(NULL, 16 * PAGE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (kept[1] == MAP_FAILED || kept[2] == MAP_FAILED)
        return 15;
    umm_munmap(c, 8 * PAGE);
    umm_munmap(a, 10 * PAGE);
    close(ro);
    close(fd);
    return 0;
}
