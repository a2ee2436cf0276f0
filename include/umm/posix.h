/*
 * <umm/posix.h>: send a program's POSIX memory-mapping calls to libumm.
 *
 * Include it (first, or with `cc -include umm/posix.h`) in a program
 * written for the kernel's calls, and link with libumm; nothing else
 * changes:
 *
 *   mmap     -> umm_mmap         msync    -> umm_msync
 *   munmap   -> umm_munmap       mprotect -> umm_mprotect
 *   madvise  -> umm_madvise      mremap   -> umm_mremap (where <sys/mman.h>
 *   mmap64   -> umm_mmap (LP64)                          declares mremap)
 *   fork     -> umm_fork, only where the program defines UMM_POSIX_FORK
 *               before the include (a plain fork() keeps libumm's promises
 *               too; umm_fork() fails with ENOMEM instead of aborting when
 *               libumm's RAM has no room for the copies)
 *
 * The names are object-like macros, so a call, a pointer to the function
 * (&mmap, a table of operations) and a name passed on to another macro all
 * mean libumm's function.  <sys/mman.h> and <unistd.h> are included here
 * first, before the names are defined, so including them again afterwards
 * finds their include guards and cannot turn the C library's declarations
 * into wrong ones.  Everything else (PROT_*, MAP_*, MS_*, MADV_*,
 * MAP_FAILED) is the system's own.  A struct member or variable named mmap
 * in the same file is renamed too, consistently, which compiles the same.
 * UMM_POSIX_NO_REDIRECT before the include gives <umm.h> alone.
 *
 * posix_madvise() is not redirected (libumm has no counterpart): it reaches
 * the kernel, which knows nothing of libumm's mappings.  A library compiled
 * without this header still calls the kernel's functions for its own
 * mappings; libumm's sigaction() and read()/write() family stand in front
 * of the C library's whatever the header (umm.h).
 */
#ifndef UMM_POSIX_H
#define UMM_POSIX_H

#include <sys/mman.h>
#include <sys/types.h>
#include <unistd.h>

#include "../umm.h"

#ifndef UMM_POSIX_NO_REDIRECT

#undef mmap
#undef munmap
#undef msync
#undef mprotect
#undef madvise
#define mmap     umm_mmap
#define munmap   umm_munmap
#define msync    umm_msync
#define mprotect umm_mprotect
#define madvise  umm_madvise

/* glibc declares mremap only for _GNU_SOURCE (MREMAP_MAYMOVE says it did). */
#ifdef MREMAP_MAYMOVE
#undef mremap
#define mremap umm_mremap
#endif

/* mmap64 takes an off64_t, which is off_t on 64-bit systems. */
#if defined(__LP64__) && defined(__USE_LARGEFILE64)
#undef mmap64
#define mmap64 umm_mmap
#endif

#ifdef UMM_POSIX_FORK
#undef fork
#define fork umm_fork
#endif

#endif /* UMM_POSIX_NO_REDIRECT */
#endif /* UMM_POSIX_H */
