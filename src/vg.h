/*
 * vg.h: what libumm tells Valgrind's memcheck, in one place.
 *
 * memcheck tracks which bytes the program may touch by virtual address.
 * It learns from mmap and mprotect, but libumm's pages are PROT_NONE on the
 * host until their first touch traps, so on its own memcheck would report
 * every first touch as an invalid access, and it would know nothing of the
 * program's mappings as such.  These client requests (no-ops when
 * <valgrind/memcheck.h> is missing, and a few instructions when not running
 * under Valgrind) keep its view right:
 *
 *  - The address space is a memory pool (the pool's handle is &umm__mm)
 *    and each mapping is a block of it, made by umm_mmap: so a touch after
 *    umm_munmap is "inside a block free'd at umm_munmap ... alloc'd at
 *    umm_mmap", and a mapping the program lost every pointer to is
 *    "definitely lost ... at umm_mmap" in the leak check.
 *  - A block is defined memory from umm_mmap on (the pool is "zeroed"),
 *    resident or not: a first touch traps on the host, memcheck delivers the
 *    SIGSEGV to the trap, and the instruction runs again, all unreported.
 *  - A partial munmap (or a MAP_FIXED over part of a mapping) cuts the
 *    block: it keeps its head (or, when the head goes, moves to its tail),
 *    a tail cut off by a hole in the middle becomes a block of its own
 *    (alloc'd at that umm_munmap), and the part that goes becomes a block
 *    that is alloc'd and at once free'd there, so that a touch of it is
 *    "inside a block free'd at umm_munmap".  mman.c keeps which block each
 *    VMA belongs to (vma->block, the block's first address).
 *  - The pool is a meta-pool: a program may hand out blocks of its own
 *    inside a mapping (VALGRIND_MALLOCLIKE_BLOCK, a custom allocator over
 *    umm_mmap) without memcheck aborting its leak check on overlapping
 *    blocks (it then finds the mapping's block for a pointer into one of
 *    them, and calls one still allocated at exit lost).  Not with
 *    auto-free: unmapping leaves such blocks to the program, as after the
 *    kernel's munmap, since auto-free would scan every heap block at every
 *    umm_munmap (a millisecond each with 100,000 of them).
 *  - At exit (umm__vg_exit) the blocks still alive go to the leak check as
 *    the program left them: libumm's own records of where mappings are (a
 *    VMA's addresses, the trace ring) are made undefined, which the leak
 *    check does not read as pointers, and the first page of each block is
 *    made readable, since the leak check counts no pointer to a page the
 *    host will not let it read.  A mapping still referenced is then "still
 *    reachable" (not an error), one lost "definitely lost".  A process of
 *    a fork family gives its mappings back at exit (fork.c), so there its
 *    blocks are free'd instead and the leak check has none.
 *  - memcheck describes an address by the oldest free'd block that holds
 *    it, so under Valgrind umm_mmap places a mapping whose address it
 *    chooses past the ones it placed before, instead of reusing a range
 *    just unmapped (mman.c).  For the same reason libumm's own mapping
 *    (the start-up check of Valgrind's options, trap.c) is no block at
 *    all: made by umm__own_mmap, not umm_mmap, it leaves no free'd block
 *    behind that a report of the program's first mapping would name.
 *  - The direct map is no-access except while libumm itself reads or
 *    writes a frame through it, so memcheck neither reports nor scans it (a
 *    leak check that read all of libumm's RAM would allocate all of it).
 *
 * helgrind and drd see a mapping's memory as the kernel's mmap would make
 * it: umm_mmap tells them it is new (umm__vg_forget: helgrind then checks
 * it, as written by the caller; it keeps no state for memory that came in
 * PROT_NONE and was mprotect'ed later, which is how every libumm page
 * arrives).  Pages are then installed without a visible write: helgrind
 * takes an mmap that can be touched as written by the thread that made it
 * -- the one that took the fault -- so under helgrind and drd a page is
 * mapped PROT_NONE and then mprotect'ed (vma.c, trap.c), or every other
 * thread's touch of it would be a race with the fault.  The direct map
 * comes in the same way (frame.c), so helgrind keeps no state for libumm's
 * RAM.  Not under memcheck (umm__vg_hg is 0 there): it has no use for it,
 * and an mprotect of the whole direct map costs it minutes and gigabytes.
 */
#ifndef UMM_VG_H
#define UMM_VG_H

#include "config.h"

/*
 * helgrind and drd (one set of requests: drd takes helgrind's) know
 * pthread's locks, not libumm's futex bit locks (frame.c) nor what C11
 * atomics order.  So each bit lock says what it does: all its holder did
 * before umm__bitunlock happens before what the next holder does after
 * umm__bitlock (umm__vg_hb_before / umm__vg_hb_after on the lock word).
 * Both tools count an atomic read-modify-write as a read, so the lock word
 * itself and counters bumped with atomic_fetch_add race with nothing
 * there.  drd counts it as a store, so to drd every look at a lock word
 * (the spin before the compare-and-swap, a check of an entry's present
 * bit) races with the last holder's unlock: the lock words are
 * umm__vg_racy, once, where they are made -- page tables and the frame
 * table whole, since every word of them is a lock word or changes under
 * one.  So is a word written with a plain (relaxed) store and read without
 * its lock on purpose (the map count, the read-ahead guess).
 */
#if defined(HAVE_VALGRIND_HELGRIND_H) && defined(HAVE_VALGRIND_VALGRIND_H)
#include <valgrind/helgrind.h>
#define umm__vg_hb_before(obj) ANNOTATE_HAPPENS_BEFORE(obj)
#define umm__vg_hb_after(obj) ANNOTATE_HAPPENS_AFTER(obj)
#define umm__vg_racy(a, n) VALGRIND_HG_DISABLE_CHECKING((a), (n))
#else
#define umm__vg_hb_before(obj) ((void)(obj))
#define umm__vg_hb_after(obj) ((void)(obj))
#define umm__vg_racy(a, n) ((void)(a), (void)(n))
#endif

#if defined(HAVE_VALGRIND_MEMCHECK_H) && defined(HAVE_VALGRIND_VALGRIND_H)
#include <valgrind/memcheck.h>
#include <valgrind/valgrind.h>
#define umm__vg_defined(a, n) ((void)VALGRIND_MAKE_MEM_DEFINED((a), (n)))
#define umm__vg_undefined(a, n) ((void)VALGRIND_MAKE_MEM_UNDEFINED((a), (n)))
#define umm__vg_noaccess(a, n) ((void)VALGRIND_MAKE_MEM_NOACCESS((a), (n)))
#define umm__vg_running() (RUNNING_ON_VALGRIND != 0)
/* Running under a Valgrind tool other than memcheck (helgrind, drd)?  Only
 * memcheck answers VALGRIND_GET_VBITS; the others leave its default, 0. */
static inline int umm__vg_not_memcheck(void)
{
    unsigned char byte = 0, vbits;
    return RUNNING_ON_VALGRIND != 0 && VALGRIND_GET_VBITS(&byte, &vbits, 1) == 0;
}
/* helgrind and drd: forget what they know of [a, a+n), a lock's too (one
 * request for both tools: drd's DRD_CLEAN_MEMORY is helgrind's
 * VALGRIND_HG_CLEAN_MEMORY; memcheck ignores it). */
#define umm__vg_forget(a, n) VALGRIND_DO_CLIENT_REQUEST_STMT(VG_USERREQ_TOOL_BASE('H', 'G'), (a), (n), 0, 0, 0)
/* A stack of our own (a signal stack): without it memcheck may take the
 * jump back to the thread's stack for a shrinking stack and mark live
 * frames of it no-access. */
#define umm__vg_stack_register(lo, hi) ((unsigned)VALGRIND_STACK_REGISTER((lo), (hi)))
#define umm__vg_stack_deregister(id) VALGRIND_STACK_DEREGISTER(id)

/* The pool of mappings.  Its blocks are requested where the program's call
 * is, so that their stacks start in umm_mmap and umm_munmap. */
#define UMM__VG_POOL ((void *)&umm__mm)
#ifdef VALGRIND_CREATE_MEMPOOL_EXT
#define umm__vg_pool_create() VALGRIND_CREATE_MEMPOOL_EXT(UMM__VG_POOL, 0, 1, VALGRIND_MEMPOOL_METAPOOL)
#else /* Valgrind before 3.12: a plain pool */
#define umm__vg_pool_create() VALGRIND_CREATE_MEMPOOL(UMM__VG_POOL, 0, 1)
#endif
/* [a, a+n) is a block (defined), made here. */
#define umm__vg_block_new(a, n) VALGRIND_MEMPOOL_ALLOC(UMM__VG_POOL, (void *)(a), (n))
/* The block starting at a is free'd here (no-access). */
#define umm__vg_block_free(a) VALGRIND_MEMPOOL_FREE(UMM__VG_POOL, (void *)(a))
/* The block starting at a is now [b, b+n), still alloc'd where it was. */
#define umm__vg_block_move(a, b, n) VALGRIND_MEMPOOL_CHANGE(UMM__VG_POOL, (void *)(a), (void *)(b), (n))
#else
#define umm__vg_defined(a, n) ((void)(a), (void)(n))
#define umm__vg_undefined(a, n) ((void)(a), (void)(n))
#define umm__vg_noaccess(a, n) ((void)(a), (void)(n))
#define umm__vg_running() 0
#define umm__vg_not_memcheck() 0
#define umm__vg_forget(a, n) ((void)(a), (void)(n))
#define umm__vg_stack_register(lo, hi) ((void)(lo), (void)(hi), 0u)
#define umm__vg_stack_deregister(id) ((void)(id))
#define umm__vg_pool_create() ((void)0)
#define umm__vg_block_new(a, n) ((void)(a), (void)(n))
#define umm__vg_block_free(a) ((void)(a))
#define umm__vg_block_move(a, b, n) ((void)(a), (void)(b), (void)(n))
#endif

#endif
