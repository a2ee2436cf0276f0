/* Promise: any number of mappings (no fixed table): 3,000 one-page
 * mappings of one file, each touched, all correct, all released. */
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>
#include "util.h"

#define N 3000

int main(void)
{
    int fd = tmpfile_make(N * PAGE, 8, O_RDONLY, NULL);
    unsigned char **m = calloc(N, sizeof *m);
    int failed = 0, bad = 0;
    for (int i = 0; i < N; i++) {
        m[i] = umm_mmap(NULL, PAGE, PROT_READ, (i & 1) ? MAP_SHARED : MAP_PRIVATE, fd, (off_t)i * PAGE);
        failed += m[i] == MAP_FAILED;
    }
    is_int(failed, 0, "3000 mappings made");
    is_int(stat_get("mappings"), N, "3000 mappings counted");
    for (int i = N - 1; i >= 0; i--)
        bad += m[i][100] != pattern((uint64_t)i * PAGE + 100, 8);
    is_int(bad, 0, "each shows its page of the file");
    for (int i = 0; i < N; i++)
        failed += umm_munmap(m[i], PAGE) != 0;
    is_int(failed, 0, "3000 unmapped");
    free(m);
    close(fd);
    check_released();
    return tap_done();
}
