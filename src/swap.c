/*
 * swap.c: where frames go when memory is short and they have no file.
 *
 * Private pages (copy-on-write copies, zero-filled pages) and shared
 * anonymous memory have no file to be written back to, so reclaim
 * (vmscan.c) writes them to libumm's swap file and gives their memory back,
 * as the kernel's swap does (mm/page_io.c, mm/swapfile.c).
 *
 * The swap file is indexed by frame number, like the memfd itself: the
 * bytes of frame pfn sit at offset pfn * 4 KiB of a sparse file.  So there
 * is no table of slots to keep, a run of frames goes out with one write,
 * and a frame keeps its number while it is swapped out: the entries that
 * use it, its reference count and its copy-on-write state do not change,
 * in any process of a fork family.  F_SWAPPED in the frame says its bytes
 * are here.  Swapping in reads them back into the same frame and punches
 * the file's hole, so the file holds only what is swapped out now.
 *
 * The file is opened when libumm starts, before any fork, so that the
 * whole family shares it: UMM_SWAP names a directory to make it in
 * (unlinked at once) or a file to use, default $TMPDIR or /tmp.
 * UMM_SWAP_SIZE bounds what it may hold (default: what its file system
 * gives).  A program's RLIMIT_FSIZE applies to the swap file as to any
 * write of the process (past it, SIGXFSZ), so frames whose offset lies
 * past the soft limit are not swapped out: they stay in memory.
 *
 * Only system calls here: swap_in runs in the trap.
 */
#include "umm-int.h"
#include "vg.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

static int swap_fd = -1;
static uint64_t swap_cap = UINT64_MAX; /* pages */
static uint64_t swap_limit_off = UINT64_MAX; /* RLIMIT_FSIZE at start */
/* Pages swapped out now: in memory every process of the family shares
 * (frame.c's shared counters would do; a word of its own is simpler). */
static _Atomic uint64_t *swapped;

static int open_in_dir(const char *dir)
{
    int fd = umm__sys_open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (fd >= 0)
        return fd;
    /* No O_TMPFILE there: a named file, unlinked at once. */
    char path[4096];
    size_t n = strlen(dir);
    if (n + 32 > sizeof path)
        return -1;
    memcpy(path, dir, n);
    memcpy(path + n, "/libumm-swap-XXXXXX", sizeof "/libumm-swap-XXXXXX");
    fd = umm__sys_mkostemp(path, O_CLOEXEC);
    if (fd >= 0)
        unlink(path);
    return fd;
}

int umm__swap_init(void)
{
    swapped = mmap(NULL, sizeof *swapped, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (swapped == MAP_FAILED) {
        swapped = NULL;
        return -1;
    }
    umm__vg_racy((void *)swapped, sizeof *swapped);
    const char *where = getenv("UMM_SWAP");
    if (!where || !*where)
        where = getenv("TMPDIR");
    if (!where || !*where)
        where = "/tmp";
    struct stat st;
    if (stat(where, &st) == 0 && S_ISDIR(st.st_mode))
        swap_fd = open_in_dir(where);
    else
        swap_fd = umm__sys_open(where, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (swap_fd >= 0)
        swap_fd = umm__fd_own(swap_fd);
    swap_cap = umm__parse_size(getenv("UMM_SWAP_SIZE"), UINT64_MAX) >> UMM_PAGE_SHIFT;
    struct rlimit rl;
    if (getrlimit(RLIMIT_FSIZE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
        swap_limit_off = rl.rlim_cur;
    /* No swap file is no error: reclaim then keeps private pages. */
    return 0;
}

uint64_t umm__swap_used(void)
{
    return swapped ? atomic_load_explicit(swapped, memory_order_relaxed) : 0;
}

/* pread or pwrite the whole of [off, off+len) of the swap file, frame
 * memory made visible to memcheck meanwhile.  0 or an errno. */
/* Bytes [off, off + len) of the swap file to or from mem (a kmap window:
 * frame.c's umm__frame_swap calls this, so that the swap file knows
 * nothing of how frames are mapped); 0 or an errno. */
int umm__swap_rw(int write, char *mem, uint64_t len, uint64_t off)
{
    uint64_t done = 0;
    int err = 0;
    umm__vg_defined(mem, len);
    while (done < len) {
        ssize_t r = write ? umm__sys_pwrite(swap_fd, mem + done, len - done, (off_t)(off + done))
                          : umm__sys_pread(swap_fd, mem + done, len - done, (off_t)(off + done));
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            err = r < 0 ? errno : EIO;
            break;
        }
        done += (uint64_t)r;
    }
    umm__vg_noaccess(mem, len);
    return err;
}

/* Slots for frames [pfn, pfn + n), about to be written: 0, or ENODEV (no
 * swap file), EFBIG (past RLIMIT_FSIZE), ENOSPC (UMM_SWAP_SIZE). */
int umm__swap_reserve(umm__pfn pfn, uint64_t n)
{
    uint64_t off = (uint64_t)pfn << UMM_PAGE_SHIFT, len = n << UMM_PAGE_SHIFT;
    if (swap_fd < 0)
        return ENODEV;
    if (off + len > swap_limit_off)
        return EFBIG;
    if (atomic_fetch_add(swapped, n) + n > swap_cap) {
        atomic_fetch_sub(swapped, n);
        return ENOSPC;
    }
    return 0;
}

/* Slots [pfn, pfn + n) are free again (swapped in, the frame freed, or a
 * write that failed: what did reach the file is let go). */
void umm__swap_forget(umm__pfn pfn, uint64_t n)
{
    umm__sys_fallocate(swap_fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)((uint64_t)pfn << UMM_PAGE_SHIFT),
                       (off_t)(n << UMM_PAGE_SHIFT));
    atomic_fetch_sub(swapped, n);
}
