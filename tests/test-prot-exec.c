/* Promise: PROT_EXEC mappings work: code written to anonymous memory and
 * made executable with umm_mprotect runs, code in a file mapped
 * PROT_READ|PROT_EXEC runs, and jumping into a mapping without PROT_EXEC
 * raises SIGSEGV with SEGV_ACCERR at the address, as in the kernel. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <setjmp.h>
#include <unistd.h>
#include "kcmp.h"

#if defined(__x86_64__)
static const unsigned char code[] = { 0xb8, 0x2a, 0x00, 0x00, 0x00, 0xc3 }; /* mov $42, %eax; ret */
#elif defined(__aarch64__)
static const unsigned char code[] = { 0x40, 0x05, 0x80, 0x52, 0xc0, 0x03, 0x5f, 0xd6 }; /* mov w0, #42; ret */
#else
#define NO_CODE 1
#endif

typedef int (*fn_t)(void);

static volatile int called;
static void call(void *p)
{
    called = ((fn_t)p)();
}

struct trace {
    int anon_mmap, anon_mprotect, anon_result;
    int file_result;
    int noexec_sig;    /* jumping into resident PROT_READ|PROT_WRITE memory */
    int noexec_fresh;  /* jumping into a PROT_READ page never touched */
};

static void scenario(const struct mm_ops *ops, int fd, struct trace *t)
{
    int code_sig, code_code;
    void *addr;
    unsigned char *p = ops->mmap(NULL, 2 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    t->anon_mmap = p != MAP_FAILED;
    memcpy(p + PAGE, code, sizeof code);
    __builtin___clear_cache((char *)p + PAGE, (char *)p + PAGE + sizeof code);
    t->anon_mprotect = ops->mprotect(p + PAGE, PAGE, PROT_READ | PROT_EXEC);
    called = 0;
    code_sig = catch_signal(call, p + PAGE, &code_code, &addr);
    t->anon_result = code_sig ? -code_sig : called;
    /* p's first page is PROT_READ|PROT_WRITE: no PROT_EXEC. */
    memcpy(p, code, sizeof code);
    code_sig = catch_signal_within(1, call, p, &code_code, &addr);
    t->noexec_sig = code_sig == -2 ? -2 : code_sig && addr == p ? code_sig * 1000 + code_code : code_sig ? -1 : 0;
    ops->munmap(p, 2 * PAGE);

    unsigned char *f = ops->mmap(NULL, 2 * PAGE, PROT_READ | PROT_EXEC, MAP_PRIVATE, fd, 0);
    called = 0;
    code_sig = f == MAP_FAILED ? -1 : catch_signal(call, f + PAGE + 64, &code_code, &addr);
    t->file_result = code_sig ? -code_sig : called;
    if (f != MAP_FAILED)
        ops->munmap(f, 2 * PAGE);

    f = ops->mmap(NULL, 2 * PAGE, PROT_READ, MAP_PRIVATE, fd, 0);
    code_sig = catch_signal_within(1, call, f + PAGE + 64, &code_code, &addr);
    t->noexec_fresh = code_sig == -2 ? -2 : code_sig && addr == f + PAGE + 64 ? code_sig * 1000 + code_code : code_sig ? -1 : 0;
    ops->munmap(f, 2 * PAGE);
}

int main(void)
{
#ifdef NO_CODE
    tap_skip_all("no machine code for this CPU in the test");
#else
    int fd = tmpfile_make(2 * PAGE, 39, O_RDWR, NULL);
    if (pwrite(fd, code, sizeof code, PAGE + 64) != (ssize_t)sizeof code)
        tap_bail("pwrite: %s", strerror(errno));
    struct trace k, u;
    scenario(&kernel_ops, fd, &k);
    scenario(&umm_ops, fd, &u);
    is_int(k.anon_result, 42, "kernel: the code runs (the test is right)");
    is_int(k.noexec_sig, ACC_ACCERR, "kernel: jumping into memory without PROT_EXEC is SEGV_ACCERR (the test is right)");
    ok(u.anon_mmap, "libumm: anonymous mapping");
    is_int(u.anon_mprotect, 0, "umm_mprotect to PROT_READ|PROT_EXEC");
    is_int(u.anon_result, 42, "code written to anonymous memory runs");
    is_int(u.file_result, k.file_result, "code in a file mapped PROT_READ|PROT_EXEC runs as in the kernel");
    is_int(u.file_result, 42, "and returns what it should");
    is_int(k.noexec_fresh, ACC_ACCERR, "kernel: jumping into a file page without PROT_EXEC is SEGV_ACCERR (the test is right)");
    is_int(u.noexec_sig, k.noexec_sig, "jumping into resident memory without PROT_EXEC raises what the kernel raises (-2: faults forever)");
    is_int(u.noexec_fresh, k.noexec_fresh, "jumping into an untouched page without PROT_EXEC raises what the kernel raises (-2: faults forever)");
    close(fd);
    check_released();
    return tap_done();
#endif
}
