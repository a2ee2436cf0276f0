/* Promise: faults on different pages proceed in parallel; no lock held
 * across the read of a page serialises unrelated faults, and two threads
 * faulting the same page cause one read.
 *
 * Shown without timing: a fanotify permission watch (FAN_ACCESS_PERM) on
 * one file stops every read of it in the kernel until this program answers.
 * So a fault on that file is held inside its pread, with everything libumm
 * holds at that moment, for as long as the test likes; meanwhile other
 * faults must run to completion (or reach their own pread).  The watch needs
 * CAP_SYS_ADMIN; without it the test is skipped. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/fanotify.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#include "util.h"

#ifndef FAN_REPORT_TID
#define FAN_REPORT_TID 0x100
#endif

#define NP 16 /* pages per mapping */
#define WAIT_MS 20000 /* the longest any step may take: only a failure waits this long */

/* ------------------------------------------------------------ fanotify */

static int fan = -1, have_tid;

struct ev {
    int fd;
    pid_t pid; /* the thread, with FAN_REPORT_TID */
};
static struct ev queue[64];
static int nqueue;

/* The next read-permission event, or fd -1 after timeout_ms. */
static struct ev next_event(int timeout_ms)
{
    while (nqueue == 0) {
        struct pollfd pfd = { .fd = fan, .events = POLLIN };
        int r = poll(&pfd, 1, timeout_ms);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return (struct ev){ .fd = -1 };
        char buf[4096] __attribute__((aligned(8)));
        ssize_t len = read(fan, buf, sizeof buf);
        if (len <= 0)
            return (struct ev){ .fd = -1 };
        struct fanotify_event_metadata *md = (void *)buf;
        for (; FAN_EVENT_OK(md, len); md = FAN_EVENT_NEXT(md, len))
            if (md->fd >= 0 && nqueue < 64)
                queue[nqueue++] = (struct ev){ .fd = md->fd, .pid = md->pid };
    }
    struct ev e = queue[0];
    memmove(queue, queue + 1, (size_t)--nqueue * sizeof queue[0]);
    return e;
}

static void allow(struct ev e)
{
    if (e.fd < 0)
        return;
    struct fanotify_response r = { .fd = e.fd, .response = FAN_ALLOW };
    (void)!write(fan, &r, sizeof r);
    close(e.fd);
}

static int same_file(int fd, int fd2)
{
    struct stat a, b;
    return fstat(fd, &a) == 0 && fstat(fd2, &b) == 0 && a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

/* ------------------------------------------------------------- threads */

struct job {
    pthread_t th;
    _Atomic pid_t tid;
    const char *name;
    unsigned char *map; /* read pages [first, first+n) of map, check them */
    size_t first, n;
    unsigned seed;      /* 0: anonymous, write then read back */
    unsigned char *unmap; /* or: umm_munmap this page */
    unsigned char *prefault; /* or: umm_prefault this page */
    int bad, rc;
    _Atomic int done;
};

static void *run_job(void *arg)
{
    struct job *j = arg;
    atomic_store(&j->tid, (pid_t)syscall(SYS_gettid));
    if (j->unmap) {
        j->rc = umm_munmap(j->unmap, PAGE);
    } else if (j->prefault) {
        j->rc = umm_prefault(j->prefault, PAGE, PROT_READ);
    } else {
        for (size_t p = j->first; p < j->first + j->n; p++) {
            volatile unsigned char *pg = j->map + p * PAGE;
            if (j->seed == 0) {
                pg[100] = (unsigned char)p;
                j->bad += pg[100] != (unsigned char)p || pg[0] != 0;
                continue;
            }
            for (size_t i = 0; i < PAGE; i++)
                j->bad += pg[i] != pattern(p * PAGE + i, j->seed);
        }
    }
    vg_hb_before(&j->done); /* its results are read once done is seen */
    atomic_store(&j->done, 1);
    return NULL;
}

/* Has j finished?  Its results may be read once it says so. */
static int job_done(struct job *j)
{
    if (!atomic_load(&j->done))
        return 0;
    vg_hb_after(&j->done);
    return 1;
}

static void start(struct job *j)
{
    if (pthread_create(&j->th, NULL, run_job, j) != 0)
        tap_bail("pthread_create: %s", strerror(errno));
    while (!atomic_load(&j->tid))
        sched_yield();
}

static void sleep_ms(int ms)
{
    struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000 };
    nanosleep(&ts, NULL);
}

/* Wait until j is done; 1 if it is within ms. */
static int wait_done(struct job *j, int ms)
{
    for (int i = 0; i < ms && !job_done(j); i++)
        sleep_ms(1);
    return job_done(j);
}

/* Wait (at most ms) until thread tid sleeps in futex(): on a page-table
 * entry's lock, or on the address-space lock.  Only to make the next step
 * meaningful; nothing is asserted on it. */
static int wait_futex(pid_t tid, int ms)
{
    char path[64], buf[64];
    snprintf(path, sizeof path, "/proc/self/task/%d/syscall", (int)tid);
    for (int i = 0; i < ms; i++) {
        int fd = open(path, O_RDONLY);
        ssize_t n = fd >= 0 ? read(fd, buf, sizeof buf - 1) : -1;
        if (fd >= 0)
            close(fd);
        if (n > 0) {
            buf[n] = 0;
            if (atoi(buf) == SYS_futex)
                return 1;
        }
        sleep_ms(1);
    }
    return 0;
}

int main(void)
{
    fan = fanotify_init(FAN_CLASS_CONTENT | FAN_CLOEXEC | FAN_REPORT_TID, O_RDONLY);
    have_tid = fan >= 0;
    if (fan < 0)
        fan = fanotify_init(FAN_CLASS_CONTENT | FAN_CLOEXEC, O_RDONLY);
    if (fan < 0)
        tap_skip_all("no fanotify permission events here (needs CAP_SYS_ADMIN)");

    int fda = tmpfile_make(NP * PAGE, 31, O_RDONLY, NULL);
    int fdb = tmpfile_make(NP * PAGE, 32, O_RDONLY, NULL);
    if (fanotify_mark(fan, FAN_MARK_ADD, FAN_ACCESS_PERM, fda, NULL) != 0)
        tap_skip_all("fanotify_mark(FAN_ACCESS_PERM) refused");

    unsigned char *a = umm_mmap(NULL, NP * PAGE, PROT_READ, MAP_PRIVATE, fda, 0);
    unsigned char *b = umm_mmap(NULL, NP * PAGE, PROT_READ, MAP_SHARED, fdb, 0);
    unsigned char *c = umm_mmap(NULL, NP * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    unsigned char *w = umm_mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    ok(a != MAP_FAILED && b != MAP_FAILED && c != MAP_FAILED && w != MAP_FAILED,
       "two files and anonymous memory mapped");
    /* One page per fault, so that each fault's read is one pread of one page. */
    ok(umm_madvise(a, NP * PAGE, MADV_RANDOM) == 0 && umm_madvise(b, NP * PAGE, MADV_RANDOM) == 0 &&
           umm_madvise(c, NP * PAGE, MADV_RANDOM) == 0,
       "MADV_RANDOM");
    uint64_t r0 = stat_get("pages_read");

    /* A fault on page 3 of file A: held in its pread. */
    struct job ta = { .name = "A3", .map = a, .first = 3, .n = 1, .seed = 31 };
    start(&ta);
    struct ev e1 = next_event(WAIT_MS);
    ok(e1.fd >= 0 && same_file(e1.fd, fda), "a fault on file A reaches its pread, and is held there");
    if (have_tid)
        is_int(e1.pid, ta.tid, "by the faulting thread");
    ok(!atomic_load(&ta.done), "the faulting access has not completed");

    /* Meanwhile: faults on another file and on anonymous memory complete. */
    struct job tb = { .name = "B0-7", .map = b, .first = 0, .n = 8, .seed = 32 };
    struct job tc = { .name = "C0-15", .map = c, .first = 0, .n = NP, .seed = 0 };
    start(&tb);
    start(&tc);
    ok(wait_done(&tb, WAIT_MS), "8 faults on file B completed while a fault of file A waits in pread");
    ok(wait_done(&tc, WAIT_MS), "16 faults on anonymous memory completed meanwhile");
    is_int(tb.bad + tc.bad, 0, "and saw the right bytes");
    ok(!atomic_load(&ta.done), "the fault on file A is still held");

    /* Another page of the same file: its fault reaches its own pread while
     * the first is still in its own. */
    struct job td = { .name = "A9", .map = a, .first = 9, .n = 1, .seed = 31 };
    start(&td);
    struct ev e2 = next_event(WAIT_MS);
    ok(e2.fd >= 0 && same_file(e2.fd, fda),
       "a fault on another page of file A reaches pread while the first is held there: both reads in flight");
    if (have_tid)
        is_int(e2.pid, td.tid, "by the second faulting thread");

    /* The same page as the held fault: it must wait for that read, not
     * start its own. */
    struct job te = { .name = "A3 again", .map = a, .first = 3, .n = 1, .seed = 31 };
    start(&te);
    if (!wait_futex(te.tid, 2000))
        tap_diag("the second fault of page 3 was not seen waiting (loaded machine?)");
    struct ev e3 = next_event(300);
    ok(e3.fd < 0, "a second fault of the held page does not read it again (while the first read is held)");
    allow(e3);

    /* umm_munmap of unrelated memory waits for the faults in flight (it
     * takes the address-space lock for writing); faults of other pages must
     * not queue up behind it. */
    struct job tw = { .name = "munmap", .unmap = w };
    start(&tw);
    if (!wait_futex(tw.tid, 2000))
        tap_diag("umm_munmap was not seen waiting (loaded machine?)");
    struct job tb2 = { .name = "B8-15", .map = b, .first = 8, .n = 8, .seed = 32 };
    start(&tb2);
    ok(wait_done(&tb2, WAIT_MS), "faults on file B still complete while umm_munmap waits behind the held faults");
    is_int(tb2.bad, 0, "and see the right bytes");

    /* Let the reads go: every waiter finishes. */
    allow(e1);
    allow(e2);
    int extra = 0;
    struct job *all[] = { &ta, &td, &te, &tw };
    for (int k = 0; k < 4; k++) {
        while (!job_done(all[k])) {
            struct ev e = next_event(50);
            if (e.fd >= 0) {
                extra++;
                allow(e);
            }
            static int waited;
            if ((waited += 50) > WAIT_MS)
                break;
        }
        ok(job_done(all[k]), "%s finished once the reads were let go", all[k]->name);
    }
    /* Late events would show a page read twice. */
    for (struct ev e; (e = next_event(100)).fd >= 0; extra++)
        allow(e);
    is_int(extra, 0, "file A was read exactly twice: page 3 once for its two faults, page 9 once");
    is_int(ta.bad + td.bad + te.bad, 0, "every fault of file A saw the file's bytes");
    is_int(tw.rc, 0, "umm_munmap returned 0");
    is_int(stat_get("pages_read") - r0, 2 + NP, "pages read: 2 of file A, 16 of file B");
    r0 = stat_get("pages_read");

    /* umm_prefault does what a touch does: while its read is held, faults
     * of other files go on too. */
    int fdc = tmpfile_make(NP * PAGE, 33, O_RDONLY, NULL);
    unsigned char *cf = umm_mmap(NULL, NP * PAGE, PROT_READ, MAP_SHARED, fdc, 0);
    ok(cf != MAP_FAILED && umm_madvise(cf, NP * PAGE, MADV_RANDOM) == 0, "a third file mapped");
    struct job tp = { .name = "prefault A12", .prefault = a + 12 * PAGE };
    start(&tp);
    struct ev e4 = next_event(WAIT_MS);
    ok(e4.fd >= 0 && same_file(e4.fd, fda), "umm_prefault of a page of file A reaches its pread, and is held there");
    struct job tf = { .name = "C0-3", .map = cf, .first = 0, .n = 4, .seed = 33 };
    start(&tf);
    ok(wait_done(&tf, WAIT_MS), "faults on another file complete while umm_prefault waits in pread");
    is_int(tf.bad, 0, "and see the right bytes");
    allow(e4);
    ok(wait_done(&tp, WAIT_MS), "umm_prefault finished once its read was let go");
    is_int(tp.rc, 0, "umm_prefault returned 0");
    struct job tq = { .name = "A12", .map = a, .first = 12, .n = 1, .seed = 31 };
    start(&tq);
    ok(wait_done(&tq, WAIT_MS), "the prefaulted page is there without another read");
    is_int(tq.bad, 0, "with the file's bytes");
    is_int(stat_get("pages_read") - r0, 1 + 4, "pages read: 1 of file A, 4 of file C");
    for (struct ev e; (e = next_event(100)).fd >= 0;)
        allow(e);

    fanotify_mark(fan, FAN_MARK_REMOVE, FAN_ACCESS_PERM, fda, NULL);
    close(fan); /* also lets go of anything still held, should a check above have failed */
    struct job *js[] = { &ta, &tb, &tc, &td, &te, &tw, &tb2, &tp, &tf, &tq };
    for (int k = 0; k < 10; k++)
        pthread_join(js[k]->th, NULL);
    umm_munmap(a, NP * PAGE);
    umm_munmap(b, NP * PAGE);
    umm_munmap(c, NP * PAGE);
    umm_munmap(cf, NP * PAGE);
    close(fdc);
    close(fda);
    close(fdb);
    check_released();
    return tap_done();
}
