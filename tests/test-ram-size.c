/* Promise (README, environment): UMM_RAM sets the size of libumm's RAM, the
 * address space its frames come from.  Mappings whose frames fit are made;
 * one that does not fit fails with ENOMEM and changes nothing; unmapping
 * gives the space back; umm_fork without room for the copies' ranges fails
 * with ENOMEM. */
#include <errno.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>
#include "util.h"

/* A small RAM is the program's choice (README: from 64 KiB up): in a child
 * that starts libumm with 64 KiB, 32 KiB of memory works. */
static int small_ram(void)
{
    pid_t pid = fork();
    if (pid == 0) {
        tap_quiet();
        vg_abrupt_end(); /* _exit with libumm's daemon running */
        setenv("UMM_FRAME_SPACE", "64K", 1);
        char *p = umm_mmap(NULL, 8 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED)
            _exit(1);
        for (int i = 0; i < 8; i++)
            p[i * PAGE] = (char)i;
        for (int i = 0; i < 8; i++)
            if (p[i * PAGE] != (char)i)
                _exit(2);
        _exit(umm_munmap(p, 8 * PAGE) == 0 ? 0 : 3);
    }
    int st = 0;
    waitpid(pid, &st, 0);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 100;
}

int main(void)
{
    is_int(small_ram(), 0, "UMM_FRAME_SPACE=64K: 32 KiB of private memory works");
    setenv("UMM_FRAME_SPACE", "512M", 1); /* read once, when libumm starts */
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

    /* umm_fork needs a fresh range per private mapping for each side
     * (README difference 6): 200 MiB private leaves no room for two more. */
    b = umm_mmap(NULL, 200 * mib, PROT_READ | PROT_WRITE, flags, -1, 0);
    b[0] = 1;
    errno = 0;
    pid_t pid = umm_fork();
    if (pid == 0)
        _exit(3); /* must not happen */
    ok(pid == -1, "umm_fork with 200 MiB private in 512 MiB of RAM fails (no child made)");
    is_int(errno, ENOMEM, "with ENOMEM");
    is_int(b[0], 1, "and the mapping is as it was");
    is_int(umm_munmap(b, 200 * mib), 0, "unmap it");
    check_released();
    return tap_done();
}
