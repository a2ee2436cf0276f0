/* Promise (README, difference 1; fault.c, umm__object_filepages_hint): a
 * fault learns where the file ends without asking the file each time (no
 * fstat per fault), yet every fault sees the end the kernel's would, after
 * whatever the process family did to the file:
 *
 *   - the program's own ftruncate, open(O_TRUNC) and fallocate(COLLAPSE)
 *     shrink it: a page past the new end raises SIGBUS, also where its
 *     frame is still up to date in the page cache (read through another
 *     mapping), so no short read could tell;
 *   - another process of the family shrinks it: the same;
 *   - it grows (a write): the page past the old end reads the new bytes,
 *     and so does the rest of the old last page.
 *
 * Each scenario runs on the kernel's mmap first (the test is right), then
 * on libumm's.  A shrink by a raw system call, from outside the family, is
 * test-truncate's: a page not in the page cache raises SIGBUS (a short read
 * tells), one in it only after MS_INVALIDATE (documented difference). */
#define _GNU_SOURCE
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>
#include "kcmp.h"

#ifndef FALLOC_FL_COLLAPSE_RANGE
#define FALLOC_FL_COLLAPSE_RANGE 0x08
#endif

enum shrink { BY_FTRUNCATE, BY_OPEN_TRUNC, BY_CHILD, BY_COLLAPSE };
static const char *const shrink_name[] = { "ftruncate", "open(O_TRUNC)", "a child's ftruncate", "fallocate(COLLAPSE_RANGE)" };

/* 4 pages, two shared mappings; page 3 read through the first (its frame up
 * to date), then the file shrinks; page 3 through the second (never
 * touched: nothing mapped there around another fault) must raise SIGBUS. */
static void shrink(const struct mm_ops *o, enum shrink how)
{
    const char *w = o->name, *h = shrink_name[how];
    char path[512];
    int fd = tmpfile_make(4 * PAGE, 11, O_RDWR, path);
    unsigned char *a = o->mmap(NULL, 4 * PAGE, PROT_READ, MAP_SHARED, fd, 0);
    unsigned char *b = o->mmap(NULL, 4 * PAGE, PROT_READ, MAP_SHARED, fd, 0);
    ok(a != MAP_FAILED && b != MAP_FAILED, "%s, %s: two mappings of 4 pages", w, h);
    is_int(a[3 * PAGE + 5], pattern(3 * PAGE + 5, 11), "%s, %s: page 3 read through the first", w, h);
    int rc = 0;
    if (how == BY_FTRUNCATE) {
        rc = ftruncate(fd, PAGE);
    } else if (how == BY_OPEN_TRUNC) {
        int t = open(path, O_RDWR | O_TRUNC);
        rc = t < 0 ? -1 : 0;
        if (t >= 0)
            close(t);
    } else if (how == BY_CHILD) {
        pid_t pid = fork();
        if (pid == 0) {
            tap_quiet();
            vg_abrupt_end();
            _exit(ftruncate(fd, PAGE) == 0 ? 0 : 1);
        }
        int status = -1;
        waitpid(pid, &status, 0);
        rc = WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
    } else {
        rc = fallocate(fd, FALLOC_FL_COLLAPSE_RANGE, PAGE, 2 * PAGE); /* not up to the end: ext4 refuses that */
        if (rc != 0 && (errno == EOPNOTSUPP || errno == EINVAL)) {
            tap_skip("the file system of the test's files cannot collapse a range", "%s, %s: the file shrinks", w, h);
            tap_skip("the file system of the test's files cannot collapse a range", "%s, %s: SIGBUS past the end", w, h);
            tap_skip("the file system of the test's files cannot collapse a range", "%s, %s: resident too", w, h);
            goto out;
        }
    }
    is_int(rc, 0, "%s, %s: the file shrinks to two pages or less", w, h);
    int code;
    void *addr;
    is_int(catch_signal(touch_read, b + 3 * PAGE, &code, &addr), SIGBUS,
           "%s, %s: page 3 through the second mapping raises SIGBUS", w, h);
    if (how != BY_CHILD) /* (the child's truncation: difference 1, until MS_INVALIDATE) */
        is_int(catch_signal(touch_read, a + 3 * PAGE, &code, &addr), SIGBUS,
               "%s, %s: page 3 through the first, where it was resident, too", w, h);
out:
    o->munmap(a, 4 * PAGE);
    o->munmap(b, 4 * PAGE);
    close(fd);
    unlink(path);
}

/* A file of one page and 100 bytes, mapped 3 pages; page 0 read; then the
 * program writes 3000 bytes after the end and a page at 2 pages: the
 * mapping shows them all. */
static void grow(const struct mm_ops *o)
{
    const char *w = o->name;
    char path[512], buf[3000];
    int fd = tmpfile_make(PAGE + 100, 12, O_RDWR, path);
    unsigned char *a = o->mmap(NULL, 3 * PAGE, PROT_READ, MAP_SHARED, fd, 0);
    ok(a != MAP_FAILED, "%s: a mapping of 3 pages of a file of 1 page and 100 bytes", w);
    is_int(a[7], pattern(7, 12), "%s: page 0 read", w);
    memset(buf, 0x5a, sizeof buf);
    is_int(pwrite(fd, buf, sizeof buf, PAGE + 100), (long)sizeof buf, "%s: 3000 bytes written after the end", w);
    is_int(a[PAGE + 99], pattern(PAGE + 99, 12), "%s: page 1 shows the file's bytes before the old end", w);
    is_int(a[PAGE + 2000], 0x5a, "%s: and the written ones after it", w);
    is_int(a[PAGE + 3200], 0, "%s: and zeros past the new end", w);
    is_int(pwrite(fd, buf, 10, 2 * PAGE + 10), 10, "%s: a write into page 2", w);
    is_int(a[2 * PAGE + 15], 0x5a, "%s: page 2, past the end as first seen, shows it", w);
    o->munmap(a, 3 * PAGE);
    close(fd);
    unlink(path);
}

int main(void)
{
    const struct mm_ops *worlds[] = { &kernel_ops, &umm_ops };
    for (int i = 0; i < 2; i++) {
        for (int how = BY_FTRUNCATE; how <= BY_COLLAPSE; how++)
            shrink(worlds[i], (enum shrink)how);
        grow(worlds[i]);
    }
    check_released();
    return tap_done();
}
