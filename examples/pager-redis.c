/*
 * pager-redis: far memory -- a mapping whose pages live in Redis.
 *
 * A pager (umm_pager(3)) over hiredis: page n of the mapping is the Redis
 * key "<prefix>:<n>", value its 4096 raw bytes; a key that is missing
 * reads as zeros.  libumm calls rs_fill for the run of pages a touch needs
 * (one MGET) and rs_writeback for the dirty pages reclaim, msync, munmap or
 * exit write back (one MSET).  So a mapping can be far bigger than the
 * machine's memory (UMM_RAM is all libumm keeps resident), and processes on
 * other machines can map the same prefix and see what was written.
 *
 * One writer at a time.  libumm keeps its page cache coherent within one
 * process family only: a second writer's pages would overwrite the first's
 * at each write-back, and a reader sees another process's writes only for
 * pages it fills after they were stored (umm_msync with MS_INVALIDATE drops
 * its clean copies).  So: one process (family) maps the prefix writable
 * and msyncs; any number of others map it read-only (ops without
 * writeback), anywhere.
 *
 * Where the store is: UMM_REDIS=host:port or UMM_REDIS=unix:/path/to/sock
 * (default 127.0.0.1:6379).  With a Redis Cluster the keys of one mapping
 * hash to different slots, so its pages spread over all the nodes -- which
 * is the point of far memory on a cluster.  hiredis itself is not
 * cluster-aware (it does not follow MOVED/ASK redirects), so either point
 * UMM_REDIS at a proxy that is (redis-cluster-proxy, envoy's redis proxy;
 * a proxy may refuse an MGET/MSET across slots: send one GET/SET a page
 * then) or build the pager on hiredis-cluster instead of hiredis.
 *
 * The callbacks run on libumm's pager thread, one at a time, so one
 * connection serves them; a process forked from the mapper reconnects on
 * its first callback (a connection is not shared across processes).  A
 * store that cannot be reached fails the callback: a fill's failure is
 * SIGBUS for the access that needed the page, a write-back's failure keeps
 * the pages dirty and makes umm_msync fail with EIO (umm_pager(3)).
 * Ignore SIGPIPE in a program that uses it: the server may go away.
 *
 * It is also a test (TAP, in make check): it starts a redis-server of its
 * own on a Unix socket in a temporary directory, maps eight times the
 * budget, writes and reads back every page, checks Redis with hiredis, runs
 * itself again as a second process that maps the prefix read-only, and then
 * kills the server mid-run to check the errors above.  Without hiredis (at
 * configure) or redis-server (in PATH) it skips and says why.
 *
 *   pager-redis                          the test (its own redis-server)
 *   pager-redis --reader PREFIX NPAGES   map PREFIX read-only from UMM_REDIS
 *                                        and check the test's pattern
 */
#define _GNU_SOURCE
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif
#if defined(HAVE_CONFIG_H) && !defined(HAVE_HIREDIS)
#include <stdio.h>
int main(void)
{
    printf("1..0 # SKIP hiredis not found by configure (Debian: libhiredis-dev; ./bootstrap installs it)\n");
    return 0;
}
#else
#include <errno.h>
#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <umm.h>

#define PAGE 4096

/* ------------------------------------------------------------ the pager */

struct rstore {
    char addr[512];   /* host:port or unix:/path */
    char prefix[128]; /* keys are prefix:page */
    uint64_t npages;  /* the store's size, in pages */
    redisContext *c;  /* NULL: connect at the next callback */
    pid_t pid;        /* the process c belongs to */
    long filled, stored, failed, released;
};

static redisContext *rs_connect(const char *addr)
{
    struct timeval tv = { 2, 0 };
    redisContext *c;
    if (strncmp(addr, "unix:", 5) == 0) {
        c = redisConnectUnixWithTimeout(addr + 5, tv);
    } else {
        char host[256];
        const char *colon = strrchr(addr, ':');
        size_t n = colon ? (size_t)(colon - addr) : strlen(addr);
        snprintf(host, sizeof host, "%.*s", (int)(n < sizeof host ? n : sizeof host - 1), addr);
        c = redisConnectWithTimeout(host, colon ? atoi(colon + 1) : 6379, tv);
    }
    if (c && !c->err && redisSetTimeout(c, tv) == REDIS_OK)
        return c;
    if (c)
        redisFree(c);
    return NULL;
}

/* The connection, made anew after an error or in a forked child. */
static redisContext *rs_conn(struct rstore *s)
{
    if (s->c && (s->c->err || s->pid != getpid())) {
        redisFree(s->c); /* in a child: closes the child's copy only */
        s->c = NULL;
    }
    if (!s->c) {
        s->c = rs_connect(s->addr);
        s->pid = getpid();
    }
    return s->c;
}

static void key_of(const struct rstore *s, uint64_t pg, char *key, size_t size)
{
    snprintf(key, size, "%s:%llu", s->prefix, (unsigned long long)pg);
}

/* Pages [off, off+len) with one MGET; missing keys are zeros. */
static ssize_t rs_fill(void *cookie, off_t off, void *buf, size_t len)
{
    struct rstore *s = cookie;
    size_t n = len / PAGE;
    const char **argv = malloc((n + 1) * sizeof *argv);
    char(*keys)[160] = malloc(n * sizeof *keys);
    redisContext *c = rs_conn(s);
    redisReply *r = NULL;
    ssize_t ret = -EIO;
    if (!argv || !keys || !c)
        goto out;
    argv[0] = "MGET";
    for (size_t i = 0; i < n; i++) {
        key_of(s, (uint64_t)off / PAGE + i, keys[i], sizeof keys[i]);
        argv[i + 1] = keys[i];
    }
    r = redisCommandArgv(c, (int)n + 1, argv, NULL);
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != n)
        goto out;
    for (size_t i = 0; i < n; i++) {
        redisReply *e = r->element[i];
        if (e->type == REDIS_REPLY_NIL)
            memset((char *)buf + i * PAGE, 0, PAGE); /* never written */
        else if (e->type == REDIS_REPLY_STRING && e->len == PAGE)
            memcpy((char *)buf + i * PAGE, e->str, PAGE);
        else
            goto out; /* not one of our pages */
    }
    s->filled += (long)n;
    ret = (ssize_t)len;
out:
    if (ret < 0)
        s->failed++; /* the access that needed the page gets SIGBUS */
    if (r)
        freeReplyObject(r);
    free(argv);
    free(keys);
    return ret;
}

/* Pages [off, off+len) with one MSET. */
static int rs_writeback(void *cookie, off_t off, const void *buf, size_t len)
{
    struct rstore *s = cookie;
    size_t n = len / PAGE;
    const char **argv = malloc((2 * n + 1) * sizeof *argv);
    size_t *argl = malloc((2 * n + 1) * sizeof *argl);
    char(*keys)[160] = malloc(n * sizeof *keys);
    redisContext *c = rs_conn(s);
    redisReply *r = NULL;
    int ret = -EIO;
    if (!argv || !argl || !keys || !c)
        goto out;
    argv[0] = "MSET", argl[0] = 4;
    for (size_t i = 0; i < n; i++) {
        key_of(s, (uint64_t)off / PAGE + i, keys[i], sizeof keys[i]);
        argv[2 * i + 1] = keys[i], argl[2 * i + 1] = strlen(keys[i]);
        argv[2 * i + 2] = (const char *)buf + i * PAGE, argl[2 * i + 2] = PAGE;
    }
    r = redisCommandArgv(c, (int)(2 * n + 1), argv, argl);
    if (!r || r->type != REDIS_REPLY_STATUS)
        goto out;
    s->stored += (long)n;
    ret = 0;
out:
    if (ret < 0)
        s->failed++; /* the pages stay dirty; msync says EIO */
    if (r)
        freeReplyObject(r);
    free(argv);
    free(argl);
    free(keys);
    return ret;
}

static uint64_t rs_size(void *cookie)
{
    return ((struct rstore *)cookie)->npages * PAGE;
}

static void rs_release(void *cookie)
{
    struct rstore *s = cookie;
    if (s->c)
        redisFree(s->c);
    s->c = NULL;
    s->released++;
}

static const struct umm_pager_ops redis_ops = {
    .fill = rs_fill, .writeback = rs_writeback, .size = rs_size, .release = rs_release,
};
/* Read-only: no writeback, so MAP_SHARED with PROT_WRITE is refused. */
static const struct umm_pager_ops redis_ro_ops = { .fill = rs_fill, .size = rs_size, .release = rs_release };

static void rs_init(struct rstore *s, const char *addr, const char *prefix, uint64_t npages)
{
    memset(s, 0, sizeof *s);
    snprintf(s->addr, sizeof s->addr, "%s", addr);
    snprintf(s->prefix, sizeof s->prefix, "%s", prefix);
    s->npages = npages;
}

/* ------------------------------------------------------------- the test */

static int tests, failed;
static int check(int cond, const char *what)
{
    failed += !cond;
    printf("%s %d - %s\n", cond ? "ok" : "not ok", ++tests, what);
    fflush(stdout);
    return cond;
}

/* What page pg holds after `round` rewrites. */
static void page_bytes(unsigned char *p, uint64_t pg, unsigned round)
{
    uint64_t r = 0x9e3779b97f4a7c15ull * (pg + 1) + round;
    for (size_t i = 0; i < PAGE; i += 8) {
        r ^= r << 13, r ^= r >> 7, r ^= r << 17;
        memcpy(p + i, &r, 8);
    }
}

static int pages_are(const unsigned char *m, uint64_t npages, unsigned round)
{
    unsigned char want[PAGE];
    for (uint64_t pg = 0; pg < npages; pg++) {
        page_bytes(want, pg, round);
        if (memcmp(m + pg * PAGE, want, PAGE) != 0)
            return 0;
    }
    return 1;
}

static const char *store_addr(void)
{
    const char *a = getenv("UMM_REDIS");
    return a && *a ? a : "127.0.0.1:6379";
}

/* The second process: the prefix mapped read-only, anew. */
static int reader_run(const char *prefix, uint64_t npages)
{
    const char *t = getenv("PAGER_REDIS_TESTS");
    tests = t ? atoi(t) : 0; /* TAP: go on numbering from the first process */
    static struct rstore s;
    rs_init(&s, store_addr(), prefix, npages);
    size_t len = npages * PAGE;
    void *w = umm_mmap_pager(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, &redis_ro_ops, &s, 0);
    check(w == MAP_FAILED && errno == EACCES, "a reader cannot map the store writable (no writeback: EACCES)");
    unsigned char *m = umm_mmap_pager(NULL, len, PROT_READ, MAP_SHARED, &redis_ro_ops, &s, 0);
    if (!check(m != MAP_FAILED, "another process maps the prefix read-only"))
        return 1;
    check(pages_are(m, npages, 0) && s.filled >= (long)npages,
          "and sees every byte the first one wrote, filled from Redis");
    umm_munmap(m, len);
    check(s.released == 1, "munmap released its connection");
    return failed != 0;
}

static char dir[512], sock[600];
static pid_t server = -1;

static pid_t start_server(void)
{
    char log[600];
    snprintf(log, sizeof log, "%s/redis.log", dir);
    pid_t pid = fork();
    if (pid == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0600);
        if (fd >= 0)
            dup2(fd, 1), dup2(fd, 2);
        execlp("redis-server", "redis-server", "--port", "0", "--unixsocket", sock, "--save", "",
               "--appendonly", "no", "--daemonize", "no", (char *)NULL);
        _exit(127);
    }
    if (pid < 0)
        return -1;
    for (int i = 0; i < 100; i++) { /* 10 s at most */
        struct timespec ts = { 0, 100 * 1000 * 1000 };
        int st;
        if (waitpid(pid, &st, WNOHANG) == pid)
            return -1;
        redisContext *c = redisConnectUnix(sock);
        redisReply *r = c && !c->err ? redisCommand(c, "PING") : NULL;
        int up = r && r->type == REDIS_REPLY_STATUS && strcmp(r->str, "PONG") == 0;
        if (r)
            freeReplyObject(r);
        if (c)
            redisFree(c);
        if (up)
            return pid;
        nanosleep(&ts, NULL);
    }
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    return -1;
}

static void stop_server(void)
{
    if (server > 0) {
        kill(server, SIGKILL);
        waitpid(server, NULL, 0);
        server = -1;
    }
}

static void cleanup(void)
{
    char path[700];
    stop_server();
    if (!*dir)
        return;
    unlink(sock);
    snprintf(path, sizeof path, "%s/redis.log", dir);
    unlink(path);
    rmdir(dir);
    *dir = 0;
}

static int in_path(const char *prog)
{
    const char *p = getenv("PATH");
    char buf[4096];
    while (p && *p) {
        size_t n = strcspn(p, ":");
        snprintf(buf, sizeof buf, "%.*s/%s", (int)n, p, prog);
        if (access(buf, X_OK) == 0)
            return 1;
        p += n + (p[n] == ':');
    }
    return 0;
}

static sigjmp_buf jb;
static void *volatile bus_addr;
static void on_sigbus(int sig, siginfo_t *si, void *uctx)
{
    (void)sig, (void)uctx;
    bus_addr = si->si_addr;
    siglongjmp(jb, 1);
}

/* Read a byte of p; the signal that read raised (0: none). */
static int touch(const volatile unsigned char *p)
{
    struct sigaction sa, old;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_sigbus;
    sa.sa_flags = SA_SIGINFO;
    sigaction(SIGBUS, &sa, &old);
    int got = 0;
    bus_addr = NULL;
    if (sigsetjmp(jb, 1) == 0)
        (void)*p;
    else
        got = SIGBUS;
    sigaction(SIGBUS, &old, NULL);
    return got;
}

/* Redis itself holds pages [0, npages) as written in `round`. */
static int redis_holds(uint64_t npages, const char *prefix, unsigned round)
{
    redisContext *c = redisConnectUnix(sock);
    unsigned char want[PAGE];
    int same = c && !c->err;
    for (uint64_t pg = 0; pg < npages && same; pg++) {
        redisReply *r = redisCommand(c, "GET %s:%llu", prefix, (unsigned long long)pg);
        page_bytes(want, pg, round);
        same = r && r->type == REDIS_REPLY_STRING && r->len == PAGE && memcmp(r->str, want, PAGE) == 0;
        if (r)
            freeReplyObject(r);
    }
    if (c)
        redisFree(c);
    return same;
}

int main(int argc, char **argv)
{
    if (argc == 4 && strcmp(argv[1], "--reader") == 0)
        return reader_run(argv[2], strtoull(argv[3], NULL, 10));

    const uint64_t npages = 2048; /* 8 MiB */
    setenv("UMM_RAM", "1M", 0);   /* before libumm's first call: the mapping is 8x the budget */
    signal(SIGPIPE, SIG_IGN);     /* the server goes away below */
    if (!in_path("redis-server")) {
        printf("1..0 # SKIP redis-server not found in PATH (Debian: redis-server; ./bootstrap installs it)\n");
        return 0;
    }
    const char *tmp = getenv("UMM_TEST_TMPDIR");
    snprintf(dir, sizeof dir, "%s/pager-redis.XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(dir)) {
        printf("1..0 # SKIP no temporary directory: %s\n", strerror(errno));
        return 0;
    }
    snprintf(sock, sizeof sock, "%s/redis.sock", dir);
    atexit(cleanup);
    server = start_server();
    if (server < 0) {
        printf("1..0 # SKIP redis-server did not start or answer PING (see its log in %s)\n", dir);
        *dir = 0; /* keep the log */
        return 0;
    }

    char addr[700], prefix[64];
    snprintf(addr, sizeof addr, "unix:%s", sock);
    snprintf(prefix, sizeof prefix, "umm-test:%d", (int)getpid());
    static struct rstore s;
    rs_init(&s, addr, prefix, npages);
    size_t len = npages * PAGE;
    unsigned char *m = umm_mmap_pager(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, &redis_ops, &s, 0);
    if (!check(m != MAP_FAILED, "a pager mapping whose pages live in Redis")) {
        printf("1..%d\n", tests);
        return 1;
    }
    check(m[0] == 0 && m[len - 1] == 0, "a page never written reads as zeros");

    /* 1. Far memory: 8x the budget, through reclaim to Redis and back. */
    for (uint64_t pg = 0; pg < npages; pg++)
        page_bytes(m + pg * PAGE, pg, 0);
    check(umm_msync(m, len, MS_SYNC) == 0, "msync stores every dirty page in Redis");
    check(pages_are(m, npages, 0), "every byte of every page reads back as written");
    struct umm_stats st;
    umm_stats(&st);
    printf("# %llu KiB mapped, budget %llu KiB: %ld pages stored with MSET, %ld filled with MGET\n",
           (unsigned long long)len / 1024, (unsigned long long)st.budget * 4, s.stored, s.filled);
    check(st.frames_high <= st.budget + 64, "libumm's memory stayed within its budget");
    check(s.stored >= (long)npages && s.filled > 0, "cold pages went out to Redis and came back");
    check(redis_holds(npages, prefix, 0), "Redis holds every page, byte for byte (read with hiredis directly)");

    /* 2. A second process maps the prefix read-only. */
    char count[16], n[32], self[4096];
    snprintf(count, sizeof count, "%d", tests);
    snprintf(n, sizeof n, "%llu", (unsigned long long)npages);
    setenv("PAGER_REDIS_TESTS", count, 1);
    setenv("UMM_REDIS", addr, 1);
    ssize_t sl = readlink("/proc/self/exe", self, sizeof self - 1); /* Valgrind answers with its client */
    self[sl > 0 ? sl : 0] = 0;
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        execl(self, argv[0], "--reader", prefix, n, (char *)NULL);
        _exit(127);
    }
    int status = -1;
    if (pid > 0)
        waitpid(pid, &status, 0);
    tests += 4; /* the reader's points (fewer if it failed: TAP then says so) */
    check(WIFEXITED(status) && WEXITSTATUS(status) == 0, "the reader process ended well");

    /* 3. The store goes away mid-run. */
    /* Reclaim has pushed out the middle page already: the read-back went
     * on for 1024 pages past it under a 256-page budget.  (MS_INVALIDATE
     * would not drop it here: in a process that has forked, libumm refills
     * clean pages in place -- which once deadlocked on hiredis's read(),
     * now tests/test-pager-io.) */
    page_bytes(m, 0, 1); /* page 0 filled again, then dirty */
    long fails = s.failed;
    stop_server();
    unsigned char *far = m + (npages / 2) * PAGE;
    check(touch(far) == SIGBUS && bus_addr == far,
          "the store gone: a touch of a page not resident gets SIGBUS (the fill failed)");
    check(s.failed > fails, "the fill did fail");
    errno = 0;
    int rc = umm_msync(m, len, MS_SYNC);
    check(rc == -1 && errno == EIO, "msync of the dirty page fails with EIO");
    check(pages_are(m, 1, 1), "and the dirty page is still in memory as written");

    /* 4. A store again (empty: no persistence): nothing dirty was lost. */
    server = start_server();
    check(server > 0, "redis-server restarted");
    check(umm_msync(m, len, MS_SYNC) == 0, "the next msync stores the page kept dirty");
    check(redis_holds(1, prefix, 1), "Redis holds it as written after the failure");
    unsigned char zero[PAGE] = { 0 };
    check(touch(far) == 0 && memcmp(far, zero, PAGE) == 0,
          "a later touch of the page whose fill failed tries again (a missing key: zeros)");
    umm_munmap(m, len);
    check(s.released == 1 && s.c == NULL, "munmap released the store's connection");
    cleanup();
    printf("1..%d\n", tests);
    return failed != 0;
}
#endif /* HAVE_HIREDIS */
