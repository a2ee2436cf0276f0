/* Promise (a real client): LMDB, with its data file mapped by libumm,
 * keeps every commit -- for its own later transactions, for a process that
 * opens the environment after fork, and after a reopen -- and ends with the
 * same keys and values as on the kernel's mmap.
 *
 * LMDB (Debian's liblmdb) maps its whole data file, data.mdb, MAP_SHARED:
 * read-only with default flags, where it writes pages with pwrite() and
 * reads them through the map; read-write with MDB_WRITEMAP, where it writes
 * through the map and commits with msync().  It also maps its lock file,
 * lock.mdb, which holds process-shared robust mutexes and the reader table.
 *
 * How LMDB's data-file mappings reach libumm.  liblmdb calls mmap, munmap,
 * msync and madvise by name (nm -D: no mprotect), through its PLT, so a
 * definition of those names in this executable comes first in the global
 * scope and receives liblmdb's calls (the linker exports them, since shared
 * objects the program links reference them).  But it receives every other
 * caller's too, and libumm is one: libumm calls mmap, munmap and madvise by
 * name to build its own memory, also from its SIGSEGV handler.  So each of
 * these definitions:
 *  - sends a call to libumm (umm_mmap ...) only when route_on is set (in
 *    the libumm runs), the call comes from liblmdb's code (its return
 *    address lies inside liblmdb, found with dl_iterate_phdr; liblmdb
 *    makes these calls with `call`, never a tail jump, see objdump), and
 *    it is about a data file: for mmap, a descriptor whose path
 *    (/proc/self/fd) is data.mdb under this test's directory; for the
 *    others, a range inside a mapping made that way.  LMDB's lock file
 *    stays on the kernel's mmap: its mutexes and reader table are not what
 *    this test is about.
 *  - hands everything else to the kernel by syscall(2), exactly what the C
 *    library's wrappers do: libumm's own calls (their return address is in
 *    libumm), the C library's, this test's.  That path takes no lock and
 *    calls nothing but syscall(), so it is safe in libumm's signal handler.
 * The test checks that it worked: every environment opened in a libumm run
 * had its data file mapped by umm_mmap, and none other was.
 *
 * The workload, with default flags and with MDB_WRITEMAP (both with
 * MDB_NOSYNC and an mdb_env_sync every 50 commits), deterministic (a
 * seeded xorshift): 300 write transactions of puts and deletes of random
 * keys (values of 16 bytes to 20 KiB: overflow pages), some aborted, every
 * 60th a bulk load; after each commit a new read transaction checks the
 * entry count and a few keys, and every 20 commits a cursor checks every
 * key; a read transaction held open across 80 commits (by a thread: LMDB
 * allows one read transaction a thread) keeps its snapshot; a child that
 * opens the environment after fork reads the parent's commits, also those
 * made after it opened; another writes, and the parent reads its commits;
 * at the end every key, then again after closing and reopening.
 * All of it is checked against a model kept in ordinary memory (shared with
 * the children), not against LMDB.  Then both environments -- the one the
 * kernel run wrote and the one the libumm run wrote -- are opened again
 * read-only on the kernel's mmap and compared key by key.  Each run is a
 * child process, so that a crash is one failed point; the kernel run proves
 * the test right.
 *
 * libumm has a page cache of its own.  Unless libumm stands in front of
 * the program's file I/O (src/fileio.c on main; not with UMM_FILEIO=0),
 * LMDB's pwrite() and writev() with default flags do not reach pages
 * already resident in libumm's mapping: a new read transaction reads the
 * old meta page and sees an old tree (at first an empty one), and a write
 * transaction builds on stale pages.  Then the default-flags points fail.
 * With MDB_WRITEMAP every write goes through the mapping, so they hold
 * either way. */
#define _GNU_SOURCE
#include "config.h"
#include "tap.h"
#include "util.h"

#ifndef HAVE_LMDB
int main(void)
{
    tap_skip_all("built without liblmdb (configure found no lmdb.h or -llmdb: apt-get install liblmdb-dev, "
                 "or run ./bootstrap, then configure again)");
}
#else

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <link.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <lmdb.h>
#ifdef HAVE_VALGRIND_VALGRIND_H
#include <valgrind/valgrind.h>
#endif

#define NKEYS 12000
#define MAPSIZE (64ul << 20)
#define MAXVAL 20480

static int ntxns = 300; /* --txns N */

/* --------------------------------------------------- what the runs see */

enum {
    T_WRITE,       /* a write transaction finds what is committed */
    T_NEW_READER,  /* a new read transaction after each commit */
    T_SCAN,        /* a cursor over every key, every 20 commits */
    T_SNAPSHOT,    /* a read transaction held across commits */
    T_FORK_AT,     /* a child opening the environment after fork */
    T_FORK_LATER,  /* the same child, after more commits of the parent */
    T_SEES_WRITER, /* the parent, after a child's commits */
    T_END,         /* every key at the end */
    T_REOPEN,      /* every key after closing and reopening */
    T_MAX
};
static const char *const tally_text[T_MAX] = {
    "a write transaction finds what is committed (mdb_del answers as the commits say)",
    "a new read transaction after each commit sees it (entry count, 8 keys)",
    "every 20 commits, a cursor sees every key as committed",
    "a read transaction held open (by another thread) across 80 commits keeps its snapshot",
    "a child that opens the environment after fork sees the parent's commits",
    "that child sees the commits the parent makes afterwards",
    "the parent sees the commits of a child that opened the environment and wrote",
    "at the end a cursor sees every key as committed",
    "closed and reopened: every key as committed",
};

struct tally {
    int checks, bad;
    char first[240];
};

struct result {
    int txn;       /* progress */
    int done;
    int nerr;
    char err[320];
    struct tally t[T_MAX];
    unsigned long routed_maps, routed_unmaps, routed_msyncs, routed_madvises, env_opens;
    int leaks;
    char leak_msg[160];
    double seconds;
    uint64_t vh[NKEYS]; /* the reopened environment: each key's value hash, 0 when absent */
};

/* The model: each key's value seed, 0 when the key is absent.  Shared with
 * the children of a run (the kernel's memory). */
struct model {
    uint32_t seed[NKEYS];
};

static struct model *model;
static struct result *res;

/* ------------------------------------------- liblmdb's calls to libumm */

static volatile int route_on;           /* the libumm runs */
static uintptr_t lmdb_lo, lmdb_hi;      /* liblmdb's image */
static char envroot[PATH_MAX];          /* this test's directory, as /proc names it */
static size_t envroot_len;
static struct {
    char *addr;
    size_t len;
} dmaps[16];                            /* data-file mappings libumm made for LMDB */
static pthread_mutex_t dmaps_lock = PTHREAD_MUTEX_INITIALIZER;

static int from_lmdb(void *ret)
{
    return (uintptr_t)ret >= lmdb_lo && (uintptr_t)ret < lmdb_hi;
}

static int is_data_file(int fd)
{
    char link[64], path[PATH_MAX];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, path, sizeof path - 1);
    if (n <= 0)
        return 0;
    path[n] = 0;
    return envroot_len && strncmp(path, envroot, envroot_len) == 0 && n > 9 && strcmp(path + n - 9, "/data.mdb") == 0;
}

/* Is [addr, addr+len) inside a data-file mapping libumm made? */
static int in_dmap(void *addr, size_t len, int forget)
{
    int hit = 0;
    pthread_mutex_lock(&dmaps_lock);
    for (size_t i = 0; i < sizeof dmaps / sizeof dmaps[0]; i++)
        if (dmaps[i].addr && (char *)addr >= dmaps[i].addr && (char *)addr + len <= dmaps[i].addr + dmaps[i].len) {
            hit = 1;
            if (forget && (char *)addr == dmaps[i].addr && len == dmaps[i].len)
                dmaps[i].addr = NULL;
            break;
        }
    pthread_mutex_unlock(&dmaps_lock);
    return hit;
}

__attribute__((noinline)) void *mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
    if (route_on && fd >= 0 && from_lmdb(__builtin_return_address(0)) && is_data_file(fd)) {
        void *p = umm_mmap(addr, len, prot, flags, fd, off);
        if (p != MAP_FAILED) {
            pthread_mutex_lock(&dmaps_lock);
            for (size_t i = 0; i < sizeof dmaps / sizeof dmaps[0]; i++)
                if (!dmaps[i].addr) {
                    dmaps[i].addr = p;
                    dmaps[i].len = len;
                    break;
                }
            pthread_mutex_unlock(&dmaps_lock);
            __atomic_fetch_add(&res->routed_maps, 1, __ATOMIC_RELAXED);
        }
        return p;
    }
    return (void *)syscall(SYS_mmap, (long)addr, (long)len, (long)prot, (long)flags, (long)fd, (long)off);
}

__attribute__((noinline)) int munmap(void *addr, size_t len)
{
    if (route_on && from_lmdb(__builtin_return_address(0)) && in_dmap(addr, len, 0)) {
        int r = umm_munmap(addr, len);
        if (r == 0) {
            in_dmap(addr, len, 1);
            __atomic_fetch_add(&res->routed_unmaps, 1, __ATOMIC_RELAXED);
        }
        return r;
    }
    return (int)syscall(SYS_munmap, (long)addr, (long)len);
}

__attribute__((noinline)) int msync(void *addr, size_t len, int flags)
{
    if (route_on && from_lmdb(__builtin_return_address(0)) && in_dmap(addr, len, 0)) {
        __atomic_fetch_add(&res->routed_msyncs, 1, __ATOMIC_RELAXED);
        return umm_msync(addr, len, flags);
    }
    return (int)syscall(SYS_msync, (long)addr, (long)len, (long)flags);
}

__attribute__((noinline)) int madvise(void *addr, size_t len, int advice)
{
    if (route_on && from_lmdb(__builtin_return_address(0)) && in_dmap(addr, len, 0)) {
        __atomic_fetch_add(&res->routed_madvises, 1, __ATOMIC_RELAXED);
        return umm_madvise(addr, len, advice);
    }
    return (int)syscall(SYS_madvise, (long)addr, (long)len, (long)advice);
}

static int find_lmdb(struct dl_phdr_info *info, size_t size, void *data)
{
    (void)size;
    (void)data;
    const char *base = strrchr(info->dlpi_name, '/');
    if (!strstr(base ? base + 1 : info->dlpi_name, "liblmdb"))
        return 0;
    uintptr_t lo = UINTPTR_MAX, hi = 0;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_LOAD)
            continue;
        uintptr_t a = info->dlpi_addr + ph->p_vaddr;
        if (a < lo)
            lo = a;
        if (a + ph->p_memsz > hi)
            hi = a + ph->p_memsz;
    }
    lmdb_lo = lo;
    lmdb_hi = hi;
    return 1;
}

/* --------------------------------------------------------------- helpers */

static uint64_t rng_state;
static uint64_t rnd(void)
{
    return xorshift64(&rng_state);
}

static uint64_t hash64(const void *p, size_t n)
{
    const unsigned char *b = p;
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 0x100000001b3ull;
    return h | 1;
}

/* A value, from its seed: mostly 16..400 bytes, a quarter up to 3000, one
 * in twenty 5000..20000 (overflow pages). */
static size_t val_data(uint32_t seed, unsigned char *buf)
{
    uint64_t s = seed * 0x9e3779b97f4a7c15ull + 7;
    uint64_t kind = xorshift64(&s) % 20;
    size_t len = kind == 0 ? 5000 + xorshift64(&s) % 15001 : kind < 6 ? 400 + xorshift64(&s) % 2601 : 16 + xorshift64(&s) % 385;
    for (size_t i = 0; i < len; i += 8) {
        uint64_t x = xorshift64(&s);
        memcpy(buf + i, &x, len - i < 8 ? len - i : 8);
    }
    return len;
}

static int key_of(MDB_val *k, char *buf, unsigned i)
{
    int n = snprintf(buf, 16, "key%08u", i);
    k->mv_data = buf;
    k->mv_size = (size_t)n;
    return n;
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

static int lmdb_err(int rc, const char *what)
{
    if (rc != MDB_SUCCESS && res->nerr++ == 0)
        snprintf(res->err, sizeof res->err, "transaction %d: %s: %s", res->txn, what, mdb_strerror(rc));
    return rc;
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

static int hear(int fd, char *b)
{
    struct pollfd p = { fd, POLLIN, 0 };
    return poll(&p, 1, (int)timeout_s() * 1000) == 1 && read(fd, b, 1) == 1 ? 0 : -1;
}

/* ---------------------------------------------------------------- LMDB */

/* MDB_NOSYNC, with or without MDB_WRITEMAP: a commit's fsync (or msync of
 * the whole map) would only cost time (it is the page caches this test
 * compares, not the disk); mdb_env_sync(env, 1) every 50 commits still
 * calls fdatasync, or msync(MS_SYNC) on the map. */
static unsigned env_flags;

static MDB_env *env_open(const char *dir, unsigned extra, MDB_dbi *dbi)
{
    MDB_env *env;
    MDB_txn *txn;
    if (lmdb_err(mdb_env_create(&env), "mdb_env_create"))
        return NULL;
    if (lmdb_err(mdb_env_set_mapsize(env, MAPSIZE), "mdb_env_set_mapsize") ||
        lmdb_err(mdb_env_open(env, dir, env_flags | extra, 0644), "mdb_env_open")) {
        mdb_env_close(env);
        return NULL;
    }
    __atomic_fetch_add(&res->env_opens, 1, __ATOMIC_RELAXED);
    if (lmdb_err(mdb_txn_begin(env, NULL, extra & MDB_RDONLY, &txn), "mdb_txn_begin (dbi)"))
        goto fail;
    if (lmdb_err(mdb_dbi_open(txn, NULL, 0, dbi), "mdb_dbi_open")) {
        mdb_txn_abort(txn);
        goto fail;
    }
    if (lmdb_err(mdb_txn_commit(txn), "mdb_txn_commit (dbi)"))
        goto fail;
    return env;
fail:
    mdb_env_close(env);
    return NULL;
}

static unsigned char vbuf[MAXVAL], wbuf[MAXVAL];
static uint32_t scratch[NKEYS];

/* One write transaction: puts and deletes of random keys, committed (the
 * model follows) or aborted (it does not). */
static void write_txn(MDB_env *env, MDB_dbi dbi, int puts, int dels, int abort_it)
{
    MDB_txn *txn;
    if (lmdb_err(mdb_txn_begin(env, NULL, 0, &txn), "mdb_txn_begin (write)"))
        return;
    memcpy(scratch, model->seed, sizeof scratch);
    char kb[16];
    MDB_val k, v;
    for (int i = 0; i < puts + dels; i++) {
        unsigned key = (unsigned)(rnd() % NKEYS);
        key_of(&k, kb, key);
        if (i < puts) {
            uint32_t seed = (uint32_t)rnd() | 1;
            v.mv_data = vbuf;
            v.mv_size = val_data(seed, vbuf);
            if (lmdb_err(mdb_put(txn, dbi, &k, &v, 0), "mdb_put"))
                goto fail;
            scratch[key] = seed;
        } else {
            int rc = mdb_del(txn, dbi, &k, NULL);
            note(&res->t[T_WRITE], (rc == MDB_NOTFOUND) == (scratch[key] == 0),
                 "transaction %d: mdb_del(key %u): %s, but the key is %s", res->txn, key, mdb_strerror(rc),
                 scratch[key] ? "committed" : "absent");
            if (rc != MDB_SUCCESS && rc != MDB_NOTFOUND && lmdb_err(rc, "mdb_del"))
                goto fail;
            scratch[key] = 0;
        }
    }
    if (abort_it) {
        mdb_txn_abort(txn);
        return;
    }
    if (lmdb_err(mdb_txn_commit(txn), "mdb_txn_commit"))
        return;
    memcpy(model->seed, scratch, sizeof scratch);
    return;
fail:
    mdb_txn_abort(txn);
}

/* Every key through a cursor against want[]: the number of keys wrong
 * (a wrong value, a key not committed, a committed key missing).  With vh,
 * keep each key's value hash there. */
static int scan(MDB_txn *txn, MDB_dbi dbi, const uint32_t *want, uint64_t *vh, unsigned *firstbad)
{
    static unsigned char seen[NKEYS];
    MDB_cursor *cur;
    MDB_val k, v;
    int bad = 0, rc;
    memset(seen, 0, sizeof seen);
    if (vh)
        memset(vh, 0, NKEYS * sizeof *vh);
    *firstbad = NKEYS;
    if (lmdb_err(mdb_cursor_open(txn, dbi, &cur), "mdb_cursor_open"))
        return NKEYS;
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == MDB_SUCCESS; rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        char kb[16] = { 0 };
        unsigned key = NKEYS;
        memcpy(kb, k.mv_data, k.mv_size < 15 ? k.mv_size : 15);
        if (k.mv_size != 11 || sscanf(kb, "key%8u", &key) != 1 || key >= NKEYS || seen[key]) {
            bad++;
            continue;
        }
        seen[key] = 1;
        if (vh)
            vh[key] = hash64(v.mv_data, v.mv_size);
        size_t len = want[key] ? val_data(want[key], wbuf) : 0;
        if (!want[key] || v.mv_size != len || memcmp(v.mv_data, wbuf, len) != 0) {
            if (bad++ == 0)
                *firstbad = key;
        }
    }
    if (rc != MDB_NOTFOUND)
        lmdb_err(rc, "mdb_cursor_get");
    mdb_cursor_close(cur);
    for (unsigned i = 0; i < NKEYS; i++)
        if (want[i] && !seen[i] && bad++ == 0)
            *firstbad = i;
    return bad;
}

static unsigned committed(const uint32_t *want)
{
    unsigned n = 0;
    for (unsigned i = 0; i < NKEYS; i++)
        n += want[i] != 0;
    return n;
}

/* A new read transaction sees every key as the model says (cursor), into
 * tally t. */
static void check_scan(MDB_env *env, MDB_dbi dbi, struct tally *t, const char *who, uint64_t *vh)
{
    MDB_txn *txn;
    unsigned first;
    if (lmdb_err(mdb_txn_begin(env, NULL, MDB_RDONLY, &txn), "mdb_txn_begin (read)")) {
        note(t, 0, "transaction %d: %s: no read transaction", res->txn, who);
        return;
    }
    int bad = scan(txn, dbi, model->seed, vh, &first);
    note(t, bad == 0, "transaction %d: %s: %d of %u committed keys wrong, the first key %u", res->txn, who, bad,
         committed(model->seed), first);
    mdb_txn_abort(txn);
}

/* A new read transaction after a commit: the entry count and 8 keys. */
static void check_reader(MDB_env *env, MDB_dbi dbi)
{
    MDB_txn *txn;
    MDB_stat st;
    if (lmdb_err(mdb_txn_begin(env, NULL, MDB_RDONLY, &txn), "mdb_txn_begin (read)") ||
        lmdb_err(mdb_stat(txn, dbi, &st), "mdb_stat")) {
        note(&res->t[T_NEW_READER], 0, "transaction %d: no read transaction", res->txn);
        return;
    }
    unsigned n = committed(model->seed), wrong = 0, firstbad = 0;
    char kb[16];
    MDB_val k, v;
    for (int i = 0; i < 8; i++) {
        unsigned key = (unsigned)(rnd() % NKEYS);
        key_of(&k, kb, key);
        int rc = mdb_get(txn, dbi, &k, &v);
        size_t len = model->seed[key] ? val_data(model->seed[key], wbuf) : 0;
        int good = model->seed[key] ? rc == MDB_SUCCESS && v.mv_size == len && memcmp(v.mv_data, wbuf, len) == 0
                                    : rc == MDB_NOTFOUND;
        if (!good && wrong++ == 0)
            firstbad = key;
    }
    note(&res->t[T_NEW_READER], st.ms_entries == n && wrong == 0,
         "transaction %d: a new read transaction sees %zu entries, %u committed; %u of 8 keys wrong (the first %u)",
         res->txn, st.ms_entries, n, wrong, firstbad);
    mdb_txn_abort(txn);
}

/* ------------------------------------------------------------- one run */

/* A read transaction held while the run commits: begun, then (on "go")
 * every key checked against the model as it was when it began. */
struct snapshot {
    MDB_env *env;
    MDB_dbi dbi;
    int go[2], done[2];
};
static uint32_t snap_model[NKEYS];

static void *snapshot_main(void *arg)
{
    struct snapshot *sn = arg;
    MDB_txn *txn = NULL;
    char c;
    int began = lmdb_err(mdb_txn_begin(sn->env, NULL, MDB_RDONLY, &txn), "mdb_txn_begin (snapshot)") == 0;
    if (write(sn->done[1], "b", 1) != 1 || hear(sn->go[0], &c) != 0)
        began = 0;
    if (began) {
        unsigned first;
        int bad = scan(txn, sn->dbi, snap_model, NULL, &first);
        note(&res->t[T_SNAPSHOT], bad == 0, "transaction %d: the snapshot: %d of %u keys wrong, the first %u",
             res->txn, bad, committed(snap_model), first);
    } else
        note(&res->t[T_SNAPSHOT], 0, "transaction %d: no snapshot", res->txn);
    if (txn)
        mdb_txn_abort(txn);
    if (write(sn->done[1], "e", 1) != 1) {
    }
    return NULL;
}

/* Under memcheck, in a child forked with the environment open, before it
 * leaves: it holds the parent's environment, which LMDB forbids it to
 * touch, so its memory is still allocated at the child's exit (some found
 * only through interior pointers: "possibly lost"), and so is the DTV of
 * libumm's daemon thread (util.h, vg_abrupt_end).  Its leak check counts
 * definite leaks only. */
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

static void reader_child(const char *dir, int in, int out)
{
    MDB_dbi dbi;
    char c;
    alarm(timeout_s());
    rng_state = 0x1eade7;
    MDB_env *env = env_open(dir, MDB_RDONLY, &dbi);
    if (!env)
        note(&res->t[T_FORK_AT], 0, "the child could not open the environment: %s", res->err);
    else
        check_scan(env, dbi, &res->t[T_FORK_AT], "the child, after fork", NULL);
    if (write(out, "r", 1) != 1 || hear(in, &c) != 0)
        _exit(3);
    if (env) {
        check_scan(env, dbi, &res->t[T_FORK_LATER], "the child, after more commits", NULL);
        mdb_env_close(env);
    }
    vg_inherited_heap();
    _exit(0);
}

static void writer_child(const char *dir)
{
    MDB_dbi dbi;
    alarm(timeout_s());
    rng_state = 0x3717e5;
    MDB_env *env = env_open(dir, 0, &dbi);
    if (env) {
        for (int i = 0; i < 10; i++)
            write_txn(env, dbi, 1 + (int)(rnd() % 25), (int)(rnd() % 7), 0);
        mdb_env_close(env);
    }
    vg_inherited_heap();
    _exit(0);
}

static int wait_for(pid_t pid)
{
    int st = 0;
    if (pid < 0 || waitpid(pid, &st, 0) != pid)
        return -1;
    return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : st ? st : -1;
}

static void run(const char *dir, int on_umm)
{
    double t0 = now();
    MDB_dbi dbi;
    struct snapshot snap;
    pthread_t snap_thread;
    int snap_started = 0;
    int rp[2] = { -1, -1 }, pr[2] = { -1, -1 };
    pid_t reader = -1;

    rng_state = 0x1a1b1c1d;
    memset(model, 0, sizeof *model);
    route_on = on_umm;
    if (mkdir(dir, 0755) != 0)
        tap_bail("mkdir %s: %s", dir, strerror(errno));
    MDB_env *env = env_open(dir, 0, &dbi);
    if (!env)
        goto out;
    for (res->txn = 1; res->txn <= ntxns; res->txn++) {
        int t = res->txn;
        if (t % 60 == 30)
            write_txn(env, dbi, 400, 0, 0); /* a bulk load */
        else
            write_txn(env, dbi, 1 + (int)(rnd() % 25), (int)(rnd() % 7), t % 17 == 0);
        check_reader(env, dbi);
        if (t % 20 == 0)
            check_scan(env, dbi, &res->t[T_SCAN], "a cursor", NULL);
        if (t % 50 == 0)
            lmdb_err(mdb_env_sync(env, 1), "mdb_env_sync");
        if (t == ntxns / 5) {
            /* A snapshot, held across the next 80 commits by a thread of
             * its own (LMDB: one read transaction a thread); over before
             * the forks below. */
            struct snapshot sn = { env, dbi, { -1, -1 }, { -1, -1 } };
            snap = sn;
            memcpy(snap_model, model->seed, sizeof snap_model);
            char c;
            if (pipe(snap.go) != 0 || pipe(snap.done) != 0 ||
                pthread_create(&snap_thread, NULL, snapshot_main, &snap) != 0)
                tap_bail("pipe, pthread_create: %s", strerror(errno));
            snap_started = 1;
            if (hear(snap.done[0], &c) != 0)
                note(&res->t[T_SNAPSHOT], 0, "transaction %d: the snapshot's thread did not answer", t);
        }
        if (t == ntxns / 5 + 80 && snap_started) {
            char c;
            if (write(snap.go[1], "g", 1) != 1 || hear(snap.done[0], &c) != 0)
                note(&res->t[T_SNAPSHOT], 0, "transaction %d: the snapshot's thread did not answer", t);
            pthread_join(snap_thread, NULL);
            for (int i = 0; i < 2; i++) {
                close(snap.go[i]);
                close(snap.done[i]);
            }
            snap_started = 0;
        }
        if (t == ntxns / 2) {
            /* A reader: opens the environment after fork, reads, then
             * reads again after 20 more commits of ours. */
            if (pipe(rp) != 0 || pipe(pr) != 0)
                tap_bail("pipe: %s", strerror(errno));
            fflush(NULL);
            reader = fork();
            if (reader == 0) {
                close(rp[0]);
                close(pr[1]);
                reader_child(dir, pr[0], rp[1]);
            }
            close(rp[1]);
            close(pr[0]);
            char c;
            if (reader < 0 || hear(rp[0], &c) != 0)
                note(&res->t[T_FORK_AT], 0, "the reader child did not answer");
        }
        if (t == ntxns / 2 + 20 && reader > 0) {
            if (write(pr[1], "g", 1) != 1) {
            }
            int st = wait_for(reader);
            if (st != 0)
                note(&res->t[T_FORK_LATER], 0, "the reader child ended with status %#x", st);
            close(rp[0]);
            close(pr[1]);
            reader = -1;
        }
        if (t == 2 * ntxns / 3) {
            fflush(NULL);
            pid_t w = fork();
            if (w == 0)
                writer_child(dir);
            int st = wait_for(w);
            if (st != 0)
                note(&res->t[T_SEES_WRITER], 0, "the writer child ended with status %#x", st);
            else
                check_scan(env, dbi, &res->t[T_SEES_WRITER], "after the child's commits", NULL);
        }
    }
    res->txn = ntxns + 1;
    check_scan(env, dbi, &res->t[T_END], "at the end", NULL);
    mdb_env_close(env);
    env = env_open(dir, 0, &dbi);
    if (env) {
        check_scan(env, dbi, &res->t[T_REOPEN], "reopened", res->vh);
        mdb_env_close(env);
    } else
        note(&res->t[T_REOPEN], 0, "the environment did not open again: %s", res->err);
out:
    if (on_umm) {
        struct umm_stats s;
        umm_stats(&s);
        res->leaks = s.mappings != 0 || s.resident != 0 || s.files != 0;
        snprintf(res->leak_msg, sizeof res->leak_msg, "%llu mappings, %llu pages resident, %llu files left",
                 (unsigned long long)s.mappings, (unsigned long long)s.resident, (unsigned long long)s.files);
    }
    res->seconds = now() - t0;
    res->done = 1;
    exit(0);
}

static const char *run_child(const char *dir, int on_umm)
{
    static char how[160];
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0)
        tap_bail("fork: %s", strerror(errno));
    if (pid == 0) {
        tap_quiet();
        alarm(timeout_s());
        run(dir, on_umm);
    }
    int st = 0;
    if (waitpid(pid, &st, 0) != pid)
        snprintf(how, sizeof how, "lost: waitpid failed");
    else if (WIFSIGNALED(st))
        snprintf(how, sizeof how, "the run died of signal %d (%s) at transaction %d", WTERMSIG(st),
                 strsignal(WTERMSIG(st)), res->txn);
    else if (WEXITSTATUS(st) != 0 || !res->done)
        snprintf(how, sizeof how, "the run exited with status %d at transaction %d%s", WEXITSTATUS(st), res->txn,
                 under_valgrind() && WEXITSTATUS(st) == 1 ? " (memcheck errors? see its log)" : "");
    else
        how[0] = 0;
    return how;
}

/* ---------------------------------------------- comparing with the kernel */

/* Open an environment read-only on the kernel's mmap; each key's value
 * hash into vh.  Returns the keys, or -1. */
static int reread(const char *dir, uint64_t *vh)
{
    MDB_dbi dbi;
    MDB_txn *txn;
    MDB_cursor *cur;
    MDB_val k, v;
    int n = 0, rc;
    route_on = 0;
    memset(vh, 0, NKEYS * sizeof *vh);
    MDB_env *env = env_open(dir, MDB_RDONLY, &dbi);
    if (!env)
        return -1;
    if (mdb_txn_begin(env, NULL, MDB_RDONLY, &txn) != 0 || mdb_cursor_open(txn, dbi, &cur) != 0) {
        mdb_env_close(env);
        return -1;
    }
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == MDB_SUCCESS; rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        char kb[16] = { 0 };
        unsigned key;
        memcpy(kb, k.mv_data, k.mv_size < 15 ? k.mv_size : 15);
        if (sscanf(kb, "key%8u", &key) == 1 && key < NKEYS)
            vh[key] = hash64(v.mv_data, v.mv_size);
        n++;
    }
    mdb_cursor_close(cur);
    mdb_txn_abort(txn);
    mdb_env_close(env);
    return rc == MDB_NOTFOUND ? n : -1;
}

static int keys_differ(const uint64_t *x, const uint64_t *y, unsigned *first)
{
    int d = 0;
    *first = 0;
    for (unsigned i = 0; i < NKEYS; i++)
        if (x[i] != y[i] && d++ == 0)
            *first = i;
    return d;
}

static int present(const uint64_t *vh)
{
    int n = 0;
    for (unsigned i = 0; i < NKEYS; i++)
        n += vh[i] != 0;
    return n;
}

static void remove_env(const char *dir)
{
    char p[PATH_MAX + 16];
    snprintf(p, sizeof p, "%s/data.mdb", dir);
    unlink(p);
    snprintf(p, sizeof p, "%s/lock.mdb", dir);
    unlink(p);
    rmdir(dir);
}

static void one_mode(const char *root, unsigned flags, const char *label)
{
    static struct result kres;
    static uint64_t kfile[NKEYS], ufile[NKEYS];
    char kdir[PATH_MAX], udir[PATH_MAX];
    env_flags = flags | MDB_NOSYNC;
    snprintf(kdir, sizeof kdir, "%s/kernel-%s", root, flags ? "writemap" : "default");
    snprintf(udir, sizeof udir, "%s/libumm-%s", root, flags ? "writemap" : "default");

    memset(res, 0, sizeof *res);
    const char *how = run_child(kdir, 0);
    kres = *res;
    int kbad = 0;
    for (int i = 0; i < T_MAX; i++)
        kbad += kres.t[i].bad;
    ok(!how[0] && kres.nerr == 0 && kbad == 0 && kres.routed_maps == 0 && kres.t[T_FORK_LATER].checks == 1 &&
           kres.t[T_SEES_WRITER].checks == 1 && kres.t[T_SNAPSHOT].checks == 1,
       "%s, kernel: %d transactions, %d keys, every check right (the test is right)", label, ntxns, present(kres.vh));
    if (how[0])
        tap_diag("%s", how);
    if (kres.nerr)
        tap_diag("%d LMDB errors, the first: %s", kres.nerr, kres.err);
    for (int i = 0; i < T_MAX; i++)
        if (kres.t[i].bad)
            tap_diag("%s: %d of %d checks wrong; the first: %s", tally_text[i], kres.t[i].bad, kres.t[i].checks,
                     kres.t[i].first);
    tap_diag("%s, kernel: %.1f s", label, kres.seconds);

    memset(res, 0, sizeof *res);
    how = run_child(udir, 1);
    /* Every environment the run opened (its own twice, the two children's)
     * had its data file, and only that, mapped by libumm. */
    ok(res->env_opens == 4 && res->routed_maps == res->env_opens && res->routed_unmaps == res->routed_maps &&
           (flags & MDB_WRITEMAP ? res->routed_msyncs > 0 : res->routed_msyncs == 0),
       "%s, libumm: LMDB's data file, and only it, went to libumm (%lu environments opened, %lu umm_mmap, %lu "
       "umm_munmap, %lu umm_msync)",
       label, res->env_opens, res->routed_maps, res->routed_unmaps, res->routed_msyncs);
    ok(!how[0], "%s, libumm: the run ends%s%s", label, how[0] ? ": " : "", how);
    ok(res->nerr == 0, "%s, libumm: no LMDB error (%d; the first: %s)", label, res->nerr, res->nerr ? res->err : "none");
    for (int i = 0; i < T_MAX; i++) {
        ok(res->t[i].bad == 0 && res->t[i].checks == kres.t[i].checks, "%s, libumm: %s (%d of %d checks wrong)",
           label, tally_text[i], res->t[i].bad, res->t[i].checks);
        if (res->t[i].bad)
            tap_diag("the first: %s", res->t[i].first);
        else if (res->t[i].checks != kres.t[i].checks)
            tap_diag("%d checks ran, %d on the kernel", res->t[i].checks, kres.t[i].checks);
    }
    unsigned first;
    int d = keys_differ(res->vh, kres.vh, &first);
    ok(d == 0 && res->done,
       "%s, libumm: every key after the reopen (through libumm) as in the kernel's run: %d keys differ (%d keys there, "
       "%d here)",
       label, d, present(kres.vh), present(res->vh));
    if (d)
        tap_diag("the first differing key: %u", first);
    ok(!res->leaks && res->done, "%s, libumm: every mapping, page and file released after the last close (%s)", label,
       res->leak_msg);
    tap_diag("%s, libumm: %.1f s", label, res->seconds);

    /* Both environments on the kernel's mmap: what is in the files. */
    res->nerr = 0;
    int nk = reread(kdir, kfile);
    int nu = reread(udir, ufile);
    d = keys_differ(kfile, kres.vh, &first);
    ok(nk >= 0 && d == 0, "%s, the kernel run's environment reopened: %d keys, as the run saw them", label, nk);
    d = keys_differ(ufile, kfile, &first);
    ok(nu >= 0 && d == 0,
       "%s, the libumm run's environment reopened on the kernel's mmap: %d keys differ from the kernel run's (%d keys "
       "there, %d here)%s",
       label, d, nk, nu, nu < 0 ? " (it does not open or read)" : "");
    if (d)
        tap_diag("the first differing key: %u", first);
    remove_env(kdir);
    remove_env(udir);
}

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--txns") == 0 && i + 1 < argc)
            ntxns = atoi(argv[++i]);
    if (ntxns < 150)
        ntxns = 150;

    dl_iterate_phdr(find_lmdb, NULL);
    if (!lmdb_hi)
        tap_bail("liblmdb is not among the loaded objects");
    int major, minor, patch;
    tap_diag("%s, %d write transactions", mdb_version(&major, &minor, &patch), ntxns);

    model = mmap(NULL, sizeof *model, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    res = mmap(NULL, sizeof *res, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (model == MAP_FAILED || res == MAP_FAILED)
        tap_bail("mmap: %s", strerror(errno));

    const char *tmp = getenv("UMM_TEST_TMPDIR");
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s/lmdb.XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(dir))
        tap_bail("mkdtemp %s: %s", dir, strerror(errno));
    if (!realpath(dir, envroot))
        tap_bail("realpath %s: %s", dir, strerror(errno));
    strcat(envroot, "/");
    envroot_len = strlen(envroot);

    one_mode(dir, 0, "default flags (MDB_NOSYNC)");
    one_mode(dir, MDB_WRITEMAP, "MDB_WRITEMAP (MDB_NOSYNC)");

    rmdir(dir);
    munmap(model, sizeof *model);
    munmap(res, sizeof *res);
    return tap_done();
}
#endif
