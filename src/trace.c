/*
 * trace.c: the trace of what faults and reclaim did (umm_trace(3)).
 *
 * A ring of events: the trap records each fault it handled (what
 * umm__note, filled in by fault.c's stages, says it did), reclaim each run
 * it took out (vmscan.c); umm_trace_read() takes them out, and with
 * UMM_TRACE_FILE the whole run goes to a file at exit for umm-trace(1).
 * Low in the house: the pieces that record call down to it, and it calls
 * nothing of theirs but the counters it copies into each event.  No malloc,
 * no stdio, no lock: it runs in the trap.
 */
#include "umm-int.h"
#include "vg.h"

#include <fcntl.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

__thread struct umm__note umm__note __attribute__((tls_model("initial-exec")));

/* The ring: 4096 events, or with UMM_TRACE_FILE a million (host memory,
 * touched as it fills), which the file at exit takes from the start. */
#define TRACE_RING 4096
#define TRACE_FILE_RING (1u << 20)
struct trace_slot {
    _Atomic uint64_t seq; /* index + 1 once the slot is written */
    struct umm_trace_event ev;
};
static struct trace_slot ring0[TRACE_RING];
static struct trace_slot *ring = ring0;
static uint64_t ring_size = TRACE_RING;
static _Atomic uint64_t ring_head, ring_tail;
static _Atomic int tracing;
static char trace_path[4096]; /* UMM_TRACE_FILE, or empty */
static pid_t trace_pid;       /* the process that writes it */

uint64_t umm__now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts); /* async-signal-safe (vDSO) */
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void trace_put(uintptr_t addr, int write, int kind, uint64_t fpage, uint64_t pages, uint64_t t0,
                      uint64_t t1)
{
    uint64_t i = atomic_fetch_add(&ring_head, 1);
    struct umm_trace_event *e = &ring[i % ring_size].ev;
    e->addr = (void *)addr;
    e->write = write;
    e->kind = kind;
    e->file_offset = fpage << UMM_PAGE_SHIFT;
    e->pages = (uint32_t)pages;
    e->nsec = t1 - t0;
    e->when_ns = t0;
    e->resident = atomic_load_explicit(&umm__mm.resident, memory_order_relaxed);
    e->frames = umm__ram_frames_in_use();
    atomic_store_explicit(&ring[i % ring_size].seq, i + 1, memory_order_release);
}

/* A fault the trap handled, which took from t0 to now: what umm__note says
 * it did. */
void umm__trace_fault(uintptr_t addr, uint64_t t0)
{
    trace_put(addr, umm__note.write, umm__note.kind, umm__note.fpage, umm__note.pages, t0, umm__now_ns());
}

void umm__trace_reclaim(uintptr_t addr, uint64_t fpage, uint64_t pages)
{
    if (atomic_load_explicit(&tracing, memory_order_relaxed) && pages) {
        uint64_t t = umm__now_ns();
        trace_put(addr, 0, UMM_TRACE_RECLAIM, fpage, pages, t, t);
    }
}

int umm__tracing(void)
{
    return atomic_load_explicit(&tracing, memory_order_relaxed);
}

int umm_trace(int on)
{
    return atomic_exchange(&tracing, on != 0);
}

void umm__trace_vg_exit(void)
{
    for (size_t i = 0; i < ring_size; i++)
        umm__vg_undefined(&ring[i].ev.addr, sizeof ring[i].ev.addr);
}

/* Events [tail, head) into out (at most max; the oldest were overwritten
 * past the ring's size); each copied as its first size bytes.  Shorter
 * than the whole event: for interface 1, which knew only traps and called
 * a swap-in a fill. */
static size_t trace_copy(_Atomic uint64_t *cursor, void *out, size_t size, size_t max)
{
    int v1 = size < sizeof(struct umm_trace_event);
    size_t n = 0;
    uint64_t head = atomic_load(&ring_head), tail = atomic_load(cursor);
    if (head - tail > ring_size)
        tail = head - ring_size; /* the oldest were overwritten */
    while (tail < head && n < max) {
        if (atomic_load_explicit(&ring[tail % ring_size].seq, memory_order_acquire) == tail + 1 &&
            !(v1 && ring[tail % ring_size].ev.kind == UMM_TRACE_RECLAIM)) {
            struct umm_trace_event *e = (struct umm_trace_event *)((char *)out + n++ * size);
            memcpy(e, &ring[tail % ring_size].ev, size);
            if (v1 && e->kind == UMM_TRACE_SWAPIN)
                e->kind = UMM_TRACE_FILL;
        }
        tail++;
    }
    atomic_store(cursor, tail);
    return n;
}

size_t umm_trace_read2(struct umm_trace_event *events, size_t max)
{
    return trace_copy(&ring_tail, events, sizeof *events, max);
}

/* The interface 1 event, for programs built before when_ns was added. */
#undef umm_trace_read
size_t umm_trace_read(struct umm_trace_event *events, size_t max);
size_t umm_trace_read(struct umm_trace_event *events, size_t max)
{
    return trace_copy(&ring_tail, events, offsetof(struct umm_trace_event, when_ns), max);
}

/* At start-up: UMM_TRACE_FILE=path records from now on, into a larger ring
 * (host memory), for umm__trace_file_write() at exit. */
void umm__trace_file_init(void)
{
    const char *p = getenv("UMM_TRACE_FILE");
    size_t at = 0;
    if (!p || !*p)
        return;
    if (p[0] != '/' && getcwd(trace_path, sizeof trace_path - 1)) { /* where the program started */
        at = strlen(trace_path);
        trace_path[at++] = '/';
    }
    if (at + strlen(p) >= sizeof trace_path) {
        trace_path[0] = 0;
        return;
    }
    size_t bytes = TRACE_FILE_RING * sizeof(struct trace_slot);
    void *big = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (big != MAP_FAILED && atomic_load(&ring_head) == 0) {
        ring = big;
        ring_size = TRACE_FILE_RING;
    }
    strcpy(trace_path + at, p);
    trace_pid = getpid();
    atomic_store(&tracing, 1);
}

/* Decimal (or hex with a 0x) of v at the end of buf's 24 bytes. */
static char *fmt_u64(char *end, uint64_t v, int hex)
{
    *--end = 0;
    do {
        *--end = "0123456789abcdef"[v % (hex ? 16 : 10)];
        v /= hex ? 16 : 10;
    } while (v);
    if (hex) {
        *--end = 'x';
        *--end = '0';
    }
    return end;
}

static const char *const kind_names[] = { "fill", "cached", "zero", "cow", "dirty", "sigbus", "spurious",
                                          "swapin", "reclaim" };

/*
 * The process that read UMM_TRACE_FILE (not its umm_fork children), at a
 * normal exit: every event in the ring, one line each, as umm-trace(1)
 * reads them:
 *
 *   # umm-trace 1 page 4096 budget PAGES
 *   WHEN_NS KIND ADDR WRITE FILE_OFFSET PAGES NSEC RESIDENT FRAMES
 *
 * No malloc or stdio: the ring's own memory and write(2).
 */
void umm__trace_file_write(uint64_t budget)
{
    if (!trace_path[0] || getpid() != trace_pid)
        return;
    int fd = (int)syscall(SYS_openat, AT_FDCWD, trace_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return;
    static char out[1 << 16];
    char line[256], num[24];
    size_t len = 0, olen = 0;
#define PUT(str)                                                                                                       \
    do {                                                                                                               \
        const char *s_ = (str);                                                                                        \
        size_t l_ = strlen(s_);                                                                                        \
        memcpy(line + len, s_, l_);                                                                                    \
        len += l_;                                                                                                     \
    } while (0)
    PUT("# umm-trace 1 page ");
    PUT(fmt_u64(num + sizeof num, UMM_PAGE_SIZE, 0));
    PUT(" budget ");
    PUT(fmt_u64(num + sizeof num, budget, 0));
    PUT("\n");
    (void)!umm__sys_write(fd, line, len);
    _Atomic uint64_t cursor = 0;
    struct umm_trace_event e;
    while (trace_copy(&cursor, &e, sizeof e, 1) == 1) {
        len = 0;
        uint64_t f[] = { e.write != 0, e.file_offset, e.pages, e.nsec, e.resident, e.frames };
        PUT(fmt_u64(num + sizeof num, e.when_ns, 0));
        PUT(" ");
        PUT(e.kind >= 0 && (size_t)e.kind < sizeof kind_names / sizeof *kind_names ? kind_names[e.kind] : "other");
        PUT(" ");
        PUT(fmt_u64(num + sizeof num, (uintptr_t)e.addr, 1));
        for (size_t i = 0; i < sizeof f / sizeof *f; i++) {
            PUT(" ");
            PUT(fmt_u64(num + sizeof num, f[i], i == 1));
        }
        PUT("\n");
        if (olen + len > sizeof out) {
            (void)!umm__sys_write(fd, out, olen);
            olen = 0;
        }
        memcpy(out + olen, line, len);
        olen += len;
    }
#undef PUT
    (void)!umm__sys_write(fd, out, olen);
    umm__sys_close(fd);
}
