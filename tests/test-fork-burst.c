/* Promise: forks in quick succession neither hang nor stop libumm's daemon.
 * A fork parks the daemon's thread and lets it go again after (daemon.c);
 * three forks back to back, before that thread could run between them (the
 * whole process on one CPU, the children waited for only after the third),
 * once left a daemon that took the second fork's wake-up for its end: the
 * third fork then waited for it to park, for ever.  After the forks the
 * daemon still works: msync(MS_ASYNC) has it write a dirty page back. */
#define _GNU_SOURCE
#include <dirent.h>
#include <fcntl.h>
#include <sched.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>
#include "util.h"

/* Every thread of this process (libumm's daemon too) on the first CPU this
 * one may use: what the daemon is woken for waits for the forking thread to
 * block.  Returns 0, or -1 if the affinity cannot be set. */
static int one_cpu(void)
{
    cpu_set_t set, mine;
    if (sched_getaffinity(0, sizeof mine, &mine) != 0)
        return -1;
    int cpu = 0;
    while (cpu < CPU_SETSIZE && !CPU_ISSET(cpu, &mine))
        cpu++;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    DIR *d = opendir("/proc/self/task");
    if (!d)
        return -1;
    int rc = 0;
    for (struct dirent *e; (e = readdir(d));)
        if (e->d_name[0] != '.')
            rc |= sched_setaffinity(atoi(e->d_name), sizeof set, &set);
    closedir(d);
    return rc;
}

int main(void)
{
    alarm(60); /* a hang is the failure: well before the harness's own */
    int fd = tmpfile_make(4 * PAGE, 71, O_RDWR, NULL);
    unsigned char *p = umm_mmap(NULL, 4 * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    ok(p != MAP_FAILED, "a shared mapping of a file");
    p[0] = pattern(0, 71); /* libumm and its daemon are running */
    if (one_cpu() != 0) /* a sandbox that forbids it: the forks still run, less sure to meet the race */
        tap_skip("sched_setaffinity is refused here", "every thread on one CPU");
    int forks = 0, exited = 0;
    for (int round = 0; round < 20; round++) {
        pid_t pid[3];
        for (int k = 0; k < 3; k++) {
            pid[k] = umm_fork();
            if (pid[k] == 0) {
                vg_abrupt_end(); /* under memcheck: the daemon's thread is not joined */
                _exit(0);
            }
            forks += pid[k] > 0;
        }
        for (int k = 0; k < 3; k++) {
            int st = 0;
            exited += pid[k] > 0 && waitpid(pid[k], &st, 0) == pid[k] && WIFEXITED(st) && WEXITSTATUS(st) == 0;
        }
    }
    is_int(forks, 60, "20 rounds of three forks back to back: every fork returned");
    is_int(exited, 60, "and every child ended");
    uint64_t w0 = stat_get("pages_written");
    p[PAGE + 5] = 0x5a;
    is_int(umm_msync(p, 4 * PAGE, MS_ASYNC), 0, "msync(MS_ASYNC) of a dirty page");
    ok(stat_wait("pages_written", w0, 1) >= 1, "the daemon wrote it back: it runs still");
    unsigned char b = 0;
    is_int(pread(fd, &b, 1, PAGE + 5), 1, "pread");
    is_int(b, 0x5a, "the file has the byte");
    is_int(umm_munmap(p, 4 * PAGE), 0, "umm_munmap");
    close(fd);
    check_released();
    return tap_done();
}
