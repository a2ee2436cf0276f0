/*
 * pagecache.c: one object per file, so that every mapping of a file sees
 * the same frames.
 *
 * An object is found by (device, inode) and holds its own open file (a
 * reopened descriptor, so the program may close or unlink its own, and so
 * that O_APPEND on the program's descriptor cannot redirect write-back).  A
 * file page lives at a fixed frame: the object places runs of the file
 * ("extents") contiguously in RAM when a mapping first covers them.  A
 * frame's descriptor says whether it holds the file's bytes (UPTODATE) and
 * whether it was written since (DIRTY).
 *
 * Dirty tracking is by write protection: a clean page is installed
 * read-only even in a writable shared mapping, and the first write traps
 * (fault.c) and marks it dirty.  Write-back write-protects a page in every
 * mapping of the object (the reverse map) before it clears DIRTY and
 * writes the bytes, so a later write is caught again.  Only dirty pages are
 * written, and never past the end of the file.
 *
 * Object lists and extents change only with umm__mm.lock held for writing;
 * faults (lock held for reading) only read them.
 *
 * Every process forked from the program shares one page cache, as under the
 * kernel: the extents of files are listed in an index in shared memory
 * (below), and a process that needs frames for file pages first adopts the
 * extent another process of the family placed there, so that a file mapped
 * anew after the fork, by either side, still shows the same frames.  The
 * objects themselves (open file, list of extents, reverse map) are each
 * process's own.
 */
#include "umm-int.h"
#include "vg.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

/* Open the file behind fd anew, with the same access, no O_APPEND. */
static int reopen_file(int fd, int *writable)
{
    int fl = umm__sys_fcntl(fd, F_GETFL, 0);
    if (fl < 0)
        return -1;
    int mode = fl & O_ACCMODE;
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    int nfd = umm__sys_open(path, (mode == O_RDWR ? O_RDWR : O_RDONLY) | O_CLOEXEC | O_NOCTTY, 0);
    if (nfd >= 0) {
        *writable = mode == O_RDWR;
        return nfd;
    }
    /* An append-only file (chattr +a) opens for writing only with
     * O_APPEND, which write-back cannot use; but nothing is written back
     * to it: the kernel maps it shared and writable for nobody. */
    if (mode == O_RDWR && errno == EPERM && (fl & O_APPEND)) {
        *writable = 0;
        return umm__sys_open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY, 0);
    }
    if (fl & O_APPEND)
        return -1;
    nfd = umm__sys_fcntl(fd, F_DUPFD_CLOEXEC, 0); /* no /proc: share the program's */
    *writable = nfd >= 0 && mode == O_RDWR;
    return nfd;
}

/* ... as a descriptor of libumm's own, which the program's closefrom(3)
 * leaves alone (fdtable.c): write-back must not reach another file that
 * took its number. */
static int reopen(int fd, int *writable)
{
    int nfd = reopen_file(fd, writable);
    return nfd >= 0 ? umm__fd_own(nfd) : nfd;
}

/* ------------------------------------------- the family's extent index */

/*
 * A hash table in shared memory, from (device, inode) to the extents of
 * that file, under one lock (a futex shared by the family).  Entries are
 * added when a process places an extent, found when another needs the same
 * pages, and removed by whichever process lets go of the extent last (all
 * under the lock, so nobody adopts an extent being freed).  The table is
 * reserved large (NORESERVE: memory only for the entries used); should it
 * fill, new extents are simply not listed, and only their own process sees
 * them (as README "fork" says of that case).
 */
#define IDX_BUCKETS 65536u
#define IDX_ENTRIES ((uint64_t)1 << 20)
/* Extents the index holds: a live extent holds at least one chunk of 16
 * frames (frame.c), so no more than the frame space has chunks (under
 * RLIMIT_AS, where the table counts against the limit, that is few). */
static uint64_t idx_entries;

struct idx_entry {
    uint64_t next;           /* index + 1 of the next in the bucket; 0: none */
    uint64_t dev, ino;
    uint64_t fpage, npages;
    umm__pfn base;
};

struct idx {
    _Atomic uint32_t lock;
    _Atomic uint64_t size_gen; /* shrinks of files in the family: umm__object_filepages_hint */
    uint64_t used;           /* entries ever handed out */
    uint64_t free;           /* index + 1 of a free entry (a list) */
    uint64_t bucket[IDX_BUCKETS];
    struct idx_entry ent[];
};

static struct idx *idx;
static _Atomic uint64_t nfiles; /* file objects of this process (fileio.c's quick check) */
#define CACHED_SLOTS 4096
static _Atomic uint32_t cached_slot[CACHED_SLOTS]; /* umm__pagecache_maybe */
static void pagecache_count_file(const struct umm__object *obj, int delta);

int umm__pagecache_init(void)
{
    idx_entries = umm__ram.npages / 16 < IDX_ENTRIES ? umm__ram.npages / 16 + 1 : IDX_ENTRIES;
    size_t len = sizeof(struct idx) + idx_entries * sizeof(struct idx_entry);
    void *m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (m == MAP_FAILED)
        return -1;
    idx = m;
    umm__vg_racy(&idx->lock, sizeof idx->lock); /* a lock word: vg.h */
    /* Read without the lock on purpose by fileio.c's quick check. */
    umm__vg_racy(&idx->used, sizeof idx->used);
    umm__vg_racy(&nfiles, sizeof nfiles);
    umm__vg_racy(cached_slot, sizeof cached_slot);
    return 0;
}

static uint64_t *idx_bucket(uint64_t dev, uint64_t ino)
{
    uint64_t h = (dev * 0x9e3779b97f4a7c15ull) ^ (ino * 0xc2b2ae3d27d4eb4full);
    return &idx->bucket[(h >> 32) % IDX_BUCKETS];
}

static void idx_lock(void)
{
    umm__bitlock(&idx->lock, 1);
}

static void idx_unlock(void)
{
    umm__bitunlock(&idx->lock, 1);
}

/* The extent of obj's file that holds fpage, or NULL; in *next_start the
 * first page of the next extent after fpage (UINT64_MAX: none).  Locked. */
static struct idx_entry *idx_find(const struct umm__object *obj, uint64_t fpage, uint64_t *next_start)
{
    *next_start = UINT64_MAX;
    for (uint64_t i = *idx_bucket(obj->dev, obj->ino); i; i = idx->ent[i - 1].next) {
        struct idx_entry *e = &idx->ent[i - 1];
        if (e->dev != (uint64_t)obj->dev || e->ino != (uint64_t)obj->ino)
            continue;
        if (fpage >= e->fpage && fpage < e->fpage + e->npages)
            return e;
        if (e->fpage > fpage && e->fpage < *next_start)
            *next_start = e->fpage;
    }
    return NULL;
}

static void idx_add(const struct umm__object *obj, const struct umm__extent *x)
{
    uint64_t i;
    if (idx->free) {
        i = idx->free;
        idx->free = idx->ent[i - 1].next;
    } else if (idx->used < idx_entries) {
        i = ++idx->used;
    } else {
        return; /* full: this extent is this process's alone */
    }
    uint64_t *b = idx_bucket(obj->dev, obj->ino);
    idx->ent[i - 1] = (struct idx_entry){ *b, obj->dev, obj->ino, x->fpage, x->npages, x->base };
    *b = i;
}

static void idx_remove(const struct umm__object *obj, const struct umm__extent *x)
{
    for (uint64_t *pp = idx_bucket(obj->dev, obj->ino); *pp; pp = &idx->ent[*pp - 1].next) {
        struct idx_entry *e = &idx->ent[*pp - 1];
        if (e->base == x->base && e->dev == (uint64_t)obj->dev && e->ino == (uint64_t)obj->ino) {
            uint64_t i = *pp;
            *pp = e->next;
            e->next = idx->free;
            idx->free = i;
            return;
        }
    }
}

/* ------------------------------------------------------------ extents */

static int extent_insert(struct umm__object *obj, uint64_t fpage, uint64_t npages, umm__pfn base)
{
    if (obj->nex == obj->capex) {
        size_t cap = obj->capex ? obj->capex * 2 : 4;
        struct umm__extent *e = umm__krealloc(obj->ext, obj->capex * sizeof *e, cap * sizeof *e);
        if (!e)
            return -1;
        obj->ext = e;
        obj->capex = cap;
    }
    size_t i = 0;
    while (i < obj->nex && obj->ext[i].fpage < fpage)
        i++;
    memmove(&obj->ext[i + 1], &obj->ext[i], (obj->nex - i) * sizeof obj->ext[0]);
    obj->ext[i] = (struct umm__extent){ .fpage = fpage, .npages = npages, .base = base };
    obj->nex++;
    return 0;
}

/* Does [fpage, fpage+n) meet one of obj's extents? */
static int overlaps(const struct umm__object *obj, uint64_t fpage, uint64_t n)
{
    for (size_t k = 0; k < obj->nex; k++)
        if (obj->ext[k].fpage < fpage + n && fpage < obj->ext[k].fpage + obj->ext[k].npages)
            return 1;
    return 0;
}

/* Place frames for page p (not covered by obj) and as many after it as
 * [p, end) allows: adopt the family's extent there, or place a new one up
 * to the next extent (obj's or the family's).  Index locked for files.
 * A new extent of a file placed with host (zero-copy) stands for the
 * host's page cache: its chunks are marked zero-copy (frame.c) and mappings map
 * the file itself there (vma.c).  An adopted extent keeps its kind: every
 * mapping in the family of a file page sees the one place its bytes live,
 * whichever way each mapping asked. */
static int extent_place(struct umm__object *obj, uint64_t p, uint64_t end, int host)
{
    uint64_t gap_end = end;
    for (size_t k = 0; k < obj->nex; k++)
        if (obj->ext[k].fpage > p && obj->ext[k].fpage < gap_end)
            gap_end = obj->ext[k].fpage;
    int listed = !obj->anon && !obj->pager; /* pager: its process's own, as shared anon (pager.c) */
    if (listed) {
        uint64_t next;
        struct idx_entry *e = idx_find(obj, p, &next);
        if (e && !overlaps(obj, e->fpage, e->npages)) { /* another process placed it: share it */
            if (extent_insert(obj, e->fpage, e->npages, e->base) != 0)
                return -1;
            umm__ram_pin(e->base, e->npages);
            return 0;
        }
        if (e) /* only after the index was full: keep this one to ourselves */
            listed = 0;
        else if (next < gap_end)
            gap_end = next;
    }
    umm__pfn base;
    /* A file's frames are filled before anything reads them; shared
     * anonymous memory and a pager's (which may map a page it never
     * filled) must read zeros. */
    int filled = !obj->anon && !obj->pager;
    if ((filled ? umm__ram_alloc_filled : umm__ram_alloc)(gap_end - p, &base) != 0)
        return -1;
    if (filled && host) /* before anybody can find it */
        umm__ram_host_set(base, gap_end - p);
    if (extent_insert(obj, p, gap_end - p, base) != 0) {
        umm__ram_unpin(base, gap_end - p, 1);
        return -1;
    }
    if (listed)
        idx_add(obj, &obj->ext[umm__extent_index(obj, p)]);
    return 0;
}

/* Let go of extent x of obj: the last process of the family to hold it
 * scrubs and frees its frames, and takes it out of the index. */
void umm__extent_release(struct umm__object *obj, struct umm__extent *x)
{
    if (obj->anon || obj->pager) {
        umm__ram_unpin(x->base, x->npages, 1);
        return;
    }
    idx_lock();
    if (umm__ram_unpin(x->base, x->npages, 1) == 0)
        idx_remove(obj, x);
    idx_unlock();
}

/* Place frames for every page of [fpage, fpage+npages) not placed yet
 * (zero-copy extents with host, extent_place). */
int umm__object_cover(struct umm__object *obj, uint64_t fpage, uint64_t npages, int host)
{
    uint64_t p = fpage, end = fpage + npages;
    int rc = 0, listed = !obj->anon && !obj->pager;
    if (listed)
        idx_lock();
    while (p < end) {
        int i = umm__extent_index(obj, p);
        if (i >= 0) {
            p = obj->ext[i].fpage + obj->ext[i].npages;
            continue;
        }
        if (extent_place(obj, p, end, host) != 0) {
            rc = -1;
            break;
        }
    }
    if (listed)
        idx_unlock();
    return rc;
}

/* Let go of obj's frames (the last process holding an extent scrubs and
 * frees it: after fork, parent and child hold the same ones), close it,
 * free it. */
static void object_free(struct umm__object *obj)
{
    umm__ram_batch_begin(); /* neighbouring extents punched as one (frame.c) */
    for (size_t i = 0; i < obj->nex; i++)
        umm__extent_release(obj, &obj->ext[i]);
    umm__ram_batch_end();
    umm__kfree(obj->ext, obj->capex * sizeof *obj->ext);
    if (obj->fd >= 0)
        umm__file_close(obj->fd, obj->fd_writable, obj->dev, obj->ino);
    if (obj->pager) { /* pager.c: the program's release, once written back */
        umm__pager_release(obj->pager);
        umm__kfree(obj->pager, sizeof *obj->pager);
    }
    umm__kfree(obj, sizeof *obj);
}

/* Where the file's first hole starts (its size if it has none), so that
 * the blocks before it need no reservation (umm__object_reserve).  The
 * descriptor's offset is put back: it may be the program's (reopen). */
static uint64_t first_hole(int fd, uint64_t size)
{
    off_t cur = lseek(fd, 0, SEEK_CUR);
    off_t h = lseek(fd, 0, SEEK_HOLE);
    if (cur >= 0)
        lseek(fd, cur, SEEK_SET);
    return h < 0 ? 0 : (uint64_t)h < size ? (uint64_t)h : size;
}

/* The end of umm__object_get and umm__object_pager: frames for
 * [fpage, fpage+npages), a reference, and a new object into the lists
 * (a file's into fileio.c's count too).  On failure a new object is freed. */
static struct umm__object *object_take(struct umm__object *obj, int created, uint64_t fpage, uint64_t npages,
                                       int host, int *err)
{
    if (umm__object_cover(obj, fpage, npages, host) != 0) {
        *err = ENOMEM;
        if (created)
            object_free(obj);
        return NULL;
    }
    obj->refs++;
    if (created) {
        obj->next = umm__mm.objects;
        umm__mm.objects = obj;
        atomic_fetch_add(&umm__mm.nobjects, 1);
        if (!obj->anon && !obj->pager)
            pagecache_count_file(obj, 1);
    }
    return obj;
}

/* Fields faults read and write without a lock, on purpose (a lost update
 * is harmless): told to helgrind and drd (vg.h). */
static void object_racy(struct umm__object *obj)
{
    umm__vg_racy(&obj->mmap_miss, sizeof obj->mmap_miss);
    umm__vg_racy(&obj->size_seen, sizeof obj->size_seen);
    umm__vg_racy(&obj->size_gen, sizeof obj->size_gen);
}

/*
 * Find or create the object for fd (or a new anonymous one), take a
 * reference, and place frames for [fpage, fpage+npages).  On failure
 * returns NULL with the errno in *err.
 */
struct umm__object *umm__object_get(int fd, int anon, uint64_t fpage, uint64_t npages, int host, int *err)
{
    struct umm__object *obj = NULL;
    struct stat st = { 0 };
    if (!anon) {
        if (fstat(fd, &st) != 0) {
            *err = errno;
            return NULL;
        }
        for (obj = umm__mm.objects; obj; obj = obj->next)
            if (!obj->anon && !obj->pager && obj->dev == st.st_dev && obj->ino == st.st_ino)
                break;
    }
    int created = 0;
    if (!obj) {
        obj = umm__kalloc(sizeof *obj);
        if (!obj) {
            *err = ENOMEM;
            return NULL;
        }
        obj->fd = -1;
        obj->anon = anon;
        obj->anon_pages = fpage + npages;
        obj->dev = st.st_dev;
        obj->ino = st.st_ino;
        /* A descriptor kept open for a lock (locks.c) serves again. */
        if (!anon)
            obj->fd = umm__file_unpark(st.st_dev, st.st_ino, (umm__sys_fcntl(fd, F_GETFL, 0) & O_ACCMODE) == O_RDWR,
                                       &obj->fd_writable);
        if (!anon && obj->fd < 0 && (obj->fd = reopen(fd, &obj->fd_writable)) < 0) {
            *err = errno;
            umm__kfree(obj, sizeof *obj);
            return NULL;
        }
        if (!anon)
            atomic_store(&obj->hole_from, first_hole(obj->fd, (uint64_t)st.st_size));
        object_racy(obj);
        created = 1;
    } else if (!obj->fd_writable && (umm__sys_fcntl(fd, F_GETFL, 0) & O_ACCMODE) == O_RDWR) {
        /* A writable descriptor arrived: write-back may now be needed. */
        int w, nfd = reopen(fd, &w);
        if (nfd >= 0 && w) {
            umm__file_close(obj->fd, 0, obj->dev, obj->ino);
            obj->fd = nfd;
            obj->fd_writable = 1;
        } else if (nfd >= 0) {
            umm__file_close(nfd, 0, obj->dev, obj->ino);
        }
    }
    return object_take(obj, created, fpage, npages, host && !anon, err);
}

/* ------------------------------------------------- the program's pagers */

/* An object whose I/O goes to the program's pager (pager.c) instead of a
 * file: no descriptor, not in the family's index nor in fileio.c's view
 * (no file has its bytes); found again by its ops and cookie, so mappings
 * of one store share frames as mappings of one file do.  Otherwise a file
 * object: dirty tracking, write-back, reclaim (dirty pages written back
 * through the pager, clean ones dropped) all as for files. */
struct umm__object *umm__object_pager(const struct umm_pager_ops *ops, void *cookie, uint64_t fpage,
                                      uint64_t npages, int *err)
{
    struct umm__object *obj;
    for (obj = umm__mm.objects; obj; obj = obj->next)
        if (obj->pager && obj->pager->cookie == cookie && obj->pager->ops.fill == ops->fill)
            break;
    int created = !obj;
    if (created) {
        obj = umm__kalloc(sizeof *obj);
        struct umm__pager *pg = obj ? umm__kalloc(sizeof *pg) : NULL;
        if (!pg) {
            if (obj)
                umm__kfree(obj, sizeof *obj);
            *err = ENOMEM;
            return NULL;
        }
        pg->ops = *ops;
        pg->cookie = cookie;
        pg->owner = umm__mm.pid;
        umm__pager_resize(pg);
        obj->pager = pg;
        obj->fd = -1;
        obj->dev = (dev_t)-1;
        obj->ino = (ino_t)(uintptr_t)cookie;
        obj->fd_writable = 0; /* no blocks to reserve: umm__object_reserve has nothing to do */
        atomic_store(&obj->hole_from, UINT64_MAX);
        object_racy(obj);
    }
    return object_take(obj, created, fpage, npages, 0, err);
}

/* Drop a reference; the last one writes back, frees the frames and closes. */
void umm__object_put(struct umm__object *obj)
{
    umm__assert(obj->refs > 0);
    if (--obj->refs > 0)
        return;
    umm__assert(obj->rmap == NULL);
    umm__object_writeback_all(obj, 0);
    struct umm__object **pp = &umm__mm.objects;
    while (*pp != obj)
        pp = &(*pp)->next;
    *pp = obj->next;
    atomic_fetch_sub(&umm__mm.nobjects, 1);
    if (!obj->anon && !obj->pager)
        pagecache_count_file(obj, -1);
    object_free(obj);
}

/* Might a page of obj be dirty?  Before fork ndirty says exactly; after
 * it, pages may be dirtied by another process, which counts them in its
 * own copy of the object. */
int umm__object_may_be_dirty(const struct umm__object *obj)
{
    return umm__mm.forked || atomic_load(&obj->ndirty) > 0;
}

/* Pages of the file now, rounded up; the size in bytes in *size_out. */
uint64_t umm__object_filepages(struct umm__object *obj, uint64_t *size_out)
{
    struct stat st;
    if (obj->anon) {
        /* The kernel's shared anonymous memory is a file of the size first
         * mapped: pages that mremap grows past it raise SIGBUS. */
        *size_out = obj->anon_pages << UMM_PAGE_SHIFT;
        return obj->anon_pages;
    }
    if (obj->pager) { /* pager.c: what ops.size said, no system call */
        *size_out = obj->pager->size;
        return (obj->pager->size + UMM_PAGE_SIZE - 1) >> UMM_PAGE_SHIFT;
    }
    if (fstat(obj->fd, &st) != 0)
        st.st_size = 0;
    *size_out = (uint64_t)st.st_size;
    /* The file shrank (it may grow back with holes): no block past the
     * new end is known to be there any more. */
    uint64_t h = atomic_load_explicit(&obj->hole_from, memory_order_relaxed);
    while ((uint64_t)st.st_size < h &&
           !atomic_compare_exchange_weak(&obj->hole_from, &h, (uint64_t)st.st_size))
        ;
    return ((uint64_t)st.st_size + UMM_PAGE_SIZE - 1) >> UMM_PAGE_SHIFT;
}

/*
 * The fault path's end of file, without an fstat per fault.  A size seen
 * stays good while no process of the family shrank a file (fileio.c bumps
 * the family's generation after every truncation), and is used only as far
 * as it is safe: a page at or past it asks the file again (it may have
 * grown), and a read of the file shorter than it says forgets it
 * (umm__object_read: shrunk by a writer outside the family).  The
 * generation is read before the fstat, so a shrink between the two leaves
 * the size stale and unused.
 */
uint64_t umm__object_filepages_hint(struct umm__object *obj, uint64_t *size_out)
{
    if (obj->pager) /* pager.c: what its size callback said, no system call */
        return umm__object_filepages(obj, size_out);
    if (!obj->anon) {
        uint64_t g = atomic_load_explicit(&obj->size_gen, memory_order_acquire);
        if (g != 0 && g == atomic_load_explicit(&idx->size_gen, memory_order_acquire) + 1) {
            *size_out = atomic_load_explicit(&obj->size_seen, memory_order_relaxed);
            return (*size_out + UMM_PAGE_SIZE - 1) >> UMM_PAGE_SHIFT;
        }
    }
    uint64_t g = atomic_load_explicit(&idx->size_gen, memory_order_acquire);
    uint64_t pages = umm__object_filepages(obj, size_out);
    if (!obj->anon) {
        atomic_store_explicit(&obj->size_seen, *size_out, memory_order_relaxed);
        atomic_store_explicit(&obj->size_gen, g + 1, memory_order_release);
    }
    return pages;
}

void umm__pagecache_size_changed(void)
{
    if (idx)
        atomic_fetch_add_explicit(&idx->size_gen, 1, memory_order_acq_rel);
}

/*
 * Read [fpage, fpage+n) of the file into its frames, which the caller has
 * locked and which lie in one extent.  Bytes past fsize are zeros.  One
 * pread for the whole run.  Returns 0 or an errno.
 */
int umm__object_read(struct umm__object *obj, uint64_t fpage, uint64_t n, uint64_t fsize)
{
    /* Zero-copy: the frames are the host's pages of the file; the host
     * reads them when the mapping is populated or touched. */
    if (umm__frame_host(umm__object_pfn(obj, fpage)))
        return 0;
    /* One pread for the whole run (a piece at a time through kmap
     * windows, frame.c). */
    for (uint64_t done = 0, k; done < n; done += k) {
        k = umm__kmap_span(n - done);
        char *dst = umm__kmap(umm__object_pfn(obj, fpage + done), k);
        uint64_t off = (fpage + done) << UMM_PAGE_SHIFT, len = k << UMM_PAGE_SHIFT, got = 0;
        /* Have the host allocate the frames in one call, not one fault each
         * (one page: the pread's own fault is cheaper than the call), unless
         * they came from the pool with their host pages (frame.c). */
        umm__vg_defined(dst, len);
        if (k > 1 && !umm__ram_warm(umm__object_pfn(obj, fpage + done), k))
            madvise(dst, len, 23 /* MADV_POPULATE_WRITE */);
        /* The whole run is asked for: fsize may be a size seen earlier
         * (umm__object_filepages_hint), and a file grown since gives its
         * bytes; at the end the kernel stops short, and zeros follow. */
        uint64_t want = len, expect = fsize > off ? fsize - off : 0;
        if (obj->pager) { /* pager.c: the program's fill, on the pager thread */
            uint64_t w = expect < len ? expect : len;
            int e = umm__pager_fill(obj->pager, off, dst, w);
            if (!e)
                memset(dst + w, 0, len - w);
            umm__vg_noaccess(dst, len);
            umm__kunmap(dst, k);
            if (e)
                return e;
            continue;
        }
        while (got < want) {
            ssize_t r = umm__sys_pread(obj->fd, dst + got, want - got, (off_t)(off + got));
            if (r < 0 && errno == EINTR)
                continue;
            if (r < 0) {
                int err = errno;
                umm__vg_noaccess(dst, len);
                umm__kunmap(dst, k);
                return err;
            }
            got += (uint64_t)r;
            if (r == 0 || (got >= expect && got < want))
                break; /* the end of the file: no second call to hear 0 */
        }
        if (got < expect && got < want)
            atomic_store(&obj->size_gen, 0); /* the file shrank: its size is not known */
        memset(dst + got, 0, len - got);
        umm__vg_noaccess(dst, len);
        umm__kunmap(dst, k);
    }
    return 0;
}

/*
 * Give the file the blocks of page fpage before the page becomes dirty
 * (fallocate, keeping the size), as the kernel's page_mkwrite does: on a
 * full file system the store then fails with SIGBUS, at once, instead of
 * the write-back failing later with nobody to tell.  Nothing to do for a
 * page already dirty or reserved, below the file's first hole, or on a
 * file system that cannot reserve (then write-back is the first to know).
 * Called on the fault path: no malloc, one system call at most.
 */
int umm__object_reserve(struct umm__object *obj, uint64_t fpage, umm__pfn pfn)
{
    struct umm__frame *f = umm__frame(pfn);
    uint64_t off = fpage << UMM_PAGE_SHIFT, fsize;
    if (obj->anon || !obj->fd_writable || (atomic_load(&f->flags) & (UMM__F_DIRTY | UMM__F_BLOCK)) ||
        off + UMM_PAGE_SIZE <= atomic_load_explicit(&obj->hole_from, memory_order_relaxed) ||
        atomic_load_explicit(&obj->no_falloc, memory_order_relaxed))
        return 0;
    umm__object_filepages(obj, &fsize);
    if (off >= fsize)
        return 0; /* nothing of the page is in the file: never written back */
    uint64_t len = fsize - off < UMM_PAGE_SIZE ? fsize - off : UMM_PAGE_SIZE;
    int rc;
    while ((rc = umm__sys_fallocate(obj->fd, FALLOC_FL_KEEP_SIZE, (off_t)off, (off_t)len)) != 0 && errno == EINTR)
        ;
    if (rc == 0) {
        atomic_fetch_or(&f->flags, UMM__F_BLOCK);
        return 0;
    }
    if (errno == ENOSPC || errno == EDQUOT)
        return errno;
    if (errno == EOPNOTSUPP || errno == ENOSYS)
        atomic_store(&obj->no_falloc, 1);
    return 0;
}

/*
 * Write [off, off+len) of the file from src through a mapping of the file
 * itself: a store into the host's page cache is not a write(2), so the
 * program's RLIMIT_FSIZE (which a write at or past it would meet, with
 * SIGXFSZ) does not apply, as it does not to the kernel's own write-back.
 * The range lies inside the file.
 */
static int write_mapped(struct umm__object *obj, const char *src, uint64_t off, uint64_t len)
{
    uint64_t start = off & ~(uint64_t)(UMM_PAGE_SIZE - 1), span = off + len - start;
    char *m = mmap(NULL, span, PROT_READ | PROT_WRITE, MAP_SHARED, obj->fd, (off_t)start);
    if (m == MAP_FAILED)
        return errno;
    memcpy(m + (off - start), src, len);
    munmap(m, span);
    return 0;
}

static int write_piece(struct umm__object *obj, uint64_t fpage, uint64_t n, uint64_t fsize);

/* Write [fpage, fpage+n) back: one pwrite for the run (a piece at a time
 * through kmap windows, frame.c). */
static int write_run(struct umm__object *obj, uint64_t fpage, uint64_t n, uint64_t fsize)
{
    int err = 0;
    for (uint64_t done = 0, k; !err && done < n; done += k) {
        k = umm__kmap_span(n - done);
        err = write_piece(obj, fpage + done, k, fsize);
    }
    return err;
}

static int write_piece(struct umm__object *obj, uint64_t fpage, uint64_t n, uint64_t fsize)
{
    uint64_t off = fpage << UMM_PAGE_SHIFT, len = n << UMM_PAGE_SHIFT, done = 0;
    if (off >= fsize)
        return 0; /* write-back never extends the file */
    if (len > fsize - off)
        len = fsize - off;
    int err = 0;
    if (umm__frame_host(umm__object_pfn(obj, fpage))) {
        /* Zero-copy: the stores went into the host's page cache of the
         * file.  Have the host start writing them (its flusher would, in
         * its own time): write-back here is what reclaim and the flush
         * ask for, and a memory cgroup v1 cannot reclaim dirty pages it
         * has not begun to write (OOM; tests/test-reclaim-cgroup).  The
         * raw call: the C library's is the program's, in front of which
         * fileio.c stands. */
        if (syscall(SYS_sync_file_range, obj->fd, (off_t)off, (off_t)len, SYNC_FILE_RANGE_WRITE) != 0 &&
            errno == EIO)
            return EIO;
        return 0;
    }
    char *src = umm__kmap(umm__object_pfn(obj, fpage), n);
    umm__vg_defined(src, len);
    if (obj->pager) { /* pager.c: the program's write-back, on the pager thread */
        err = umm__pager_write(obj->pager, off, src, len);
        umm__vg_noaccess(src, len);
        umm__kunmap(src, n);
        return err;
    }
    /* What lies at or past the program's file-size limit goes through a
     * mapping (write_mapped); the rest with pwrite. */
    struct rlimit rl;
    if (getrlimit(RLIMIT_FSIZE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY && off + len > rl.rlim_cur) {
        uint64_t below = rl.rlim_cur > off ? rl.rlim_cur - off : 0;
        err = write_mapped(obj, src + below, off + below, len - below);
        len = below;
    }
    while (!err && done < len) {
        ssize_t r = umm__sys_pwrite(obj->fd, src + done, len - done, (off_t)(off + done));
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            err = r < 0 ? errno : EIO;
            break;
        }
        done += (uint64_t)r;
    }
    umm__vg_noaccess(src, len);
    umm__kunmap(src, n);
    return err;
}

/* In a walk over pages [p, end) of obj, at page p (in an extent, frame
 * pfn): the first page at or after p whose descriptor may be nonzero;
 * those in between were never used (their descriptors are holes, frame.c)
 * and are passed over unread.  Inside a stretch known to be used, one
 * comparison. */
static uint64_t skip_unused(struct umm__object *obj, struct umm__fscan *fs, uint64_t p, umm__pfn pfn, uint64_t end)
{
    if (!fs->on || (pfn >= fs->lo && pfn < fs->hi))
        return p;
    return p + (umm__frame_next_used(fs, pfn, pfn + (umm__pfn)umm__object_run(obj, p, end - p)) - pfn);
}

/* Take write permission away from [fpage, fpage+n) in every mapping. */
static void rmap_write_protect(struct umm__object *obj, uint64_t fpage, uint64_t n)
{
    for (struct umm__vma *v = obj->rmap; v; v = v->rnext) {
        uint64_t vs = v->fpage, ve = v->fpage + umm__vma_pages(v);
        uint64_t a = fpage > vs ? fpage : vs, b = fpage + n < ve ? fpage + n : ve;
        if (a >= b)
            continue;
        int changed = 0;
        struct umm__kscan ks;
        umm__kscan_begin(&ks, (b - a) * sizeof(struct umm__pte));
        for (uint64_t q = a; q < b; q++) {
            if (q == a || umm__pte_page_start(v, q - vs)) { /* entries never written: not writable */
                q = vs + umm__pte_next(v, q - vs, b - vs, &ks);
                if (q == b)
                    break;
            }
            struct umm__pte *pte = umm__vma_pte(v, q - vs);
            uint32_t f = atomic_load(&pte->flags);
            if ((f & UMM__P_WRITE) && !(f & UMM__P_ANON)) {
                umm__mc_update(v, q - vs, q - vs + 1, 0, UMM__P_WRITE, UMM__MC_NOLIMIT);
                changed = 1;
            }
        }
        umm__kscan_end(&ks);
        if (changed)
            umm__vma_reprotect(v, a - vs, b - vs);
    }
}

/*
 * Letting the address-space lock go for I/O (UMM__WB_UNLOCK).  The object
 * is held by a reference meanwhile; the frames being written are pinned
 * (reclaim leaves them) and marked F_WRITEBACK, which another write-back
 * of the same pages waits for (an msync(MS_SYNC) must not return before
 * bytes another thread is still writing are in the file) and a truncation
 * waits for through wb_inflight (umm__object_writeback_quiesce), so that no
 * pwrite lands past a new end of the file.  io_relock returns 0 when the
 * object went meanwhile (its last mapping unmapped): it has been put.
 */
static int wb_out; /* holds of write-backs outside the lock, all objects (under the lock) */

static void io_unlock(struct umm__object *obj, int inflight)
{
    obj->refs++;
    obj->wb_holds++;
    wb_out++;
    if (inflight)
        atomic_fetch_add(&obj->wb_inflight, 1);
    pthread_rwlock_unlock(&umm__mm.lock);
}

static int io_relock(struct umm__object *obj, int inflight)
{
    if (inflight)
        atomic_fetch_sub(&obj->wb_inflight, 1);
    pthread_rwlock_wrlock(&umm__mm.lock);
    obj->wb_holds--;
    wb_out--;
    if (obj->refs == 1) {
        umm__object_put(obj);
        return 0;
    }
    obj->refs--;
    return 1;
}

/* Frames under write-back are waited for, with a back-off; not forever:
 * a process of the family killed by SIGKILL in the middle of its pwrite
 * would leave the mark behind.  After about 10 s the page is taken as not
 * under write-back (at worst its bytes are written twice). */
static int io_wait(umm__pfn pfn)
{
    long ns = 20000, waited = 0;
    while (atomic_load(&umm__frame(pfn)->flags) & UMM__F_WRITEBACK) {
        if (waited > 10L * 1000 * 1000 * 1000) {
            atomic_fetch_and(&umm__frame(pfn)->flags, ~UMM__F_WRITEBACK);
            break;
        }
        struct timespec ts = { 0, ns };
        nanosleep(&ts, NULL);
        waited += ns;
        if (ns < 1000000)
            ns *= 2;
    }
    return 1;
}

/* Wait until frame pfn is no longer under write-back.  Returns 0 if obj
 * went meanwhile (UMM__WB_UNLOCK only). */
static int wait_writeback(struct umm__object *obj, umm__pfn pfn, int how)
{
    if (!(how & UMM__WB_UNLOCK))
        return io_wait(pfn); /* the writer needs no lock to finish: it clears the mark first */
    io_unlock(obj, 0);
    io_wait(pfn);
    return io_relock(obj, 0);
}

void umm__object_writeback_quiesce(struct umm__object *obj)
{
    while (obj && atomic_load(&obj->wb_inflight) != 0) {
        struct timespec ts = { 0, 50000 };
        nanosleep(&ts, NULL);
    }
}

/*
 * Called by munmap with umm__mm.lock held for writing.  An object whose
 * last mapping it removed may still be held by a write-back that another
 * thread (the daemon's flush, an msync) is doing outside the lock; that
 * thread frees it, and its frames, when it takes the lock again.  munmap
 * waits for that, so that when it returns the frames of what it unmapped
 * are back (umm_stats, the memory budget) as without the other thread.
 * Under the lock, a holder other than a mapping is one outside it
 * (wb_holds), or one that took it again and is finishing, which only
 * happens while this thread waits.
 */
void umm__object_wait_unmapped(void)
{
    while (wb_out > 0) { /* none outside: nothing to walk (most munmaps) */
        int held = 0;
        for (struct umm__object *obj = umm__mm.objects; obj && !held; obj = obj->next)
            held = obj->rmap == NULL && obj->wb_holds > 0;
        if (!held)
            return;
        pthread_rwlock_unlock(&umm__mm.lock);
        struct timespec ts = { 0, 50000 };
        nanosleep(&ts, NULL);
        pthread_rwlock_wrlock(&umm__mm.lock);
    }
}

/* In a forked child: the threads that were writing outside the lock are
 * not there; their holds on the objects go. */
void umm__object_fork_child(void)
{
    for (struct umm__object *obj = umm__mm.objects, *next; obj; obj = next) {
        next = obj->next;
        atomic_store(&obj->wb_inflight, 0);
        wb_out -= obj->wb_holds;
        obj->refs -= obj->wb_holds - 1; /* one kept, for the put */
        obj->wb_holds = 0;
        umm__object_put(obj);
    }
}

/*
 * Write back the dirty pages of [fpage, fpage+n): write-protect them in
 * every mapping, clear DIRTY, write runs of them with one pwrite each, and
 * with UMM__WB_SYNC, fdatasync.  A page whose write fails stays dirty.
 * Called with umm__mm.lock held for writing (let go around the pwrites
 * with UMM__WB_UNLOCK, see umm-int.h).  Returns 0 or the first errno.
 */
int umm__object_writeback(struct umm__object *obj, uint64_t fpage, uint64_t n, int how)
{
    if (obj->anon || !umm__object_may_be_dirty(obj))
        return 0;
    uint64_t fsize;
    umm__object_filepages(obj, &fsize);
    int err = 0, wrote = 0;
    uint64_t p = fpage, end = fpage + n;
    struct umm__fscan fs;
    umm__fscan_begin(&fs, n);
    while (p < end) {
        if (umm__extent_index(obj, p) < 0) {
            p++;
            continue;
        }
        umm__pfn pfn = umm__object_pfn(obj, p);
        uint64_t used = skip_unused(obj, &fs, p, pfn, end);
        if (used > p) { /* descriptors never written: nothing dirty there */
            p = used;
            continue;
        }
        uint32_t fl = atomic_load(&umm__frame(pfn)->flags);
        if (fl & UMM__F_WRITEBACK) {
            if (!wait_writeback(obj, pfn, how))
                return err;
            if (how & UMM__WB_UNLOCK)
                umm__object_filepages(obj, &fsize); /* it may have changed */
            continue; /* this page again: its extent may be another now */
        }
        if (!(fl & UMM__F_DIRTY)) {
            p++;
            continue;
        }
        /* A run of dirty pages contiguous in RAM. */
        uint64_t max = umm__object_run(obj, p, end - p), k = 1;
        while (k < max && (atomic_load(&umm__frame(pfn + (umm__pfn)k)->flags) & (UMM__F_DIRTY | UMM__F_WRITEBACK)) ==
                              UMM__F_DIRTY)
            k++;
        rmap_write_protect(obj, p, k);
        /* Clean now, unless another process (after fork) can still write
         * it without a fault: then it stays dirty for that one's write-back
         * too, and its bytes go out now all the same.  Under the frame's
         * lock, as fault.c marks it dirty and counts a writer. */
        uint64_t cleaned = 0;
        for (uint64_t i = 0; i < k; i++) {
            umm__pfn q = pfn + (umm__pfn)i;
            umm__frame_lock(q);
            if ((atomic_load(&umm__frame(q)->flags) & (UMM__F_DIRTY | UMM__F_WRITEBACK)) != UMM__F_DIRTY) {
                /* Reclaim wrote it back meanwhile (or another process
                 * of the family is writing it): the run ends here. */
                umm__frame_unlock(q);
                k = i;
                break;
            }
            /* A forked copy of a pager writes to its own copy of the store:
             * the page stays dirty for its owner's (pager.c). */
            if (atomic_load(&umm__frame(q)->ref) == 0 && !umm__pager_foreign(obj)) {
                atomic_fetch_and(&umm__frame(q)->flags, ~UMM__F_DIRTY);
                cleaned++;
            }
            /* Pinned while the pwrite reads it: clean now, reclaim would
             * otherwise give its memory back and zeros would be written. */
            atomic_fetch_or(&umm__frame(q)->flags, UMM__F_WRITEBACK);
            umm__frame_pin(q);
            umm__frame_unlock(q);
        }
        if (k == 0) {
            p++;
            continue;
        }
        if (how & UMM__WB_UNLOCK)
            io_unlock(obj, 1);
        /* Zero-copy pages are in the file's page cache already; with
         * UMM__WB_SYNC the fdatasync below writes them, so the per-run
         * start of write-back (write_piece) would be work done twice. */
        int e = (how & UMM__WB_SYNC) && umm__frame_host(pfn) ? 0 : write_run(obj, p, k, fsize);
        if (e) {
            for (uint64_t i = 0; i < k; i++)
                atomic_fetch_or(&umm__frame(pfn + (umm__pfn)i)->flags, UMM__F_DIRTY);
            if (!err)
                err = e;
        } else {
            atomic_fetch_sub(&obj->ndirty, (int64_t)cleaned);
            uint64_t inside = fsize > (p << UMM_PAGE_SHIFT)
                                  ? ((fsize - (p << UMM_PAGE_SHIFT)) + UMM_PAGE_SIZE - 1) >> UMM_PAGE_SHIFT
                                  : 0;
            atomic_fetch_add(&umm__mm.pages_written, inside < k ? inside : k);
            wrote = 1;
        }
        for (uint64_t i = 0; i < k; i++) {
            atomic_fetch_and(&umm__frame(pfn + (umm__pfn)i)->flags, ~UMM__F_WRITEBACK);
            umm__frame_unpin(pfn + (umm__pfn)i);
        }
        if ((how & UMM__WB_UNLOCK) && !io_relock(obj, 1))
            return err;
        if (how & UMM__WB_UNLOCK)
            umm__object_filepages(obj, &fsize);
        p += k;
    }
    if ((how & UMM__WB_SYNC) && wrote && obj->pager) { /* pager.c */
        int e = umm__pager_sync(obj->pager);
        err = err ? err : e;
    } else if ((how & UMM__WB_SYNC) && wrote && umm__sys_fdatasync(obj->fd) != 0 && !err && errno != EINVAL)
        err = errno;
    return err;
}

/*
 * Reclaim (vmscan.c) of frames nobody maps: the dirty ones are written back
 * first (a run with one pwrite), then every one gives its memory back and
 * forgets the file's bytes; the next touch reads them again.  The caller
 * holds the frames' locks, so no fault or file I/O sees them half done.
 */
int umm__object_evict(struct umm__object *obj, uint64_t fpage, uint64_t n, int discard)
{
    umm__pfn pfn = umm__object_pfn(obj, fpage);
    uint64_t fsize = 0, dirty = 0;
    int sized = 0;
    if (umm__pager_foreign(obj)) /* pager.c: dirty pages are for the owner's store */
        for (uint64_t i = 0; i < n; i++)
            if (atomic_load(&umm__frame(pfn + (umm__pfn)i)->flags) & UMM__F_DIRTY)
                return EBUSY;
    for (uint64_t i = 0; i < n;) {
        if (!(atomic_load(&umm__frame(pfn + (umm__pfn)i)->flags) & UMM__F_DIRTY)) {
            i++;
            continue;
        }
        uint64_t k = 1;
        while (i + k < n && (atomic_load(&umm__frame(pfn + (umm__pfn)(i + k))->flags) & UMM__F_DIRTY))
            k++;
        /* The exact size, asked only for a write-back (an fstat: clean
         * pages, the most that reclaim drops, need none). */
        if (!sized++)
            umm__object_filepages(obj, &fsize);
        int e = write_run(obj, fpage + i, k, fsize);
        if (e)
            return e; /* what was written stays dirty: written again later */
        dirty += k;
        i += k;
    }
    for (uint64_t i = 0; i < n; i++) {
        struct umm__frame *fr = umm__frame(pfn + (umm__pfn)i);
        atomic_fetch_and(&fr->flags, ~(UMM__F_UPTODATE | UMM__F_DIRTY));
        atomic_fetch_or(&fr->flags, UMM__F_REFAULT);
    }
    if (dirty) {
        atomic_fetch_sub(&obj->ndirty, (int64_t)dirty);
        atomic_fetch_add(&umm__mm.pages_written, dirty);
    }
    if (discard)
        umm__ram_discard(pfn, n);
    umm__ram_count_cache(pfn, -(int64_t)n);
    return 0;
}

/* Take the clean page-cache pages of [from, to) out of this process's
 * mappings (private copies stay: they are the mappings' own), so that the
 * next touch faults.  The frames stay as they are. */
static void rmap_unmap_clean(struct umm__object *obj, uint64_t from, uint64_t to)
{
    for (struct umm__vma *v = obj->rmap; v; v = v->rnext) {
        uint64_t vs = v->fpage, ve = v->fpage + umm__vma_pages(v);
        uint64_t a = from > vs ? from : vs, b = to < ve ? to : ve;
        int changed = 0;
        struct umm__kscan ks;
        umm__kscan_begin(&ks, (b > a ? b - a : 0) * sizeof(struct umm__pte));
        for (uint64_t p = a; p < b; p++) {
            if (p == a || umm__pte_page_start(v, p - vs)) { /* entries never written: not present */
                p = vs + umm__pte_next(v, p - vs, b - vs, &ks);
                if (p == b)
                    break;
            }
            struct umm__pte *pte = umm__vma_pte(v, p - vs);
            uint32_t pf = atomic_load(&pte->flags);
            if (!(pf & UMM__P_PRESENT) || (pf & UMM__P_ANON))
                continue;
            uint32_t fl = atomic_load(&umm__frame(umm__object_pfn(obj, p))->flags);
            if (!(fl & UMM__F_UPTODATE) || (fl & UMM__F_DIRTY))
                continue;
            umm__mc_update(v, p - vs, p - vs + 1, 0, UMM__P_PRESENT | UMM__P_WRITE, UMM__MC_NOLIMIT);
            atomic_fetch_sub(&umm__mm.resident, 1);
            changed = 1;
        }
        umm__kscan_end(&ks);
        if (changed) /* one mprotect per run, not per page */
            umm__vma_reprotect(v, a - vs, b - vs);
    }
}

/*
 * After fork another process may map a clean page-cache frame, and only
 * its own entries could take it away: dropping the frame would show it
 * zeros.  So there the clean pages are read again from the file in place,
 * which every process sees at once, as it would the file's new bytes.
 * Pages now wholly past the end of the file (it was truncated) are zeroed
 * in place (what the file holds if it grows back) and leave this process's
 * mappings, so that the next touch here raises SIGBUS as the kernel's
 * would; a dirty one is let go first, as truncation discards it, unless
 * another process can still write it without a fault.
 */
static void object_refresh(struct umm__object *obj, uint64_t fpage, uint64_t n)
{
    uint64_t fsize, fpages = umm__object_filepages(obj, &fsize);
    struct umm__fscan fs;
    umm__fscan_begin(&fs, n);
    for (uint64_t p = fpage; p < fpage + n; p++) {
        if (umm__extent_index(obj, p) < 0)
            continue;
        umm__pfn pfn = umm__object_pfn(obj, p);
        uint64_t q = skip_unused(obj, &fs, p, pfn, fpage + n);
        if (q > p) { /* never used: nothing to drop or read again */
            p = q - 1;
            continue;
        }
        struct umm__frame *f = umm__frame(pfn);
        umm__frame_lock(pfn);
        if (p >= fpages && atomic_load(&f->ref) == 0 && (atomic_fetch_and(&f->flags, ~UMM__F_DIRTY) & UMM__F_DIRTY))
            atomic_fetch_sub(&obj->ndirty, 1);
        uint32_t fl = atomic_load(&f->flags);
        /* Not one under write-back: its bytes are not in the file yet. */
        if ((fl & (UMM__F_UPTODATE | UMM__F_DIRTY | UMM__F_WRITEBACK)) == UMM__F_UPTODATE)
            umm__object_read(obj, p, 1, fsize);
        umm__frame_unlock(pfn);
    }
    if (fpage + n > fpages)
        rmap_unmap_clean(obj, fpage > fpages ? fpage : fpages, fpage + n);
}

/*
 * MADV_REMOVE after fork: the file has a hole at [fpage, fpage+n) and every
 * process must see zeros there.  The frames are zeroed in place (another
 * process may map them), and this process's mappings lose write permission
 * so that a later write here is caught as dirty again.  A page stays dirty
 * only while another process can still write it without a fault: the
 * zeros (or what it writes next) then go to the file at the next
 * write-back, which is what the hole holds anyway.
 */
void umm__object_punch(struct umm__object *obj, uint64_t fpage, uint64_t n)
{
    rmap_write_protect(obj, fpage, n);
    struct umm__fscan fs;
    umm__fscan_begin(&fs, n);
    for (uint64_t p = fpage; p < fpage + n; p++) {
        if (umm__extent_index(obj, p) < 0)
            continue;
        umm__pfn pfn = umm__object_pfn(obj, p);
        uint64_t q = skip_unused(obj, &fs, p, pfn, fpage + n);
        if (q > p) { /* never used: zeros, no block, not dirty */
            p = q - 1;
            continue;
        }
        struct umm__frame *f = umm__frame(pfn);
        umm__frame_lock(pfn);
        atomic_fetch_and(&f->flags, ~UMM__F_BLOCK); /* the hole has none */
        if ((atomic_load(&f->flags) & UMM__F_UPTODATE) && !umm__frame_host(pfn)) {
            char *m = umm__kmap(pfn, 1);
            umm__vg_defined(m, UMM_PAGE_SIZE);
            memset(m, 0, UMM_PAGE_SIZE);
            umm__vg_noaccess(m, UMM_PAGE_SIZE);
            umm__kunmap(m, 1);
        }
        if (atomic_load(&f->ref) == 0 && (atomic_fetch_and(&f->flags, ~UMM__F_DIRTY) & UMM__F_DIRTY))
            atomic_fetch_sub(&obj->ndirty, 1);
        umm__frame_unlock(pfn);
    }
}

/*
 * Drop the clean pages of [fpage, fpage+n) from every mapping (private
 * copies stay: they are the mappings' own) and from the cache, so the next
 * touch reads the file again, or zeros for anonymous memory.  Dirty pages
 * stay.  Called with umm__mm.lock held for writing.
 */
void umm__object_drop(struct umm__object *obj, uint64_t fpage, uint64_t n)
{
    if (umm__mm.forked && !obj->anon) {
        object_refresh(obj, fpage, n);
        return;
    }
    rmap_unmap_clean(obj, fpage, fpage + n);
    struct umm__fscan fs;
    umm__fscan_begin(&fs, n);
    for (uint64_t p = fpage; p < fpage + n; p++) {
        if (umm__extent_index(obj, p) < 0)
            continue;
        umm__pfn pfn = umm__object_pfn(obj, p);
        uint64_t q = skip_unused(obj, &fs, p, pfn, fpage + n);
        if (q > p) { /* never used: not up to date */
            p = q - 1;
            continue;
        }
        struct umm__frame *f = umm__frame(pfn);
        uint32_t fl = atomic_load(&f->flags);
        if (!(fl & UMM__F_UPTODATE) || (fl & (UMM__F_DIRTY | UMM__F_WRITEBACK)))
            continue; /* under write-back: the file does not have it yet */
        atomic_fetch_and(&f->flags, ~(UMM__F_UPTODATE | UMM__F_BLOCK));
        umm__ram_count_cache(pfn, -1);
        if (!umm__frame_host(pfn)) /* a zero-copy frame has no memory here */
            umm__ram_discard(pfn, 1);
    }
}

/* msync(MS_INVALIDATE): drop the clean pages so the next touch rereads the
 * file.  Shared anonymous memory has no file: its pages are its contents. */
void umm__object_invalidate(struct umm__object *obj, uint64_t fpage, uint64_t n)
{
    if (obj->pager) /* the store may have changed behind the cache: its size too */
        umm__pager_resize(obj->pager);
    if (!obj->anon) {
        atomic_store(&obj->size_gen, 0); /* the file is asked again, its size too */
        umm__object_drop(obj, fpage, n);
    }
}

/* Write back every dirty page of obj: 0 or the first errno.  With
 * UMM__WB_UNLOCK the caller holds a reference of its own; the extents may
 * change while the lock is let go, so they are walked by file page. */
int umm__object_writeback_all(struct umm__object *obj, int how)
{
    int err = 0;
    uint64_t from = 0;
    for (;;) {
        size_t i = 0;
        while (i < obj->nex && obj->ext[i].fpage + obj->ext[i].npages <= from)
            i++;
        if (i == obj->nex)
            break;
        uint64_t s = obj->ext[i].fpage > from ? obj->ext[i].fpage : from;
        from = obj->ext[i].fpage + obj->ext[i].npages;
        int e = umm__object_writeback(obj, s, from - s, how);
        err = err ? err : e;
    }
    return err;
}

/* Write back every dirty page of every file (msync of everything). */
int umm__writeback_all(int how)
{
    int err = 0;
    if (!(how & UMM__WB_UNLOCK)) {
        for (struct umm__object *obj = umm__mm.objects; obj; obj = obj->next) {
            int e = umm__object_writeback_all(obj, how);
            err = err ? err : e;
        }
        return err;
    }
    /* Each object held while its pages are written, the next one taken
     * before it is let go (the list may change while the lock is not held). */
    struct umm__object *obj = umm__mm.objects;
    if (obj)
        obj->refs++;
    while (obj) {
        int e = umm__object_may_be_dirty(obj) ? umm__object_writeback_all(obj, how) : 0;
        err = err ? err : e;
        struct umm__object *next = obj->next;
        if (next)
            next->refs++;
        umm__object_put(obj);
        obj = next;
    }
    return err;
}

/* A few words for an errno, without strerror (not async-signal-safe). */
static const char *errno_words(int e)
{
    switch (e) {
    case ENOSPC: return "no space left on device";
    case EDQUOT: return "disk quota exceeded";
    case EIO: return "input/output error";
    case EPERM: return "operation not permitted";
    case EROFS: return "read-only file system";
    case EFBIG: return "file too large";
    case EBADF: return "bad file descriptor";
    default: return "error";
    }
}

static void say(const char *s)
{
    (void)!umm__sys_write(2, s, strlen(s));
}

/*
 * Write back every dirty page at exit or on a fatal signal.  No caller is
 * left to return an error to, so a file whose pages did not reach it is
 * named on stderr (the kernel would have kept them in its page cache; here
 * they are lost with the process).  Only async-signal-safe calls.
 */
void umm__writeback_final(void)
{
    for (struct umm__object *obj = umm__mm.objects; obj; obj = obj->next) {
        int err = umm__object_writeback_all(obj, 0);
        if (!err)
            continue;
        char link[64], path[4096], num[24];
        snprintf(link, sizeof link, "/proc/self/fd/%d", obj->fd); /* no allocation: AS-safe in glibc */
        ssize_t n = readlink(link, path, sizeof path - 1);
        path[n > 0 ? n : 0] = 0;
        snprintf(num, sizeof num, "%d", err);
        say("libumm: dirty pages of ");
        say(obj->pager ? "a pager mapping" : n > 0 ? path : "a mapped file");
        say(" could not be written back and are lost: ");
        say(errno_words(err));
        say(" (errno ");
        say(num);
        say(")\n");
    }
}

/* A hole was punched at byte off (MADV_REMOVE): pages there need their
 * blocks again before they are dirtied. */
void umm__object_hole(struct umm__object *obj, uint64_t off)
{
    uint64_t h = atomic_load(&obj->hole_from);
    while (off < h && !atomic_compare_exchange_weak(&obj->hole_from, &h, off))
        ;
}

/* ------------------------------------------------- the program's file I/O */

/*
 * fileio.c hands the program's read()/write() and friends on a file to
 * these, so that they and the mappings see the same bytes (one file, one
 * truth).  Writes go through to the file (fileio.c calls the kernel), and
 * here the same bytes go into the frames that hold the file's bytes; reads
 * come from the file, and here the bytes of dirty frames, which the file
 * does not have yet, are laid over them.  A frame is found in this
 * process's object or, after fork, in the family's index, so that a write
 * in one process is seen by another's mapping; each is locked while its
 * bytes are copied, so that a fill in progress is never overtaken.
 */

int umm__pagecache_files(void)
{
    return atomic_load_explicit(&nfiles, memory_order_relaxed) != 0 ||
           (umm__mm.forked && idx && __atomic_load_n(&idx->used, __ATOMIC_RELAXED) != 0);
}

/* Which files this process caches, as counters by a hash of (dev, ino),
 * read without the lock: fileio.c asks before it takes the lock for a
 * descriptor, and most descriptors are not of a mapped file. */

static size_t cached_hash(dev_t dev, ino_t ino)
{
    uint64_t h = ((uint64_t)dev * 0x9e3779b97f4a7c15ull) ^ ((uint64_t)ino * 0xc2b2ae3d27d4eb4full);
    return (size_t)(h >> 40) % CACHED_SLOTS;
}

static void pagecache_count_file(const struct umm__object *obj, int delta)
{
    atomic_fetch_add(&nfiles, (uint64_t)(int64_t)delta);
    atomic_fetch_add(&cached_slot[cached_hash(obj->dev, obj->ino)], (uint32_t)delta);
}

/* Might (dev, ino) have frames in the page cache (this process's, or
 * after fork the family's)?  0 is sure. */
int umm__pagecache_maybe(dev_t dev, ino_t ino)
{
    if (atomic_load_explicit(&cached_slot[cached_hash(dev, ino)], memory_order_relaxed))
        return 1;
    if (!umm__mm.forked)
        return 0;
    struct umm__object key = { .dev = dev, .ino = ino };
    uint64_t next;
    idx_lock();
    int found = idx_find(&key, 0, &next) != NULL || next != UINT64_MAX;
    idx_unlock();
    return found;
}

struct umm__object *umm__object_find(dev_t dev, ino_t ino)
{
    for (struct umm__object *obj = umm__mm.objects; obj; obj = obj->next)
        if (!obj->anon && !obj->pager && obj->dev == dev && obj->ino == ino)
            return obj;
    return NULL;
}

/* Copy between an iovec array, from byte pos of it, and mem. */
static void iov_copy(const struct iovec *iov, int iovcnt, uint64_t pos, char *mem, uint64_t len, int to_iov)
{
    for (int i = 0; i < iovcnt && len; i++) {
        if (pos >= iov[i].iov_len) {
            pos -= iov[i].iov_len;
            continue;
        }
        uint64_t n = iov[i].iov_len - pos < len ? iov[i].iov_len - pos : len;
        char *base = (char *)iov[i].iov_base + pos;
        if (to_iov)
            memcpy(base, mem, n);
        else
            memcpy(mem, base, n);
        mem += n;
        len -= n;
        pos = 0;
    }
}

enum cache_op { C_WRITE, C_READ, C_REREAD, C_ZERO };

struct cache_io {
    enum cache_op op;
    const struct iovec *iov;
    int iovcnt;
    uint64_t off, len; /* the bytes of the file concerned */
    int fd;            /* C_REREAD: where the file's bytes are */
};

/*
 * The part of file page fpage in [io->off, io->off + io->len), if its
 * frame holds the file's bytes.  The program's buffers may be libumm
 * memory, which may fault when touched: they are copied through a bounce
 * buffer, never while the frame's lock is held (the fault could need it).
 */
static void cache_visit(struct cache_io *io, umm__pfn pfn, uint64_t fpage)
{
    if (umm__frame_host(pfn))
        return; /* zero-copy: the file's own page, which the call itself reads or writes */
    uint64_t pstart = fpage << UMM_PAGE_SHIFT;
    uint64_t a = io->off > pstart ? io->off : pstart;
    uint64_t b = io->off + io->len < pstart + UMM_PAGE_SIZE ? io->off + io->len : pstart + UMM_PAGE_SIZE;
    char bounce[UMM_PAGE_SIZE];
    if (io->op == C_WRITE)
        iov_copy(io->iov, io->iovcnt, a - io->off, bounce, b - a, 0);
    int copied = 0;
    /* Frame lock first, then the window (the order everywhere); neither
     * is held while the program's buffer, which may fault, is copied. */
    umm__frame_lock(pfn);
    char *win = umm__kmap(pfn, 1), *mem = win + (a - pstart);
    uint32_t fl = atomic_load(&umm__frame(pfn)->flags);
    /* A clean frame has the file's bytes (unless under write-back, whose
     * pwrite may not have reached the file yet): a read has them already. */
    if ((fl & UMM__F_UPTODATE) && (io->op != C_READ || (fl & (UMM__F_DIRTY | UMM__F_WRITEBACK)))) {
        umm__vg_defined(mem, b - a);
        if (io->op == C_WRITE) {
            memcpy(mem, bounce, b - a);
        } else if (io->op == C_READ) {
            memcpy(bounce, mem, b - a);
            copied = 1;
        } else if (io->op == C_ZERO) {
            memset(mem, 0, b - a);
        } else {
            uint64_t got = 0;
            while (got < b - a) {
                ssize_t r = umm__sys_pread(io->fd, mem + got, b - a - got, (off_t)(a + got));
                if (r < 0 && errno == EINTR)
                    continue;
                if (r <= 0)
                    break;
                got += (uint64_t)r;
            }
            memset(mem + got, 0, b - a - got); /* past the end: zeros */
        }
        umm__vg_noaccess(mem, b - a);
    }
    umm__kunmap(win, 1);
    umm__frame_unlock(pfn);
    if (copied)
        iov_copy(io->iov, io->iovcnt, a - io->off, bounce, b - a, 1);
}

/* The first page after p where obj has an extent (UINT64_MAX: none). */
static uint64_t next_extent(const struct umm__object *obj, uint64_t p)
{
    uint64_t n = UINT64_MAX;
    for (size_t k = 0; obj && k < obj->nex; k++)
        if (obj->ext[k].fpage > p && obj->ext[k].fpage < n)
            n = obj->ext[k].fpage;
    return n;
}

/* Every cached page of the range: this process's object's, or after fork
 * the family's (under the index lock, so that the extent is not freed
 * while its frame is written).  Pages with no frame are skipped in one
 * step.  umm__mm.lock held. */
static void cache_walk(struct umm__object *obj, dev_t dev, ino_t ino, struct cache_io *io)
{
    if (io->len == 0)
        return;
    uint64_t p = io->off >> UMM_PAGE_SHIFT, last = (io->off + io->len - 1) >> UMM_PAGE_SHIFT;
    struct umm__object key = { .dev = dev, .ino = ino };
    struct umm__fscan fs; /* frames never used are not up to date: nothing to visit */
    umm__fscan_begin(&fs, last - p + 1);
    while (p <= last) {
        int i = obj ? umm__extent_index(obj, p) : -1;
        if (i >= 0) {
            umm__pfn pfn = obj->ext[i].base + (umm__pfn)(p - obj->ext[i].fpage);
            uint64_t q = skip_unused(obj, &fs, p, pfn, last + 1);
            if (q > p) {
                p = q;
                continue;
            }
            cache_visit(io, pfn, p);
            p++;
            continue;
        }
        uint64_t next = next_extent(obj, p), fam = UINT64_MAX;
        if (umm__mm.forked) {
            idx_lock();
            struct idx_entry *e = idx_find(&key, p, &fam);
            if (e)
                cache_visit(io, e->base + (umm__pfn)(p - e->fpage), p);
            idx_unlock();
            if (e) {
                p++;
                continue;
            }
        }
        p = next < fam ? next : fam;
    }
}

void umm__cache_write(struct umm__object *obj, dev_t dev, ino_t ino, uint64_t off, const struct iovec *iov,
                      int iovcnt, uint64_t len)
{
    struct cache_io io = { C_WRITE, iov, iovcnt, off, len, -1 };
    cache_walk(obj, dev, ino, &io);
}

void umm__cache_read(struct umm__object *obj, dev_t dev, ino_t ino, uint64_t off, const struct iovec *iov,
                     int iovcnt, uint64_t len)
{
    struct cache_io io = { C_READ, iov, iovcnt, off, len, -1 };
    cache_walk(obj, dev, ino, &io);
}

void umm__cache_reread(struct umm__object *obj, dev_t dev, ino_t ino, int fd, uint64_t off, uint64_t len)
{
    struct cache_io io = { C_REREAD, NULL, 0, off, len, fd };
    cache_walk(obj, dev, ino, &io);
}

/*
 * The file was truncated to size (ftruncate, truncate, O_TRUNC): as the
 * kernel's truncate_pagecache, pages wholly past the end leave every
 * mapping of this process, dirty or not (their bytes are gone with the
 * file's), so the next touch raises SIGBUS; the part of the last page past
 * the end reads zeros.  Frames are zeroed in place (another process of the
 * family may map them; it sees zeros until its own MS_INVALIDATE).
 * umm__mm.lock held for writing.
 */
void umm__cache_truncated(struct umm__object *obj, dev_t dev, ino_t ino, uint64_t size)
{
    uint64_t endp = (size + UMM_PAGE_SIZE - 1) >> UMM_PAGE_SHIFT;
    if (obj) {
        /* Write access goes first, so that no entry counts as a writer. */
        rmap_write_protect(obj, endp, (UINT64_MAX >> 14) - endp);
        for (size_t i = 0; i < obj->nex; i++) {
            struct umm__extent *x = &obj->ext[i];
            struct umm__fscan fs;
            umm__fscan_begin(&fs, x->npages);
            for (uint64_t p = x->fpage > endp ? x->fpage : endp; p < x->fpage + x->npages; p++) {
                umm__pfn pfn = x->base + (umm__pfn)(p - x->fpage), end = x->base + (umm__pfn)x->npages;
                umm__pfn u = umm__frame_next_used(&fs, pfn, end);
                if (u > pfn) { /* never used: no block, not dirty */
                    p += u - pfn - 1;
                    continue;
                }
                umm__frame_lock(pfn);
                atomic_fetch_and(&umm__frame(pfn)->flags, ~UMM__F_BLOCK); /* freed with the file's end */
                if (atomic_load(&umm__frame(pfn)->ref) == 0 &&
                    (atomic_fetch_and(&umm__frame(pfn)->flags, ~UMM__F_DIRTY) & UMM__F_DIRTY))
                    atomic_fetch_sub(&obj->ndirty, 1);
                umm__frame_unlock(pfn);
            }
        }
        rmap_unmap_clean(obj, endp, UINT64_MAX >> 14);
    }
    /* Zeros from size on, in every cached frame (what the file holds
     * there now, and if it grows back). */
    struct cache_io io = { C_ZERO, NULL, 0, size, (UINT64_MAX >> 2) - size, -1 };
    cache_walk(obj, dev, ino, &io);
}
