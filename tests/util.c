#define _GNU_SOURCE
#include "util.h"
#include "config.h"
#ifdef HAVE_VALGRIND_VALGRIND_H
#include <valgrind/valgrind.h>
#else
#define RUNNING_ON_VALGRIND 0
#define VALGRIND_DISABLE_ERROR_REPORTING
#define VALGRIND_ENABLE_ERROR_REPORTING
#endif
#ifdef HAVE_VALGRIND_MEMCHECK_H
#include <valgrind/memcheck.h>
#endif

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

int tap_count, tap_failed, tap_silent;

void tap_quiet(void)
{
    tap_silent = 1;
}

static void vout(FILE *f, const char *prefix, const char *fmt, va_list ap)
{
    if (tap_silent)
        return;
    fputs(prefix, f);
    vfprintf(f, fmt, ap);
    fputc('\n', f);
    fflush(f);
}

int tap_ok(int cond, const char *file, int line, const char *fmt, ...)
{
    va_list ap;
    tap_count++;
    if (!cond)
        tap_failed++;
    if (tap_silent)
        return cond;
    printf("%s %d - ", cond ? "ok" : "not ok", tap_count);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
    if (!cond)
        printf("#   failed at %s:%d\n", file, line);
    fflush(stdout);
    return cond;
}

int tap_is_int(long long got, long long want, const char *file, int line, const char *fmt, ...)
{
    va_list ap;
    char name[512];
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    int r = tap_ok(got == want, file, line, "%s", name);
    if (!r && !tap_silent)
        printf("#   got: %lld\n#   expected: %lld\n", got, want);
    return r;
}

void tap_diag(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vout(stdout, "# ", fmt, ap);
    va_end(ap);
}

/* One point not run here, and why: the TAP driver counts it as SKIP. */
void tap_skip(const char *why, const char *fmt, ...)
{
    va_list ap;
    tap_count++;
    if (tap_silent)
        return;
    printf("ok %d - ", tap_count);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf(" # SKIP %s\n", why);
    fflush(stdout);
}

void tap_skip_all(const char *why)
{
    printf("1..0 # SKIP %s\n", why);
    exit(0);
}

void tap_bail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    printf("Bail out! ");
    vprintf(fmt, ap);
    printf("\n");
    va_end(ap);
    exit(99);
}

int tap_done(void)
{
    if (!tap_silent)
        printf("1..%d\n", tap_count);
    return tap_failed ? 1 : 0;
}

/* ---------------------------------------------------------------- files */

static int tmp_open(int flags, char *path)
{
    const char *dir = getenv("UMM_TEST_TMPDIR");
    char buf[512];
    snprintf(buf, sizeof buf, "%s/tmp.XXXXXX", dir && *dir ? dir : "/tmp");
    int fd = mkostemp(buf, O_CLOEXEC);
    if (fd < 0)
        tap_bail("mkostemp %s: %s", buf, strerror(errno));
    if ((flags & O_ACCMODE) != O_RDWR) {
        int fd2 = open(buf, flags | O_CLOEXEC);
        if (fd2 < 0)
            tap_bail("reopen: %s", strerror(errno));
        /* Keep the RW fd around only to write the content. */
        dup2(fd, 1000);
        close(fd);
        fd = fd2;
    }
    if (path)
        strcpy(path, buf);
    else
        unlink(buf);
    return fd;
}

static int writer_fd(int fd, int flags)
{
    return (flags & O_ACCMODE) == O_RDWR ? fd : 1000;
}

int tmpfile_make(uint64_t size, unsigned seed, int flags, char *path)
{
    int fd = tmp_open(flags, path);
    int w = writer_fd(fd, flags);
    char buf[65536];
    for (uint64_t off = 0; off < size;) {
        size_t n = size - off < sizeof buf ? (size_t)(size - off) : sizeof buf;
        for (size_t i = 0; i < n; i++)
            buf[i] = (char)pattern(off + i, seed);
        if (pwrite(w, buf, n, (off_t)off) != (ssize_t)n)
            tap_bail("pwrite: %s", strerror(errno));
        off += n;
    }
    if (w != fd)
        close(w);
    return fd;
}

int tmpfile_sparse(uint64_t size, int flags, char *path)
{
    int fd = tmp_open(flags, path);
    int w = writer_fd(fd, flags);
    if (ftruncate(w, (off_t)size) != 0)
        tap_bail("ftruncate: %s", strerror(errno));
    if (w != fd)
        close(w);
    return fd;
}

int read_file(int fd, void *buf, size_t len, off_t off)
{
    size_t got = 0;
    while (got < len) {
        /* The system call itself, not the C library's pread, which libumm
         * stands in front of: this is what the file holds, as another
         * program would read it, not what libumm's page cache says. */
        ssize_t r = syscall(SYS_pread64, fd, (char *)buf + got, len - got, off + (off_t)got);
        if (r <= 0)
            return -1;
        got += (size_t)r;
    }
    return 0;
}

/* -------------------------------------------------------------- signals */

static sigjmp_buf jb;
static volatile int got_sig, got_code;
static void *volatile got_addr;

static void on_signal(int sig, siginfo_t *si, void *uctx)
{
    (void)uctx;
    got_sig = sig;
    got_code = si->si_code;
    got_addr = si->si_addr;
    siglongjmp(jb, 1);
}

int catch_signal(void (*fn)(void *), void *arg, int *code, void **addr)
{
    struct sigaction sa, old_segv, old_bus;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_signal;
    sa.sa_flags = SA_SIGINFO;
    sigaction(SIGSEGV, &sa, &old_segv);
    sigaction(SIGBUS, &sa, &old_bus);
    got_sig = 0;
    /* The touch here is meant to fault: memcheck need not report it. */
    vg_expect_fault(arg, 16);
    if (sigsetjmp(jb, 1) == 0)
        fn(arg);
    sigaction(SIGSEGV, &old_segv, NULL);
    sigaction(SIGBUS, &old_bus, NULL);
    if (code)
        *code = got_code;
    if (addr)
        *addr = got_addr;
    return got_sig;
}

/* Per-thread catching: one handler for the process, one armed struct tcatch
 * per thread (initial-exec TLS: safe to read in a signal handler). */
static __thread struct tcatch *tcatch_cur __attribute__((tls_model("initial-exec")));

static void on_thread_signal(int sig, siginfo_t *si, void *uctx)
{
    (void)uctx;
    struct tcatch *tc = tcatch_cur;
    if (!tc) {
        char msg[128];
        int n = snprintf(msg, sizeof msg, "unexpected signal %d (code %d) at %p on a thread with no catcher\n", sig,
                         si ? si->si_code : 0, si ? si->si_addr : NULL);
        if (n > 0)
            (void)!write(2, msg, (size_t)n);
        abort();
    }
    tcatch_cur = NULL;
    tc->sig = sig;
    tc->code = si ? si->si_code : 0;
    tc->addr = si ? si->si_addr : NULL;
    siglongjmp(tc->jb, 1);
}

void tcatch_init(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_thread_signal;
    sa.sa_flags = SA_SIGINFO;
    if (sigaction(SIGSEGV, &sa, NULL) != 0 || sigaction(SIGBUS, &sa, NULL) != 0)
        tap_bail("tcatch_init: sigaction: %s", strerror(errno));
}

void tcatch_arm(struct tcatch *tc)
{
    tc->sig = 0;
    tc->code = 0;
    tc->addr = NULL;
    tcatch_cur = tc;
}

void tcatch_disarm(void)
{
    tcatch_cur = NULL;
}

void touch_read(void *p)
{
    volatile char c = *(volatile char *)p;
    (void)c;
}

void touch_write(void *p)
{
    *(volatile char *)p = 42;
}

/* -------------------------------------------------------------- Valgrind */

int under_valgrind(void)
{
    return RUNNING_ON_VALGRIND != 0;
}

void vg_quiet(int on)
{
    if (on)
        VALGRIND_DISABLE_ERROR_REPORTING;
    else
        VALGRIND_ENABLE_ERROR_REPORTING;
}

void vg_expect_fault(const void *addr, size_t len)
{
#ifdef HAVE_VALGRIND_MEMCHECK_H
    (void)VALGRIND_MAKE_MEM_DEFINED(addr, len);
#else
    (void)addr;
    (void)len;
#endif
}

#ifdef HAVE_VALGRIND_HELGRIND_H
#include <valgrind/helgrind.h>
void vg_hb_before(const volatile void *obj)
{
    ANNOTATE_HAPPENS_BEFORE(obj);
}
void vg_hb_after(const volatile void *obj)
{
    ANNOTATE_HAPPENS_AFTER(obj);
}
void vg_racy(const volatile void *addr, size_t len)
{
    VALGRIND_HG_DISABLE_CHECKING(addr, len);
}
#else
void vg_hb_before(const volatile void *obj)
{
    (void)obj;
}
void vg_hb_after(const volatile void *obj)
{
    (void)obj;
}
void vg_racy(const volatile void *addr, size_t len)
{
    (void)addr;
    (void)len;
}
#endif

/* Valgrind reads a suppression file as soon as --suppressions is changed,
 * so this one is written, loaded and removed at once.  It only covers the
 * DTV of a thread made by pthread_create, as "possibly lost". */
void vg_abrupt_end(void)
{
#if defined(HAVE_VALGRIND_VALGRIND_H) && defined(VALGRIND_CLO_CHANGE)
    static const char supp[] = "{\n"
                               "   umm-test-abrupt-end: glibc points at a running thread's DTV from inside only\n"
                               "   Memcheck:Leak\n"
                               "   match-leak-kinds: possible\n"
                               "   fun:calloc\n"
                               "   ...\n"
                               "   fun:_dl_allocate_tls\n"
                               "   ...\n"
                               "   fun:pthread_create*\n"
                               "}\n";
    if (!RUNNING_ON_VALGRIND)
        return;
    const char *dir = getenv("UMM_TEST_TMPDIR");
    char path[512], opt[600];
    snprintf(path, sizeof path, "%s/vg-abrupt.XXXXXX", dir && *dir ? dir : "/tmp");
    int fd = mkostemp(path, O_CLOEXEC);
    int written = fd >= 0 && write(fd, supp, sizeof supp - 1) == (ssize_t)(sizeof supp - 1);
    if (fd >= 0) {
        close(fd);
        if (written) {
            snprintf(opt, sizeof opt, "--suppressions=%s", path);
            VALGRIND_CLO_CHANGE(opt);
        }
        unlink(path);
    }
    if (!written) { /* no file: at least count only definite leaks */
        VALGRIND_CLO_CHANGE("--show-leak-kinds=definite");
        VALGRIND_CLO_CHANGE("--errors-for-leak-kinds=definite");
    }
#endif
}

/* ----------------------------------------------------------------- leaks */

uint64_t stat_get(const char *which)
{
    struct umm_stats s;
    umm_stats(&s);
    if (!strcmp(which, "faults")) return s.faults;
    if (!strcmp(which, "pages_read")) return s.pages_read;
    if (!strcmp(which, "pages_written")) return s.pages_written;
    if (!strcmp(which, "resident")) return s.resident;
    if (!strcmp(which, "frames")) return s.frames;
    if (!strcmp(which, "mappings")) return s.mappings;
    if (!strcmp(which, "files")) return s.files;
    if (!strcmp(which, "cow_copies")) return s.cow_copies;
    if (!strcmp(which, "signals")) return s.signals;
    if (!strcmp(which, "host_maps")) return s.host_maps;
    if (!strcmp(which, "budget")) return s.budget;
    if (!strcmp(which, "frames_high")) return s.frames_high;
    if (!strcmp(which, "reclaimed")) return s.reclaimed;
    if (!strcmp(which, "reclaim_written")) return s.reclaim_written;
    if (!strcmp(which, "swapped_out")) return s.swapped_out;
    if (!strcmp(which, "swapped_in")) return s.swapped_in;
    if (!strcmp(which, "swap_used")) return s.swap_used;
    if (!strcmp(which, "frames_pooled")) return s.frames_pooled;
    tap_bail("stat_get: unknown %s", which);
}

uint64_t stat_wait(const char *which, uint64_t from, uint64_t want)
{
    for (int i = 0; i < 2000 && stat_get(which) - from < want; i++) {
        struct timespec ms = { 0, 10 * 1000 * 1000 };
        nanosleep(&ms, NULL);
    }
    return stat_get(which) - from;
}

void check_released(void)
{
    struct umm_stats s;
    umm_stats(&s);
    is_int(s.mappings, 0, "leak oracle: no mapping left");
    is_int(s.resident, 0, "leak oracle: no page resident");
    is_int(s.frames, 0, "leak oracle: every frame released");
    is_int(s.files, 0, "leak oracle: every file released");
}

int maps_lines(int *libumm)
{
    FILE *f = fopen("/proc/self/maps", "re");
    if (!f)
        tap_bail("/proc/self/maps: %s", strerror(errno));
    char line[4096];
    int all = 0, ram = 0, other = 0;
    while (fgets(line, sizeof line, f)) {
        all++;
        char perms[8] = "";
        sscanf(line, "%*s %7s", perms);
        if (strstr(line, "/memfd:libumm-ram"))
            ram++;
        else if (strstr(line, "/memfd:libumm-sigbus"))
            other++;
        else if (perms[3] == 's' && strstr(line, "/tmp."))
            other++; /* a test's file, mapped by libumm itself (zero-copy pages, umm.h) */
    }
    fclose(f);
    if (libumm)
        *libumm = (ram ? ram - 1 : 0) + other;
    return all;
}

/* No test may hang: each dies by SIGALRM after UMM_TEST_TIMEOUT seconds
 * (default 300), which the harness reports as a failure. */
__attribute__((constructor)) static void test_timeout(void)
{
    const char *s = getenv("UMM_TEST_TIMEOUT");
    alarm(s ? (unsigned)atoi(s) : 300);
}

uint64_t ram_host_pages(void)
{
    static int ram_fd = -1;
    struct stat st;
    if (ram_fd < 0 && fds_named("memfd:libumm-ram", &ram_fd, 1) != 1)
        ram_fd = -1;
    if (ram_fd < 0 || fstat(ram_fd, &st) != 0)
        return UINT64_MAX;
    return (uint64_t)st.st_blocks * 512 / PAGE;
}

long rss_shmem_kb(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kb = -1;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "RssShmem: %ld kB", &kb) == 1)
            break;
    if (f)
        fclose(f);
    return kb;
}

int fds_named(const char *what, int *out, int max)
{
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return -1;
    int n = 0, self = dirfd(d);
    struct dirent *e;
    while ((e = readdir(d)) != NULL && n < max) {
        char link[300], target[300];
        snprintf(link, sizeof link, "/proc/self/fd/%s", e->d_name);
        ssize_t len = readlink(link, target, sizeof target - 1);
        if (len <= 0 || atoi(e->d_name) == self)
            continue;
        target[len] = 0;
        if (strstr(target, what))
            out[n++] = atoi(e->d_name);
    }
    closedir(d);
    return n;
}
