/* Promise: MAP_NORESERVE is accepted on file and anonymous mappings, private
 * and shared, as by the kernel, and such mappings work as any other: they
 * read the file (or zeros), and writes go where they would go without it. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <unistd.h>
#include "kcmp.h"

#define SEED 37

struct trace {
    int rc[4];
    int reads_ok[4];
    int written_back;
};

static void scenario(const struct mm_ops *ops, int fd, struct trace *t)
{
    static const int flags[4] = { MAP_PRIVATE, MAP_SHARED, MAP_PRIVATE | MAP_ANONYMOUS, MAP_SHARED | MAP_ANONYMOUS };
    for (int i = 0; i < 4; i++) {
        int anon = (flags[i] & MAP_ANONYMOUS) != 0;
        errno = 0;
        unsigned char *p = ops->mmap(NULL, 4 * PAGE, PROT_READ | PROT_WRITE, flags[i] | MAP_NORESERVE,
                                     anon ? -1 : fd, 0);
        t->rc[i] = p == MAP_FAILED ? errno : 0;
        if (p == MAP_FAILED)
            continue;
        int good = 1;
        for (size_t j = 0; j < 4 * PAGE; j++)
            good &= p[j] == (anon ? 0 : pattern(j, SEED));
        p[PAGE + 1] = 0x42;
        good &= p[PAGE + 1] == 0x42;
        t->reads_ok[i] = good;
        if (flags[i] == MAP_SHARED)
            ops->msync(p, 4 * PAGE, MS_SYNC);
        ops->munmap(p, 4 * PAGE);
        if (flags[i] == MAP_SHARED) {
            unsigned char c;
            t->written_back = read_file(fd, &c, 1, PAGE + 1) == 0 && c == 0x42;
        }
    }
}

int main(void)
{
    struct trace k = {0}, u = {0};
    int kfd = tmpfile_make(4 * PAGE, SEED, O_RDWR, NULL);
    int ufd = tmpfile_make(4 * PAGE, SEED, O_RDWR, NULL);
    scenario(&kernel_ops, kfd, &k);
    scenario(&umm_ops, ufd, &u);
    static const char *const what[4] = { "private file", "shared file", "private anonymous", "shared anonymous" };
    for (int i = 0; i < 4; i++) {
        is_int(k.rc[i], 0, "kernel: MAP_NORESERVE accepted on a %s mapping (the test is right)", what[i]);
        is_int(u.rc[i], k.rc[i], "libumm: MAP_NORESERVE accepted on a %s mapping", what[i]);
        ok(u.reads_ok[i], "the %s mapping reads and writes as it should", what[i]);
    }
    ok(k.written_back, "kernel: the shared write reached the file (the test is right)");
    ok(u.written_back, "libumm: the shared write reached the file");
    unsigned char kb[4 * PAGE], ub[4 * PAGE];
    file_bytes(kfd, kb, sizeof kb);
    file_bytes(ufd, ub, sizeof ub);
    ok(memcmp(kb, ub, sizeof kb) == 0, "the file holds the same bytes as the kernel's copy");
    close(kfd);
    close(ufd);
    check_released();
    return tap_done();
}
