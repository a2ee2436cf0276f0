/* Promise: even over the map-count budget, a page of a private mapping
 * that the program has not written keeps following the file: writes made
 * through a MAP_SHARED mapping of the same file show in it, as in the
 * kernel.  (Over the budget libumm may join copies by copying the pages
 * between them too, but never while a mapping can write the file.) */
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>
#include "util.h"

int main(void)
{
    setenv("UMM_MAP_BUDGET", "2", 1); /* over the budget from the start */
    int fd = tmpfile_make(8 * PAGE, 51, O_RDWR, NULL);
    unsigned char *priv = umm_mmap(NULL, 8 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    unsigned char *shar = umm_mmap(NULL, 8 * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    ok(priv != MAP_FAILED && shar != MAP_FAILED, "a private and a shared mapping of one file");
    priv[0 * PAGE] = 1; /* copies of pages 0 and 2 ... */
    priv[2 * PAGE] = 2;
    priv[4 * PAGE + 9] = 4;
    shar[1 * PAGE + 5] = 0xEE; /* ... and a write to page 1 through the shared one */
    shar[3 * PAGE + 5] = 0xDD;
    is_int(priv[1 * PAGE + 5], 0xEE, "the private page 1, never written, shows the shared write");
    is_int(priv[3 * PAGE + 5], 0xDD, "so does page 3");
    is_int(priv[0], 1, "the private copies keep their own bytes");
    is_int(priv[2 * PAGE], 2, "both of them");
    is_int(shar[0], pattern(0, 51), "and the shared view does not see them");
    is_int(umm_munmap(priv, 8 * PAGE), 0, "unmap the private mapping");
    is_int(umm_munmap(shar, 8 * PAGE), 0, "unmap the shared mapping");
    close(fd);
    check_released();
    return tap_done();
}
