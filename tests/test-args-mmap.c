/* Promise: umm_mmap checks its arguments exactly as the kernel's mmap does:
 * the same result and errno for every case of a table (bad lengths,
 * offsets, types, flags, descriptors, file modes, fixed addresses and
 * combinations of two errors, which must be reported in the kernel's order),
 * each run against the kernel and against libumm.  A failed call changes
 * nothing: the mapping already there reads the same, libumm's counters
 * do not move. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include "kcmp.h"

#ifndef MAP_SYNC
#define MAP_SYNC 0x80000
#endif
#ifndef MAP_HUGETLB
#define MAP_HUGETLB 0x40000
#endif
#ifndef F_SEAL_WRITE
#define F_SEAL_WRITE 0x0008
#endif

#define SEED 21
#define UNKNOWN_FLAG 0x800000 /* no MAP_ flag has this bit */
#define FREE_BASE ((uintptr_t)0x200000000000) /* far from heap, stack and mmap_base */
#define TOP ((uintptr_t)1 << 47)              /* end of the 47-bit user address space */

/* Descriptors. */
enum { FD_ANON, FD_RDONLY, FD_RDWR, FD_WRONLY, FD_APPEND, FD_BAD, FD_NOTOPEN, FD_OPATH, FD_PIPE_R, FD_PIPE_W,
       FD_SOCKET, FD_DIR, FD_DEVNULL, FD_DEVZERO, FD_PROC, FD_MEMFD_SEALED, FD_N };
static int fds[FD_N];

/* Addresses: relative to a mapping that exists ("ex", 4 pages, the file,
 * MAP_PRIVATE, every page touched) or to free address space. */
enum { AD_NULL, AD_FREE, AD_FREE_PLUS1, AD_EX, AD_EX_LAST, AD_TOP_1, AD_TOP_2, AD_TOP, AD_TOP_PLUS1 };

struct mcase {
    const char *name;
    int addr;
    size_t len;
    int prot;
    int flags;
    int fd;
    off_t off;
    int expect; /* the errno the issue names (0: success), or -1: whatever Linux says */
};

#define P PAGE
#define R PROT_READ
#define RW (PROT_READ | PROT_WRITE)
#define PRIV MAP_PRIVATE
#define SHR MAP_SHARED
#define ANON MAP_ANONYMOUS
#define FIX MAP_FIXED
#define NOREP MAP_FIXED_NOREPLACE
#define VAL MAP_SHARED_VALIDATE

static const struct mcase cases[] = {
    /* the simple errors */
    { "length 0", AD_NULL, 0, R, PRIV, FD_RDONLY, 0, EINVAL },
    { "length 0, anonymous", AD_NULL, 0, RW, PRIV | ANON, FD_BAD, 0, EINVAL },
    { "offset not page aligned", AD_NULL, P, R, PRIV, FD_RDONLY, 100, EINVAL },
    { "offset not page aligned, anonymous", AD_NULL, P, RW, PRIV | ANON, FD_BAD, 100, EINVAL },
    { "neither MAP_SHARED nor MAP_PRIVATE", AD_NULL, P, R, 0, FD_RDONLY, 0, EINVAL },
    { "neither MAP_SHARED nor MAP_PRIVATE, anonymous", AD_NULL, P, RW, ANON, FD_BAD, 0, EINVAL },
    { "mapping type 0x4", AD_NULL, P, R, 0x4, FD_RDONLY, 0, EINVAL },
    { "mapping type 0xf", AD_NULL, P, R, 0xf, FD_RDONLY, 0, EINVAL },
    { "mapping type 0x8 (MAP_DROPPABLE) on a file", AD_NULL, P, R, 0x8, FD_RDONLY, 0, EINVAL },
    { "MAP_SHARED_VALIDATE, anonymous", AD_NULL, P, RW, VAL | ANON, FD_BAD, 0, -1 },
    { "mapping type 0x8 (MAP_DROPPABLE), anonymous", AD_NULL, P, RW, 0x8 | ANON, FD_BAD, 0, -1 },
    { "MAP_SHARED_VALIDATE with an unknown flag", AD_NULL, P, R, VAL | UNKNOWN_FLAG, FD_RDWR, 0, EOPNOTSUPP },
    { "MAP_SHARED_VALIDATE with known flags", AD_NULL, P, RW, VAL | MAP_POPULATE | MAP_NORESERVE, FD_RDWR, 0, 0 },
    { "MAP_SHARED_VALIDATE with MAP_32BIT", AD_NULL, P, RW, VAL | 0x40, FD_RDWR, 0, 0 },
    { "MAP_SHARED_VALIDATE with MAP_32BIT, file O_RDONLY", AD_NULL, P, RW, VAL | 0x40, FD_RDONLY, 0, EACCES },
    { "MAP_SHARED_VALIDATE with huge size bits 21", AD_NULL, P, RW, VAL | (21 << 26), FD_RDWR, 0, 0 },
    { "MAP_SHARED_VALIDATE with huge size bits 16", AD_NULL, P, RW, VAL | (16 << 26), FD_RDWR, 0, 0 },
    { "MAP_SHARED_VALIDATE with huge size bit 31", AD_NULL, P, RW, VAL | (int)(32u << 26), FD_RDWR, 0, EOPNOTSUPP },
    { "MAP_SHARED ignores an unknown flag", AD_NULL, P, RW, SHR | UNKNOWN_FLAG, FD_RDWR, 0, 0 },
    { "MAP_PRIVATE ignores an unknown flag", AD_NULL, P, RW, PRIV | UNKNOWN_FLAG, FD_RDONLY, 0, 0 },
    { "MAP_SHARED_VALIDATE with MAP_SYNC (not DAX)", AD_NULL, P, RW, VAL | MAP_SYNC, FD_RDWR, 0, -1 },
    { "MAP_SHARED with MAP_SYNC (not DAX)", AD_NULL, P, RW, SHR | MAP_SYNC, FD_RDWR, 0, -1 },
    { "MAP_PRIVATE with MAP_SYNC (not DAX)", AD_NULL, P, RW, PRIV | MAP_SYNC, FD_RDWR, 0, -1 },
    { "unknown PROT bits are ignored", AD_NULL, P, R | 0x100, PRIV, FD_RDONLY, 0, -1 },
    { "MAP_HUGETLB on a regular file", AD_NULL, P, R, PRIV | MAP_HUGETLB, FD_RDONLY, 0, EINVAL },
    { "MAP_GROWSDOWN on a file", AD_NULL, P, R, PRIV | MAP_GROWSDOWN, FD_RDONLY, 0, EINVAL },
    { "MAP_GROWSDOWN, anonymous", AD_NULL, 4 * P, RW, PRIV | ANON | MAP_GROWSDOWN, FD_BAD, 0, -1 },
    { "MAP_NORESERVE", AD_NULL, P, RW, PRIV | MAP_NORESERVE, FD_RDONLY, 0, 0 },

    /* descriptors */
    { "fd -1", AD_NULL, P, R, PRIV, FD_BAD, 0, EBADF },
    { "fd not open", AD_NULL, P, R, SHR, FD_NOTOPEN, 0, EBADF },
    { "fd opened O_PATH", AD_NULL, P, R, PRIV, FD_OPATH, 0, EBADF },
    { "anonymous ignores the fd", AD_NULL, P, RW, PRIV | ANON, FD_NOTOPEN, 0, 0 },
    { "anonymous ignores an aligned offset", AD_NULL, P, RW, SHR | ANON, FD_RDONLY, 64 * P, 0 },
    { "pipe (read end)", AD_NULL, P, R, PRIV, FD_PIPE_R, 0, -1 },
    { "pipe (read end), shared writable", AD_NULL, P, RW, SHR, FD_PIPE_R, 0, -1 },
    { "pipe (write end)", AD_NULL, P, R, PRIV, FD_PIPE_W, 0, -1 },
    { "pipe (write end), shared writable", AD_NULL, P, RW, SHR, FD_PIPE_W, 0, -1 },
    { "socket", AD_NULL, P, R, PRIV, FD_SOCKET, 0, -1 },
    { "socket, shared writable", AD_NULL, P, RW, SHR, FD_SOCKET, 0, -1 },
    { "directory", AD_NULL, P, R, PRIV, FD_DIR, 0, -1 },
    { "directory, shared writable", AD_NULL, P, RW, SHR, FD_DIR, 0, -1 },
    { "/dev/null", AD_NULL, P, R, PRIV, FD_DEVNULL, 0, -1 },
    { "/dev/zero, private", AD_NULL, P, RW, PRIV, FD_DEVZERO, 0, 0 },
    { "/dev/zero, shared", AD_NULL, P, RW, SHR, FD_DEVZERO, 0, 0 },
    { "a /proc file", AD_NULL, P, R, PRIV, FD_PROC, 0, -1 },
    { "write-sealed memfd, shared writable", AD_NULL, P, RW, SHR, FD_MEMFD_SEALED, 0, -1 },
    { "write-sealed memfd, shared read-only", AD_NULL, P, R, SHR, FD_MEMFD_SEALED, 0, -1 },
    { "write-sealed memfd, private writable", AD_NULL, P, RW, PRIV, FD_MEMFD_SEALED, 0, -1 },

    /* file modes */
    { "PROT_READ on O_RDONLY, private", AD_NULL, P, R, PRIV, FD_RDONLY, 0, 0 },
    { "PROT_READ on O_RDONLY, shared", AD_NULL, P, R, SHR, FD_RDONLY, 0, 0 },
    { "PROT_READ on O_WRONLY, private", AD_NULL, P, R, PRIV, FD_WRONLY, 0, EACCES },
    { "PROT_READ on O_WRONLY, shared", AD_NULL, P, R, SHR, FD_WRONLY, 0, EACCES },
    { "PROT_WRITE on O_WRONLY, shared", AD_NULL, P, RW, SHR, FD_WRONLY, 0, EACCES },
    { "PROT_NONE on O_WRONLY, private", AD_NULL, P, PROT_NONE, PRIV, FD_WRONLY, 0, EACCES },
    { "MAP_SHARED+PROT_WRITE on O_RDONLY", AD_NULL, P, RW, SHR, FD_RDONLY, 0, EACCES },
    { "MAP_SHARED+PROT_WRITE on O_RDONLY (validate)", AD_NULL, P, PROT_WRITE, VAL, FD_RDONLY, 0, EACCES },
    { "MAP_PRIVATE+PROT_WRITE on O_RDONLY", AD_NULL, P, RW, PRIV, FD_RDONLY, 0, 0 },
    { "MAP_SHARED+PROT_WRITE on O_RDWR", AD_NULL, P, RW, SHR, FD_RDWR, 0, 0 },
    { "MAP_SHARED+PROT_WRITE on O_RDWR|O_APPEND", AD_NULL, P, RW, SHR, FD_APPEND, 0, 0 },
    { "PROT_EXEC on O_RDONLY", AD_NULL, P, R | PROT_EXEC, PRIV, FD_RDONLY, 0, 0 },

    /* addresses */
    { "a free hint is honoured", AD_FREE, 2 * P, R, PRIV, FD_RDONLY, 0, 0 },
    { "an unaligned hint is not an error", AD_FREE_PLUS1, 2 * P, R, PRIV, FD_RDONLY, 0, 0 },
    { "MAP_FIXED at a free address", AD_FREE, 2 * P, R, PRIV | FIX, FD_RDONLY, 0, 0 },
    { "MAP_FIXED with an unaligned address", AD_FREE_PLUS1, P, R, PRIV | FIX, FD_RDONLY, 0, EINVAL },
    { "MAP_FIXED with an unaligned address, anonymous", AD_FREE_PLUS1, P, RW, PRIV | FIX | ANON, FD_BAD, 0,
      EINVAL },
    { "MAP_FIXED over a mapping replaces it", AD_EX, 2 * P, RW, PRIV | FIX | ANON, FD_BAD, 0, 0 },
    { "MAP_FIXED_NOREPLACE at a free address", AD_FREE, 2 * P, R, PRIV | NOREP, FD_RDONLY, 0, 0 },
    { "MAP_FIXED_NOREPLACE over a mapping", AD_EX, 2 * P, R, PRIV | NOREP, FD_RDONLY, 0, EEXIST },
    { "MAP_FIXED_NOREPLACE over a mapping, shared", AD_EX, 2 * P, R, SHR | NOREP, FD_RDONLY, 0, EEXIST },
    { "MAP_FIXED_NOREPLACE over a mapping, anonymous", AD_EX, P, RW, PRIV | ANON | NOREP, FD_BAD, 0, EEXIST },
    { "MAP_FIXED_NOREPLACE over the last page of a mapping", AD_EX_LAST, 2 * P, R, PRIV | NOREP, FD_RDONLY, 0,
      EEXIST },
    { "MAP_SHARED_VALIDATE|MAP_FIXED_NOREPLACE", AD_FREE, P, R, VAL | NOREP, FD_RDWR, 0, -1 },
    { "MAP_FIXED_NOREPLACE at the last two user pages", AD_TOP_2, P, R, PRIV | NOREP, FD_RDONLY, 0, -1 },
    { "MAP_FIXED at the last user page", AD_TOP_1, P, R, PRIV | FIX, FD_RDONLY, 0, -1 },
    { "MAP_FIXED beyond the user address space", AD_TOP, P, R, PRIV | FIX, FD_RDONLY, 0, ENOMEM },
    { "MAP_FIXED unaligned beyond the user address space", AD_TOP_PLUS1, P, R, PRIV | FIX, FD_RDONLY, 0, ENOMEM },

    /* lengths and offsets at the limits */
    { "length SIZE_MAX", AD_NULL, SIZE_MAX, R, PRIV, FD_RDONLY, 0, ENOMEM },
    { "length SIZE_MAX, anonymous", AD_NULL, SIZE_MAX, RW, PRIV | ANON, FD_BAD, 0, ENOMEM },
    { "length larger than the address space", AD_NULL, (size_t)1 << 48, R, PRIV, FD_RDONLY, 0, ENOMEM },
    { "length the size of the address space", AD_NULL, (size_t)1 << 47, RW, PRIV | ANON | MAP_NORESERVE, FD_BAD,
      0, ENOMEM },
    { "offset+length overflows", AD_NULL, P, R, PRIV, FD_RDONLY, 0x7ffffffffffff000, EOVERFLOW },
    { "offset+length overflows by a page", AD_NULL, 2 * P, R, PRIV, FD_RDONLY, 0x7fffffffffffe000, EOVERFLOW },
    { "offset+length just fits", AD_NULL, P, R, PRIV, FD_RDONLY, 0x7fffffffffffe000, 0 },
    { "negative offset", AD_NULL, P, R, SHR, FD_RDONLY, -4096, EOVERFLOW },
    { "negative offset, anonymous", AD_NULL, P, RW, PRIV | ANON, FD_BAD, -4096, 0 },

    /* two errors at once: the kernel's order decides */
    { "bad fd + length 0", AD_NULL, 0, R, PRIV, FD_BAD, 0, EBADF },
    { "bad fd + unaligned offset", AD_NULL, P, R, PRIV, FD_BAD, 100, EINVAL },
    { "O_PATH fd + length 0", AD_NULL, 0, R, PRIV, FD_OPATH, 0, EBADF },
    { "bad fd + no mapping type", AD_NULL, P, R, 0, FD_BAD, 0, EBADF },
    { "length 0 + no mapping type", AD_NULL, 0, R, 0, FD_RDONLY, 0, EINVAL },
    { "length 0 + offset overflow", AD_NULL, 0, R, PRIV, FD_RDONLY, 0x7ffffffffffff000, EINVAL },
    { "length 0 + MAP_SHARED+PROT_WRITE on O_RDONLY", AD_NULL, 0, RW, SHR, FD_RDONLY, 0, EINVAL },
    { "huge length + unaligned offset", AD_NULL, SIZE_MAX, R, PRIV, FD_RDONLY, 100, EINVAL },
    { "MAP_HUGETLB on a file + length 0", AD_NULL, 0, R, PRIV | MAP_HUGETLB, FD_RDONLY, 0, EINVAL },
    { "unaligned MAP_FIXED + MAP_SHARED+PROT_WRITE on O_RDONLY", AD_FREE_PLUS1, P, RW, SHR | FIX, FD_RDONLY, 0,
      EINVAL },
    { "unaligned MAP_FIXED + offset overflow", AD_FREE_PLUS1, P, R, PRIV | FIX, FD_RDONLY, 0x7ffffffffffff000,
      EINVAL },
    { "unaligned MAP_FIXED + no mapping type", AD_FREE_PLUS1, P, R, FIX, FD_RDONLY, 0, EINVAL },
    { "MAP_FIXED beyond the address space + PROT_WRITE on O_RDONLY", AD_TOP_1, P, RW, SHR | FIX, FD_RDONLY, 0,
      ENOMEM },
    { "MAP_FIXED_NOREPLACE over a mapping + MAP_SHARED+PROT_WRITE on O_RDONLY", AD_EX, P, RW, SHR | NOREP,
      FD_RDONLY, 0, EEXIST },
    { "MAP_FIXED_NOREPLACE over a mapping + offset overflow", AD_EX, P, R, PRIV | NOREP, FD_RDONLY,
      0x7ffffffffffff000, EEXIST },
    { "MAP_FIXED_NOREPLACE over a mapping + O_WRONLY", AD_EX, P, R, PRIV | NOREP, FD_WRONLY, 0, EEXIST },
    { "MAP_FIXED_NOREPLACE over a mapping + pipe", AD_EX, P, R, PRIV | NOREP, FD_PIPE_R, 0, EEXIST },
    { "offset overflow + MAP_SHARED+PROT_WRITE on O_RDONLY", AD_NULL, P, RW, SHR, FD_RDONLY, 0x7ffffffffffff000,
      EOVERFLOW },
    { "offset overflow + no mapping type", AD_NULL, P, R, 0, FD_RDONLY, 0x7ffffffffffff000, EOVERFLOW },
    { "unknown flag (validate) + PROT_WRITE on O_RDONLY", AD_NULL, P, RW, VAL | UNKNOWN_FLAG, FD_RDONLY, 0,
      EOPNOTSUPP },
    { "unknown flag (validate) + O_WRONLY", AD_NULL, P, R, VAL | UNKNOWN_FLAG, FD_WRONLY, 0, EOPNOTSUPP },
    { "unknown flag (validate) + pipe", AD_NULL, P, R, VAL | UNKNOWN_FLAG, FD_PIPE_R, 0, EOPNOTSUPP },
    { "unknown flag (validate) + directory", AD_NULL, P, R, VAL | UNKNOWN_FLAG, FD_DIR, 0, EOPNOTSUPP },
    { "MAP_SYNC (validate) + PROT_WRITE on O_RDONLY", AD_NULL, P, RW, VAL | MAP_SYNC, FD_RDONLY, 0, -1 },
    { "MAP_GROWSDOWN + O_WRONLY", AD_NULL, P, R, PRIV | MAP_GROWSDOWN, FD_WRONLY, 0, EACCES },
    { "MAP_GROWSDOWN + pipe", AD_NULL, P, R, PRIV | MAP_GROWSDOWN, FD_PIPE_R, 0, -1 },
    { "MAP_GROWSDOWN + socket", AD_NULL, P, R, PRIV | MAP_GROWSDOWN, FD_SOCKET, 0, -1 },
    { "MAP_GROWSDOWN + directory", AD_NULL, P, R, PRIV | MAP_GROWSDOWN, FD_DIR, 0, -1 },
    { "pipe (write end), shared read-only", AD_NULL, P, R, SHR, FD_PIPE_W, 0, -1 },
};

/*
 * Under Valgrind the kernel's side is Valgrind's own mmap, whose checks
 * (its address-space manager's) come before the kernel's and answer some
 * cases otherwise than Linux.  For those, the reason, or NULL; *umm_too
 * says that libumm's answer goes through the same emulation (libumm hands
 * the hint to the host's mmap), else libumm can still be held to what
 * Linux answers (the case's expect).
 */
static const char *valgrind_differs(const struct mcase *c, int *umm_too)
{
    int unaligned = c->addr == AD_FREE_PLUS1 || c->addr == AD_TOP_PLUS1;
    *umm_too = 0;
    if (c->len == 0 && c->expect != EINVAL)
        return "Valgrind's mmap checks the length before the descriptor (EINVAL, not EBADF)";
    if (unaligned && c->expect != EINVAL) {
        *umm_too = !(c->flags & MAP_FIXED);
        return "Valgrind's mmap refuses every unaligned address with EINVAL, a hint too, before the kernel's checks";
    }
    if (c->len >= TOP && c->expect == ENOMEM)
        return "Valgrind's mmap answers EINVAL, not ENOMEM, to a length its address-space manager cannot place";
    if ((c->flags & 0x40 /* MAP_32BIT */) && c->expect == EACCES)
        return "Valgrind's mmap (3.19) answers ENOMEM to a MAP_32BIT file mapping the file's mode refuses";
    if ((c->flags & MAP_FIXED_NOREPLACE) && (c->addr == AD_EX || c->addr == AD_EX_LAST))
        return "Valgrind's mmap (3.19) takes a MAP_FIXED_NOREPLACE address as a hint: over a mapping it maps elsewhere";
    return NULL;
}

static uintptr_t resolve(int kind, void *ex)
{
    switch (kind) {
    case AD_NULL: return 0;
    case AD_FREE: return FREE_BASE;
    case AD_FREE_PLUS1: return FREE_BASE + 1;
    case AD_EX: return (uintptr_t)ex;
    case AD_EX_LAST: return (uintptr_t)ex + 3 * PAGE;
    case AD_TOP_1: return TOP - PAGE;
    case AD_TOP_2: return TOP - 2 * PAGE;
    case AD_TOP: return TOP;
    case AD_TOP_PLUS1: return TOP + 1;
    }
    return 0;
}

/* Is [FREE_BASE, +16 pages) free on the host?  (Nothing of the test may be
 * there, or MAP_FIXED would clobber it.) */
static int free_area_is_free(void)
{
    void *r = mmap((void *)FREE_BASE, 16 * PAGE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
    if (r == MAP_FAILED)
        return 0;
    munmap(r, 16 * PAGE);
    return r == (void *)FREE_BASE;
}

static int ex_intact(const unsigned char *ex)
{
    for (size_t i = 0; i < 4 * PAGE; i++)
        if (ex[i] != pattern(i, SEED))
            return 0;
    return 1;
}

struct result {
    struct outcome o;
    long delta;     /* success: where it was placed, relative to the address asked for */
    int ex_intact;  /* failure: the existing mapping still reads the file */
    int unchanged;  /* failure: libumm's counters did not move */
};

static struct result run(const struct mm_ops *ops, const struct mcase *c)
{
    struct result res = { { 0, 0 }, 0, 1, 1 };
    unsigned char *ex = ops->mmap(NULL, 4 * PAGE, PROT_READ, MAP_PRIVATE, fds[FD_RDONLY], 0);
    if (ex == MAP_FAILED)
        tap_bail("%s: mapping the existing region: %s", ops->name, strerror(errno));
    if (!ex_intact(ex))
        tap_bail("%s: the existing region does not read the file", ops->name);
    if (!free_area_is_free())
        tap_bail("the area at %#lx is not free", (unsigned long)FREE_BASE);
    struct umm_stats before, after;
    umm_stats(&before);
    uintptr_t addr = resolve(c->addr, ex);
    errno = 0;
    void *r = ops->mmap((void *)addr, c->len, c->prot, c->flags, fds[c->fd], c->off);
    res.o = outcome_of(r == MAP_FAILED ? -1 : 0);
    int replaced_ex = 0;
    if (r != MAP_FAILED) {
        res.delta = (long)((uintptr_t)r - addr);
        if ((uintptr_t)r + c->len > (uintptr_t)ex && (uintptr_t)r < (uintptr_t)ex + 4 * PAGE)
            replaced_ex = 1;
        if (ops->munmap(r, c->len) != 0)
            tap_bail("%s: munmap of the new mapping: %s", ops->name, strerror(errno));
    } else {
        umm_stats(&after);
        res.ex_intact = ex_intact(ex);
        res.unchanged = before.mappings == after.mappings && before.files == after.files &&
                        before.frames == after.frames && before.resident == after.resident;
    }
    /* What is left of ex (all of it unless MAP_FIXED replaced a part). */
    if (replaced_ex) {
        ops->munmap(ex, 4 * PAGE);
    } else if (ops->munmap(ex, 4 * PAGE) != 0) {
        tap_bail("%s: munmap of the existing region: %s", ops->name, strerror(errno));
    }
    return res;
}

static void open_fds(void)
{
    char path[512];
    int p[2], s[2];
    fds[FD_ANON] = -1;
    fds[FD_RDONLY] = tmpfile_make(4 * PAGE, SEED, O_RDONLY, path);
    fds[FD_RDWR] = open(path, O_RDWR | O_CLOEXEC);
    fds[FD_WRONLY] = open(path, O_WRONLY | O_CLOEXEC);
    fds[FD_APPEND] = open(path, O_RDWR | O_APPEND | O_CLOEXEC);
    fds[FD_OPATH] = open(path, O_PATH | O_CLOEXEC);
    unlink(path);
    fds[FD_BAD] = -1;
    fds[FD_NOTOPEN] = 987;
    close(987);
    if (pipe(p) != 0 || socketpair(AF_UNIX, SOCK_STREAM, 0, s) != 0)
        tap_bail("pipe/socketpair: %s", strerror(errno));
    fds[FD_PIPE_R] = p[0];
    fds[FD_PIPE_W] = p[1];
    fds[FD_SOCKET] = s[0];
    const char *dir = getenv("UMM_TEST_TMPDIR");
    fds[FD_DIR] = open(dir && *dir ? dir : "/tmp", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    fds[FD_DEVNULL] = open("/dev/null", O_RDWR | O_CLOEXEC);
    fds[FD_DEVZERO] = open("/dev/zero", O_RDWR | O_CLOEXEC);
    fds[FD_PROC] = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
    fds[FD_MEMFD_SEALED] = memfd_create("kcmp-sealed", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (fds[FD_MEMFD_SEALED] < 0 || ftruncate(fds[FD_MEMFD_SEALED], 4 * PAGE) != 0 ||
        fcntl(fds[FD_MEMFD_SEALED], F_ADD_SEALS, F_SEAL_WRITE) != 0)
        tap_bail("sealed memfd: %s", strerror(errno));
    for (int i = FD_RDONLY; i < FD_N; i++)
        if (i != FD_BAD && i != FD_NOTOPEN && fds[i] < 0)
            tap_bail("opening descriptor %d: %s", i, strerror(errno));
}

int main(void)
{
    open_fds();
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const struct mcase *c = &cases[i];
        struct result k = run(&kernel_ops, c);
        struct result u = run(&umm_ops, c);
        int umm_too;
        const char *vg = under_valgrind() ? valgrind_differs(c, &umm_too) : NULL;
        if (vg) {
            /* The kernel's side is not Linux here: no comparison with it. */
            tap_skip(vg, "[%s] the kernel gives %s (the test is right)", c->name,
                     c->expect ? strerror(c->expect) : "success");
            if (umm_too)
                tap_skip(vg, "[%s] libumm returns as the kernel: %s", c->name,
                         c->expect ? strerror(c->expect) : "success");
            else
                ok(u.o.rc == (c->expect ? -1 : 0) && u.o.err == c->expect,
                   "[%s] libumm returns what Linux returns: %s (Valgrind's own mmap does not)", c->name,
                   c->expect ? strerror(c->expect) : "success");
            if (u.o.rc != 0)
                ok(u.ex_intact && u.unchanged, "[%s] the failed call changed nothing", c->name);
            continue;
        }
        if (c->expect >= 0)
            is_int(k.o.err, c->expect, "[%s] the kernel gives %s (the test is right)", c->name,
                   c->expect ? strerror(c->expect) : "success");
        int same = k.o.rc == u.o.rc && k.o.err == u.o.err;
        ok(same, "[%s] libumm returns as the kernel: %s", c->name, k.o.rc ? strerror(k.o.err) : "success");
        if (!same)
            tap_diag("kernel: %d %s, libumm: %d %s", k.o.rc, k.o.rc ? strerror(k.o.err) : "", u.o.rc,
                     u.o.rc ? strerror(u.o.err) : "");
        if (k.o.rc == 0 && u.o.rc == 0 && c->addr != AD_NULL)
            is_int(u.delta, k.delta, "[%s] placed where the kernel places it, relative to addr", c->name);
        if (u.o.rc != 0) {
            ok(u.ex_intact && u.unchanged, "[%s] the failed call changed nothing", c->name);
        }
    }
    for (int i = FD_RDONLY; i < FD_N; i++)
        if (i != FD_BAD && i != FD_NOTOPEN)
            close(fds[i]);
    check_released();
    return tap_done();
}
