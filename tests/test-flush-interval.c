/* Promise (README, difference 1): dirty shared pages reach their file by
 * the background flush, without msync, munmap or exit; UMM_FLUSH_INTERVAL_MS
 * sets its interval. */
#include <fcntl.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>
#include "util.h"

int main(void)
{
    setenv("UMM_FLUSH_INTERVAL_MS", "50", 1);
    int fd = tmpfile_make(4 * PAGE, 61, O_RDWR, NULL);
    unsigned char *p = umm_mmap(NULL, 4 * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    ok(p != MAP_FAILED, "a shared mapping");
    uint64_t w0 = stat_get("pages_written"), f0 = stat_get("faults");
    p[2 * PAGE + 3] = 0x77;
    unsigned char c = 0;
    /* A bound for loaded machines, not a speed: the loop ends when seen. */
    for (int i = 0; i < 3000 && c != 0x77; i++) {
        struct timespec ts = { 0, 10 * 1000 * 1000 };
        nanosleep(&ts, NULL);
        read_file(fd, &c, 1, 2 * PAGE + 3);
    }
    is_int(c, 0x77, "the write reached the file with no msync (waited up to 30 s)");
    /* Once per time the page was made dirty: a flush that comes between
     * the trap and the store it restarts (likely under Valgrind, which
     * runs one thread at a time) writes the page back and write-protects
     * it, the store faults again and the page is written again.  Nothing
     * else touches the mapping meanwhile, so each fault made it dirty. */
    uint64_t dirtied = stat_get("faults") - f0;
    tap_diag("the store faulted %llu time(s)", (unsigned long long)dirtied);
    ok(dirtied >= 1, "the store faulted (again after each flush that came before it ran again)");
    is_int(stat_get("pages_written") - w0, dirtied, "the flush wrote the one dirty page, once per time it was dirtied");
    p[2 * PAGE + 4] = 0x78; /* written back, so write-protected: caught again */
    w0 = stat_get("pages_written");
    is_int(umm_msync(p, 4 * PAGE, MS_SYNC), 0, "msync");
    ok(stat_get("pages_written") - w0 <= 1, "a write after the flush is dirty again, written at most once");
    read_file(fd, &c, 1, 2 * PAGE + 4);
    is_int(c, 0x78, "and it is in the file");
    is_int(umm_munmap(p, 4 * PAGE), 0, "umm_munmap");
    close(fd);
    check_released();
    return tap_done();
}
