/* Promise: a file of a page and a bit opened O_RDONLY, mapped
 * MAP_PRIVATE|PROT_WRITE: writes work everywhere in the mapping (the
 * partial last page too, beyond the end of the file), read back, and never
 * reach the file, not at msync, munmap or umm_shutdown; the file keeps its
 * size and bytes, as with the kernel. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <unistd.h>
#include "kcmp.h"

#define SEED 50
#define SIZE (PAGE + 300)

struct trace {
    int mapped, wrote, msync_rc, munmap_rc, beyond;
    long size;
    unsigned char file[SIZE];
};

static void scenario(const struct mm_ops *ops, int fd, struct trace *t)
{
    unsigned char *p = ops->mmap(NULL, SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    t->mapped = p != MAP_FAILED;
    if (p == MAP_FAILED)
        return;
    memset(p, 0x5a, 2 * PAGE); /* both pages, to the end of the last one */
    int good = 1;
    for (size_t i = 0; i < 2 * PAGE; i++)
        good &= p[i] == 0x5a;
    t->wrote = good;
    t->msync_rc = ops->msync(p, SIZE, MS_SYNC);
    if (ops->is_umm)
        umm_shutdown();
    t->munmap_rc = ops->munmap(p, SIZE);
    p = ops->mmap(NULL, 3 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    t->beyond = probe_write(p + 2 * PAGE);
    ops->munmap(p, 3 * PAGE);
    t->size = file_bytes(fd, t->file, sizeof t->file);
}

int main(void)
{
    static struct trace k, u;
    int fd = tmpfile_make(SIZE, SEED, O_RDONLY, NULL);
    scenario(&kernel_ops, fd, &k);
    uint64_t w = stat_get("pages_written");
    scenario(&umm_ops, fd, &u);
    ok(k.mapped && k.wrote, "kernel: mapped and written (the test is right)");
    ok(u.mapped, "MAP_PRIVATE|PROT_WRITE on an O_RDONLY file");
    ok(u.wrote, "writes work in both pages, beyond the end of the file too");
    is_int(u.msync_rc, k.msync_rc, "msync returns as the kernel");
    is_int(u.munmap_rc, k.munmap_rc, "munmap returns as the kernel");
    is_int(stat_get("pages_written") - w, 0, "nothing was written back");
    is_int(u.size, SIZE, "the file keeps its size");
    is_int(diff_pattern(u.file, SIZE, 0, SEED), 0, "and its bytes");
    is_int(u.beyond, k.beyond, "a whole page beyond the end raises what the kernel raises");
    close(fd);
    check_released();
    return tap_done();
}
