/* Promise: a PROT_NONE mapping (file or anonymous, private or shared)
 * raises SIGSEGV with SEGV_ACCERR at the address on any access, as in the
 * kernel, reads nothing from its file, and becomes usable with the file's
 * bytes after umm_mprotect; PROT_NONE again hides it, and the bytes
 * written meanwhile survive. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <unistd.h>
#include "kcmp.h"

#define SEED 38

struct trace {
    int r0, w0;          /* access to the PROT_NONE mapping */
    int mp1, r1, bytes1; /* after mprotect(PROT_READ|PROT_WRITE) */
    int mp2, r2, w2;     /* after mprotect(PROT_NONE) */
    int mp3, kept;       /* after mprotect(PROT_READ) */
};

static void scenario(const struct mm_ops *ops, int flags, struct trace *t)
{
    int fd = tmpfile_make(4 * PAGE, SEED, O_RDWR, NULL); /* a fresh file each time */
    int anon = (flags & MAP_ANONYMOUS) != 0;
    unsigned char *p = ops->mmap(NULL, 4 * PAGE, PROT_NONE, flags, anon ? -1 : fd, 0);
    if (p == MAP_FAILED)
        tap_bail("%s: mmap PROT_NONE: %s", ops->name, strerror(errno));
    t->r0 = probe_read(p + PAGE + 3);
    t->w0 = probe_write(p + 2 * PAGE);
    t->mp1 = ops->mprotect(p, 4 * PAGE, PROT_READ | PROT_WRITE);
    t->r1 = probe_read(p + PAGE + 3);
    t->bytes1 = anon ? p[PAGE + 3] == 0 : diff_pattern(p, 4 * PAGE, 0, SEED) == 0;
    p[2 * PAGE + 1] = 0x6d;
    t->mp2 = ops->mprotect(p + 2 * PAGE, PAGE, PROT_NONE);
    t->r2 = probe_read(p + 2 * PAGE + 1);
    t->w2 = probe_write(p + 2 * PAGE + 1);
    t->mp3 = ops->mprotect(p + 2 * PAGE, PAGE, PROT_READ);
    t->kept = p[2 * PAGE + 1] == 0x6d;
    ops->munmap(p, 4 * PAGE);
    close(fd);
}

int main(void)
{
    static const int flags[4] = { MAP_PRIVATE, MAP_SHARED, MAP_PRIVATE | MAP_ANONYMOUS, MAP_SHARED | MAP_ANONYMOUS };
    static const char *const what[4] = { "private file", "shared file", "private anonymous", "shared anonymous" };
    int fd = tmpfile_make(4 * PAGE, SEED, O_RDWR, NULL);
    for (int i = 0; i < 4; i++) {
        struct trace k, u;
        scenario(&kernel_ops, flags[i], &k);
        uint64_t read0 = stat_get("pages_read");
        /* libumm: check nothing is read while the mapping is PROT_NONE. */
        unsigned char *p = umm_mmap(NULL, 4 * PAGE, PROT_NONE, flags[i], (flags[i] & MAP_ANONYMOUS) ? -1 : fd, 0);
        int code;
        void *addr;
        int sig = catch_signal(touch_read, p + 5, &code, &addr);
        ok(sig == SIGSEGV && code == SEGV_ACCERR && addr == p + 5,
           "%s: reading PROT_NONE raises SIGSEGV SEGV_ACCERR at the address", what[i]);
        is_int(stat_get("pages_read") - read0, 0, "%s: and reads nothing from the file", what[i]);
        umm_munmap(p, 4 * PAGE);
        scenario(&umm_ops, flags[i], &u);
        is_int(k.r0, ACC_ACCERR, "kernel %s: PROT_NONE read is SEGV_ACCERR (the test is right)", what[i]);
        is_int(u.r0, k.r0, "%s: read of PROT_NONE as the kernel", what[i]);
        is_int(u.w0, k.w0, "%s: write of PROT_NONE as the kernel", what[i]);
        is_int(u.mp1, k.mp1, "%s: mprotect to read-write as the kernel", what[i]);
        is_int(u.r1, ACC_OK, "%s: readable after mprotect", what[i]);
        ok(u.bytes1, "%s: with the right bytes", what[i]);
        is_int(u.mp2, k.mp2, "%s: mprotect back to PROT_NONE as the kernel", what[i]);
        is_int(u.r2, k.r2, "%s: read after PROT_NONE again as the kernel", what[i]);
        is_int(u.w2, k.w2, "%s: write after PROT_NONE again as the kernel", what[i]);
        is_int(u.mp3, k.mp3, "%s: mprotect to read as the kernel", what[i]);
        ok(u.kept && k.kept, "%s: the byte written before survives", what[i]);
    }
    close(fd);
    check_released();
    return tap_done();
}
