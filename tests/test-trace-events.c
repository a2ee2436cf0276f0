/* Promise (umm_trace(3)): with tracing on, MADV_PAGEOUT of private
 * anonymous memory is a UMM_TRACE_RECLAIM event for its pages, and the
 * next touch of each page a UMM_TRACE_SWAPIN trap; every event carries the
 * time it came (CLOCK_MONOTONIC) and the pages resident and frames in use
 * after it.  A program built against interface 1 (its umm_trace_read and
 * its shorter event) gets what it knew: the short event and not a byte
 * more, no reclaim events, a swap-in as a fill. */
#define _GNU_SOURCE
#include <string.h>
#include <time.h>
#include "util.h"

#define N 8

/* The event and call of interface 1. */
struct event_v1 {
    void *addr;
    int write;
    int kind;
    uint64_t file_offset;
    uint32_t pages;
    uint64_t nsec;
};
#undef umm_trace_read
size_t umm_trace_read(struct event_v1 *events, size_t max);

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Write N pages, page them out, read them back (tracing on). */
static void round_trip(char *a)
{
    for (int i = 0; i < N; i++)
        memset(a + i * PAGE, 'A' + i, PAGE);
    ok(umm_madvise(a, N * PAGE, MADV_PAGEOUT) == 0, "MADV_PAGEOUT");
    int right = 0;
    for (int i = 0; i < N; i++)
        right += a[i * PAGE] == 'A' + i && a[i * PAGE + PAGE - 1] == 'A' + i;
    is_int(right, N, "every page came back with its bytes");
}

int main(void)
{
    char *a = umm_mmap(NULL, N * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    ok(a != MAP_FAILED, "umm_mmap");
    struct umm_trace_event ev[256];
    umm_trace(1);
    while (umm_trace_read2(ev, 256) > 0)
        ;
    uint64_t t0 = now_ns();
    round_trip(a);
    uint64_t t1 = now_ns();
    size_t n = umm_trace_read2(ev, 256); /* what umm_trace_read is in a new build */
    unsigned reclaimed = 0, swapins = 0, in_time = 0, res_ok = 0, last_swapin = 0;
    for (size_t i = 0; i < n; i++) {
        in_time += ev[i].when_ns >= t0 && ev[i].when_ns <= t1;
        if (ev[i].kind == UMM_TRACE_RECLAIM && (char *)ev[i].addr >= a && (char *)ev[i].addr < a + N * PAGE &&
            swapins == 0)
            reclaimed += ev[i].pages;
        if (ev[i].kind == UMM_TRACE_SWAPIN) {
            swapins++;
            /* The pages of this mapping resident after it: those back so far. */
            res_ok += ev[i].resident == swapins && ev[i].frames >= swapins;
            last_swapin = (unsigned)i;
        }
    }
    is_int(reclaimed, N, "reclaim events for the %d pages at the mapping's addresses, before the swap-ins", N);
    is_int(swapins, N, "%d swap-in traps", N);
    is_int(in_time, n, "every event's when_ns is in the round trip's time (%zu events)", n);
    is_int(res_ok, N, "after each swap-in, one more page resident and frames for them");
    ok(n > 0 && ev[last_swapin].nsec > 0 && ev[last_swapin].when_ns + ev[last_swapin].nsec <= t1,
       "a trap's nsec: how long it took, ending inside the round trip");

    /* The same through interface 1, into an array with a canary after it. */
    struct {
        struct event_v1 ev[2 * N];
        unsigned char canary[64];
    } old;
    memset(&old, 0x5a, sizeof old);
    round_trip(a);
    size_t got = 0, m;
    while (got < 2 * N && (m = umm_trace_read(old.ev + got, 2 * N - got)) > 0)
        got += m;
    unsigned fills = 0, news = 0;
    for (size_t i = 0; i < got; i++) {
        fills += old.ev[i].kind == UMM_TRACE_FILL && old.ev[i].addr >= (void *)a &&
                 old.ev[i].addr < (void *)(a + N * PAGE);
        news += old.ev[i].kind > UMM_TRACE_SPURIOUS;
    }
    is_int(got, N, "interface 1: the %d traps, and no reclaim event", N);
    is_int(fills, N, "interface 1: each swap-in reads as a fill");
    is_int(news, 0, "interface 1: no kind it does not know");
    int intact = 1; /* every byte after the events it returned */
    for (unsigned char *b = (unsigned char *)&old.ev[got]; b < (unsigned char *)(&old + 1); b++)
        intact &= *b == 0x5a;
    ok(intact, "interface 1: nothing written past its array of short events");

    umm_trace(0);
    ok(umm_munmap(a, N * PAGE) == 0, "umm_munmap");
    check_released();
    return tap_done();
}
