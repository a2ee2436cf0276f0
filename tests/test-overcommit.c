/* Promise: libumm follows the host's overcommit policy as the kernel's
 * mmap does.  A mapping the kernel charges to the commit limit (private
 * writable, shared anonymous, unless MAP_NORESERVE where the policy honours
 * it) and refuses with ENOMEM as too large for the machine is refused by
 * libumm too; one it does not charge (read-only, PROT_NONE, MAP_NORESERVE)
 * is made by both.  The size is twice the machine's memory and swap, so
 * the answer does not depend on what else runs; each case is compared with
 * the kernel's own answer, whatever the policy (vm.overcommit_memory). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include "util.h"

static uint64_t meminfo(const char *key)
{
    FILE *f = fopen("/proc/meminfo", "re");
    char line[256];
    unsigned long long kb = 0;
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, key, strlen(key)) == 0 && sscanf(line + strlen(key), ": %llu", &kb) == 1)
            break;
    if (f)
        fclose(f);
    return (uint64_t)kb << 10;
}

int main(void)
{
    uint64_t big = 2 * (meminfo("MemTotal") + meminfo("SwapTotal"));
    big = (big + (1 << 30) - 1) & ~(uint64_t)((1 << 30) - 1);
    if (big == 0 || big > ((uint64_t)256 << 30))
        tap_skip_all("the machine's memory is unknown or larger than libumm's RAM can map (256 GiB)");
    int fd = tmpfile_make(PAGE, 3, O_RDWR, NULL);
    struct { const char *name; int prot, flags, file; } cases[] = {
        { "private anonymous, read-write", PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, 0 },
        { "shared anonymous, read-write", PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, 0 },
        { "shared anonymous, read-only", PROT_READ, MAP_SHARED | MAP_ANONYMOUS, 0 },
        { "private anonymous, MAP_NORESERVE", PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, 0 },
        { "shared anonymous, MAP_NORESERVE", PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE, 0 },
        { "private anonymous, PROT_NONE", PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, 0 },
        { "private anonymous, read-only", PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, 0 },
        { "private file, read-write", PROT_READ | PROT_WRITE, MAP_PRIVATE, 1 },
        { "private file, read-only", PROT_READ, MAP_PRIVATE, 1 },
        { "shared file, read-write", PROT_READ | PROT_WRITE, MAP_SHARED, 1 },
    };
    tap_diag("size: %llu GiB (twice memory and swap)", (unsigned long long)(big >> 30));
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        errno = 0;
        void *k = mmap(NULL, big, cases[i].prot, cases[i].flags, cases[i].file ? fd : -1, 0);
        int kerr = k == MAP_FAILED ? errno : 0;
        if (k != MAP_FAILED)
            munmap(k, big);
        errno = 0;
        void *u = umm_mmap(NULL, big, cases[i].prot, cases[i].flags, cases[i].file ? fd : -1, 0);
        int uerr = u == MAP_FAILED ? errno : 0;
        if (u != MAP_FAILED)
            umm_munmap(u, big);
        if (under_valgrind() && !kerr) /* README: a mapping needs RAM of its own size */
            tap_skip("under Valgrind libumm's RAM is smaller than twice the machine's memory",
                     "%s: made by the kernel", cases[i].name);
        else
            ok(kerr == uerr, "%s: the kernel says %s, libumm %s", cases[i].name, kerr ? strerror(kerr) : "made",
               uerr ? strerror(uerr) : "made");
    }
    close(fd);
    check_released();
    return tap_done();
}
