/* Promise (issue 12, item 6; README, "Full file systems and limits"): the
 * program's address-space limit (RLIMIT_AS, ulimit -v) counts a mapping
 * once, as the kernel does.  With the limit set to the process's size plus
 * 220 MiB, a 200 MiB PROT_NONE mapping succeeds, as it does on the kernel,
 * and so does using part of it (libumm started before the limit: its
 * question to the host about the commit charge is asked in the place of
 * its address reservation, not beside it); a mapping past the limit fails
 * with ENOMEM on both.  libumm started under the limit takes a small share
 * of the room for itself (its tables, frame descriptors and kmap windows,
 * which the kernel keeps outside the process; no direct map) and starts;
 * then a 200 MiB mapping succeeds as on the kernel, and all of it can be
 * written and read back.  Each case runs in a child, whose exit status is
 * what is checked. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>
#include "util.h"

#define MIB (1024 * 1024)

/* The process's size (VmSize) in bytes. */
static uint64_t vm_size(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    uint64_t kb = 0;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "VmSize: %lu kB", &kb) == 1)
            break;
    if (f)
        fclose(f);
    return kb * 1024;
}

static void limit_as(uint64_t room)
{
    uint64_t now = vm_size();
    if (now == 0)
        _exit(90);
    struct rlimit rl = { now + room, now + room };
    if (setrlimit(RLIMIT_AS, &rl) != 0)
        _exit(91);
}

/* how & 1: libumm (else the kernel); how & 2: libumm started before the
 * limit was set; how & 4: map past the limit (300 MiB) and expect ENOMEM;
 * how & 8: a 4 MiB mapping (in libumm's share of the room); how & 16:
 * use the whole mapping, not 8 MiB of it. */
static int run(int how)
{
    int umm = how & 1;
    if (how & 2) {
        void *q = umm_mmap(NULL, PAGE, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (q == MAP_FAILED || umm_munmap(q, PAGE) != 0)
            return 2;
    }
    limit_as(220 * MIB);
    size_t len = (how & 4 ? 300 : how & 8 ? 4 : 200) * (size_t)MIB;
    unsigned char *p = umm ? umm_mmap(NULL, len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
                           : mmap(NULL, len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (how & 4)
        return p == MAP_FAILED && errno == ENOMEM ? 0 : 3;
    if (p == MAP_FAILED)
        return errno == ENOMEM ? 4 : 5;
    /* Use up to 8 MiB of it: protection, stores, loads. */
    size_t use = how & 16 || len < 8 * MIB ? len : 8 * MIB;
    if ((umm ? umm_mprotect(p, use, PROT_READ | PROT_WRITE) : mprotect(p, use, PROT_READ | PROT_WRITE)) != 0)
        return 6;
    for (size_t i = 0; i < use; i += PAGE)
        p[i] = (unsigned char)(i >> 12);
    for (size_t i = 0; i < use; i += PAGE)
        if (p[i] != (unsigned char)(i >> 12))
            return 7;
    if ((umm ? umm_munmap(p, len) : munmap(p, len)) != 0)
        return 8;
    return 0;
}

static int in_child(int how)
{
    pid_t pid = fork();
    if (pid == 0) {
        tap_quiet();
        vg_abrupt_end();
        _exit(run(how));
    }
    int status = 0;
    waitpid(pid, &status, 0);
    return status;
}

int main(void)
{
    if (under_valgrind())
        tap_skip_all("Valgrind's own address space counts against RLIMIT_AS in the one process it shares with the "
                     "program; the limit cannot be set for the program alone");
    static const struct {
        int how;
        const char *what;
    } cases[] = {
        { 0, "a 200 MiB PROT_NONE mapping, then 8 MiB of it used" },
        { 1, "libumm's first call under the limit: a 200 MiB PROT_NONE mapping, then 8 MiB of it used" },
        { 16, "a 200 MiB PROT_NONE mapping, then all of it used" },
        { 17, "libumm's first call under the limit: a 200 MiB PROT_NONE mapping, then all of it used" },
        { 3, "libumm started before the limit: a 200 MiB PROT_NONE mapping, then 8 MiB of it used" },
        { 9, "libumm's first call under the limit: a 4 MiB mapping, used" },
        { 4, "a 300 MiB mapping past the limit: ENOMEM" },
        { 5, "a 300 MiB mapping past the limit: ENOMEM" },
        { 7, "libumm started before the limit: a 300 MiB mapping past the limit: ENOMEM" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int st = in_child(cases[i].how);
        ok(WIFEXITED(st) && WEXITSTATUS(st) == 0, "%s, RLIMIT_AS = size + 220 MiB: %s (status %#x)",
           cases[i].how & 1 ? "libumm" : "kernel", cases[i].what, st);
    }
    check_released();
    return tap_done();
}
