/*
 * memcg.h: a memory cgroup of one's own, for the out-of-core test and
 * bench (issue 14): a child process is placed in a fresh cgroup with a
 * memory limit, and afterwards one asks whether the kernel's OOM killer
 * struck there.  Header-only (static functions): tests/test-reclaim-cgroup
 * and bench/bench-reclaim both include it.
 *
 * Where: a new cgroup under the one this process is in (never a change to
 * that one's own settings), found from /proc/self/cgroup:
 *   - cgroup v1: the line whose controllers name "memory", under the
 *     memory controller's mount, /sys/fs/cgroup/memory; the limit is
 *     memory.limit_in_bytes (and memory.memsw.limit_in_bytes, the same: no
 *     swap), OOM kills are counted in memory.oom_control's "oom_kill";
 *   - cgroup v2 (/sys/fs/cgroup/cgroup.controllers names "memory"): the
 *     "0::" line; memory.max, memory.swap.max = 0, memory.events'
 *     "oom_kill".  The parent must delegate the memory controller to its
 *     children (cgroup.subtree_control); +memory is asked for, and where
 *     the parent refuses (it holds processes itself) there is no cgroup.
 * memcg_create() says why not in why when it returns -1: not root, no
 * memory controller, no write access.  Every failure is a reason to skip,
 * never a crash.
 */
#ifndef UMM_MEMCG_H
#define UMM_MEMCG_H

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

struct memcg {
    int v2;          /* 1: cgroup v2, 0: v1 */
    char dir[512];   /* the cgroup's directory */
};

static inline int memcg_read(const char *path, char *buf, size_t n)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t len = read(fd, buf, n - 1);
    close(fd);
    if (len < 0)
        return -1;
    buf[len] = 0;
    return (int)len;
}

static inline int memcg_write(const char *path, const char *val)
{
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t len = write(fd, val, strlen(val));
    int e = errno;
    close(fd);
    errno = e;
    return len == (ssize_t)strlen(val) ? 0 : -1;
}

static inline int memcg_file_write(const struct memcg *cg, const char *file, const char *val)
{
    char path[600];
    snprintf(path, sizeof path, "%s/%s", cg->dir, file);
    return memcg_write(path, val);
}

/* The number after key (a line "key N") in the cgroup's file; -1 if none. */
static inline long long memcg_key(const struct memcg *cg, const char *file, const char *key)
{
    char path[600], buf[8192];
    snprintf(path, sizeof path, "%s/%s", cg->dir, file);
    if (memcg_read(path, buf, sizeof buf) < 0)
        return -1;
    size_t kl = strlen(key);
    for (char *l = buf; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL)
        if (strncmp(l, key, kl) == 0 && l[kl] == ' ')
            return strtoll(l + kl + 1, NULL, 10);
    return -1;
}

/* A file holding one number; -1 if none. */
static inline long long memcg_value(const struct memcg *cg, const char *file)
{
    char path[600], buf[64];
    snprintf(path, sizeof path, "%s/%s", cg->dir, file);
    if (memcg_read(path, buf, sizeof buf) <= 0 || buf[0] < '0' || buf[0] > '9')
        return -1;
    return strtoll(buf, NULL, 10);
}

/* This process's cgroup directory for the memory controller: v1 first (a
 * hybrid machine binds the memory controller to v1), then v2. */
static inline int memcg_parent(char *dir, size_t n, int *v2, char *why, size_t wn)
{
    char buf[8192];
    if (memcg_read("/proc/self/cgroup", buf, sizeof buf) <= 0) {
        snprintf(why, wn, "no /proc/self/cgroup");
        return -1;
    }
    for (char *l = buf; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL) {
        char *c1 = strchr(l, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL, *nl = strchr(l, '\n');
        if (!c2 || (nl && c2 > nl))
            continue;
        char ctl[256];
        size_t cl = (size_t)(c2 - c1 - 1) < sizeof ctl - 1 ? (size_t)(c2 - c1 - 1) : sizeof ctl - 1;
        memcpy(ctl, c1 + 1, cl);
        ctl[cl] = 0;
        int is_mem = 0;
        for (char *t = strtok(ctl, ","); t; t = strtok(NULL, ","))
            is_mem |= strcmp(t, "memory") == 0;
        if (!is_mem)
            continue;
        size_t pl = nl ? (size_t)(nl - c2 - 1) : strlen(c2 + 1);
        snprintf(dir, n, "/sys/fs/cgroup/memory%.*s", (int)pl, c2 + 1);
        struct stat st;
        if (stat(dir, &st) != 0) {
            snprintf(why, wn, "cgroup v1 memory controller: %s is not there (another cgroup namespace?)", dir);
            return -1;
        }
        *v2 = 0;
        return 0;
    }
    if (memcg_read("/sys/fs/cgroup/cgroup.controllers", buf, sizeof buf) < 0 || !strstr(buf, "memory")) {
        snprintf(why, wn, "no memory cgroup controller (neither v1 nor v2 at /sys/fs/cgroup)");
        return -1;
    }
    if (memcg_read("/proc/self/cgroup", buf, sizeof buf) <= 0 || !strstr(buf, "0::")) {
        snprintf(why, wn, "cgroup v2 but no 0:: line in /proc/self/cgroup");
        return -1;
    }
    char *p = strstr(buf, "0::") + 3, *nl = strchr(p, '\n');
    if (nl)
        *nl = 0;
    snprintf(dir, n, "/sys/fs/cgroup%s", strcmp(p, "/") ? p : "");
    *v2 = 1;
    return 0;
}

static inline void memcg_destroy(struct memcg *cg)
{
    if (!cg->dir[0])
        return;
    /* The last process may take a moment to leave after it was reaped. */
    for (int i = 0; i < 200 && rmdir(cg->dir) != 0 && errno == EBUSY; i++)
        nanosleep(&(struct timespec){ 0, 10 * 1000 * 1000 }, NULL);
    cg->dir[0] = 0;
}

/* A new memory cgroup named name (with this pid appended) whose limit is
 * limit bytes, without swap.  0, or -1 with the reason in why. */
static inline int memcg_create(struct memcg *cg, const char *name, uint64_t limit, char *why, size_t wn)
{
    char parent[400], val[64];
    cg->dir[0] = 0;
    if (geteuid() != 0) {
        snprintf(why, wn, "not root: cannot make a memory cgroup");
        return -1;
    }
    if (memcg_parent(parent, sizeof parent, &cg->v2, why, wn) != 0)
        return -1;
    snprintf(cg->dir, sizeof cg->dir, "%s/%s-%d", parent, name, (int)getpid());
    if (mkdir(cg->dir, 0755) != 0 && errno != EEXIST) {
        snprintf(why, wn, "cannot create a cgroup under %s: %s", parent, strerror(errno));
        cg->dir[0] = 0;
        return -1;
    }
    snprintf(val, sizeof val, "%llu", (unsigned long long)limit);
    if (cg->v2) {
        char path[600];
        snprintf(path, sizeof path, "%s/memory.max", cg->dir);
        if (access(path, F_OK) != 0) {
            /* Ask the parent to hand the memory controller down. */
            char sub[600];
            snprintf(sub, sizeof sub, "%s/cgroup.subtree_control", parent);
            if (memcg_write(sub, "+memory") != 0 || access(path, F_OK) != 0) {
                snprintf(why, wn, "cgroup v2: %s does not delegate the memory controller (%s)", parent,
                         strerror(errno));
                memcg_destroy(cg);
                return -1;
            }
        }
        if (memcg_file_write(cg, "memory.max", val) != 0) {
            snprintf(why, wn, "cgroup v2: cannot set memory.max: %s", strerror(errno));
            memcg_destroy(cg);
            return -1;
        }
        memcg_file_write(cg, "memory.swap.max", "0"); /* where there is swap accounting */
    } else {
        if (memcg_file_write(cg, "memory.limit_in_bytes", val) != 0) {
            snprintf(why, wn, "cgroup v1: cannot set memory.limit_in_bytes: %s", strerror(errno));
            memcg_destroy(cg);
            return -1;
        }
        memcg_file_write(cg, "memory.memsw.limit_in_bytes", val); /* where there is swap accounting */
    }
    return 0;
}

/* Put the calling process into the cgroup (in a child, before its work). */
static inline int memcg_enter(const struct memcg *cg)
{
    char pid[32];
    snprintf(pid, sizeof pid, "%d", (int)getpid());
    return memcg_file_write(cg, "cgroup.procs", pid);
}

/* Processes the OOM killer killed in the cgroup; -1 if unknown. */
static inline long long memcg_oom_kills(const struct memcg *cg)
{
    return cg->v2 ? memcg_key(cg, "memory.events", "oom_kill") : memcg_key(cg, "memory.oom_control", "oom_kill");
}

/* The most bytes the cgroup was charged; -1 if the kernel does not say. */
static inline long long memcg_peak(const struct memcg *cg)
{
    return cg->v2 ? memcg_value(cg, "memory.peak") : memcg_value(cg, "memory.max_usage_in_bytes");
}

/* The limit as the kernel took it (rounded to pages). */
static inline long long memcg_limit(const struct memcg *cg)
{
    return cg->v2 ? memcg_value(cg, "memory.max") : memcg_value(cg, "memory.limit_in_bytes");
}

#endif
