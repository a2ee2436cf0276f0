/* Promise (README, environment): UMM_RAM sets the size of libumm's RAM, the
 * address space its frames come from.  Mappings whose frames fit are made;
 * one that does not fit fails with ENOMEM and changes nothing; unmapping
 * gives the space back. */
#include <errno.h>
#include <stdlib.h>
#include "util.h"

int main(void)
{
    setenv("UMM_RAM", "512M", 1); /* read once, when libumm starts */
    size_t mib = 1 << 20;
    int flags = MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE;
    char *a = umm_mmap(NULL, 256 * mib, PROT_READ | PROT_WRITE, flags, -1, 0);
    ok(a != MAP_FAILED, "256 MiB of private memory fits in 512 MiB of RAM");
    errno = 0;
    char *b = umm_mmap(NULL, 512 * mib, PROT_READ | PROT_WRITE, flags, -1, 0);
    ok(b == MAP_FAILED, "512 MiB more does not fit");
    is_int(errno, ENOMEM, "with ENOMEM");
    is_int(stat_get("mappings"), 1, "and left nothing behind");
    a[100 * mib] = 7;
    is_int(a[100 * mib], 7, "the first mapping still works");
    is_int(umm_munmap(a, 256 * mib), 0, "unmap it");
    b = umm_mmap(NULL, 512 * mib, PROT_READ | PROT_WRITE, flags, -1, 0);
    ok(b != MAP_FAILED, "then 512 MiB fits: the space came back");
    is_int(umm_munmap(b, 512 * mib), 0, "unmap that too");
    check_released();
    return tap_done();
}
