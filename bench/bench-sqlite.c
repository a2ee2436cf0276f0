/*
 * bench-sqlite: SQLite (Debian's libsqlite3) reading its database through
 * libumm's mmap, against the same workload on the kernel's own mmap, side
 * by side in the same run (issue 13: libumm at most 1.25x the kernel's
 * time).  libumm is measured twice, as two worlds: "libumm" copies the
 * database's pages into its own frames (UMM_MAP_COPY, the default),
 * "libumm-zc" maps the host's page cache of the file (UMM_MAP_ZEROCOPY,
 * umm.h "Zero-copy file pages"); each is held to the goal.  These machines
 * are shared and noisy: runs alternate kernel / libumm / libumm-zc, REPS
 * each, and the medians are compared.
 *
 * SQLite reads pages through a MAP_SHARED PROT_READ mapping of the database
 * (PRAGMA mmap_size larger than the file) and writes them with pwrite().
 * On libumm its unix VFS's "mmap", "munmap" and "mremap" system calls
 * (xSetSystemCall) go to umm_mmap, umm_munmap and umm_mremap, and its
 * pread/pwrite pass through libumm's file I/O layer (src/fileio.c), which
 * keeps the mapping and the file the same bytes.  In WAL mode the -shm
 * file (the WAL index) is mapped through libumm too.  The world is chosen
 * by flag in that mmap entry, on every mapping SQLite makes (the database
 * and the -shm file): UMM_MAP_ZEROCOPY in the zero-copy world, UMM_MAP_COPY
 * in the other, so that UMM_ZEROCOPY in the environment changes neither
 * and each call says what it measures.
 *
 * The database: a table t(id INTEGER PRIMARY KEY, k, v TEXT, b BLOB) with
 * an index on k, ROWS rows of about 550 bytes (a few tens of MiB), built
 * once and copied afresh (into the host's page cache) before every run.
 * A run is STEPS steps, each a write transaction (INSERTs, UPDATEs found
 * through the index, DELETEs of a range of the index, as many rows as
 * inserted so the file stays about the same size) and a read transaction
 * (point SELECTs by id, range SELECTs through the index: every page read
 * through the mapping).  Deterministic (a seeded xorshift): every world
 * does the same, and what the selects saw in each run of each world is
 * compared with the kernel's at the end.
 * journal_mode=DELETE and WAL, synchronous=OFF in both (the disk's fsyncs
 * would only add noise to a comparison of page caches).
 *
 * Each mode twice: on the database as built, which the inserts grow at
 * almost every commit -- SQLite then remaps the file to its new size
 * (SQLITE_FCNTL_SIZE_HINT), on libumm with umm_mremap, which keeps the
 * pages installed -- and
 * on a copy with RESERVE_MIB of free pages, which the inserts take instead
 * of growing the file: no remap, the price of the mapping and of the file
 * I/O layer alone.
 *
 * Each run is a fresh child process (libumm starts cold, as in a program
 * starting), timed from the database's open to the workload's end.  With
 * the times: libumm's faults, pages read and written back (umm_stats), the
 * remaps of the mapping, and from getrusage the user/system split, the
 * host's minor faults and context switches of each world, to explain the
 * ratio.
 *
 *   bench-sqlite [REPS [STEPS]]          (default 5, 150)
 *   bench-sqlite --one kernel|libumm|libumm-zc delete|wal|delete-steady|wal-steady [STEPS [--trace]]
 *       one run of one world, for perf record / perf stat; --trace: libumm's
 *       traps by kind and the time its handler took (umm_trace)
 */
#define _GNU_SOURCE
#include "config.h"

#include <stdio.h>
#include <stdlib.h>

#ifndef HAVE_SQLITE3
int main(void)
{
    printf("bench-sqlite: skipped, built without libsqlite3 (apt-get install libsqlite3-dev, then configure again)\n");
    return 0;
}
#else

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <sqlite3.h>

#include <umm.h>

#include "bench.h"

#define ROWS 80000            /* initial rows: about 48 MiB with the index */
#define KSPACE 1600000        /* k in [0, KSPACE): about one row per 20 values */
#define MMAP_SIZE (256 << 20) /* larger than the database */
#define GOAL 1.25             /* issue 13 */
#define RESERVE_MIB 24        /* free pages in the second database: more than a run's growth */

/* One step's transactions. */
#define INSERTS 40
#define UPDATES 40 /* each of the rows with k in [x, x+20): about one */
#define DELETES 40 /* the first 40 rows of the index from x */
#define POINTS 400
#define RANGES 10 /* each about 100 rows through the index */

static int reps = 5, steps = 150;
static char dir[256], base_db[300], roomy_db[300];

static uint64_t rng;
static uint64_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static void die(sqlite3 *db, const char *what)
{
    fprintf(stderr, "bench-sqlite: %s: %s\n", what, db ? sqlite3_errmsg(db) : strerror(errno));
    _exit(2);
}

static void exec(sqlite3 *db, const char *sql)
{
    char *msg = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        fprintf(stderr, "bench-sqlite: %s: %s\n", sql, msg ? msg : "?");
        _exit(2);
    }
}

/* ------------------------------------------- SQLite's mmap on libumm */

enum { KERNEL, LIBUMM, LIBUMM_ZC, WORLDS };
static const char *const world_name[WORLDS] = { "kernel", "libumm", "libumm-zc" };
static int zerocopy; /* this child's libumm maps the host's page cache */

/* The mmap entry records how each mapping was made (a count for the
 * report). */
struct umap {
    void *addr;
    size_t len;
    int prot, flags, fd;
    off_t off;
};
static struct umap umaps[64];
static pthread_mutex_t umaps_lock = PTHREAD_MUTEX_INITIALIZER;
static uint64_t n_maps, n_remaps;

static void *shim_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
    void *p = umm_mmap(addr, len, prot, flags | (zerocopy ? UMM_MAP_ZEROCOPY : UMM_MAP_COPY), fd, off);
    if (p == MAP_FAILED)
        return p;
    pthread_mutex_lock(&umaps_lock);
    n_maps++;
    for (size_t i = 0; i < sizeof umaps / sizeof umaps[0]; i++)
        if (!umaps[i].addr) {
            umaps[i] = (struct umap){ p, len, prot, flags, fd, off };
            break;
        }
    pthread_mutex_unlock(&umaps_lock);
    return p;
}

static int shim_munmap(void *addr, size_t len)
{
    int r = umm_munmap(addr, len);
    if (r != 0)
        return r;
    pthread_mutex_lock(&umaps_lock);
    for (size_t i = 0; i < sizeof umaps / sizeof umaps[0]; i++) {
        struct umap *m = &umaps[i];
        char *a = m->addr, *end = a + m->len;
        if (!a || (char *)addr >= end || (char *)addr + len <= a)
            continue;
        if ((char *)addr <= a && (char *)addr + len >= end)
            m->addr = NULL;
        else if ((char *)addr > a && (char *)addr + len >= end)
            m->len = (size_t)((char *)addr - a);
    }
    pthread_mutex_unlock(&umaps_lock);
    return 0;
}

/* SQLite's remaps: umm_mremap, counted.  (SQLite would reach it anyway:
 * libumm stands in front of the C library's mremap.) */
static void *shim_mremap(void *old, size_t old_len, size_t new_len, int flags, ...)
{
    void *p = umm_mremap(old, old_len, new_len, flags);
    if (p != MAP_FAILED)
        n_remaps++;
    return p;
}

static void use_libumm(int zc)
{
    zerocopy = zc;
    sqlite3_vfs *vfs = sqlite3_vfs_find(NULL);
    if (!vfs || vfs->iVersion < 3 || !vfs->xSetSystemCall ||
        vfs->xSetSystemCall(vfs, "mmap", (sqlite3_syscall_ptr)shim_mmap) != SQLITE_OK ||
        vfs->xSetSystemCall(vfs, "munmap", (sqlite3_syscall_ptr)shim_munmap) != SQLITE_OK ||
        vfs->xSetSystemCall(vfs, "mremap", (sqlite3_syscall_ptr)shim_mremap) != SQLITE_OK) {
        fprintf(stderr, "bench-sqlite: cannot point SQLite's unix VFS at libumm\n");
        _exit(2);
    }
    /* Start libumm before the clock does (its RAM, its daemon): the
     * kernel's page cache is warm too. */
    void *p = umm_mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        perror("bench-sqlite: umm_mmap");
        _exit(2);
    }
    umm_munmap(p, 4096);
}

/* ------------------------------------------------------- the database */

static char vbuf[512];
static unsigned char bbuf[1024];

/* A row's text (50..249 letters) and blob (100..699 bytes). */
static void row_data(int *vlen, int *blen)
{
    *vlen = 50 + (int)(rnd() % 200);
    *blen = 100 + (int)(rnd() % 600);
    for (int i = 0; i < *vlen; i++)
        vbuf[i] = (char)('a' + rnd() % 26);
    for (int i = 0; i < *blen; i += 8) {
        uint64_t x = rnd();
        memcpy(bbuf + i, &x, 8);
    }
}

static void build(const char *path, int reserve_mib)
{
    sqlite3 *db;
    unlink(path);
    if (sqlite3_open(path, &db) != SQLITE_OK)
        die(db, "open");
    exec(db, "PRAGMA journal_mode = DELETE; PRAGMA synchronous = OFF; "
             "CREATE TABLE t(id INTEGER PRIMARY KEY, k INTEGER, v TEXT, b BLOB); BEGIN;");
    sqlite3_stmt *ins;
    if (sqlite3_prepare_v2(db, "INSERT INTO t(id, k, v, b) VALUES (?1, ?2, ?3, ?4)", -1, &ins, NULL) != SQLITE_OK)
        die(db, "prepare");
    rng = 0x9e3779b97f4a7c15ull;
    for (int id = 1; id <= ROWS; id++) {
        int vl, bl;
        row_data(&vl, &bl);
        sqlite3_bind_int64(ins, 1, id);
        sqlite3_bind_int64(ins, 2, (int64_t)(rnd() % KSPACE));
        sqlite3_bind_text(ins, 3, vbuf, vl, SQLITE_STATIC);
        sqlite3_bind_blob(ins, 4, bbuf, bl, SQLITE_STATIC);
        if (sqlite3_step(ins) != SQLITE_DONE)
            die(db, "insert");
        sqlite3_reset(ins);
    }
    sqlite3_finalize(ins);
    exec(db, "COMMIT; CREATE INDEX t_k ON t(k);");
    if (reserve_mib) {
        /* Free pages at the end of the file, which the run's inserts take
         * instead of growing the file. */
        char sql[200];
        snprintf(sql, sizeof sql,
                 "CREATE TABLE f(x BLOB); WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < %d) "
                 "INSERT INTO f SELECT zeroblob(4000) FROM n; DROP TABLE f;",
                 reserve_mib * 256);
        exec(db, sql);
    }
    sqlite3_close(db);
}

static void copy_file(const char *from, const char *to)
{
    static char buf[1 << 20];
    int in = open(from, O_RDONLY), out = open(to, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (in < 0 || out < 0)
        die(NULL, to);
    ssize_t n;
    while ((n = read(in, buf, sizeof buf)) > 0)
        if (write(out, buf, (size_t)n) != n)
            die(NULL, to);
    close(in);
    close(out);
}

/* ------------------------------------------------------------ one run */

struct result {
    double seconds, user, sys;
    long minflt, nvcsw, nivcsw;
    uint64_t faults, pages_read, pages_written, maps, remaps;
    int64_t mmap_size; /* as SQLite took it: 0 would mean no mapping at all */
    uint64_t digest;   /* what the selects saw, and the table at the end */
    uint64_t db_bytes;
    /* --one --trace: libumm's traps by kind (enum umm_trace_kind) */
    uint64_t tr_n[8], tr_pages[8], tr_nsec[8], tr_write[8];
};

static int tracing; /* --one ... --trace */

static void drain(struct result *r)
{
    static struct umm_trace_event ev[4096];
    size_t n;
    while ((n = umm_trace_read(ev, 4096)) > 0)
        for (size_t i = 0; i < n; i++) {
            int k = ev[i].kind & 7;
            r->tr_n[k]++;
            r->tr_pages[k] += ev[i].pages;
            r->tr_nsec[k] += ev[i].nsec;
            r->tr_write[k] += ev[i].write != 0;
        }
}

enum { S_INS, S_UPD, S_DEL, S_POINT, S_RANGE, S_MAX };
static const char *const stmt_sql[S_MAX] = {
    "INSERT INTO t(id, k, v, b) VALUES (?1, ?2, ?3, ?4)",
    "UPDATE t SET v = ?2, b = ?3 WHERE k >= ?1 AND k < ?1 + 20",
    "DELETE FROM t WHERE id IN (SELECT id FROM t WHERE k >= ?1 ORDER BY k LIMIT 40)",
    "SELECT k, length(v), length(b), substr(b, 1, 8) FROM t WHERE id = ?1",
    "SELECT count(*), sum(length(v)), sum(length(b)) FROM t WHERE k BETWEEN ?1 AND ?1 + 2000",
};

static uint64_t mix(uint64_t h, uint64_t x)
{
    return (h ^ x) * 0x100000001b3ull;
}

static void run_one(int world, int wal, struct result *r)
{
    char path[320], sql[256];
    int libumm = world != KERNEL;
    snprintf(path, sizeof path, "%s/run.db", dir);
    if (libumm)
        use_libumm(world == LIBUMM_ZC);

    struct rusage ru0, ru1;
    struct umm_stats s0 = { 0 }, s1 = { 0 };
    getrusage(RUSAGE_SELF, &ru0);
    if (libumm)
        umm_stats(&s0);
    if (libumm && tracing)
        umm_trace(1);
    double t0 = now();

    sqlite3 *db;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK)
        die(db, "open");
    snprintf(sql, sizeof sql, "PRAGMA mmap_size = %d; PRAGMA journal_mode = %s; PRAGMA synchronous = OFF;",
             MMAP_SIZE, wal ? "WAL" : "DELETE");
    exec(db, sql);
    sqlite3_stmt *st[S_MAX], *q;
    for (int i = 0; i < S_MAX; i++)
        if (sqlite3_prepare_v2(db, stmt_sql[i], -1, &st[i], NULL) != SQLITE_OK)
            die(db, stmt_sql[i]);
    if (sqlite3_prepare_v2(db, "PRAGMA mmap_size", -1, &q, NULL) != SQLITE_OK || sqlite3_step(q) != SQLITE_ROW)
        die(db, "PRAGMA mmap_size");
    r->mmap_size = sqlite3_column_int64(q, 0);
    sqlite3_finalize(q);

    uint64_t h = 0xcbf29ce484222325ull;
    int64_t next_id = ROWS + 1;
    rng = 0x2545f4914f6cdd1dull;
    for (int step = 0; step < steps; step++) {
        exec(db, "BEGIN");
        for (int i = 0; i < INSERTS; i++) {
            int vl, bl;
            row_data(&vl, &bl);
            sqlite3_bind_int64(st[S_INS], 1, next_id++);
            sqlite3_bind_int64(st[S_INS], 2, (int64_t)(rnd() % KSPACE));
            sqlite3_bind_text(st[S_INS], 3, vbuf, vl, SQLITE_STATIC);
            sqlite3_bind_blob(st[S_INS], 4, bbuf, bl, SQLITE_STATIC);
            if (sqlite3_step(st[S_INS]) != SQLITE_DONE)
                die(db, "insert");
            sqlite3_reset(st[S_INS]);
        }
        for (int i = 0; i < UPDATES; i++) {
            int vl, bl;
            row_data(&vl, &bl);
            sqlite3_bind_int64(st[S_UPD], 1, (int64_t)(rnd() % KSPACE));
            sqlite3_bind_text(st[S_UPD], 2, vbuf, vl, SQLITE_STATIC);
            sqlite3_bind_blob(st[S_UPD], 3, bbuf, bl, SQLITE_STATIC);
            if (sqlite3_step(st[S_UPD]) != SQLITE_DONE)
                die(db, "update");
            sqlite3_reset(st[S_UPD]);
            h = mix(h, (uint64_t)sqlite3_changes(db));
        }
        sqlite3_bind_int64(st[S_DEL], 1, (int64_t)(rnd() % KSPACE));
        if (sqlite3_step(st[S_DEL]) != SQLITE_DONE)
            die(db, "delete");
        sqlite3_reset(st[S_DEL]);
        h = mix(h, (uint64_t)sqlite3_changes(db));
        exec(db, "COMMIT");

        exec(db, "BEGIN");
        for (int i = 0; i < POINTS; i++) {
            sqlite3_bind_int64(st[S_POINT], 1, 1 + (int64_t)(rnd() % (uint64_t)(next_id - 1)));
            if (sqlite3_step(st[S_POINT]) == SQLITE_ROW) {
                h = mix(h, (uint64_t)sqlite3_column_int64(st[S_POINT], 0));
                h = mix(h, (uint64_t)sqlite3_column_int64(st[S_POINT], 1));
                h = mix(h, (uint64_t)sqlite3_column_int64(st[S_POINT], 2));
                const unsigned char *b = sqlite3_column_blob(st[S_POINT], 3);
                for (int j = 0; b && j < sqlite3_column_bytes(st[S_POINT], 3); j++)
                    h = mix(h, b[j]);
            }
            sqlite3_reset(st[S_POINT]);
        }
        for (int i = 0; i < RANGES; i++) {
            sqlite3_bind_int64(st[S_RANGE], 1, (int64_t)(rnd() % KSPACE));
            if (sqlite3_step(st[S_RANGE]) != SQLITE_ROW)
                die(db, "range");
            for (int c = 0; c < 3; c++)
                h = mix(h, (uint64_t)sqlite3_column_int64(st[S_RANGE], c));
            sqlite3_reset(st[S_RANGE]);
        }
        exec(db, "COMMIT");
        if (libumm && tracing)
            drain(r);
    }

    double t1 = now();
    getrusage(RUSAGE_SELF, &ru1);
    if (libumm)
        umm_stats(&s1);

    if (sqlite3_prepare_v2(db, "SELECT count(*), sum(k), total(length(v)), total(length(b)) FROM t", -1, &q, NULL) !=
            SQLITE_OK ||
        sqlite3_step(q) != SQLITE_ROW)
        die(db, "digest");
    for (int c = 0; c < 4; c++)
        h = mix(h, (uint64_t)sqlite3_column_int64(q, c));
    sqlite3_finalize(q);
    for (int i = 0; i < S_MAX; i++)
        sqlite3_finalize(st[i]);
    if (sqlite3_close(db) != SQLITE_OK)
        die(db, "close");

    struct stat sb;
    r->db_bytes = stat(path, &sb) == 0 ? (uint64_t)sb.st_size : 0;
    r->digest = h;
    r->seconds = t1 - t0;
#define TV(tv) ((tv).tv_sec + (tv).tv_usec * 1e-6)
    r->user = TV(ru1.ru_utime) - TV(ru0.ru_utime);
    r->sys = TV(ru1.ru_stime) - TV(ru0.ru_stime);
    r->minflt = ru1.ru_minflt - ru0.ru_minflt;
    r->nvcsw = ru1.ru_nvcsw - ru0.ru_nvcsw;
    r->nivcsw = ru1.ru_nivcsw - ru0.ru_nivcsw;
    r->faults = s1.faults - s0.faults;
    r->pages_read = s1.pages_read - s0.pages_read;
    r->pages_written = s1.pages_written - s0.pages_written;
    r->maps = n_maps;
    r->remaps = n_remaps;
}

/* A fresh copy of the database, then one run in a child process. */
static void run(int world, int wal, int roomy, struct result *r)
{
    char path[320];
    const char *sfx[] = { "", "-journal", "-wal", "-shm" };
    for (int i = 0; i < 4; i++) {
        snprintf(path, sizeof path, "%s/run.db%s", dir, sfx[i]);
        unlink(path);
    }
    snprintf(path, sizeof path, "%s/run.db", dir);
    copy_file(roomy ? roomy_db : base_db, path);

    struct result *shared = mmap(NULL, sizeof *shared, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (shared == MAP_FAILED)
        die(NULL, "mmap");
    memset(shared, 0, sizeof *shared);
    pid_t pid = fork();
    if (pid < 0)
        die(NULL, "fork");
    if (pid == 0) {
        run_one(world, wal, shared);
        _exit(0);
    }
    int status;
    if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "bench-sqlite: the %s run failed (status 0x%x)\n", world_name[world], status);
        exit(1);
    }
    *r = *shared;
    munmap(shared, sizeof *shared);
    if (r->mmap_size < (int64_t)r->db_bytes) {
        fprintf(stderr, "bench-sqlite: SQLite took mmap_size %lld, less than the database: no mapping to measure\n",
                (long long)r->mmap_size);
        exit(1);
    }
}

#define MEDIAN(res, field)                                   \
    ({                                                       \
        double v_[64];                                       \
        for (int i_ = 0; i_ < reps; i_++)                    \
            v_[i_] = (double)(res)[i_].field;                \
        qsort(v_, (size_t)reps, sizeof v_[0], cmp);          \
        v_[reps / 2];                                        \
    })

static int mode(int wal, int roomy)
{
    static struct result res[WORLDS][64];
    for (int i = 0; i < reps; i++)
        /* Rotate which world goes first, so that none always runs right
         * after the copy of the database. */
        for (int j = 0; j < WORLDS; j++) {
            int w = (i + j) % WORLDS;
            run(w, wal, roomy, &res[w][i]);
        }
    /* What every run of every world saw, against the kernel's first run. */
    int same[WORLDS], all = 1;
    for (int w = 0; w < WORLDS; w++) {
        same[w] = 1;
        for (int i = 0; i < reps; i++)
            same[w] &= res[w][i].digest == res[KERNEL][0].digest;
        all &= same[w];
    }

    printf(" journal_mode=%s, synchronous=OFF, %s (%d steps, database %.1f MiB at the end)\n", wal ? "WAL" : "DELETE",
           roomy ? "free pages reserved: the file does not grow" : "the file grows", steps,
           res[KERNEL][0].db_bytes / 1048576.0);
    for (int w = 0; w < WORLDS; w++)
        printf("  %-9s %7.3f s   user %6.3f s  sys %6.3f s  host minor faults %7.0f  ctx switches %5.0f+%.0f\n",
               world_name[w], MEDIAN(res[w], seconds), MEDIAN(res[w], user), MEDIAN(res[w], sys),
               MEDIAN(res[w], minflt), MEDIAN(res[w], nvcsw), MEDIAN(res[w], nivcsw));
    /* Zero-copy reads nothing itself: its pages "read" (the same counter)
     * are the pages it mapped from the host's page cache. */
    for (int w = LIBUMM; w < WORLDS; w++)
        printf("  %-9s per run: %.0f faults, %.0f pages %s, %.0f pages written back, %.0f maps (%.0f remaps)\n",
               world_name[w], MEDIAN(res[w], faults), MEDIAN(res[w], pages_read), w == LIBUMM_ZC ? "mapped" : "read",
               MEDIAN(res[w], pages_written), MEDIAN(res[w], maps), MEDIAN(res[w], remaps));
    double ks = MEDIAN(res[KERNEL], seconds);
    for (int w = LIBUMM; w < WORLDS; w++) {
        double ratio = MEDIAN(res[w], seconds) / ks;
        char name[32];
        snprintf(name, sizeof name, "%s/kernel", world_name[w]);
        printf("  ratio %-16s %.2fx   goal (issue 13) <= %.2fx: %-7s   results %s\n", name, ratio, GOAL,
               ratio <= GOAL ? "MET" : "NOT MET",
               same[KERNEL] && same[w] ? "the same as the kernel's in every run" : "DIFFER between runs");
    }
    fflush(stdout);
    return all;
}

static void make_dir(void)
{
    const char *t = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/bench-sqlite-XXXXXX", t && *t ? t : "/tmp");
    if (!mkdtemp(dir))
        die(NULL, dir);
    snprintf(base_db, sizeof base_db, "%s/base.db", dir);
    snprintf(roomy_db, sizeof roomy_db, "%s/roomy.db", dir);
}

static void remove_dir(void)
{
    char path[320];
    const char *names[] = { "base.db", "roomy.db", "run.db", "run.db-journal", "run.db-wal", "run.db-shm" };
    for (int i = 0; i < 6; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        unlink(path);
    }
    rmdir(dir);
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc >= 4 && strcmp(argv[1], "--one") == 0) {
        int world = KERNEL, wal = strncmp(argv[3], "wal", 3) == 0;
        while (world < WORLDS && strcmp(argv[2], world_name[world]) != 0)
            world++;
        if (world == WORLDS) {
            fprintf(stderr, "bench-sqlite: --one kernel|libumm|libumm-zc, not %s\n", argv[2]);
            return 2;
        }
        if (argc >= 5)
            steps = atoi(argv[4]);
        tracing = argc >= 6 && strcmp(argv[5], "--trace") == 0;
        int roomy = strstr(argv[3], "steady") != NULL;
        reps = 1;
        make_dir();
        build(roomy ? roomy_db : base_db, roomy ? RESERVE_MIB : 0);
        struct result r;
        run(world, wal, roomy, &r);
        printf("bench-sqlite --one %s %s: %.3f s (user %.3f, sys %.3f), database %.1f MiB at the end, %llu libumm "
               "faults, %llu pages %s, %llu written back, %llu remaps\n",
               world_name[world], argv[3], r.seconds, r.user, r.sys, r.db_bytes / 1048576.0,
               (unsigned long long)r.faults, (unsigned long long)r.pages_read, world == LIBUMM_ZC ? "mapped" : "read",
               (unsigned long long)r.pages_written,
               (unsigned long long)r.remaps);
        static const char *const kind[] = { "fill", "cached", "zero", "cow", "dirty", "sigbus", "spurious", "?" };
        for (int k = 0; k < 8; k++)
            if (r.tr_n[k])
                printf("  traps %-8s %8llu (%llu writes), %8llu pages, %.3f s in the handler, %.1f us each\n", kind[k],
                       (unsigned long long)r.tr_n[k], (unsigned long long)r.tr_write[k],
                       (unsigned long long)r.tr_pages[k], r.tr_nsec[k] * 1e-9, r.tr_nsec[k] * 1e-3 / r.tr_n[k]);
        remove_dir();
        return 0;
    }
    if (argc >= 2)
        reps = atoi(argv[1]);
    if (argc >= 3)
        steps = atoi(argv[2]);
    if (reps < 1 || reps > 64 || steps < 1) {
        fprintf(stderr, "usage: bench-sqlite [REPS (1-64) [STEPS]] | --one kernel|libumm|libumm-zc delete|wal[-steady] [STEPS [--trace]]\n");
        return 2;
    }
    make_dir();
    build(base_db, 0);
    build(roomy_db, RESERVE_MIB);
    struct stat sb;
    stat(base_db, &sb);
    printf("bench-sqlite: SQLite %s on a %.1f MiB database (%d rows), mmap_size %d MiB, "
           "kernel, libumm and libumm-zc (zero-copy) alternating, median of %d runs each\n",
           sqlite3_libversion(), sb.st_size / 1048576.0, ROWS, MMAP_SIZE >> 20, reps);
    printf(" step: %d inserts, %d updates and a delete of %d rows through the index, one transaction; "
           "%d point and %d range selects, another\n",
           INSERTS, UPDATES, DELETES, POINTS, RANGES);
    int ok = mode(0, 0);
    ok &= mode(1, 0);
    ok &= mode(0, 1);
    ok &= mode(1, 1);
    remove_dir();
    return ok ? 0 : 1;
}
#endif
