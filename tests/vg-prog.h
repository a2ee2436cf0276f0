/*
 * vg-prog.h: what the programs test-memcheck.sh runs under memcheck share.
 * Each program is small and does one thing (a bug, or none); the test reads
 * memcheck's report of it.
 */
#ifndef UMM_VG_PROG_H
#define UMM_VG_PROG_H

#include <setjmp.h>
#include <signal.h>
#include <string.h>

#include "util.h"

static sigjmp_buf vg_prog_jb;
static volatile unsigned char vg_prog_sink; /* Valgrind drops a load whose value is not used */

static void vg_prog_on_segv(int sig)
{
    (void)sig;
    siglongjmp(vg_prog_jb, 1);
}

/* Read (or write) *p, which the program no longer maps (the bug): memcheck
 * reports the access, then it faults, libumm passes the SIGSEGV on to the
 * program's handler, and the program goes on.  Returns 1 if it faulted. */
static inline int touch_gone(volatile unsigned char *p, int write)
{
    struct sigaction sa, old;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = vg_prog_on_segv;
    sigaction(SIGSEGV, &sa, &old);
    int faulted = 1;
    if (sigsetjmp(vg_prog_jb, 1) == 0) {
        if (write)
            *p = 0x5a;
        else
            vg_prog_sink = *p;
        faulted = 0;
    }
    sigaction(SIGSEGV, &old, NULL);
    return faulted;
}

static inline int read_gone(const volatile unsigned char *p)
{
    return touch_gone((volatile unsigned char *)p, 0);
}

static inline int write_gone(volatile unsigned char *p)
{
    return touch_gone(p, 1);
}

#endif
