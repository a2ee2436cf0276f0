/* Promise: a fault taken on an almost exhausted stack is still handled:
 * every thread has an alternate signal stack for the trap.  A thread with
 * a 64 KiB stack uses all but a few hundred bytes of it, then touches pages
 * that are not resident (a file page, an anonymous page, a copy-on-write
 * write); without an alternate stack the kernel could not even push the
 * signal frame and the process would die. */
#define _GNU_SOURCE
#include <alloca.h>
#include <fcntl.h>
#include <pthread.h>
#include <string.h>
#include <unistd.h>
#include "util.h"
#include "config.h"
#ifdef HAVE_VALGRIND_VALGRIND_H
#include <valgrind/valgrind.h>
#else
#define RUNNING_ON_VALGRIND 0
#endif

static unsigned char *file_map, *anon_map;
static volatile int results[3];

__attribute__((noinline)) static void touch_deep(void)
{
    results[0] = file_map[5 * PAGE + 3] == pattern(5 * PAGE + 3, 41);
    anon_map[7 * PAGE] = 9;
    results[1] = anon_map[7 * PAGE] == 9;
    file_map[6 * PAGE + 1] = 77; /* private: copy-on-write */
    results[2] = file_map[6 * PAGE + 1] == 77;
}

static void *thread(void *arg)
{
    (void)arg;
    pthread_attr_t attr;
    void *lo;
    size_t size;
    pthread_getattr_np(pthread_self(), &attr);
    pthread_attr_getstack(&attr, &lo, &size);
    pthread_attr_destroy(&attr);
    char here;
    size_t left = (size_t)(&here - (char *)lo);
    /* Leave 768 bytes: enough for touch_deep's own frame, far too little
     * for a signal frame (an x86-64 frame with its FPU state is 1-3 KiB). */
    volatile char *eat = alloca(left > 768 ? left - 768 : 0);
    eat[0] = 1;
    touch_deep();
    return NULL;
}

int main(void)
{
    if (RUNNING_ON_VALGRIND)
        tap_skip_all("under Valgrind libumm leaves signal stacks alone (src/signals.c)");
    int fd = tmpfile_make(16 * PAGE, 41, O_RDONLY, NULL);
    file_map = umm_mmap(NULL, 16 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    anon_map = umm_mmap(NULL, 16 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    ok(file_map != MAP_FAILED && anon_map != MAP_FAILED, "two mappings");
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 64 * 1024);
    pthread_t t;
    uint64_t f0 = stat_get("faults");
    is_int(pthread_create(&t, &attr, thread, NULL), 0, "a thread with a 64 KiB stack");
    pthread_join(t, NULL);
    ok(results[0], "a file page faulted in with the stack nearly exhausted");
    ok(results[1], "an anonymous page too");
    ok(results[2], "and a copy-on-write write");
    ok(stat_get("faults") - f0 >= 3, "each was a trap (%llu)", (unsigned long long)(stat_get("faults") - f0));
    umm_munmap(file_map, 16 * PAGE);
    umm_munmap(anon_map, 16 * PAGE);
    close(fd);
    check_released();
    return tap_done();
}
