/*
 * platform.h: what the signal context says about a page fault.
 *
 * The one piece of libumm that depends on the CPU.  Given the ucontext_t a
 * SIGSEGV handler receives, umm__fault_is_write() says whether the faulting
 * access was a write (1), a read or instruction fetch (0), or that this
 * platform cannot tell (-1).  The trap copes with -1: it handles the fault as
 * a read, and a write then faults a second time on a page that is already
 * readable, which can only be a write.
 *
 * configure proves this header works by running a fault-and-resume program
 * (m4/umm_fault.m4).
 */
#ifndef UMM_PLATFORM_H
#define UMM_PLATFORM_H

#include <signal.h>
#include <stdint.h>
#include <ucontext.h>

#if defined(__x86_64__)
/* The page-fault error code the CPU pushed: bit 1 is "write", bit 4
 * "instruction fetch". */
static inline int umm__fault_is_write(void *uctx)
{
    const ucontext_t *uc = uctx;
    greg_t err = uc->uc_mcontext.gregs[REG_ERR];
    return (err & 0x10) ? 2 : (err & 2) != 0;
}
/* Where the faulting instruction is. */
static inline uintptr_t umm__fault_pc(void *uctx)
{
    return (uintptr_t)((const ucontext_t *)uctx)->uc_mcontext.gregs[REG_RIP];
}
#elif defined(__aarch64__)
/* The kernel appends an esr_context record to the signal frame; in the ESR of
 * a data abort, bit 6 (WnR) is "write not read". */
static inline int umm__fault_is_write(void *uctx)
{
    const ucontext_t *uc = uctx;
    const unsigned char *p = (const unsigned char *)uc->uc_mcontext.__reserved;
    for (;;) {
        const struct { uint32_t magic, size; } *head = (const void *)p;
        if (head->magic == 0 || head->size == 0)
            return -1;
        if (head->magic == 0x45535201) { /* ESR_MAGIC */
            uint64_t esr = *(const uint64_t *)(p + 8);
            uint32_t ec = (uint32_t)(esr >> 26) & 0x3f;
            if (ec == 0x20 || ec == 0x21) /* instruction abort */
                return 2;
            return (esr >> 6) & 1;
        }
        p += head->size;
    }
}
static inline uintptr_t umm__fault_pc(void *uctx)
{
    return (uintptr_t)((const ucontext_t *)uctx)->uc_mcontext.pc;
}
#else
static inline int umm__fault_is_write(void *uctx)
{
    (void)uctx;
    return -1;
}
static inline uintptr_t umm__fault_pc(void *uctx)
{
    (void)uctx;
    return 0;
}
#endif

#endif
