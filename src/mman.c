/*
 * mman.c: the system-call layer.
 *
 * umm_mmap, umm_munmap, umm_msync, umm_mprotect, umm_madvise, umm_prefault
 * and umm_fork check their arguments in the order Linux does (mm/mmap.c,
 * mm/mprotect.c, mm/msync.c, mm/madvise.c), so that a bad call gets the
 * kernel's errno, take the address-space lock, and call the core.  This is
 * the only file that sets errno.
 */
#include "umm-int.h"
#include "vg.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

/* MADV_WILLNEED reads (and maps) at most this many pages per call. */
#define WILLNEED_MAX ((uint64_t)512)

#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE 0x100000
#endif
#ifndef MAP_SHARED_VALIDATE
#define MAP_SHARED_VALIDATE 0x03
#endif
#ifndef MAP_UNINITIALIZED
#define MAP_UNINITIALIZED 0x4000000
#endif
#ifndef MAP_DROPPABLE
#define MAP_DROPPABLE 0x08
#endif
#ifndef MAP_HUGETLB
#define MAP_HUGETLB 0x40000
#endif
#ifndef MADV_GUARD_INSTALL
#define MADV_GUARD_INSTALL 102
#define MADV_GUARD_REMOVE 103
#endif
#ifndef MAP_32BIT
#define MAP_32BIT 0 /* x86-64's alone: elsewhere nothing to pass on */
#endif
#ifndef MAP_HUGE_SHIFT
#define MAP_HUGE_SHIFT 26
#endif
#ifndef MAP_HUGE_MASK
#define MAP_HUGE_MASK 0x3f
#endif

/* The top of the user address space, the kernel's TASK_SIZE: on x86-64
 * (4-level page tables) one page below 2^47, the last page being a guard. */
#if defined(__x86_64__)
#define TASK_SIZE (((uintptr_t)1 << 47) - UMM_PAGE_SIZE)
#else
#define TASK_SIZE ((uintptr_t)1 << 47)
#endif

/* The flags MAP_SHARED_VALIDATE accepts on a regular file (the kernel's
 * LEGACY_MAP_MASK; MAP_SYNC needs DAX, MAP_FIXED_NOREPLACE is not in it).
 * MAP_32BIT and the huge page sizes 2 MiB and 1 GiB are in it, and the
 * size bits of those two cover every size below 2^32. */
#define LEGACY_MAP_MASK                                                                       \
    (MAP_SHARED | MAP_PRIVATE | MAP_FIXED | MAP_ANONYMOUS | MAP_DENYWRITE | MAP_EXECUTABLE |     \
     MAP_UNINITIALIZED | MAP_GROWSDOWN | MAP_LOCKED | MAP_NORESERVE | MAP_POPULATE | MAP_NONBLOCK | \
     MAP_STACK | MAP_HUGETLB | MAP_32BIT | (21 << MAP_HUGE_SHIFT) | (30 << MAP_HUGE_SHIFT))

static uintptr_t page_align(size_t len)
{
    return ((uintptr_t)len + UMM_PAGE_SIZE - 1) & UMM_PAGE_MASK;
}

static int fail(int err)
{
    errno = err;
    return -1;
}

/* ---------------------------------------------------------------- unmap */

/*
 * Tell memcheck that libumm's mappings in [start, end) go (vg.h); the VMAs
 * are split at start and end.  A block is a run of VMAs with the same
 * v->block, without holes.  For each block the range meets, the part in
 * the range becomes a block of its own, alloc'd and free'd here; what is
 * left keeps the block (with the stack of the umm_mmap that made it), the
 * head if there is one, else the tail; a tail left after a hole becomes a
 * block of its own, alloc'd here.  A block wholly in the range is free'd.
 */
static void blocks_unmap(uintptr_t start, uintptr_t end)
{
    if (!umm__vg_running())
        return;
    size_t i;
    struct umm__vma *v = umm__vma_next(start, &i);
    while (v && v->start < end) {
        if (v->vflags & UMM__V_OWN) { /* no block: umm__own_mmap */
            v = umm__vma_at(++i);
            continue;
        }
        uintptr_t b = v->block, from = v->start, to = v->end;
        while ((v = umm__vma_at(++i)) && v->start == to && v->start < end && v->block == b)
            to = v->end;
        uintptr_t last = to; /* the block's end: past what is left after [from, to) */
        for (size_t j = i; (v = umm__vma_at(j)) && v->start == last && v->block == b; j++)
            last = v->end;
        if (b == from && last == to) {
            umm__vg_block_free(b);
        } else {
            if (b < from)
                umm__vg_block_move(b, b, from - b); /* the head stays */
            else
                umm__vg_block_move(b, to, last - to); /* the tail stays */
            if (b < from && last > to)
                umm__vg_block_new(to, last - to); /* and a tail after a hole */
            for (size_t j = i; (v = umm__vma_at(j)) && v->start < last; j++)
                v->block = to;
            umm__vg_block_new(from, to - from);
            umm__vg_block_free(from);
        }
        v = umm__vma_at(i);
    }
}

/*
 * munmap(2)'s own refusal: the kernel will not split a mapping in two
 * when the process's map count is at vm.max_map_count (do_vmi_align_munmap:
 * ENOMEM, nothing changed).  The count that matters is the host's -- it
 * counts this process, libumm's host mappings and the program's own -- and
 * only the host knows it, so the host is asked: the first run of libumm's
 * mappings in [start, end) (already split at start and end) is unmapped on
 * the host before anything else, its dirty shared pages written back
 * first.  Only that run can need a split on both sides: any later one
 * begins after memory that is not libumm's.  Returns 0, or -1 (ENOMEM)
 * having changed nothing the program can see (the split VMAs, and pages
 * written back early, as the background flush would have).  Nothing is
 * released to make room: releasing resident pages would make them fault,
 * and a fault at the host's limit needs host mappings itself.
 */
static int host_unmap_first(uintptr_t start, uintptr_t end)
{
    size_t i;
    struct umm__vma *v = umm__vma_next(start, &i);
    if (!v || v->start >= end)
        return 0;
    uintptr_t s = v->start, e = v->end;
    for (;;) {
        if (v->obj && (v->vflags & UMM__V_SHARED))
            umm__object_writeback(v->obj, v->fpage, umm__vma_pages(v), 0);
        e = v->end;
        v = umm__vma_at(++i);
        if (!v || v->start != e || v->start >= end)
            break;
    }
    return munmap((void *)s, e - s);
}

/* A new VMA joins the set (vma.c); its host mappings count against the
 * host's map count, and past that budget reclaim takes page-cache pages
 * out of host mappings elsewhere (vmscan.c), as after a fault.  0, or -1
 * (no room in the set). */
static int vma_insert(struct umm__vma *v)
{
    if (umm__vma_insert(v) != 0)
        return -1;
    umm__reclaim_host_maps_over();
    return 0;
}

/* A VMA leaves (vma.c), and with it its hold on the file's page-cache
 * object: put here, by the caller of the address space, so that vma.c
 * never calls up into the page cache. */
static void vma_destroy(struct umm__vma *v)
{
    struct umm__object *obj = v->obj;
    umm__vma_destroy(v);
    if (obj)
        umm__object_put(obj);
}

/* The same for a VMA that was never inserted (a failed mmap). */
static void vma_discard(struct umm__vma *v)
{
    struct umm__object *obj = v->obj;
    umm__vma_discard(v);
    if (obj)
        umm__object_put(obj);
}

/*
 * Remove libumm's mappings in [start, end): write back their dirty shared
 * pages, release their frames, and (host_unmap) give the address range
 * back to the host.  Returns 0, or -1 (ENOMEM) having changed nothing.
 * Memory in the range that is not libumm's is left alone.  checked: as
 * munmap(2), which may be refused at the host's map-count limit.
 */
static int unmap_range(uintptr_t start, uintptr_t end, int host_unmap, int checked)
{
    if (umm__vma_split(start) != 0 || umm__vma_split(end) != 0)
        return -1;
    if (checked && host_unmap_first(start, end) != 0)
        return -1;
    blocks_unmap(start, end);
    size_t i;
    struct umm__vma *v = umm__vma_next(start, &i);
    while (v && v->start < end) {
        struct umm__vma *next = umm__vma_at(i + 1);
        if (v->obj && (v->vflags & UMM__V_SHARED))
            umm__object_writeback(v->obj, v->fpage, umm__vma_pages(v), 0);
        /* Take the pages from the program before their frames are released:
         * a released private frame is discarded and reads as zeros at once,
         * and another thread still reading the old mapping must fault (and
         * wait for the lock), as under the kernel, not see zeros.  MAP_FIXED
         * (host_unmap 0) maps the new mapping over the range afterwards. */
        if (host_unmap)
            munmap((void *)v->start, v->end - v->start);
        else
            mprotect((void *)v->start, v->end - v->start, PROT_NONE);
        umm__vma_release_pages(v, 0, umm__vma_pages(v));
        vma_destroy(v);
        v = next; /* the set shifted down: next is now at index i */
    }
    umm__kvma_cut(end);
    return 0;
}

/* Is every page of [start, end) that libumm does not map free on the host?
 * Probes each gap with MAP_FIXED_NOREPLACE and leaves the probes in place
 * (reserved for the caller) when the answer is yes. */
static int claim_gaps(uintptr_t start, uintptr_t end)
{
    uintptr_t a = start;
    struct { uintptr_t s, e; } done[64];
    size_t ndone = 0;
    int ok = 1;
    while (a < end && ok) {
        struct umm__vma *v = umm__vma_next(a, NULL);
        uintptr_t gap_end = (v && v->start < end) ? v->start : end;
        if (v && v->start <= a) {
            a = v->end;
            continue;
        }
        void *r = mmap((void *)a, gap_end - a, PROT_NONE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED_NOREPLACE, -1, 0);
        if (r == MAP_FAILED || (uintptr_t)r != a) {
            if (r != MAP_FAILED)
                munmap(r, gap_end - a);
            ok = 0;
            break;
        }
        if (ndone < 64) {
            done[ndone].s = a;
            done[ndone].e = gap_end;
            ndone++;
        }
        a = gap_end;
    }
    if (!ok)
        for (size_t k = 0; k < ndone; k++)
            munmap((void *)done[k].s, done[k].e - done[k].s);
    return ok;
}

/* Give back what claim_gaps() reserved in [start, end) when the mmap fails
 * after all: every part of the range that libumm does not map.  (Left in
 * place, the probes would turn free address space into memory that is not
 * libumm's: a later MAP_FIXED there would fail with EEXIST, a touch would
 * be SEGV_ACCERR instead of SEGV_MAPERR.) */
static void release_gaps(uintptr_t start, uintptr_t end)
{
    uintptr_t a = start;
    while (a < end) {
        struct umm__vma *v = umm__vma_next(a, NULL);
        if (v && v->start <= a) {
            a = v->end;
            continue;
        }
        uintptr_t gap_end = (v && v->start < end) ? v->start : end;
        munmap((void *)a, gap_end - a);
        a = gap_end;
    }
}

/* ----------------------------------------------------------------- mmap */

/* Under Valgrind, where umm_mmap asks the host for address space when the
 * program leaves the choice to it: past every mapping placed that way so
 * far.  The host would give the range of a mapping just unmapped again at
 * once, and memcheck, which describes an address by the oldest free'd
 * block that holds it, would then blame the old mapping for a touch of the
 * new one after its munmap; so addresses are not reused while there are
 * fresh ones (memcheck delays the reuse of free'd heap blocks the same
 * way).  Only a hint: the host places the mapping elsewhere if it must.
 * It is umm__mm.vg_next_hint (vma.c's umm__vg_exit hides it from the leak
 * check). */

/*
 * MAP_HUGETLB's size bits ((flags >> MAP_HUGE_SHIFT) & MAP_HUGE_MASK, the
 * log2 of the size; 0: the default size) as the kernel's hstate_sizelog()
 * looks them up among the huge page sizes the machine has: each has its
 * directory /sys/kernel/mm/hugepages/hugepages-<kB>kB, and /proc/meminfo
 * names the default (Hugepagesize).  Returns the size's shift, or 0 when
 * the machine has no such size (the kernel: EINVAL).
 */
static int huge_shift(int bits)
{
    unsigned long kb = 0;
    if (bits == 0) {
        FILE *f = fopen("/proc/meminfo", "re");
        char line[128];
        while (f && fgets(line, sizeof line, f) && sscanf(line, "Hugepagesize: %lu kB", &kb) != 1)
            ;
        if (f)
            fclose(f);
        if (kb == 0 || (kb & (kb - 1)))
            return 0; /* no hugetlb in this kernel */
        bits = 10;
        while (((unsigned long)1 << (bits - 10)) < kb)
            bits++;
    } else if (bits <= UMM_PAGE_SHIFT || bits >= 64) {
        return 0; /* no bigger than a page: not a huge page */
    } else {
        kb = (unsigned long)1 << (bits - 10);
    }
    char path[80];
    snprintf(path, sizeof path, "/sys/kernel/mm/hugepages/hugepages-%lukB", kb);
    return access(path, F_OK) == 0 ? bits : 0;
}

/*
 * An anonymous MAP_HUGETLB mapping is, to the kernel, a mapping of a file
 * on hugetlbfs made for the call: the checks of do_mmap() for a file, then
 * hugetlbfs_file_mmap()'s, in their order.  libumm has no huge pages: what
 * passes them fails as the kernel's reservation of huge pages fails when
 * the machine has none reserved, ENOMEM.  (With MAP_NORESERVE the kernel
 * reserves nothing and the mapping is made, its touches raising SIGBUS
 * while no huge page is free: README difference 7.)
 */
static int check_huge(int flags, off_t offset, int shift)
{
    switch (flags & MAP_TYPE) {
    case MAP_SHARED:
        flags &= LEGACY_MAP_MASK;
        /* fall through */
    case MAP_SHARED_VALIDATE:
        if (flags & ~LEGACY_MAP_MASK) /* hugetlbfs has no MAP_SYNC */
            return EOPNOTSUPP;
        /* fall through */
    case MAP_PRIVATE:
        if (flags & MAP_GROWSDOWN)
            return EINVAL;
        break;
    default:
        return EINVAL;
    }
    if ((uint64_t)offset & (((uint64_t)1 << shift) - 1))
        return EINVAL; /* hugetlbfs_file_mmap(): the offset in whole huge pages */
    return ENOMEM;
}

/* What kind of file fd is, as mmap sees it. */
/* K_NOMMAP: the kernel has no mmap for it (directories, pipes, most
 * devices); K_SOCKET: it has one, which says ENODEV later. */
enum kind { K_REGULAR, K_ZERO, K_NOMMAP, K_SOCKET };

static enum kind file_kind(const struct stat *st)
{
    if (S_ISREG(st->st_mode))
        return K_REGULAR;
    if (S_ISCHR(st->st_mode) && major(st->st_rdev) == 1 && minor(st->st_rdev) == 5)
        return K_ZERO; /* /dev/zero: anonymous memory */
    if (S_ISSOCK(st->st_mode))
        return K_SOCKET;
    return K_NOMMAP;
}

/* A file libumm cannot map: ENODEV, unless PROT_EXEC is asked for and the
 * file lives where nothing may be executed (pipes, sockets, noexec mounts):
 * the kernel says EPERM first, and only the kernel can say. */
static int nommap_errno(int fd, int prot, off_t offset)
{
    if (!(prot & PROT_EXEC))
        return ENODEV;
    void *p = mmap(NULL, UMM_PAGE_SIZE, PROT_EXEC, MAP_PRIVATE, fd, offset);
    if (p != MAP_FAILED) {
        munmap(p, UMM_PAGE_SIZE);
        return ENODEV; /* a device the kernel maps, but libumm does not */
    }
    return errno == EPERM ? EPERM : ENODEV;
}

/*
 * The file checks of do_mmap(), in its order.  Returns 0 or an errno.
 * Then a one-page mapping by the kernel itself with the same access
 * catches what user space cannot see (a noexec mount, file seals,
 * append-only inodes, security modules).
 */
static int check_file(int fd, int fmode, enum kind kind, int prot, int *flags, off_t offset, int *mayexec)
{
    int type = *flags & MAP_TYPE;
    int sync = *flags & MAP_SYNC; /* the kernel takes VM_SYNC from the flags as given */
    switch (type) {
    case MAP_SHARED:
        *flags &= LEGACY_MAP_MASK;
        /* fall through */
    case MAP_SHARED_VALIDATE:
        /* MAP_SYNC is the file system's to refuse, at the very end (ext4
         * without DAX: EOPNOTSUPP for any type, even MAP_SHARED, which
         * otherwise ignores flags it does not know): the probe asks. */
        if (*flags & ~(LEGACY_MAP_MASK | MAP_SYNC))
            return EOPNOTSUPP;
        if ((prot & PROT_WRITE) && fmode != O_RDWR && fmode != O_WRONLY)
            return EACCES;
        /* fall through */
    case MAP_PRIVATE:
        if (fmode != O_RDONLY && fmode != O_RDWR)
            return EACCES;
        if (kind == K_NOMMAP)
            return nommap_errno(fd, prot, offset);
        if (kind == K_SOCKET && (prot & PROT_EXEC))
            return nommap_errno(fd, prot, offset); /* sockfs is noexec: EPERM */
        if (*flags & MAP_GROWSDOWN)
            return EINVAL;
        if (kind == K_SOCKET)
            return ENODEV; /* from the socket's own mmap, later in the kernel */
        break;
    default:
        return EINVAL;
    }
    *mayexec = 1;
    if (kind != K_REGULAR)
        return 0;
    int kflags = (type == MAP_PRIVATE ? MAP_PRIVATE : type) | sync;
    void *p = mmap(NULL, UMM_PAGE_SIZE, prot & (PROT_READ | PROT_WRITE | PROT_EXEC), kflags, fd, offset);
    if (p == MAP_FAILED)
        return errno;
    munmap(p, UMM_PAGE_SIZE);
    p = mmap(NULL, UMM_PAGE_SIZE, PROT_READ | PROT_EXEC, kflags, fd, offset);
    if (p == MAP_FAILED)
        *mayexec = 0;
    else
        munmap(p, UMM_PAGE_SIZE);
    return 0;
}

/* Is CAP_IPC_LOCK in the effective set (the kernel's capable())?  Asked
 * of the kernel itself, without libcap. */
static int cap_ipc_lock(void)
{
    struct { uint32_t version; int pid; } hdr = { 0x20080522 /* _LINUX_CAPABILITY_VERSION_3 */, 0 };
    struct { uint32_t effective, permitted, inheritable; } data[2];
    if (syscall(SYS_capget, &hdr, data) != 0)
        return 0;
    return (data[0].effective >> 14 /* CAP_IPC_LOCK */) & 1;
}

/* The process's locked memory in pages, the kernel's mm->locked_vm as it
 * would be if libumm's mappings were the kernel's: the host's own count
 * (the program's mlock() and MAP_LOCKED host mappings; libumm locks none
 * of its own) and libumm's locked mappings. */
static uint64_t locked_pages(void)
{
    uint64_t n = 0;
    unsigned long kb = 0;
    FILE *f = fopen("/proc/self/status", "re");
    char line[128];
    while (f && fgets(line, sizeof line, f) && sscanf(line, "VmLck: %lu kB", &kb) != 1)
        ;
    if (f)
        fclose(f);
    n = kb / (UMM_PAGE_SIZE / 1024);
    for (size_t i = 0; i < umm__vma_count(); i++) {
        struct umm__vma *v = umm__vma_at(i);
        if (v->vflags & UMM__V_LOCKED)
            n += umm__vma_pages(v);
    }
    return n;
}

/* MAP_LOCKED's checks in do_mmap(): can_do_mlock() (EPERM) and
 * mlock_future_ok() (EAGAIN): without CAP_IPC_LOCK, RLIMIT_MEMLOCK must be
 * above 0 and hold what is locked already and len more.  0 or an errno. */
static int check_locked(size_t len)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_MEMLOCK, &rl) != 0 || cap_ipc_lock())
        return 0;
    if (rl.rlim_cur == 0)
        return EPERM;
    if (rl.rlim_cur == RLIM_INFINITY)
        return 0;
    uint64_t limit = (uint64_t)rl.rlim_cur >> UMM_PAGE_SHIFT;
    return locked_pages() + (len >> UMM_PAGE_SHIFT) > limit ? EAGAIN : 0;
}

/*
 * The kernel charges some mappings to the commit limit when it makes them
 * (mmap_region's accountable_mapping: private writable ones, and shared
 * anonymous memory, unless MAP_NORESERVE where the overcommit policy
 * honours it), and refuses with ENOMEM what its policy will not commit.
 * libumm's pages come from its memfd, which the host charges only page by
 * page; so the host is asked the kernel's question directly, with a
 * mapping of the same size, kind and flags made and unmapped at once
 * (nothing is touched: it costs no memory).  A private file mapping is
 * charged as private anonymous memory of its size.
 */
static int overcommit_ok(size_t len, int prot, int flags, int shared, int anon, uintptr_t *resv)
{
    if (!anon && (shared || !(prot & PROT_WRITE)))
        return 1; /* the file's pages, not the commit limit */
    int kflags = (shared ? MAP_SHARED : MAP_PRIVATE) | MAP_ANONYMOUS | (flags & MAP_NORESERVE);
    /* Under RLIMIT_AS the question and the reservation made for the
     * address (*resv, len) would count twice against the limit, where the
     * kernel counts the mapping once: the question is then asked in the
     * reservation's place, and its answer becomes the reservation. */
    struct rlimit rl;
    int instead = resv && getrlimit(RLIMIT_AS, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY;
    if (instead)
        munmap((void *)*resv, len);
    void *p = mmap(instead ? (void *)*resv : NULL, len, prot & (PROT_READ | PROT_WRITE), kflags, -1, 0);
    if (p == MAP_FAILED) {
        int e = errno;
        if (instead)
            *resv = 0; /* gone: nothing to give back */
        return e != ENOMEM;
    }
    if (instead) {
        /* The same range, made a reservation again (which also gives back
         * the commit charge): ours, so MAP_FIXED takes nobody's memory. */
        if (mmap(p, len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED, -1, 0) == MAP_FAILED) {
            munmap(p, len);
            *resv = 0;
            return 0;
        }
        *resv = (uintptr_t)p;
        return 1;
    }
    munmap(p, len);
    return 1;
}

/* Build the VMA for [start, start+len): object or private range. */
static struct umm__vma *make_vma(uintptr_t start, size_t len, int prot, int shared, int anon, int fd,
                                 uint64_t fpage, const struct umm__pager_map *pm, int host, int *err)
{
    struct umm__vma *v = umm__vma_new(start, start + len);
    if (!v) {
        *err = ENOMEM;
        return NULL;
    }
    v->prot = prot;
    v->vflags = (shared ? UMM__V_SHARED : 0) | (host ? UMM__V_ZEROCOPY : 0);
    if (!anon || shared) {
        v->obj = pm ? umm__object_pager(pm->ops, pm->cookie, fpage, umm__vma_pages(v), err) /* pager.c */
                    : umm__object_get(fd, anon, anon ? 0 : fpage, umm__vma_pages(v), host, err);
        if (!v->obj) {
            vma_discard(v);
            return NULL;
        }
        v->fpage = anon ? 0 : fpage;
        umm__rmap_add(v->obj, v);
    }
    if (!shared && umm__vma_new_anon(v) != 0) {
        *err = ENOMEM;
        vma_discard(v);
        return NULL;
    }
    return v;
}

/*
 * Start libumm (init.c) on the first call; under Valgrind, once started,
 * check that the registers of instructions libumm restarts are exact
 * (trap.c), on two pages of libumm's own (umm__own_mmap, below).  Every
 * entry of the system-call layer starts this way.
 */
static void register_dontfork(void);

int umm__start(void)
{
    static _Atomic int vg_checked;
    static pthread_once_t fork_once = PTHREAD_ONCE_INIT;
    if (umm__init() != 0)
        return -1;
    pthread_once(&fork_once, register_dontfork);
    if (umm__vg_running() && !atomic_load_explicit(&vg_checked, memory_order_relaxed) &&
        !atomic_exchange(&vg_checked, 1)) {
        char *page = umm__own_mmap(2 * UMM_PAGE_SIZE);
        umm__trap_selfcheck(page);
        if (page)
            umm__own_munmap(page, 2 * UMM_PAGE_SIZE);
    }
    return 0;
}

/* umm_mmap_pager's pager (pager.c), for the umm_mmap it calls: a file with
 * no descriptor, readable, writable if the pager writes back.  Handed over
 * this way so that umm_mmap stays the first frame of memcheck's block. */
static __thread const struct umm__pager_map *pager_pm;

void *umm_mmap(void *addr, size_t length, int prot, int flags, int fd, off_t offset)
{
    const struct umm__pager_map *pm = pager_pm;
    pager_pm = NULL;
    uintptr_t a = (uintptr_t)addr;
    int anon = (flags & MAP_ANONYMOUS) != 0, fmode = 0, err = 0, mayexec = 1, hshift = 0;
    enum kind kind = K_REGULAR;
    struct stat st;
    /* libumm's own flags (umm.h), taken out before the kernel's checks. */
    int zerocopy = (flags & UMM_MAP_ZEROCOPY) ? 1 : (flags & UMM_MAP_COPY) ? 0 : umm__zerocopy_default();
    flags &= ~(UMM_MAP_ZEROCOPY | UMM_MAP_COPY);

    if (umm__start() != 0)
        return MAP_FAILED;
    /* The order of the checks is the kernel's. */
    if (offset & (off_t)(UMM_PAGE_SIZE - 1))
        return fail(EINVAL), MAP_FAILED;
    if (pm) {
        fmode = pm->ops->writeback ? O_RDWR : O_RDONLY;
        st.st_mode = S_IFREG;
        if (flags & MAP_HUGETLB)
            return fail(EINVAL), MAP_FAILED;
    } else if (!anon) {
        int fl = fcntl(fd, F_GETFL);
        if (fl < 0 || (fl & O_PATH) || fstat(fd, &st) != 0)
            return fail(EBADF), MAP_FAILED;
        fmode = fl & O_ACCMODE;
        kind = file_kind(&st);
        if (flags & MAP_HUGETLB) /* only hugetlbfs files, which libumm does not map */
            return fail(EINVAL), MAP_FAILED;
    } else if (flags & MAP_HUGETLB) {
        /* As ksys_mmap_pgoff(): a size the machine has, or EINVAL; then the
         * length in whole huge pages (0 if that wraps: EINVAL below). */
        hshift = huge_shift((flags >> MAP_HUGE_SHIFT) & MAP_HUGE_MASK);
        if (!hshift)
            return fail(EINVAL), MAP_FAILED;
        size_t hmask = ((size_t)1 << hshift) - 1;
        length = (length + hmask) & ~hmask;
    }
    if (length == 0)
        return fail(EINVAL), MAP_FAILED;
    size_t len = page_align(length);
    if (len == 0)
        return fail(ENOMEM), MAP_FAILED;
    uint64_t pgoff = (uint64_t)offset >> UMM_PAGE_SHIFT;
    if (!anon && pgoff + (len >> UMM_PAGE_SHIFT) < pgoff)
        return fail(EOVERFLOW), MAP_FAILED;
    if (flags & MAP_FIXED_NOREPLACE)
        flags |= MAP_FIXED;
    if (len > TASK_SIZE)
        return fail(ENOMEM), MAP_FAILED;
    if (flags & MAP_FIXED) {
        /* hugetlbfs places a fixed mapping only at a huge page: its check
         * comes before the generic ones of __get_unmapped_area(). */
        if (hshift && (a & (((uintptr_t)1 << hshift) - 1)))
            return fail(EINVAL), MAP_FAILED;
        if (a > TASK_SIZE - len)
            return fail(ENOMEM), MAP_FAILED;
        if (!UMM_PAGE_ALIGNED(a))
            return fail(EINVAL), MAP_FAILED;
    }

    sigset_t saved;
    umm__enter(&saved);
    /* Choose the address: the kernel's own choice, on a reservation.  As in
     * do_mmap(), this comes before the checks of the file and of the type,
     * so MAP_FIXED_NOREPLACE over a mapping fails with EEXIST whatever else
     * is wrong with the call. */
    if (flags & MAP_FIXED) {
        if (!claim_gaps(a, a + len)) {
            umm__leave(&saved);
            return fail(EEXIST), MAP_FAILED; /* NOREPLACE, or memory not libumm's */
        }
        if ((flags & MAP_FIXED_NOREPLACE)) {
            struct umm__vma *v = umm__vma_next(a, NULL);
            if (v && v->start < a + len) {
                release_gaps(a, a + len);
                umm__leave(&saved);
                return fail(EEXIST), MAP_FAILED;
            }
        }
    } else {
        /* MAP_32BIT (x86-64) goes to the host with the reservation: the
         * kernel's own search of the first 2 GiB and its rules for a hint
         * there (arch_get_unmapped_area()) are then the ones that apply.
         * Valgrind's next hint, past everything, would only be ignored. */
        int low = flags & MAP_32BIT;
        void *hint = addr || low || !umm__vg_running() ? addr : (void *)umm__mm.vg_next_hint;
        void *r = mmap(hint, len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | low, -1, 0);
        if (r == MAP_FAILED) {
            umm__leave(&saved);
            return fail(ENOMEM), MAP_FAILED;
        }
        a = (uintptr_t)r;
    }

    /* The checks do_mmap() makes once it has the address, in its order:
     * MAP_LOCKED's limits first, then the file's and the type's. */
    if ((flags & MAP_LOCKED) && (err = check_locked(len)) != 0) {
        /* EPERM or EAGAIN */
    } else if ((hshift || (!anon && kind == K_REGULAR)) && (uint64_t)offset > (uint64_t)INT64_MAX - len) {
        err = EOVERFLOW;
    } else if (pm) {
        int type = flags & MAP_TYPE;
        if (type == MAP_SHARED || type == MAP_SHARED_VALIDATE)
            err = (prot & PROT_WRITE) && fmode != O_RDWR ? EACCES : 0;
        else if (type != MAP_PRIVATE)
            err = EINVAL;
        if (!err && (flags & MAP_GROWSDOWN))
            err = EINVAL;
    } else if (!anon) {
        err = check_file(fd, fmode, kind, prot, &flags, offset, &mayexec);
        if (!err && kind == K_ZERO)
            anon = 1;
    } else if (hshift) {
        err = check_huge(flags, offset, hshift);
    } else {
        int type = flags & MAP_TYPE;
        if (type == MAP_DROPPABLE) {
            /* Pages the kernel may drop under pressure: libumm never drops
             * them, which a program of droppable memory cannot tell. */
            if (flags & (MAP_LOCKED | MAP_GROWSDOWN))
                err = EINVAL;
            flags = (flags & ~MAP_TYPE) | MAP_PRIVATE;
        } else if (type != MAP_SHARED && type != MAP_PRIVATE) {
            err = EINVAL;
        } else if (type == MAP_SHARED && (flags & MAP_GROWSDOWN)) {
            err = EINVAL;
        }
        /* A private MAP_GROWSDOWN mapping is accepted, as by the kernel, but
         * does not grow: a touch below it is SIGSEGV (documented). */
    }
    int shared = (flags & MAP_TYPE) != MAP_PRIVATE;
    uintptr_t resv = a;
    if (!err && !overcommit_ok(len, prot, flags, shared, anon, (flags & MAP_FIXED) ? NULL : &resv))
        err = ENOMEM;
    if (!(flags & MAP_FIXED))
        a = resv; /* the reservation may have moved, or be gone (0) */

    /* Zero-copy is for regular files: a pager or a device has no host page
     * cache to map. */
    int host = zerocopy && !anon && !pm && kind == K_REGULAR;
    struct umm__vma *v = err ? NULL : make_vma(a, len, prot, shared, anon, fd, pgoff, pm, host, &err);
    if (!v || ((flags & MAP_FIXED) && unmap_range(a, a + len, 0, 0) != 0) || umm__vma_host_map(v, a, a + len) != 0) {
        if (v)
            vma_discard(v);
        if (!(flags & MAP_FIXED)) {
            if (a)
                munmap((void *)a, len);
        } else {
            release_gaps(a, a + len);
        }
        umm__leave(&saved);
        return fail(err ? err : ENOMEM), MAP_FAILED;
    }
    if (mayexec)
        v->vflags |= UMM__V_MAYEXEC;
    if (kind == K_ZERO && !shared)
        v->vflags |= UMM__V_DEVZERO;
    if (flags & MAP_LOCKED)
        v->vflags |= UMM__V_LOCKED;
    /* As the kernel's do_mmap(): a shared mapping of a file opened without
     * write access can never be made writable.  /dev/zero is such a file
     * too, though its pages are anonymous memory (anon is set for it by
     * now): its descriptor's mode decides, not MAP_ANONYMOUS. */
    if (!shared || (flags & MAP_ANONYMOUS) || fmode == O_RDWR)
        v->vflags |= UMM__V_MAYWRITE;
    umm__kvma_new(v, (flags & MAP_ANONYMOUS) || pm ? -1 : fd, flags, pgoff);
    vma_insert(v);
    umm__kvma_mapped(v);
    v->block = a;
    umm__vg_block_new(a, len);
    umm__vg_forget((void *)a, len); /* helgrind: new memory, as after the kernel's mmap (vg.h) */
    if (!addr && !(flags & (MAP_FIXED | MAP_32BIT)) && a + len > umm__mm.vg_next_hint)
        umm__mm.vg_next_hint = a + len;
    /* As the kernel: a locked mapping is populated (mlock's residency),
     * and so is MAP_POPULATE unless MAP_NONBLOCK says not to wait for it;
     * private writable mappings are populated for write.  A PROT_NONE
     * mapping gets nothing, and pages beyond the end of the file stay out
     * (umm__populate stops there, as the kernel's populate does). */
    if ((flags & MAP_LOCKED) || (flags & (MAP_POPULATE | MAP_NONBLOCK)) == MAP_POPULATE)
        umm__kvma_populate(v, v->start, v->end, !shared && (prot & PROT_WRITE));
    umm__leave(&saved);
    return (void *)a;
}

/* umm_mmap with the program's pager as the file (pager.c runs its
 * callbacks). */
void *umm_mmap_pager(void *addr, size_t length, int prot, int flags, const struct umm_pager_ops *ops, void *cookie,
                     off_t offset)
{
    if (!ops || !ops->fill || (flags & MAP_ANONYMOUS) || offset < 0) {
        errno = EINVAL;
        return MAP_FAILED;
    }
    if (umm__start() != 0)
        return MAP_FAILED;
    int err = umm__pager_start();
    if (err) {
        errno = err == EAGAIN ? ENOMEM : err;
        return MAP_FAILED;
    }
    struct umm__pager_map pm = { ops, cookie };
    pager_pm = &pm;
    return umm_mmap(addr, length, prot, flags & ~MAP_ANONYMOUS, -1, offset);
}

/* --------------------------------------------------------------- munmap */

/*
 * Write back the dirty shared pages of [start, end) with the pwrites made
 * outside the address-space lock (held for writing, and held again on
 * return), so that the program's faults elsewhere go on meanwhile; the
 * unmap that follows, under the lock throughout, finds only what was
 * dirtied in between.  The VMAs are looked up afresh after each range.
 */
static void writeback_unlocked(uintptr_t start, uintptr_t end)
{
    uintptr_t at = start;
    while (at < end) {
        struct umm__vma *v = umm__vma_next(at, NULL);
        if (!v || v->start >= end)
            break;
        uintptr_t s = v->start > at ? v->start : at, e = v->end < end ? v->end : end;
        if (v->obj && (v->vflags & UMM__V_SHARED) && umm__object_may_be_dirty(v->obj))
            umm__object_writeback(v->obj, v->fpage + ((s - v->start) >> UMM_PAGE_SHIFT), (e - s) >> UMM_PAGE_SHIFT,
                                  UMM__WB_UNLOCK);
        at = e;
    }
}

int umm_munmap(void *addr, size_t length)
{
    uintptr_t a = (uintptr_t)addr;
    if (!UMM_PAGE_ALIGNED(a) || a > TASK_SIZE || length > TASK_SIZE - a)
        return fail(EINVAL);
    size_t len = page_align(length);
    if (len == 0)
        return fail(EINVAL);
    if (umm__start() != 0)
        return -1;
    sigset_t saved;
    umm__enter(&saved);
    writeback_unlocked(a, a + len);
    int rc = unmap_range(a, a + len, 1, 1);
    umm__object_wait_unmapped(); /* a flush outside the lock may hold what went */
    umm__file_retry(); /* descriptors kept for a lock may go now (locks.c) */
    umm__leave(&saved);
    return rc == 0 ? 0 : fail(ENOMEM);
}

/* ------------------------------------------------------------- mprotect */

int umm_mprotect(void *addr, size_t length, int prot)
{
    uintptr_t start = (uintptr_t)addr;
    int grows = prot & (PROT_GROWSDOWN | PROT_GROWSUP);
    prot &= ~(PROT_GROWSDOWN | PROT_GROWSUP);
    if (grows == (PROT_GROWSDOWN | PROT_GROWSUP))
        return fail(EINVAL);
    if (!UMM_PAGE_ALIGNED(start))
        return fail(EINVAL);
    if (length == 0)
        return 0;
    uintptr_t end = start + page_align(length);
    if (end <= start)
        return fail(ENOMEM);
    if (prot & ~(PROT_READ | PROT_WRITE | PROT_EXEC | 0x8 /* PROT_SEM */))
        return fail(EINVAL);
    if (umm__start() != 0)
        return -1;

    sigset_t saved;
    umm__enter(&saved);
    int err = 0;
    size_t i;
    struct umm__vma *v = umm__vma_next(start, &i);
    if (!v || v->start >= end || (!(grows & PROT_GROWSDOWN) && v->start > start)) {
        err = ENOMEM;
    } else if (grows) {
        err = EINVAL; /* libumm mappings never grow */
    } else if (umm__vma_split(start) != 0 || umm__vma_split(end) != 0) {
        err = ENOMEM;
    } else {
        /* VMA by VMA, as the kernel: a hole or a refusal stops the walk,
         * and what was changed before it stays changed. */
        uintptr_t at = start;
        umm__kvma_snapshot(start, end);
        v = umm__vma_next(start, &i);
        while (v && v->start < end) {
            if (v->start != at) {
                err = ENOMEM;
                break;
            }
            if (((prot & PROT_WRITE) && !(v->vflags & UMM__V_MAYWRITE)) ||
                ((prot & PROT_EXEC) && !(v->vflags & UMM__V_MAYEXEC))) {
                err = EACCES;
                break;
            }
            int was = v->prot;
            umm__vma_set_prot(v, prot & (PROT_READ | PROT_WRITE | PROT_EXEC));
            umm__reclaim_host_maps_over();
            /* mprotect_fixup(): a private locked mapping becoming writable
             * is copied now, to spare the faults of its first writes. */
            if ((v->vflags & (UMM__V_LOCKED | UMM__V_SHARED)) == UMM__V_LOCKED && !(was & PROT_WRITE) &&
                (prot & PROT_WRITE))
                umm__populate(v, v->start, v->end, 1);
            at = v->end;
            v = umm__vma_at(++i);
        }
        /* The kernel merges (and splits) as it goes; its populate above
         * comes after, and gives the merged VMA its anon_vma. */
        umm__kvma_changed(start, at, 1);
        for (v = umm__vma_next(start, &i); v && v->start < at; v = umm__vma_at(++i))
            if ((v->vflags & (UMM__V_LOCKED | UMM__V_SHARED)) == UMM__V_LOCKED && !(v->kold_prot & PROT_WRITE) &&
                (v->prot & PROT_WRITE))
                umm__kvma_faulted(v, 1);
        if (!err && at < end)
            err = ENOMEM;
    }
    umm__leave(&saved);
    return err ? fail(err) : 0;
}

/* ---------------------------------------------------------------- msync */

int umm_msync(void *addr, size_t length, int flags)
{
    uintptr_t start = (uintptr_t)addr;
    if (flags & ~(MS_ASYNC | MS_INVALIDATE | MS_SYNC))
        return fail(EINVAL);
    if (!UMM_PAGE_ALIGNED(start))
        return fail(EINVAL);
    if ((flags & MS_ASYNC) && (flags & MS_SYNC))
        return fail(EINVAL);
    uintptr_t end = start + page_align(length);
    if (end < start)
        return fail(ENOMEM);
    if (end == start)
        return 0;
    if (umm__start() != 0)
        return -1;

    sigset_t saved;
    umm__enter(&saved);
    int err = 0, unmapped = 0, kick = 0;
    uintptr_t at = start;
    for (;;) {
        struct umm__vma *v = umm__vma_next(at, NULL);
        if (!v) {
            err = ENOMEM;
            break;
        }
        if (at < v->start) {
            /* A hole: as the kernel, plain MS_ASYNC has nothing left to do
             * and stops; anything else goes on past it; both end ENOMEM. */
            if (flags == MS_ASYNC) {
                err = ENOMEM;
                break;
            }
            unmapped = 1;
            at = v->start;
            if (at >= end)
                break;
        }
        /* The kernel's msync(): pages locked in memory cannot be
         * invalidated; what came before this mapping stays done. */
        if ((flags & MS_INVALIDATE) && (v->vflags & UMM__V_LOCKED)) {
            err = EBUSY;
            break;
        }
        uintptr_t e = v->end < end ? v->end : end;
        if (v->obj && (v->vflags & UMM__V_SHARED)) {
            uint64_t fp = v->fpage + ((at - v->start) >> UMM_PAGE_SHIFT), n = (e - at) >> UMM_PAGE_SHIFT;
            if (flags & MS_SYNC) {
                /* The pwrites outside the lock (faults elsewhere go on), as
                 * the kernel's msync lets mmap_lock go around the I/O; v is
                 * looked up again for the next range.  With MS_INVALIDATE
                 * the same v is needed after: under the lock throughout. */
                int how = UMM__WB_SYNC | ((flags & MS_INVALIDATE) ? 0 : UMM__WB_UNLOCK);
                int e2 = umm__object_writeback(v->obj, fp, n, how);
                if (e2 && !err)
                    err = e2;
            } else if (umm__object_may_be_dirty(v->obj)) {
                kick = 1;
            }
        }
        if ((flags & MS_INVALIDATE) && v->obj)
            umm__object_invalidate(v->obj, v->fpage + ((at - v->start) >> UMM_PAGE_SHIFT),
                                   (e - at) >> UMM_PAGE_SHIFT);
        at = e;
        if (err || at >= end)
            break;
    }
    umm__leave(&saved);
    if (kick)
        umm__ring(UMM__BELL_FLUSH); /* MS_ASYNC: the daemon writes back soon */
    if (!err && unmapped)
        err = ENOMEM;
    return err ? fail(err) : 0;
}

/* -------------------------------------------------------------- madvise */

static int advice_valid(int advice)
{
    switch (advice) {
    case MADV_NORMAL: case MADV_RANDOM: case MADV_SEQUENTIAL: case MADV_WILLNEED:
    case MADV_DONTNEED: case MADV_FREE: case MADV_REMOVE: case MADV_DONTFORK:
    case MADV_DOFORK: case MADV_MERGEABLE: case MADV_UNMERGEABLE: case MADV_HUGEPAGE:
    case MADV_NOHUGEPAGE: case MADV_DONTDUMP: case MADV_DODUMP: case MADV_WIPEONFORK:
    case MADV_KEEPONFORK: case MADV_COLD: case MADV_PAGEOUT: case 22 /* POPULATE_READ */:
    case 23 /* POPULATE_WRITE */: case 24 /* DONTNEED_LOCKED */: case 25 /* COLLAPSE */:
    case MADV_GUARD_INSTALL: case MADV_GUARD_REMOVE:
        return 1;
    default:
        return 0;
    }
}

/* MADV_DONTNEED on [from, to) pages of v. */
static void dontneed(struct umm__vma *v, uint64_t from, uint64_t to)
{
    /* Private file pages go back to the file's bytes, not to zeros: take
     * them from the program before their copies are discarded (see
     * unmap_range), so that another thread reading one meanwhile faults
     * and waits instead of seeing the discarded copy's zeros. */
    if (!(v->vflags & UMM__V_SHARED) && v->obj)
        mprotect((void *)(v->start + (from << UMM_PAGE_SHIFT)), (to - from) << UMM_PAGE_SHIFT, PROT_NONE);
    umm__vma_release_pages(v, from, to);
    /* Private file pages revert to the file; private anonymous ones to
     * their slots (after fork a page may have been on a frame elsewhere). */
    if (!(v->vflags & UMM__V_SHARED))
        umm__vma_host_map(v, v->start + (from << UMM_PAGE_SHIFT), v->start + (to << UMM_PAGE_SHIFT));
    else
        umm__vma_reprotect(v, from, to);
}

/* MADV_REMOVE: free the backing store of a shared mapping (punch a hole). */
static int remove_range(struct umm__vma *v, uint64_t from, uint64_t to)
{
    struct umm__object *obj = v->obj;
    if (!(v->vflags & UMM__V_SHARED) || !(v->vflags & UMM__V_MAYWRITE))
        return EACCES;
    uint64_t fp = v->fpage + from, n = to - from;
    if (obj->pager) /* pager.c: a store with no way to punch a hole */
        return EOPNOTSUPP;
    if (!obj->anon &&
        umm__sys_fallocate(obj->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)(fp << UMM_PAGE_SHIFT),
                  (off_t)(n << UMM_PAGE_SHIFT)) != 0)
        return errno;
    if (!obj->anon)
        umm__object_hole(obj, fp << UMM_PAGE_SHIFT);
    if (umm__mm.forked) {
        umm__object_punch(obj, fp, n);
        return 0;
    }
    /* Every mapping of these pages now sees zeros: their dirty bytes are
     * gone with the hole, and the pages are dropped everywhere. */
    for (uint64_t p = fp; p < fp + n; p++) {
        umm__pfn pfn = umm__object_pfn(obj, p);
        if (atomic_fetch_and(&umm__frame(pfn)->flags, ~UMM__F_DIRTY) & UMM__F_DIRTY)
            atomic_fetch_sub(&obj->ndirty, 1);
    }
    umm__object_drop(obj, fp, n);
    return 0;
}

static int advise_one(struct umm__vma *v, uint64_t from, uint64_t to, int advice)
{
    int shared = (v->vflags & UMM__V_SHARED) != 0;
    /* What would drop or age the pages of a locked mapping is refused
     * before anything else is looked at (madvise_dontneed_free_valid_vma,
     * madvise_remove, can_madv_lru_vma, is_valid_guard_vma); MADV_DONTNEED_LOCKED
     * is the one that may. */
    if ((v->vflags & UMM__V_LOCKED) && (advice == MADV_DONTNEED || advice == MADV_FREE || advice == MADV_REMOVE ||
                                        advice == MADV_COLD || advice == MADV_PAGEOUT ||
                                        advice == MADV_GUARD_INSTALL))
        return EINVAL;
    switch (advice) {
    case MADV_NORMAL:
    case MADV_RANDOM:
    case MADV_SEQUENTIAL:
        v->advice = advice;
        return 0;
    case MADV_DONTNEED:
    case 24: /* MADV_DONTNEED_LOCKED */
        dontneed(v, from, to);
        return 0;
    case MADV_FREE:
        if (v->obj)
            return EINVAL; /* private anonymous memory only */
        dontneed(v, from, to);
        return 0;
    case MADV_REMOVE:
        if (!v->obj) /* the kernel: no file is EINVAL; a private /dev/zero has one */
            return (v->vflags & UMM__V_DEVZERO) ? EACCES : EINVAL;
        return remove_range(v, from, to);
    case MADV_WILLNEED:
        /* The kernel reads ahead at most max(io_pages, ra_pages) of the
         * range per call (force_page_cache_ra(); a few MiB at most), not a
         * whole terabyte file: the same bound here, 2 MiB. */
        if (to - from > WILLNEED_MAX)
            to = from + WILLNEED_MAX;
        if (v->obj && !v->obj->anon && (v->prot & (PROT_READ | PROT_WRITE | PROT_EXEC)))
            umm__kvma_populate(v, v->start + (from << UMM_PAGE_SHIFT), v->start + (to << UMM_PAGE_SHIFT), 0);
        return 0;
    case 22: /* MADV_POPULATE_READ */
    case 23: /* MADV_POPULATE_WRITE */
    {
        int write = advice == 23;
        /* As the kernel's check_vma_flags(): a write needs PROT_WRITE, a
         * read PROT_READ itself (PROT_WRITE or PROT_EXEC alone is EINVAL). */
        if (!(v->prot & (write ? PROT_WRITE : PROT_READ)))
            return EINVAL;
        int e = umm__kvma_populate(v, v->start + (from << UMM_PAGE_SHIFT), v->start + (to << UMM_PAGE_SHIFT), write);
        return e == EACCES ? EINVAL : e ? EFAULT : 0;
    }
    case MADV_WIPEONFORK: /* private anonymous memory only; a private /dev/zero has a file */
        if (v->obj || shared || (v->vflags & UMM__V_DEVZERO))
            return EINVAL;
        v->vflags |= UMM__V_WIPEONFORK;
        return 0;
    case MADV_KEEPONFORK: /* undoing it is allowed anywhere, as in the kernel */
        v->vflags &= ~UMM__V_WIPEONFORK;
        return 0;
    case MADV_DONTFORK:
        v->vflags |= UMM__V_DONTFORK;
        return 0;
    case MADV_DONTDUMP:
        v->vflags |= UMM__V_DONTDUMP;
        return 0;
    case MADV_DODUMP:
        v->vflags &= ~UMM__V_DONTDUMP;
        return 0;
    case MADV_HUGEPAGE:
        v->vflags = (v->vflags & ~UMM__V_NOHUGEPAGE) | UMM__V_HUGEPAGE;
        return 0;
    case MADV_NOHUGEPAGE:
        v->vflags = (v->vflags & ~UMM__V_HUGEPAGE) | UMM__V_NOHUGEPAGE;
        return 0;
    case MADV_MERGEABLE: /* ksm_madvise(): shared memory is left as it is */
        if (!(v->vflags & UMM__V_SHARED))
            v->vflags |= UMM__V_MERGEABLE;
        return 0;
    case MADV_UNMERGEABLE:
        v->vflags &= ~UMM__V_MERGEABLE;
        return 0;
    case MADV_DOFORK:
        v->vflags &= ~UMM__V_DONTFORK;
        return 0;
    case 25: /* MADV_COLLAPSE */
        return EINVAL;
    case MADV_COLD: /* deactivate: the next turn of reclaim's hand takes them unless touched */
    case MADV_PAGEOUT: /* reclaim now (what other processes map stays: theirs to let go) */
        umm__reclaim_range(v, from, to, advice == MADV_PAGEOUT);
        return 0;
    case MADV_GUARD_INSTALL:
        /* As the kernel: the pages' contents go (a private file page back to
         * the file, shared pages stay in the page cache), then every touch
         * is SIGSEGV until MADV_GUARD_REMOVE.  The entry keeps the guard
         * through whatever leaves entries in place (MADV_DONTNEED,
         * mprotect, msync, fork); munmap ends it. */
        dontneed(v, from, to);
        umm__mc_update(v, from, to, UMM__P_GUARD, 0, UMM__MC_NOLIMIT);
        return 0;
    case MADV_GUARD_REMOVE: /* the pages fault in as any other again */
        umm__mc_update(v, from, to, 0, UMM__P_GUARD, UMM__MC_NOLIMIT);
        return 0;
    default: /* hints libumm has no use for: accepted, as the kernel does */
        return 0;
    }
}

int umm_madvise(void *addr, size_t length, int advice)
{
    uintptr_t start = (uintptr_t)addr;
    if (!advice_valid(advice))
        return fail(EINVAL);
    if (!UMM_PAGE_ALIGNED(start))
        return fail(EINVAL);
    size_t len = page_align(length);
    if (length && !len)
        return fail(EINVAL);
    uintptr_t end = start + len;
    if (end < start)
        return fail(EINVAL);
    if (end == start)
        return 0;
    if (umm__start() != 0)
        return -1;

    sigset_t saved;
    umm__enter(&saved);
    int err = 0, unmapped = 0;
    int splits = advice == MADV_NORMAL || advice == MADV_RANDOM || advice == MADV_SEQUENTIAL ||
                 advice == MADV_DONTFORK || advice == MADV_DOFORK || advice == MADV_WIPEONFORK ||
                 advice == MADV_KEEPONFORK || advice == MADV_DONTDUMP || advice == MADV_DODUMP ||
                 advice == MADV_HUGEPAGE || advice == MADV_NOHUGEPAGE || advice == MADV_MERGEABLE ||
                 advice == MADV_UNMERGEABLE;
    int populate = advice == 22 || advice == 23; /* MADV_POPULATE_(READ|WRITE) */
    if (splits && (umm__vma_split(start) != 0 || umm__vma_split(end) != 0))
        err = ENOMEM;
    if (splits)
        umm__kvma_snapshot(start, end);
    uintptr_t at = start;
    while (!err && at < end) {
        struct umm__vma *v = umm__vma_next(at, NULL);
        if (!v || v->start >= end) {
            unmapped = 1;
            break;
        }
        if (v->start > at) {
            unmapped = 1;
            if (populate) /* the kernel populates up to the first hole, then ENOMEM */
                break;
        }
        uintptr_t s = v->start > at ? v->start : at, e = v->end < end ? v->end : end;
        err = advise_one(v, (s - v->start) >> UMM_PAGE_SHIFT, (e - v->start) >> UMM_PAGE_SHIFT, advice);
        at = e;
    }
    if (splits)
        umm__kvma_changed(start, end, 0);
    umm__leave(&saved);
    if (!err && unmapped)
        err = ENOMEM;
    return err ? fail(err) : 0;
}

/* ------------------------------------------------------------- prefault */

int umm_prefault(void *addr, size_t length, int prot)
{
    uintptr_t start = (uintptr_t)addr;
    if (!UMM_PAGE_ALIGNED(start) || (prot & ~(PROT_READ | PROT_WRITE)))
        return fail(EINVAL);
    uintptr_t end = start + page_align(length);
    if (end < start)
        return fail(ENOMEM);
    if (umm__start() != 0)
        return -1;
    /* umm__enter(), but the address-space lock for reading: prefaulting is
     * what the trap does for a touch, under the lock the trap takes, so that
     * faults elsewhere go on while this call waits for its reads (with the
     * lock for writing, every fault in the process would wait for them). */
    sigset_t saved, all;
    sigfillset(&all);
    sigdelset(&all, SIGSEGV);
    sigdelset(&all, SIGBUS);
    sigdelset(&all, SIGILL);
    sigdelset(&all, SIGFPE);
    pthread_sigmask(SIG_BLOCK, &all, &saved);
    pthread_rwlock_rdlock(&umm__mm.lock);
    int err = 0;
    uintptr_t at = start;
    while (!err && at < end) {
        struct umm__vma *v = umm__vma_find(at);
        if (!v) {
            err = ENOMEM;
            break;
        }
        uintptr_t e = v->end < end ? v->end : end;
        err = umm__kvma_populate(v, at, e, (prot & PROT_WRITE) != 0);
        at = e;
    }
    umm__leave(&saved);
    return err ? fail(err) : 0;
}

/* ------------------------------------------------ libumm's own mapping */

/*
 * The start-up check of Valgrind's options (trap.c) needs pages that trap:
 * a mapping like a program's, made and removed here rather than by
 * umm_mmap and umm_munmap so that memcheck is told of no block for it.
 * memcheck describes an address by the oldest free'd block that holds it
 * (or ends just before it), so a block made and free'd at start-up would
 * be named in the report of a touch of whatever the program maps there
 * later, instead of the program's own mapping.  Nor does it move
 * vg_next_hint: the program's first mapping may take its place.
 */
void *umm__own_mmap(size_t len)
{
    sigset_t saved;
    int err = 0;
    umm__enter(&saved);
    void *r = mmap(NULL, len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    struct umm__vma *v = NULL;
    if (r != MAP_FAILED)
        v = make_vma((uintptr_t)r, len, PROT_READ | PROT_WRITE, 0, 1, -1, 0, NULL, 0, &err);
    if (v)
        umm__kvma_new(v, -1, MAP_NORESERVE, 0);
    if (!v || umm__vma_host_map(v, v->start, v->end) != 0 || vma_insert(v) != 0) {
        if (v)
            vma_discard(v);
        if (r != MAP_FAILED)
            munmap(r, len);
        umm__leave(&saved);
        return NULL;
    }
    v->vflags |= UMM__V_MAYWRITE | UMM__V_OWN;
    umm__leave(&saved);
    return r;
}

void umm__own_munmap(void *p, size_t len)
{
    sigset_t saved;
    umm__enter(&saved);
    unmap_range((uintptr_t)p, (uintptr_t)p + len, 1, 0);
    umm__leave(&saved);
}

/* ------------------------------------------------------------ at exit */

/*
 * fork (fork.c keeps the family's pages exact through its atfork handlers).
 * The child, as the kernel's, has no MADV_DONTFORK mappings: their pages
 * were shared at the fork like all others, so the child lets go of them
 * as munmap would, in a handler of its own that runs after fork.c's
 * (registered after it, at the first call: atfork child handlers run in
 * the order they were registered).
 */
static void dontfork_child(void)
{
    sigset_t saved;
    umm__enter(&saved);
    for (size_t i = 0; i < umm__vma_count();) {
        struct umm__vma *v = umm__vma_at(i);
        if (v->vflags & UMM__V_DONTFORK)
            unmap_range(v->start, v->end, 1, 0); /* the set shifts down: i is the next one */
        else
            i++;
    }
    umm__leave(&saved);
}

static void register_dontfork(void)
{
    pthread_atfork(NULL, NULL, dontfork_child);
}

pid_t umm_fork(void)
{
    if (umm__start() != 0)
        return -1;
    if (umm__fork_reserve() != 0) {
        errno = ENOMEM;
        return -1;
    }
    return fork();
}

/*
 * The last of libumm in a process that exits normally, after the
 * program's atexit handlers and destructors (init.c's exit handler wrote
 * every dirty page back before): the trace file (UMM_TRACE_FILE), then a
 * process of a fork family lets go of its mappings, so the frames it
 * shared are freed when the last process lets go.  A process that never
 * forked needs nothing: its RAM goes with it.  Nor is it done while
 * another thread runs (it might still touch a mapping): what such a
 * process held stays until the family ends, as after SIGKILL.  Under
 * Valgrind the mappings still alive go to memcheck's leak check (vma.c).
 */
__attribute__((destructor)) static void at_last(void)
{
    umm__trace_file_write(umm__budget());
    if (umm__mm.forked && getpid() == umm__mm.pid && umm__fork_only_thread()) {
        sigset_t saved;
        umm__enter(&saved);
        unmap_range(0, UINTPTR_MAX & UMM_PAGE_MASK, 1, 0);
        umm__leave(&saved);
    }
    umm__vg_exit(0);
}

/* --------------------------------------------------------------- mremap */

/*
 * umm_mremap.  A mapping's state is address-free: its page table (entries
 * indexed from the VMA's first page), its private frame range (page i on
 * anon->base + anon_off + i unless the entry says otherwise) and its object
 * and file page.  So libumm never copies a byte for mremap:
 *
 *  - shrinking unmaps the tail (munmap's own path);
 *  - moving re-addresses the VMAs (umm__vma_move): same entries, same
 *    frames, same reference counts, so dirty state and the copy-on-write
 *    state of a fork are kept as they were; the host maps the new range to
 *    the frames the entries name, and the old range is unmapped;
 *  - growing adds a VMA after the last one, like it (the same object at
 *    the following file pages; a fresh private range for private
 *    mappings, whose new pages are zeros or the file's, as the kernel's).
 *
 * A kernel VMA may thus be several libumm VMAs: every VMA that starts
 * where the previous one ends and that the kernel would have merged with
 * it (same protection, flags, advice, object and following file pages:
 * same_mapping) is one mapping to mremap, as it is to the kernel, whose
 * own mmap and mprotect merge such neighbours.
 *
 * The checks are those of the kernel's mm/mremap.c (Linux 6.18), in its
 * order: check_mremap_params() before the lock, then the VMA at old
 * (EFAULT), check_prep_vma() for what maps anew, then mremap_to() (a new
 * address: MREMAP_FIXED unmaps the destination first) or the resize in
 * place.  MREMAP_FIXED without a resize moves every VMA of the old range,
 * each to the same offset (remap_move(), Linux 6.17): the destination is
 * unmapped piece by piece, so what faces a hole of the old range stays.
 */

#ifndef MREMAP_DONTUNMAP
#define MREMAP_DONTUNMAP 4
#endif

/* Is w (which may be NULL) part of v's kernel VMA (kvma.c)? */
static int same_mapping(const struct umm__vma *v, const struct umm__vma *w)
{
    return umm__kvma_joined(v, w);
}

/* The kernel's VMA holding v ends here, and its last libumm VMA is *last. */
static uintptr_t mapping_end(struct umm__vma *v, struct umm__vma **last)
{
    size_t i;
    umm__vma_next(v->start, &i);
    struct umm__vma *w;
    while ((w = umm__vma_at(i + 1)) && same_mapping(v, w)) {
        v = w;
        i++;
    }
    if (last)
        *last = v;
    return v->end;
}

/* The kernel's VMA holding v: where it starts and ends. */
static void mapping_bounds(struct umm__vma *v, uintptr_t *start, uintptr_t *end)
{
    size_t i;
    umm__vma_next(v->start, &i);
    while (i > 0 && same_mapping(umm__vma_at(i - 1), umm__vma_at(i)))
        i--;
    *start = umm__vma_at(i)->start;
    *end = mapping_end(v, NULL);
}

/* move_vma() takes VM_LOCKED from the old VMA under MREMAP_DONTUNMAP: from
 * all of the kernel's VMA that was there, [start, end), not only the
 * range that moved (the new VMA keeps it). */
static void unlock_range(uintptr_t start, uintptr_t end)
{
    size_t i;
    for (struct umm__vma *w = umm__vma_next(start, &i); w && w->start < end; w = umm__vma_at(++i))
        w->vflags &= ~UMM__V_LOCKED;
}

/*
 * May remap_move() move a VMA of this object along with others?  Not when
 * its file system places mappings itself (a get_unmapped_area of its own
 * that is not THP's or shmem's: vma_multi_allowed()), which only the host
 * can say: it is asked once per object, with two host VMAs of the file.
 */
static int multi_move_ok(struct umm__object *obj)
{
    if (!obj || obj->anon)
        return 1;
    if (!obj->multi_move) {
        obj->multi_move = 1;
        char *r = mmap(NULL, 4 * UMM_PAGE_SIZE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (r != MAP_FAILED && mmap(r, 2 * UMM_PAGE_SIZE, PROT_READ, MAP_PRIVATE | MAP_FIXED, obj->fd, 0) == r &&
            mprotect(r + UMM_PAGE_SIZE, UMM_PAGE_SIZE, PROT_NONE) == 0 &&
            syscall(SYS_mremap, r, 2 * UMM_PAGE_SIZE, 2 * UMM_PAGE_SIZE, MREMAP_MAYMOVE | MREMAP_FIXED,
                    r + 2 * UMM_PAGE_SIZE) == -1 && errno == EFAULT) /* the kernel's, not libumm's */
            obj->multi_move = 2;
        if (r != MAP_FAILED)
            munmap(r, 4 * UMM_PAGE_SIZE);
    }
    return obj->multi_move == 1;
}

/* A VMA for [start, end) like t, part of t's kernel VMA, at vm_pgoff
 * fpage (the object's page, if it has one), with a fresh private range if
 * t is private: its pages are the file's, or zeros.  Not inserted, not
 * host-mapped.  NULL: no memory. */
static struct umm__vma *vma_like(const struct umm__vma *t, uintptr_t start, uintptr_t end, uint64_t fpage)
{
    struct umm__vma *v = umm__vma_new(start, end);
    if (!v)
        return NULL;
    v->prot = t->prot;
    v->vflags = t->vflags;
    v->advice = t->advice;
    if (t->obj) {
        if (umm__object_cover(t->obj, fpage, umm__vma_pages(v), (t->vflags & UMM__V_ZEROCOPY) != 0) != 0) {
            vma_discard(v);
            return NULL;
        }
        v->obj = t->obj;
        v->obj->refs++;
        v->fpage = fpage;
        umm__rmap_add(v->obj, v);
    }
    if (!(t->vflags & UMM__V_SHARED) && umm__vma_new_anon(v) != 0) {
        vma_discard(v);
        return NULL;
    }
    umm__kvma_like(v, t, fpage);
    return v;
}

/* Map a VMA like t at [start, end), over a host reservation there, as the
 * end of the memcheck block `block`, which ends at start (0: a block of its
 * own).  0 or ENOMEM. */
static int add_like(const struct umm__vma *t, uintptr_t start, uintptr_t end, uint64_t fpage, uintptr_t block)
{
    struct umm__vma *v = vma_like(t, start, end, fpage);
    if (!v || umm__vma_host_map(v, start, end) != 0) {
        if (v)
            vma_discard(v);
        return ENOMEM;
    }
    vma_insert(v);
    if (!(v->vflags & UMM__V_OWN)) {
        if (!block) {
            block = start;
            umm__vg_block_new(start, end - start);
        } else {
            umm__vg_block_move(block, block, end - block); /* the block grows */
        }
        v->block = block;
        umm__vg_forget((void *)start, end - start);
    }
    /* As the kernel: a locked mapping's new pages are made resident. */
    if (v->vflags & UMM__V_LOCKED)
        umm__kvma_populate(v, start, end, !(v->vflags & UMM__V_SHARED) && (v->prot & PROT_WRITE));
    return 0;
}

/*
 * Move libumm's VMAs in [a, a+len) (split at both ends) to [to, to+len),
 * which has no VMA and is reserved on the host.  The old range is given
 * back to the host, or (dontunmap) mapped afresh like it was:
 * MREMAP_DONTUNMAP's old range reads as a new mapping would (zeros, or the
 * file's bytes), and is not locked any more.  For memcheck each run of
 * moved VMAs without a hole is a block (vg.h: blocks have no holes); *last
 * is the block of the run that ends at to+len (what grows after it joins
 * it), or 0.  0 or ENOMEM.
 */
static int move_range(uintptr_t a, size_t len, uintptr_t to, int dontunmap, uintptr_t *last)
{
    *last = 0;
    if (!len) /* old_size 0: nothing moves (the VMA holding a is not "in" the range) */
        return 0;
    blocks_unmap(a, a + len);
    struct umm__vma *v;
    int err = 0;
    uintptr_t at = a; /* behind it: moved (and, dontunmap, mapped afresh) */
    uintptr_t block = 0, bend = 0;
    while (!err && (v = umm__vma_next(at, NULL)) && v->start < a + len) {
        uintptr_t s = v->start, e = v->end, ns = to + (s - a), ne = ns + (e - s);
        at = e;
        if (umm__vma_move(v, ns) != 0)
            err = ENOMEM;
        if (!(v->vflags & UMM__V_OWN)) {
            if (!block || ns != bend) {
                block = ns;
                umm__vg_block_new(block, ne - block);
            } else {
                umm__vg_block_move(block, block, ne - block);
            }
            bend = ne;
            v->block = block;
        }
        if (!dontunmap) {
            munmap((void *)s, e - s);
        } else {
            struct umm__vma t = *v;
            t.vflags &= ~UMM__V_LOCKED;
            if (add_like(&t, s, e, umm__kvma_pgoff(v, v->start), 0) != 0)
                err = ENOMEM;
        }
    }
    umm__mc_recount();
    *last = block && bend == to + len ? block : 0;
    return err;
}

/* Reserve [start, end) on the host if nothing is there: 1, else 0. */
static int reserve_free(uintptr_t start, uintptr_t end)
{
    struct umm__vma *v = umm__vma_next(start, NULL);
    if (end > TASK_SIZE || end < start || (v && v->start < end))
        return 0;
    void *r = mmap((void *)start, end - start, PROT_NONE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED_NOREPLACE, -1, 0);
    if (r == MAP_FAILED)
        return 0;
    if ((uintptr_t)r != start) { /* a kernel older than MAP_FIXED_NOREPLACE */
        munmap(r, end - start);
        return 0;
    }
    return 1;
}

/* The destination of a move the kernel chooses (get_unmapped_area), hint
 * or not: reserved on the host.  0 if there is no room. */
static uintptr_t reserve_any(uintptr_t hint, size_t len)
{
    if (!hint && umm__vg_running())
        hint = umm__mm.vg_next_hint; /* see vg_next_hint above */
    void *r = mmap((void *)hint, len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (r == MAP_FAILED)
        return 0;
    if ((uintptr_t)r + len > umm__mm.vg_next_hint)
        umm__mm.vg_next_hint = (uintptr_t)r + len;
    return (uintptr_t)r;
}

/* The destination of MREMAP_FIXED: unmap what libumm maps there and
 * reserve the rest.  Memory that is not libumm's is not unmapped (as for
 * MAP_FIXED): EEXIST.  0 or an errno. */
static int take_destination(uintptr_t to, size_t len)
{
    if (!claim_gaps(to, to + len))
        return EEXIST;
    if (unmap_range(to, to + len, 0, 1) != 0) {
        release_gaps(to, to + len);
        return ENOMEM;
    }
    return 0;
}

/* The core, lock held; returns the new address or MAP_FAILED with *err. */
static void *mremap_locked(uintptr_t a, size_t olen, size_t nlen, int flags, uintptr_t na, int *err)
{
    int newaddr = (flags & (MREMAP_FIXED | MREMAP_DONTUNMAP)) != 0;
    int dontunmap = (flags & MREMAP_DONTUNMAP) != 0;
    struct umm__vma *v = umm__vma_find(a);
    if (!v) {
        *err = EFAULT;
        return MAP_FAILED;
    }

    /* remap_move(): a move without a resize takes every VMA in the range,
     * each to the same offset at the destination, whose parts facing the
     * old range's holes are left alone; the range must start on a VMA. */
    if ((flags & MREMAP_FIXED) && olen == nlen) {
        if (umm__vma_split(a) != 0 || umm__vma_split(a + olen) != 0) {
            *err = ENOMEM;
            return MAP_FAILED;
        }
        uintptr_t at = a;
        int seen = 0, allowed = 1;
        while ((v = umm__vma_next(at, NULL)) && v->start < a + olen) {
            /* mremap_to() for the part [ps, pe) of one kernel VMA: its
             * destination unmapped, then moved there (copy_vma: a kernel
             * VMA of its own, merged with what is around it), then the
             * old range unmapped (a cut) or, MREMAP_DONTUNMAP, left. */
            uintptr_t ks, ke;
            mapping_bounds(v, &ks, &ke);
            /* As Linux 6.18's remap_move(): a VMA that may not move with
             * others (a private /dev/zero has a file of its own, with its
             * get_unmapped_area_zero) moves if it comes first; the next
             * one is EFAULT, with what came before moved. */
            int ok = !(v->vflags & UMM__V_DEVZERO) && multi_move_ok(v->obj);
            if (!allowed || (seen && !ok)) {
                *err = EFAULT;
                return MAP_FAILED;
            }
            allowed = ok;
            uintptr_t ps = v->start, pe = ke < a + olen ? ke : a + olen;
            if ((*err = take_destination(na + (ps - a), pe - ps)) != 0)
                return MAP_FAILED;
            mapping_bounds(umm__vma_find(ps), &ks, &ke); /* the destination may have cut it */
            int locked = dontunmap && (v->vflags & UMM__V_LOCKED);
            while ((v = umm__vma_next(at, NULL)) && v->start < pe) {
                uintptr_t s = v->start, e = v->end, lastblock;
                if ((*err = move_range(s, e - s, na + (s - a), dontunmap, &lastblock)) != 0)
                    return MAP_FAILED;
                at = e;
            }
            umm__kvma_moved(na + (ps - a), na + (pe - a));
            if (locked) { /* the old VMA, which the new one may have merged with */
                uintptr_t ls, le;
                mapping_bounds(umm__vma_find(ps), &ls, &le);
                unlock_range(ls, le);
            }
            if (dontunmap)
                umm__kvma_dontunmap(ps, pe, ks, ke);
            else
                umm__kvma_cut(pe);
            seen = 1;
        }
        return (void *)na;
    }

    /* check_prep_vma(), for what maps anew: a growth or a new address. */
    if (nlen > olen || newaddr) {
        if (!olen && !(v->vflags & UMM__V_SHARED)) {
            *err = EINVAL; /* a "duplicate" of private memory would share nothing */
            return MAP_FAILED;
        }
        /* A shrink may cross mappings: only what stays must be one. */
        if ((nlen < olen ? nlen : olen) > mapping_end(v, NULL) - a) {
            *err = EFAULT;
            return MAP_FAILED;
        }
        if (nlen > olen) {
            uint64_t pgoff = v->fpage + ((a - v->start) >> UMM_PAGE_SHIFT);
            if (v->obj && pgoff + (nlen >> UMM_PAGE_SHIFT) < pgoff) {
                *err = EINVAL;
                return MAP_FAILED;
            }
            if ((v->vflags & UMM__V_LOCKED) && (*err = check_locked(nlen - olen)) != 0)
                return MAP_FAILED;
        }
    }

    if (!newaddr) {
        if (olen == nlen)
            return (void *)a;
        if (olen > nlen) { /* always allowed: munmap of the tail */
            if (unmap_range(a + nlen, a + olen, 1, 1) != 0) {
                *err = ENOMEM;
                return MAP_FAILED;
            }
            umm__file_retry();
            return (void *)a;
        }
    }

    /* The mapping at a, as it was: what grows follows it. */
    struct umm__vma t = *v;
    uintptr_t kstart, kend;
    mapping_bounds(v, &kstart, &kend);
    uint64_t fp0 = umm__kvma_pgoff(v, a);
    struct umm__vma *last;
    uintptr_t mend = mapping_end(v, &last);

    if (!newaddr && olen == mend - a && reserve_free(a + olen, a + nlen)) {
        /* Grow in place: the address space after the mapping is free. */
        uintptr_t block = (last->vflags & UMM__V_OWN) ? 0 : last->block;
        if (add_like(&t, a + olen, a + nlen, fp0 + (olen >> UMM_PAGE_SHIFT), block) != 0) {
            munmap((void *)(a + olen), nlen - olen);
            *err = ENOMEM;
            return MAP_FAILED;
        }
        umm__kvma_grown(umm__vma_find(a + olen));
        return (void *)a;
    }
    if (!newaddr && !(flags & MREMAP_MAYMOVE)) {
        *err = ENOMEM;
        return MAP_FAILED;
    }

    /* mremap_to(), or a move the kernel places. */
    uintptr_t to = 0;
    if (flags & MREMAP_FIXED) {
        if ((*err = take_destination(na, nlen)) != 0)
            return MAP_FAILED;
        if (!(v = umm__vma_find(a))) {
            release_gaps(na, na + nlen);
            *err = EFAULT;
            return MAP_FAILED;
        }
        mapping_bounds(v, &kstart, &kend); /* the destination may have cut it */
        to = na;
    }
    if (olen > nlen) { /* mremap_to() shrinks, then moves what is left */
        if (unmap_range(a + nlen, a + olen, 1, 1) != 0) {
            if (flags & MREMAP_FIXED)
                release_gaps(na, na + nlen);
            *err = ENOMEM;
            return MAP_FAILED;
        }
        olen = nlen;
    }
    if (!(flags & MREMAP_FIXED) && !(to = reserve_any(newaddr ? na : 0, nlen))) {
        *err = ENOMEM;
        return MAP_FAILED;
    }
    uintptr_t lastblock = 0;
    if ((olen && (umm__vma_split(a) != 0 || umm__vma_split(a + olen) != 0)) ||
        move_range(a, olen, to, dontunmap, &lastblock) != 0) {
        *err = ENOMEM;
        return MAP_FAILED;
    }
    if (nlen > olen && add_like(&t, to + olen, to + nlen, fp0 + (olen >> UMM_PAGE_SHIFT), lastblock) != 0) {
        *err = ENOMEM;
        return MAP_FAILED;
    }
    umm__kvma_moved(to, to + nlen);
    if (dontunmap && (t.vflags & UMM__V_LOCKED)) { /* the old VMA, which the new one may have merged with */
        uintptr_t ls, le;
        mapping_bounds(umm__vma_find(a), &ls, &le);
        unlock_range(ls, le);
    }
    if (dontunmap)
        umm__kvma_dontunmap(a, a + olen, kstart, kend);
    else if (olen)
        umm__kvma_cut(a + olen);
    umm__mc_recount();
    return (void *)to;
}

void *umm_mremap(void *old_address, size_t old_size, size_t new_size, int flags, ...)
{
    uintptr_t a = (uintptr_t)old_address, na = 0;
    if (flags & (MREMAP_FIXED | MREMAP_DONTUNMAP)) { /* as the C library reads it */
        va_list ap;
        va_start(ap, flags);
        na = (uintptr_t)va_arg(ap, void *);
        va_end(ap);
    }
    /* check_mremap_params(), in its order. */
    if (flags & ~(MREMAP_MAYMOVE | MREMAP_FIXED | MREMAP_DONTUNMAP))
        return fail(EINVAL), MAP_FAILED;
    if (!UMM_PAGE_ALIGNED(a))
        return fail(EINVAL), MAP_FAILED;
    size_t olen = page_align(old_size), nlen = page_align(new_size);
    if (nlen == 0)
        return fail(EINVAL), MAP_FAILED;
    if (nlen > TASK_SIZE || na > TASK_SIZE - nlen)
        return fail(EINVAL), MAP_FAILED;
    if (flags & (MREMAP_FIXED | MREMAP_DONTUNMAP)) {
        if (!UMM_PAGE_ALIGNED(na) || !(flags & MREMAP_MAYMOVE))
            return fail(EINVAL), MAP_FAILED;
        if ((flags & MREMAP_DONTUNMAP) && olen != nlen)
            return fail(EINVAL), MAP_FAILED;
        if (a + olen > na && na + nlen > a)
            return fail(EINVAL), MAP_FAILED;
    }
    if (umm__start() != 0)
        return MAP_FAILED;
    sigset_t saved;
    int err = 0;
    umm__enter(&saved);
    void *r = mremap_locked(a, olen, nlen, flags, na, &err);
    umm__leave(&saved);
    if (r == MAP_FAILED)
        return fail(err), MAP_FAILED;
    return r;
}

/*
 * The C library's mremap, for the program and the libraries it uses
 * (SQLite's unix VFS grows its mapping of the database with it): on
 * libumm's memory it is umm_mremap, elsewhere the kernel's, unchanged.
 */
void *mremap(void *old_address, size_t old_size, size_t new_size, int flags, ...)
{
    void *na = NULL;
    if (flags & (MREMAP_FIXED | MREMAP_DONTUNMAP)) {
        va_list ap;
        va_start(ap, flags);
        na = va_arg(ap, void *);
        va_end(ap);
    }
    int ours = 0;
    if (umm__vma_maybe_ours(old_address, 1) && umm__ram.sh && pthread_rwlock_rdlock(&umm__mm.lock) == 0) {
        ours = umm__vma_find((uintptr_t)old_address) != NULL;
        pthread_rwlock_unlock(&umm__mm.lock);
    }
    if (ours)
        return umm_mremap(old_address, old_size, new_size, flags, na);
    static void *(*next)(void *, size_t, size_t, int, ...);
    if (!next)
        next = (void *(*)(void *, size_t, size_t, int, ...))dlsym(RTLD_NEXT, "mremap");
    if (next)
        return next(old_address, old_size, new_size, flags, na);
    return (void *)syscall(SYS_mremap, old_address, old_size, new_size, flags, na);
}
