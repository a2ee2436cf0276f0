/* Promise (a real client): SQLite, reading its database through a libumm
 * mapping, keeps every commit -- its own, another connection's, another
 * process's -- and ends with the same rows as on the kernel's mmap.
 *
 * SQLite (Debian's libsqlite3) reads pages through a MAP_SHARED PROT_READ
 * mapping of the database when PRAGMA mmap_size allows it, and writes them
 * with pwrite() (never through the mapping).  Its unix VFS takes its system
 * calls from a table a program may change (xSetSystemCall, os_unix.c's
 * aSyscall[]): "mmap" (the signature of mmap(2)) and "munmap" go to
 * umm_mmap and umm_munmap here.  The "mremap" entry, which SQLite uses to
 * grow its mapping as the file grows (Debian's build has HAVE_MREMAP), is
 * left alone: it is the C library's mremap, which libumm stands in front
 * of, so a remap of libumm's mapping reaches umm_mremap.  This program's
 * own mremap (below), in front of both, counts the remaps and checks that
 * each new mapping is libumm's (the kernel's mremap on libumm memory would
 * move the host's mapping behind libumm's back).  In WAL
 * mode the same two entries also map the -shm file (the WAL index), so
 * that goes through libumm too.
 *
 * The workload, the same in both journal modes (DELETE: a rollback
 * journal; WAL), deterministic (a seeded xorshift): a table t(id, k, c, v,
 * b) with an index on (k, c); each step connection A commits inserts (text
 * and blobs of all sizes, some spilling to overflow pages), updates of
 * random rows, deletes and updates of a k-range through the index.  Every
 * few steps connection B (same process) checks that it sees A's commits and
 * commits its own, which A then checks; a process forked before anything
 * was opened keeps its own connection and does the same on command; once a
 * child forked while A and B are open (and idle: they hold no lock) opens a
 * connection, checks, commits and leaves.  The database grows to several
 * MiB, so SQLite remaps it many times.  PRAGMA cache_size is small, so
 * pages are read again (through the mapping) all the time.
 *
 * What a connection sees is checked against a model of the table kept in
 * ordinary shared memory (each writer updates it), not against SQLite:
 * rows, sum of c, sum of the blobs' lengths, max(id), and the same through
 * the index alone; every so often every row is read and checked (c is a
 * hash of v and b, so a torn or stale row shows by itself).  At the end:
 * PRAGMA integrity_check, every row through the mapping, and the database
 * reopened with mmap_size=0 (pread only): integrity_check and every row,
 * compared row by row with the same workload run on the kernel's mmap (the
 * kernel's run uses SQLite's default system calls and proves the test
 * right).  Each run is a child process, so that a crash is one failed
 * point, not a lost test; the runs' observations come back through shared
 * memory.
 *
 * libumm has a page cache of its own.  Unless libumm stands in front of
 * the program's file I/O (src/fileio.c on main; not with UMM_FILEIO=0),
 * SQLite's pwrite() does not reach pages already resident in the mapping:
 * a connection reads stale pages (and takes a stale file change counter
 * for "nothing changed"), builds on them, and corrupts the database.  Then
 * every point that checks what a connection sees fails, and so do the
 * integrity checks and the comparisons with the kernel. */
#define _GNU_SOURCE
#include "config.h"
#include "tap.h"
#include "util.h"

#ifndef HAVE_SQLITE3
int main(void)
{
    tap_skip_all("built without libsqlite3 (configure found no sqlite3.pc: apt-get install libsqlite3-dev, "
                 "or run ./bootstrap, then configure again)");
}
#else

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <sqlite3.h>
#ifdef HAVE_VALGRIND_VALGRIND_H
#include <valgrind/valgrind.h>
#endif

#define MAXID 20000
#define MMAP_SIZE (256 << 20) /* far larger than the database: every read is through the mapping */
#define CACHE_PAGES 16        /* PRAGMA cache_size: small, so pages are read again and again */
#define KSPACE 1000000        /* k is in [0, KSPACE) */

static int steps = 90; /* --steps N */

/* ------------------------------------------------------------ the model */

struct mrow {
    int64_t k;
    int32_t c;   /* hash of v and b, 31 bits */
    int32_t vlen, blen;
    uint32_t seed; /* v and b follow from it */
    uint8_t present;
};

struct model {
    int64_t next_id;
    struct mrow r[MAXID];
};

/* What a run observed: one tally per kind of check. */
enum {
    T_A_OWN,       /* A after its own commit */
    T_B_SEES_A,    /* B before it writes */
    T_A_SEES_B,    /* A after B's commit */
    T_P_SEES,      /* the process forked at the start, before it writes */
    T_SEES_P,      /* A after that process's commit */
    T_C_SEES,      /* the child forked with A and B open, before it writes */
    T_SEES_C,      /* A after that child's commit */
    T_ROWS,        /* every row read and checked */
    T_MAX
};
static const char *const tally_text[T_MAX] = {
    "connection A sees its own commits",
    "connection B (same process) sees A's commits",
    "A sees B's commits",
    "a process forked before anything was opened sees the first's commits",
    "the first process sees that process's commits",
    "a child forked with A and B open sees the parent's commits",
    "the parent sees that child's commits",
    "every row, read in full, is whole and as the model says",
};

struct tally {
    int checks, bad;
    char first[240];
};

struct rowsum {
    int64_t id;
    uint64_t h;
};

struct result {
    int step;         /* progress: the step being run */
    int done;         /* the run reached its end */
    int nerr;         /* SQLite errors */
    char err[320];    /* the first */
    struct tally t[T_MAX];
    char integrity[240];
    int mapped;       /* the database showed in /proc/self/maps (kernel run) */
    uint64_t maps, remaps, unmaps, faults, pages_read;
    uint64_t remap_foreign; /* a remap whose new mapping is not libumm's */
    uint64_t map_failed; /* a failed map or remap: SQLite would go on with pread alone */
    int leaks;        /* libumm: mappings, resident pages or files left after the end */
    char leak_msg[160];
    double seconds;
    int nrows;
    struct rowsum rows[MAXID];
};

static struct model *model;   /* shared between the processes of a run */
static struct result *res;    /* the run's observations, shared with the test */

/* --------------------------------------------------------------- helpers */

static uint64_t hash64(uint64_t h, const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 0x100000001b3ull;
    return h;
}

static uint64_t rng_state;
static uint64_t rnd(void)
{
    return xorshift64(&rng_state);
}

/* v and b of a row, from its seed: text of 20..600 letters, a blob mostly
 * small, a quarter of them up to 3000 bytes, one in twenty 4000..12000
 * (overflow pages). */
static void row_data(uint32_t seed, char *v, int *vlen, unsigned char *b, int *blen)
{
    uint64_t s = seed * 0x9e3779b97f4a7c15ull + 1;
    *vlen = 20 + (int)(xorshift64(&s) % 581);
    uint64_t kind = xorshift64(&s) % 20;
    *blen = kind == 0 ? 4000 + (int)(xorshift64(&s) % 8001)
          : kind < 6  ? 800 + (int)(xorshift64(&s) % 2201)
                      : (int)(xorshift64(&s) % 800);
    for (int i = 0; i < *vlen; i++)
        v[i] = (char)('a' + xorshift64(&s) % 26);
    for (int i = 0; i < *blen; i += 8) {
        uint64_t x = xorshift64(&s);
        memcpy(b + i, &x, *blen - i < 8 ? (size_t)(*blen - i) : 8);
    }
}

static int32_t content_hash(const void *v, int vlen, const void *b, int blen)
{
    uint64_t h = hash64(0xcbf29ce484222325ull, v, (size_t)vlen);
    h = hash64(h ^ 0x5bd1e995u, b, (size_t)blen);
    return (int32_t)(h & 0x7fffffff);
}

static uint64_t row_hash(int64_t id, int64_t k, int64_t c, const void *v, int vlen, const void *b, int blen)
{
    uint64_t h = hash64(0xcbf29ce484222325ull, &id, sizeof id);
    h = hash64(h, &k, sizeof k);
    h = hash64(h, &c, sizeof c);
    h = hash64(h, v, (size_t)vlen);
    return hash64(h ^ 1, b, (size_t)blen);
}

static void note(struct tally *t, int good, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void note(struct tally *t, int good, const char *fmt, ...)
{
    t->checks++;
    if (good)
        return;
    if (t->bad++ == 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(t->first, sizeof t->first, fmt, ap);
        va_end(ap);
    }
}

static void sql_error(sqlite3 *db, const char *what)
{
    if (res->nerr++ == 0)
        snprintf(res->err, sizeof res->err, "step %d: %s: %s (%d)", res->step, what,
                 db ? sqlite3_errmsg(db) : "?", db ? sqlite3_extended_errcode(db) : 0);
}

static int exec(sqlite3 *db, const char *sql)
{
    char *msg = NULL;
    int rc = sqlite3_exec(db, sql, NULL, NULL, &msg);
    if (rc != SQLITE_OK) {
        if (res->nerr++ == 0)
            snprintf(res->err, sizeof res->err, "step %d: %s: %s (%d)", res->step, sql, msg ? msg : "?", rc);
    }
    sqlite3_free(msg);
    return rc;
}

/* ---------------------------------------------- SQLite's mmap on libumm */

/* The stand-in for mremap needs the descriptor, protection and flags each
 * mapping was made with: the mmap entry records them. */
struct umap {
    void *addr;
    size_t len;
    int prot, flags, fd;
    off_t off;
};
static struct umap umaps[64];
static pthread_mutex_t umaps_lock = PTHREAD_MUTEX_INITIALIZER;

static void *shim_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
    void *p = umm_mmap(addr, len, prot, flags, fd, off);
    if (p == MAP_FAILED) {
        res->map_failed++;
        return p;
    }
    pthread_mutex_lock(&umaps_lock);
    res->maps++;
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
    res->unmaps++;
    for (size_t i = 0; i < sizeof umaps / sizeof umaps[0]; i++) {
        struct umap *m = &umaps[i];
        char *a = m->addr, *end = a + m->len;
        if (!a || (char *)addr >= end || (char *)addr + len <= a)
            continue;
        if ((char *)addr <= a && (char *)addr + len >= end)
            m->addr = NULL;                     /* all of it */
        else if ((char *)addr > a && (char *)addr + len >= end)
            m->len = (size_t)((char *)addr - a); /* its tail */
    }
    pthread_mutex_unlock(&umaps_lock);
    return 0;
}

/* The remaps of libumm's run: SQLite's "mremap" entry is the C library's
 * mremap, and this definition comes first; the next one must be libumm's,
 * and the mapping it returns libumm's (umm_msync knows only those). */
static int libumm_run;
void *mremap(void *old, size_t old_len, size_t new_len, int flags, ...)
{
    static void *(*next)(void *, size_t, size_t, int, ...);
    void *na = NULL;
    if (flags & MREMAP_FIXED) {
        va_list ap;
        va_start(ap, flags);
        na = va_arg(ap, void *);
        va_end(ap);
    }
    if (!next)
        next = (void *(*)(void *, size_t, size_t, int, ...))dlsym(RTLD_NEXT, "mremap");
    void *p = next(old, old_len, new_len, flags, na);
    if (libumm_run && p == MAP_FAILED)
        res->map_failed++;
    if (libumm_run && p != MAP_FAILED) {
        if (umm_msync(p, new_len, MS_ASYNC) != 0)
            res->remap_foreign++;
        res->remaps++;
    }
    return p;
}

static void use_libumm(void)
{
    sqlite3_vfs *vfs = sqlite3_vfs_find(NULL);
    if (!vfs || vfs->iVersion < 3 || !vfs->xSetSystemCall)
        tap_bail("the default VFS cannot change its system calls");
    if (vfs->xSetSystemCall(vfs, "mmap", (sqlite3_syscall_ptr)shim_mmap) != SQLITE_OK ||
        vfs->xSetSystemCall(vfs, "munmap", (sqlite3_syscall_ptr)shim_munmap) != SQLITE_OK)
        tap_bail("xSetSystemCall(mmap, munmap) failed: not a unix VFS with mmap?");
    libumm_run = 1;
}

/* ----------------------------------------------------------- connections */

enum { S_INS, S_UPD, S_DEL_RANGE, S_MOVE_RANGE, S_DIGEST, S_IDIGEST, S_ROWS, S_MAX };
static const char *const stmt_sql[S_MAX] = {
    "INSERT INTO t(id, k, c, v, b) VALUES (?1, ?2, ?3, ?4, ?5)",
    "UPDATE t SET k = ?2, c = ?3, v = ?4, b = ?5 WHERE id = ?1",
    "DELETE FROM t WHERE k BETWEEN ?1 AND ?2",
    "UPDATE t SET k = k + 1 WHERE k BETWEEN ?1 AND ?2",
    "SELECT count(*), sum(c), sum(length(b)), max(id) FROM t",
    "SELECT count(*), sum(c) FROM t INDEXED BY t_k WHERE k >= 0",
    "SELECT id, k, c, v, b FROM t ORDER BY id",
};

struct conn {
    const char *name;
    sqlite3 *db;
    sqlite3_stmt *st[S_MAX];
};

static const char *journal_mode; /* "delete" or "wal" */

static int conn_open(struct conn *cn, const char *name, const char *path, int64_t mmap_size)
{
    memset(cn, 0, sizeof *cn);
    cn->name = name;
    if (sqlite3_open_v2(path, &cn->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) != SQLITE_OK) {
        sql_error(cn->db, "open");
        return -1;
    }
    sqlite3_busy_timeout(cn->db, 10000);
    /* synchronous: NORMAL in WAL mode (fsync at checkpoints); OFF with the
     * rollback journal, whose three fsyncs a commit (the journal is created
     * and deleted each time: about 10 ms here) would make the run five
     * times longer and change nothing this test looks at -- the page
     * caches, not the disk. */
    char sql[256];
    snprintf(sql, sizeof sql, "PRAGMA mmap_size = %lld; PRAGMA cache_size = %d; PRAGMA synchronous = %s;",
             (long long)mmap_size, CACHE_PAGES, strcmp(journal_mode, "wal") == 0 ? "NORMAL" : "OFF");
    if (exec(cn->db, sql) != SQLITE_OK)
        return -1;
    return 0;
}

static int conn_prepare(struct conn *cn)
{
    for (int i = 0; i < S_MAX; i++)
        if (sqlite3_prepare_v2(cn->db, stmt_sql[i], -1, &cn->st[i], NULL) != SQLITE_OK) {
            sql_error(cn->db, stmt_sql[i]);
            return -1;
        }
    return 0;
}

static void conn_close(struct conn *cn)
{
    for (int i = 0; i < S_MAX; i++)
        sqlite3_finalize(cn->st[i]);
    if (cn->db && sqlite3_close(cn->db) != SQLITE_OK)
        sql_error(cn->db, "close");
    cn->db = NULL;
}

static int step_done(struct conn *cn, sqlite3_stmt *st, const char *what)
{
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    if (rc != SQLITE_DONE) {
        sql_error(cn->db, what);
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------------- writing */

static char vbuf[1024];
static unsigned char bbuf[16384];

static int write_row(struct conn *cn, int64_t id, int update)
{
    struct mrow *m = &model->r[id];
    uint32_t seed = (uint32_t)rnd();
    int vlen, blen;
    row_data(seed, vbuf, &vlen, bbuf, &blen);
    int64_t k = (int64_t)(rnd() % KSPACE);
    int32_t c = content_hash(vbuf, vlen, bbuf, blen);
    sqlite3_stmt *st = cn->st[update ? S_UPD : S_INS];
    sqlite3_bind_int64(st, 1, id);
    sqlite3_bind_int64(st, 2, k);
    sqlite3_bind_int64(st, 3, c);
    sqlite3_bind_text(st, 4, vbuf, vlen, SQLITE_STATIC);
    sqlite3_bind_blob(st, 5, bbuf, blen, SQLITE_STATIC);
    if (step_done(cn, st, update ? "update" : "insert") != 0)
        return -1;
    *m = (struct mrow){ k, c, vlen, blen, seed, 1 };
    return 0;
}

/* A present row chosen at random (the model's choice, so the same in every
 * run), or 0 when there is none. */
static int64_t pick_row(void)
{
    if (model->next_id <= 1)
        return 0;
    int64_t start = 1 + (int64_t)(rnd() % (uint64_t)(model->next_id - 1));
    for (int64_t i = 0; i < model->next_id - 1; i++) {
        int64_t id = 1 + (start - 1 + i) % (model->next_id - 1);
        if (model->r[id].present)
            return id;
    }
    return 0;
}

/* One transaction: ins inserts, upd updates, and (when ranges) a range
 * deleted and a range moved through the index. */
static int transaction(struct conn *cn, int ins, int upd, int ranges)
{
    if (exec(cn->db, "BEGIN IMMEDIATE") != SQLITE_OK)
        return -1;
    for (int i = 0; i < ins; i++) {
        if (model->next_id >= MAXID)
            break;
        if (write_row(cn, model->next_id, 0) != 0)
            goto fail;
        model->next_id++;
    }
    for (int i = 0; i < upd; i++) {
        int64_t id = pick_row();
        if (id && write_row(cn, id, 1) != 0)
            goto fail;
    }
    if (ranges) {
        int64_t lo = (int64_t)(rnd() % KSPACE), hi = lo + 2500;
        sqlite3_bind_int64(cn->st[S_DEL_RANGE], 1, lo);
        sqlite3_bind_int64(cn->st[S_DEL_RANGE], 2, hi);
        if (step_done(cn, cn->st[S_DEL_RANGE], "delete range") != 0)
            goto fail;
        for (int64_t id = 1; id < model->next_id; id++)
            if (model->r[id].present && model->r[id].k >= lo && model->r[id].k <= hi)
                model->r[id].present = 0;
        lo = (int64_t)(rnd() % KSPACE), hi = lo + 4000;
        sqlite3_bind_int64(cn->st[S_MOVE_RANGE], 1, lo);
        sqlite3_bind_int64(cn->st[S_MOVE_RANGE], 2, hi);
        if (step_done(cn, cn->st[S_MOVE_RANGE], "update range") != 0)
            goto fail;
        for (int64_t id = 1; id < model->next_id; id++)
            if (model->r[id].present && model->r[id].k >= lo && model->r[id].k <= hi)
                model->r[id].k++;
    }
    if (exec(cn->db, "COMMIT") != SQLITE_OK)
        goto fail;
    return 0;
fail:
    /* The model took what was done; a failed run is reported anyway. */
    sqlite3_exec(cn->db, "ROLLBACK", NULL, NULL, NULL);
    return -1;
}

/* ------------------------------------------------------------- checking */

/* Does cn see the model?  The table's count, sum(c), sum(length(b)),
 * max(id), and count and sum(c) through the index alone. */
static void check_sees(struct conn *cn, struct tally *t, const char *who)
{
    int64_t n = 0, sumc = 0, sumb = 0, maxid = 0;
    for (int64_t id = 1; id < model->next_id; id++)
        if (model->r[id].present) {
            n++;
            sumc += model->r[id].c;
            sumb += model->r[id].blen;
            maxid = id;
        }
    int64_t got[4] = { -1, -1, -1, -1 }, igot[2] = { -1, -1 };
    sqlite3_stmt *st = cn->st[S_DIGEST];
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        for (int i = 0; i < 4; i++)
            got[i] = sqlite3_column_int64(st, i);
    else
        sql_error(cn->db, "count rows");
    sqlite3_reset(st);
    st = cn->st[S_IDIGEST];
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        for (int i = 0; i < 2; i++)
            igot[i] = sqlite3_column_int64(st, i);
    else
        sql_error(cn->db, "count through the index");
    sqlite3_reset(st);
    note(t, got[0] == n && got[1] == sumc && got[2] == sumb && got[3] == maxid && igot[0] == n && igot[1] == sumc,
         "step %d: %s sees %lld rows (index: %lld), sum(c) %lld, blobs %lld bytes, max(id) %lld; "
         "committed: %lld rows, sum(c) %lld, blobs %lld bytes, max(id) %lld",
         res->step, who, (long long)got[0], (long long)igot[0], (long long)got[1], (long long)got[2],
         (long long)got[3], (long long)n, (long long)sumc, (long long)sumb, (long long)maxid);
}

/* Read every row; check each against its own c and the model.  With out,
 * keep (id, hash of the row) there.  Returns the rows read. */
static int check_rows(struct conn *cn, struct tally *t, struct rowsum *out)
{
    sqlite3_stmt *st = cn->st[S_ROWS];
    int n = 0, bad = 0, rc;
    int64_t expect = 0, firstbad = 0;
    for (int64_t id = 1; id < model->next_id; id++)
        expect += model->r[id].present;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        int64_t id = sqlite3_column_int64(st, 0), k = sqlite3_column_int64(st, 1), c = sqlite3_column_int64(st, 2);
        const void *v = sqlite3_column_text(st, 3);
        int vlen = sqlite3_column_bytes(st, 3);
        const void *b = sqlite3_column_blob(st, 4);
        int blen = sqlite3_column_bytes(st, 4);
        int good = id > 0 && id < MAXID && content_hash(v, vlen, b, blen) == c && model->r[id].present &&
                   model->r[id].k == k && model->r[id].c == c && model->r[id].vlen == vlen &&
                   model->r[id].blen == blen;
        if (!good && bad++ == 0)
            firstbad = id;
        if (out && n < MAXID)
            out[n] = (struct rowsum){ id, row_hash(id, k, c, v, vlen, b, blen) };
        n++;
    }
    if (rc != SQLITE_DONE)
        sql_error(cn->db, "read every row");
    sqlite3_reset(st);
    note(t, bad == 0 && n == expect, "step %d: %s read %d rows, %lld committed; %d rows wrong (the first: id %lld)",
         res->step, cn->name, n, (long long)expect, bad, (long long)firstbad);
    return n;
}

static void integrity(struct conn *cn, char *out, size_t len)
{
    sqlite3_stmt *st;
    snprintf(out, len, "(no answer)");
    if (sqlite3_prepare_v2(cn->db, "PRAGMA integrity_check", -1, &st, NULL) != SQLITE_OK) {
        snprintf(out, len, "prepare: %s", sqlite3_errmsg(cn->db));
        return;
    }
    size_t at = 0;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW && at + 2 < len) {
        const char *line = (const char *)sqlite3_column_text(st, 0);
        at += (size_t)snprintf(out + at, len - at, "%s%s", at ? "; " : "", line ? line : "(null)");
    }
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        snprintf(out, len, "integrity_check: %s", sqlite3_errmsg(cn->db));
    sqlite3_finalize(st);
    for (char *p = out; *p; p++) /* one line of TAP */
        if (*p == '\n')
            *p = ' ';
}

/* ------------------------------------------------------ other processes */

/* Under memcheck, in the child forked with A and B open, before it leaves:
 * it holds the parent's connections, which SQLite forbids it to touch, so
 * their memory is still allocated at its exit (found only through interior
 * pointers: "possibly lost"), and so is the DTV of libumm's daemon thread
 * (util.h, vg_abrupt_end).  Its leak check counts definite leaks only. */
static void vg_inherited_heap(void)
{
    vg_abrupt_end();
#ifdef HAVE_VALGRIND_VALGRIND_H
    if (RUNNING_ON_VALGRIND) {
        VALGRIND_CLO_CHANGE("--show-leak-kinds=definite");
        VALGRIND_CLO_CHANGE("--errors-for-leak-kinds=definite");
    }
#endif
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static unsigned timeout_s(void)
{
    const char *s = getenv("UMM_TEST_TIMEOUT");
    unsigned t = s ? (unsigned)atoi(s) : 300;
    return t > 20 ? t - 10 : t;
}

/* 0: one byte came within the test's timeout. */
static int hear(int fd, char *b)
{
    struct pollfd p = { fd, POLLIN, 0 };
    return poll(&p, 1, (int)timeout_s() * 1000) == 1 && read(fd, b, 1) == 1 ? 0 : -1;
}

/* The process forked before anything was opened: on 'w' it checks that it
 * sees what is committed and commits a transaction of its own (opening its
 * connection the first time and keeping it); on 'q' it closes and exits. */
static void peer_main(const char *path, int in, int out)
{
    struct conn p;
    int opened = 0;
    char cmd;
    rng_state = 0x5eed0001;
    while (hear(in, &cmd) == 0 && cmd == 'w') {
        if (!opened && (conn_open(&p, "the forked process", path, MMAP_SIZE) != 0 || conn_prepare(&p) != 0))
            break;
        opened = 1;
        check_sees(&p, &res->t[T_P_SEES], "the process forked at the start");
        transaction(&p, 30, 10, 1);
        if (write(out, "k", 1) != 1)
            break;
    }
    if (opened)
        conn_close(&p);
    exit(0);
}

/* ------------------------------------------------------------- one run */

/* The whole workload on the database at path, on the kernel's mmap or on
 * libumm's.  Runs in a child of the test; writes into *res. */
static void run(const char *path, int on_umm)
{
    double t0 = now();
    rng_state = 0x5eed5eedull;
    model->next_id = 1;
    if (on_umm) {
        use_libumm();
        /* Start libumm before the fork, so that both processes are one
         * libumm family with one page cache, as they share the kernel's.
         * (Processes that start libumm apart have a page cache each.) */
        void *p = umm_mmap(NULL, PAGE, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED || umm_munmap(p, PAGE) != 0)
            tap_bail("libumm does not start: %s", strerror(errno));
    }

    int to_peer[2], from_peer[2];
    if (pipe(to_peer) != 0 || pipe(from_peer) != 0)
        tap_bail("pipe: %s", strerror(errno));
    pid_t peer = fork();
    if (peer < 0)
        tap_bail("fork: %s", strerror(errno));
    if (peer == 0) {
        close(to_peer[1]);
        close(from_peer[0]);
        alarm(timeout_s());
        peer_main(path, to_peer[0], from_peer[1]);
    }
    close(to_peer[0]);
    close(from_peer[1]);

    struct conn a, b;
    if (conn_open(&a, "A", path, MMAP_SIZE) != 0)
        goto out;
    char sql[128];
    snprintf(sql, sizeof sql, "PRAGMA journal_mode = %s", journal_mode);
    if (exec(a.db, sql) != SQLITE_OK ||
        exec(a.db, "CREATE TABLE t(id INTEGER PRIMARY KEY, k INTEGER NOT NULL, c INTEGER NOT NULL, v TEXT, b BLOB);"
                   "CREATE INDEX t_k ON t(k, c);") != SQLITE_OK ||
        conn_prepare(&a) != 0 || conn_open(&b, "B", path, MMAP_SIZE) != 0 || conn_prepare(&b) != 0)
        goto out;

    for (res->step = 1; res->step <= steps; res->step++) {
        int s = res->step;
        transaction(&a, 20 + (int)(rnd() % 30), 3 + (int)(rnd() % 10), (int)(rnd() % 2));
        check_sees(&a, &res->t[T_A_OWN], "A");
        if (s % 3 == 0) {
            check_sees(&b, &res->t[T_B_SEES_A], "B");
            transaction(&b, 10, 5, s % 2);
            check_sees(&a, &res->t[T_A_SEES_B], "A");
        }
        if (s % 15 == 7) {
            char r = 0;
            if (write(to_peer[1], "w", 1) != 1 || hear(from_peer[0], &r) != 0 || r != 'k')
                note(&res->t[T_SEES_P], 0, "step %d: the forked process did not answer", s);
            else
                check_sees(&a, &res->t[T_SEES_P], "A");
        }
        if (s == steps / 2) {
            /* Fork with A and B open (between transactions: they hold no
             * lock); the child leaves them alone and opens its own. */
            fflush(NULL);
            pid_t pid = fork();
            if (pid == 0) {
                alarm(timeout_s());
                struct conn c;
                rng_state = 0x5eed0002;
                if (conn_open(&c, "the child", path, MMAP_SIZE) == 0 && conn_prepare(&c) == 0) {
                    check_sees(&c, &res->t[T_C_SEES], "the child");
                    transaction(&c, 40, 10, 1);
                }
                conn_close(&c);
                vg_inherited_heap();
                _exit(0);
            }
            int st = 0;
            if (pid < 0 || waitpid(pid, &st, 0) != pid || !WIFEXITED(st))
                note(&res->t[T_SEES_C], 0, "step %d: the child forked with A and B open died (status %#x)", s, st);
            else
                check_sees(&a, &res->t[T_SEES_C], "A");
        }
        if (s % 5 == 0 && strcmp(journal_mode, "wal") == 0)
            exec(a.db, "PRAGMA wal_checkpoint(PASSIVE)"); /* pages reach the database by pwrite */
        if (s % 30 == 0)
            check_rows(&a, &res->t[T_ROWS], NULL);
    }
    res->step = steps + 1;
    if (!on_umm) {
        /* The kernel's run: SQLite did map the database. */
        FILE *f = fopen("/proc/self/maps", "re");
        char line[4096];
        size_t n = strlen(path);
        while (f && fgets(line, sizeof line, f)) {
            line[strcspn(line, "\n")] = 0;
            size_t l = strlen(line);
            if (l >= n && strcmp(line + l - n, path) == 0) /* the database, not its -shm */
                res->mapped = 1;
        }
        if (f)
            fclose(f);
    }
    integrity(&a, res->integrity, sizeof res->integrity);
    res->nrows = check_rows(&a, &res->t[T_ROWS], res->rows);
    conn_close(&b);
out:
    conn_close(&a);
    if (write(to_peer[1], "q", 1) != 1) {
    }
    int st;
    waitpid(peer, &st, 0);
    if (on_umm) {
        struct umm_stats s;
        umm_stats(&s);
        res->faults = s.faults;
        res->pages_read = s.pages_read;
        res->leaks = s.mappings != 0 || s.resident != 0 || s.files != 0;
        snprintf(res->leak_msg, sizeof res->leak_msg, "%llu mappings, %llu pages resident, %llu files left",
                 (unsigned long long)s.mappings, (unsigned long long)s.resident, (unsigned long long)s.files);
    }
    res->seconds = now() - t0;
    res->done = 1;
    exit(0);
}

/* Run the workload in a child; returns a description of how it ended. */
static const char *run_child(const char *path, int on_umm)
{
    static char how[160];
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0)
        tap_bail("fork: %s", strerror(errno));
    if (pid == 0) {
        tap_quiet();
        alarm(timeout_s());
        run(path, on_umm);
    }
    int st = 0;
    if (waitpid(pid, &st, 0) != pid)
        snprintf(how, sizeof how, "lost: waitpid failed");
    else if (WIFSIGNALED(st))
        snprintf(how, sizeof how, "the run died of signal %d (%s) at step %d", WTERMSIG(st), strsignal(WTERMSIG(st)),
                 res->step);
    else if (WEXITSTATUS(st) != 0 || !res->done)
        snprintf(how, sizeof how, "the run exited with status %d at step %d%s", WEXITSTATUS(st), res->step,
                 under_valgrind() && WEXITSTATUS(st) == 1 ? " (memcheck errors? see its log)" : "");
    else
        how[0] = 0;
    return how;
}

/* ------------------------------------------- comparing with the kernel */

/* Rows that differ between two sorted lists: in one only, or not equal. */
static int rows_differ(const struct rowsum *x, int nx, const struct rowsum *y, int ny, int64_t *first)
{
    int i = 0, j = 0, d = 0;
    *first = 0;
    while (i < nx || j < ny) {
        int64_t id;
        if (j >= ny || (i < nx && x[i].id < y[j].id))
            id = x[i++].id;
        else if (i >= nx || y[j].id < x[i].id)
            id = y[j++].id;
        else {
            id = x[i].id;
            if (x[i++].h == y[j++].h)
                continue;
        }
        if (d++ == 0)
            *first = id;
    }
    return d;
}

/* Reopen a database with mmap_size=0 (read and pread only): its
 * integrity_check, and every row into rows. */
static int reread(const char *path, char *integ, size_t len, struct rowsum *rows)
{
    struct conn cn;
    int n = -1;
    res->nerr = 0;
    res->err[0] = 0;
    if (conn_open(&cn, "reopened", path, 0) == 0 && conn_prepare(&cn) == 0) {
        integrity(&cn, integ, len);
        sqlite3_stmt *st = cn.st[S_ROWS];
        n = 0;
        while (sqlite3_step(st) == SQLITE_ROW && n < MAXID) {
            int64_t id = sqlite3_column_int64(st, 0), k = sqlite3_column_int64(st, 1), c = sqlite3_column_int64(st, 2);
            const void *v = sqlite3_column_text(st, 3);
            int vlen = sqlite3_column_bytes(st, 3);
            const void *b = sqlite3_column_blob(st, 4);
            int blen = sqlite3_column_bytes(st, 4);
            rows[n++] = (struct rowsum){ id, row_hash(id, k, c, v, vlen, b, blen) };
        }
        sqlite3_reset(st);
    } else
        snprintf(integ, len, "could not open: %.200s", res->err);
    conn_close(&cn);
    return n;
}

static void remove_db(const char *path)
{
    static const char *const sfx[] = { "", "-journal", "-wal", "-shm" };
    char p[600];
    for (int i = 0; i < 4; i++) {
        snprintf(p, sizeof p, "%s%s", path, sfx[i]);
        unlink(p);
    }
}

static void one_mode(const char *dir, const char *mode, const char *label)
{
    static struct rowsum kfile[MAXID], ufile[MAXID];
    static struct result kres; /* the kernel's run, kept */
    char kpath[512], upath[512];
    journal_mode = mode;
    snprintf(kpath, sizeof kpath, "%s/kernel-%s.db", dir, mode);
    snprintf(upath, sizeof upath, "%s/libumm-%s.db", dir, mode);

    memset(res, 0, sizeof *res);
    const char *how = run_child(kpath, 0);
    kres = *res;
    int kbad = 0;
    for (int i = 0; i < T_MAX; i++)
        kbad += kres.t[i].bad;
    ok(!how[0] && kres.nerr == 0 && kbad == 0 && strcmp(kres.integrity, "ok") == 0 && kres.mapped &&
           kres.t[T_SEES_P].checks > 0 && kres.t[T_SEES_C].checks > 0,
       "%s, kernel: %d steps, %d rows, every check right, integrity ok, the database mapped (the test is right)",
       label, steps, kres.nrows);
    if (how[0])
        tap_diag("%s", how);
    if (kres.nerr)
        tap_diag("%d SQLite errors, the first: %s", kres.nerr, kres.err);
    for (int i = 0; i < T_MAX; i++)
        if (kres.t[i].bad)
            tap_diag("%s: %d of %d checks wrong; the first: %s", tally_text[i], kres.t[i].bad, kres.t[i].checks,
                     kres.t[i].first);
    if (strcmp(kres.integrity, "ok") != 0)
        tap_diag("integrity_check: %s", kres.integrity);
    tap_diag("%s, kernel: %.1f s", label, kres.seconds);

    memset(res, 0, sizeof *res);
    how = run_child(upath, 1);
    ok(res->remaps >= 3 && res->remap_foreign == 0 && res->faults > 0 && res->map_failed == 0,
       "%s, libumm: SQLite's mmap and mremap went to libumm (%llu maps, %llu remaps, %llu not libumm's, %llu "
       "failed; %llu faults, %llu pages read)",
       label, (unsigned long long)res->maps, (unsigned long long)res->remaps,
       (unsigned long long)res->remap_foreign, (unsigned long long)res->map_failed,
       (unsigned long long)res->faults, (unsigned long long)res->pages_read);
    ok(!how[0], "%s, libumm: the run ends%s%s", label, how[0] ? ": " : "", how);
    ok(res->nerr == 0, "%s, libumm: no SQLite error (%d; the first: %s)", label, res->nerr,
       res->nerr ? res->err : "none");
    for (int i = 0; i < T_MAX; i++) {
        ok(res->t[i].bad == 0 && res->t[i].checks == kres.t[i].checks, "%s, libumm: %s (%d of %d checks wrong)",
           label, tally_text[i], res->t[i].bad, res->t[i].checks);
        if (res->t[i].bad)
            tap_diag("the first: %s", res->t[i].first);
        else if (res->t[i].checks != kres.t[i].checks)
            tap_diag("%d checks ran, %d on the kernel", res->t[i].checks, kres.t[i].checks);
    }
    ok(strcmp(res->integrity, "ok") == 0, "%s, libumm: PRAGMA integrity_check through the mapping: %s", label,
       res->integrity[0] ? res->integrity : "(not run)");
    int64_t first;
    int d = rows_differ(res->rows, res->nrows, kres.rows, kres.nrows, &first);
    ok(d == 0 && res->done,
       "%s, libumm: every row through the mapping at the end as in the kernel's run: %d rows differ (%d rows there, %d here)%s",
       label, d, kres.nrows, res->nrows, res->done ? "" : " (the run did not end)");
    if (d)
        tap_diag("the first differing row: id %lld (%d rows here, %d on the kernel)", (long long)first, res->nrows,
                 kres.nrows);
    ok(!res->leaks && res->done, "%s, libumm: every mapping, page and file released after the last close (%s)",
       label, res->leak_msg);
    tap_diag("%s, libumm: %.1f s", label, res->seconds);

    /* Both files, reopened with mmap_size=0: what is in them. */
    char kint[240], uint_[240];
    int nk = reread(kpath, kint, sizeof kint, kfile);
    int nu = reread(upath, uint_, sizeof uint_, ufile);
    ok(strcmp(kint, "ok") == 0 && nk == kres.nrows, "%s, kernel's file reopened with mmap_size=0: integrity %s, %d rows",
       label, kint, nk);
    ok(strcmp(uint_, "ok") == 0, "%s, libumm's file reopened with mmap_size=0: integrity_check: %s", label, uint_);
    d = rows_differ(ufile, nu < 0 ? 0 : nu, kfile, nk < 0 ? 0 : nk, &first);
    ok(d == 0 && nu >= 0,
       "%s, libumm's file reopened with mmap_size=0: its rows as the kernel's file's: %d rows differ (%d rows there, %d here)",
       label, d, nk, nu);
    if (d)
        tap_diag("the first differing row: id %lld (%d rows in libumm's file, %d in the kernel's)", (long long)first,
                 nu, nk);
    remove_db(kpath);
    remove_db(upath);
}

/* Touch 256 KiB of stack, so that the host maps it now.  Under Valgrind
 * (3.19) a forked child whose first signal frame falls below the stack
 * its parent had mapped died with "Can't extend stack ... during signal
 * delivery" in make check-valgrind: Valgrind would not grow the child's
 * main stack.  Grown here, before any fork, every child inherits it. */
__attribute__((noinline)) static void grow_stack(void)
{
    volatile char deep[256 * 1024];
    for (size_t i = 0; i < sizeof deep; i += 4096)
        deep[i] = 0;
    deep[sizeof deep - 1] = 0;
}

int main(int argc, char **argv)
{
    if (under_valgrind())
        grow_stack();
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--steps") == 0 && i + 1 < argc)
            steps = atoi(argv[++i]);
    if (steps < 30)
        steps = 30;

    /* Shared with the runs (and their children): the kernel's memory. */
    model = mmap(NULL, sizeof *model, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    res = mmap(NULL, sizeof *res, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (model == MAP_FAILED || res == MAP_FAILED)
        tap_bail("mmap: %s", strerror(errno));

    const char *tmp = getenv("UMM_TEST_TMPDIR");
    char dir[512];
    snprintf(dir, sizeof dir, "%s/sqlite.XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(dir))
        tap_bail("mkdtemp %s: %s", dir, strerror(errno));

    char probe[600];
    snprintf(probe, sizeof probe, "%s/probe.db", dir);
    /* SQLite must be able to map: built with SQLITE_MAX_MMAP_SIZE > 0. */
    sqlite3 *db;
    sqlite3_stmt *st;
    sqlite3_int64 mm = 0;
    if (sqlite3_open(probe, &db) == SQLITE_OK &&
        sqlite3_exec(db, "PRAGMA mmap_size = 268435456", NULL, NULL, NULL) == SQLITE_OK &&
        sqlite3_prepare_v2(db, "PRAGMA mmap_size", -1, &st, NULL) == SQLITE_OK) {
        if (sqlite3_step(st) == SQLITE_ROW)
            mm = sqlite3_column_int64(st, 0);
        sqlite3_finalize(st);
    }
    sqlite3_close(db);
    unlink(probe);
    if (mm < MMAP_SIZE) {
        rmdir(dir);
        tap_skip_all("this libsqlite3 does not map databases (PRAGMA mmap_size stays below 256 MiB: "
                     "built with a small SQLITE_MAX_MMAP_SIZE)");
    }

    tap_diag("SQLite %s, %d steps", sqlite3_libversion(), steps);

    one_mode(dir, "delete", "journal_mode=DELETE");
    one_mode(dir, "wal", "journal_mode=WAL");

    rmdir(dir);
    munmap(model, sizeof *model);
    munmap(res, sizeof *res);
    return tap_done();
}
#endif
