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

/* Read *p, which the program no longer maps (the bug): memcheck reports
 * the read, then the access faults, libumm passes the SIGSEGV on to the
 * program's handler, and the program goes on.  Returns 1 if it faulted. */
static inline int read_gone(const volatile unsigned char *p)
{
    struct sigaction sa, old;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = vg_prog_on_segv;
    sigaction(SIGSEGV, &sa, &old);
    int faulted = 1;
    if (sigsetjmp(vg_prog_jb, 1) == 0) {
        vg_prog_sink = *p;
        faulted = 0;
    }
    sigaction(SIGSEGV, &old, NULL);
    return faulted;
}

#endif
