/* Promise (issue 15, read-ahead for private first writes): a stream of
 * first writes to a private file mapping grows the read-ahead window as a
 * stream of reads does (fault_cow advances it): the second write of the
 * stream reads its page and the next one with one pread, not the whole
 * 128 KiB cluster around it (read-around is for faults outside a stream),
 * and every page still gets the file's bytes and the program's write, read
 * once. */
#include <fcntl.h>
#include <unistd.h>
#include "util.h"

int main(void)
{
    const size_t pages = 64;
    int fd = tmpfile_make(pages * PAGE, 21, O_RDONLY, NULL);
    unsigned char *p = umm_mmap(NULL, pages * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    ok(p != MAP_FAILED, "a private mapping of %zu pages", pages);
    uint64_t r0 = stat_get("pages_read");
    p[0] = 1;
    is_int(stat_get("pages_read") - r0, 1, "the first write reads its page");
    p[PAGE] = 2;
    is_int(stat_get("pages_read") - r0, 3, "the second, in a stream, reads a window of 2: pages 1 and 2");
    for (size_t i = 2; i < pages; i++)
        p[i * PAGE] = (unsigned char)(i + 1);
    int bad = 0;
    for (size_t i = 0; i < pages; i++)
        bad += p[i * PAGE] != (unsigned char)(i + 1) || p[i * PAGE + 7] != pattern(i * PAGE + 7, 21);
    is_int(bad, 0, "every page has the program's write and the file's other bytes");
    is_int(stat_get("pages_read") - r0, pages, "every page read once");
    is_int(umm_munmap(p, pages * PAGE), 0, "umm_munmap");
    close(fd);
    check_released();
    return tap_done();
}
