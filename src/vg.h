/*
 * vg.h: what libumm tells Valgrind's memcheck, in one place.
 *
 * memcheck tracks which bytes the program may touch by virtual address.
 * It learns from mmap and mprotect, but libumm's pages are PROT_NONE on the
 * host until their first touch traps, so on its own memcheck would report
 * every first touch as an invalid access.  These client requests (no-ops
 * when <valgrind/memcheck.h> is missing, and a few instructions when not
 * running under Valgrind) keep its view right:
 *  - a program's mapping is defined memory from umm_mmap on;
 *  - the direct map is no-access except while libumm itself reads or writes
 *    a frame through it, so memcheck neither reports nor scans it (a leak
 *    check that read all of libumm's RAM would allocate all of it).
 */
#ifndef UMM_VG_H
#define UMM_VG_H

#include "config.h"

#if defined(HAVE_VALGRIND_MEMCHECK_H) && defined(HAVE_VALGRIND_VALGRIND_H)
#include <valgrind/memcheck.h>
#include <valgrind/valgrind.h>
#define umm__vg_defined(a, n) ((void)VALGRIND_MAKE_MEM_DEFINED((a), (n)))
#define umm__vg_noaccess(a, n) ((void)VALGRIND_MAKE_MEM_NOACCESS((a), (n)))
#define umm__vg_running() (RUNNING_ON_VALGRIND != 0)
/* A stack of our own (a signal stack): without it memcheck may take the
 * jump back to the thread's stack for a shrinking stack and mark live
 * frames of it no-access. */
#define umm__vg_stack_register(lo, hi) ((unsigned)VALGRIND_STACK_REGISTER((lo), (hi)))
#define umm__vg_stack_deregister(id) VALGRIND_STACK_DEREGISTER(id)
#else
#define umm__vg_defined(a, n) ((void)(a), (void)(n))
#define umm__vg_noaccess(a, n) ((void)(a), (void)(n))
#define umm__vg_running() 0
#define umm__vg_stack_register(lo, hi) ((void)(lo), (void)(hi), 0u)
#define umm__vg_stack_deregister(id) ((void)(id))
#endif

#endif
