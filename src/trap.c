/*
 * trap.c: the SIGSEGV handler that plays the kernel's trap handler.
 *
 * decode (address, write bit) -> ask fault.c -> return, and the instruction
 * runs again.  A fault that is not libumm's goes on to the handler the
 * program installed (before or after libumm), or to the default action at
 * the real instruction, so real crashes still crash the way they did.  A
 * SIGSEGV or SIGBUS sent with kill(), raise() or sigqueue() is no fault and
 * does not come again: it goes to the program's handler, or is dropped if
 * the program ignores it, or ends the process at the default action.
 *
 * The program's own handlers are kept by signals.c, which stands in front
 * of the C library's sigaction() so that installing one does not replace
 * the trap.  A program that reaches the kernel some other way can still
 * forward faults with umm_handle_fault().
 *
 * A page wholly beyond the end of its file raises SIGBUS the way the
 * kernel does, because it is the kernel that raises it: the page is mapped
 * to an empty memfd, and touching a shared mapping beyond the end of its
 * file is a real SIGBUS with the real si_addr and si_code.  If the file has
 * grown when that SIGBUS comes, the page is put back and filled.
 *
 * The handler saves and restores errno, takes no lock a faulting thread
 * could hold (libumm never touches mapped pages while holding its locks),
 * and calls no malloc or stdio.
 */
#include "umm-int.h"

#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

#include "platform.h"
#include "vg.h"

static _Atomic int installed;

/* ------------------------------------------------------------ SIGBUS */

/* A SIGBUS on a page armed by umm__arm_sigbus(): if the file now reaches the
 * page, map it back (the retry then faults it in) and return 1. */
static int disarm_sigbus(uintptr_t addr)
{
    int done = 0;
    pthread_rwlock_rdlock(&umm__mm.lock);
    struct umm__vma *v = umm__vma_find(addr);
    if (v && v->obj) {
        uint64_t page = (addr - v->start) >> UMM_PAGE_SHIFT;
        struct umm__pte *pte = umm__vma_pte(v, page);
        umm__bitlock(&pte->flags, 0);
        uint32_t f = atomic_load(&pte->flags);
        uint64_t fsize;
        /* Armed for a store the file system had no room for (fault.c):
         * this SIGBUS goes to the program; the page is put back at the
         * next one, so a later touch tries again, as under the kernel. */
        if (f & UMM__P_NOSPACE)
            atomic_fetch_and(&pte->flags, ~UMM__P_NOSPACE);
        else if ((f & UMM__P_SIGBUS) && v->fpage + page < umm__object_filepages(v->obj, &fsize)) {
            uintptr_t a = addr & UMM_PAGE_MASK;
            if (umm__vma_host_map(v, a, a + UMM_PAGE_SIZE) == 0) {
                umm__mc_update(v, page, page + 1, 0, UMM__P_SIGBUS, UMM__MC_NOLIMIT);
                done = 1;
            }
        }
        umm__bitunlock(&pte->flags, 0);
    }
    pthread_rwlock_unlock(&umm__mm.lock);
    return done;
}

/* ------------------------------------------------------------ the trap */

int umm_handle_fault(int sig, siginfo_t *si, void *uctx)
{
    if (!atomic_load(&installed) || si == NULL || si->si_code <= 0)
        return 0; /* not a fault: sent by kill() or the like */
    uintptr_t addr = (uintptr_t)si->si_addr;
    if (sig == SIGBUS) {
        if (!disarm_sigbus(addr))
            return 0;
        atomic_fetch_add(&umm__mm.faults, 1);
        return 1;
    }
    if (sig != SIGSEGV)
        return 0;

    int err, handled = 1, traced = umm__tracing();
    uint64_t t0 = traced ? umm__now_ns() : 0;
    pthread_rwlock_rdlock(&umm__mm.lock);
    int access = uctx ? umm__fault_is_write(uctx) : UMM__ACC_GUESS;
    /* A fault at the instruction itself is its fetch.  Valgrind raises
     * the fetch faults it finds without the CPU's error code, which then
     * reads as a read: a jump into readable memory without PROT_EXEC
     * would be "handled" as a read and fault again forever. */
    if (uctx && access != UMM__ACC_WRITE && access != UMM__ACC_EXEC && umm__fault_pc(uctx) == addr)
        access = UMM__ACC_EXEC;
    enum umm__fault_result r = umm__fault(addr, access, &err);
    /* A fault the mapping allowed: the kernel's VMA may get its anon_vma. */
    if (r == UMM__FAULT_DONE || r == UMM__FAULT_SIGBUS) {
        struct umm__vma *v = umm__vma_find(addr);
        if (v)
            umm__kvma_faulted(v, access == UMM__ACC_WRITE);
    }
    /* SIGBUS: the page is armed, and the retry raises the kernel's own. */
    if (r != UMM__FAULT_DONE && r != UMM__FAULT_SIGBUS) {
        handled = 0;
        /* A guard page: the host maps it PROT_NONE, the kernel reports a
         * guard as an address not mapped. */
        if (r == UMM__FAULT_SEGV && err == EFAULT)
            si->si_code = SEGV_MAPERR;
        /* Raised on a page not yet resident (PROT_NONE) of a mapping that
         * another thread unmapped before this handler got the lock: the
         * kernel, which decides under its lock, would report an unmapped
         * address, so say SEGV_MAPERR when the host no longer maps it. */
        unsigned char vec;
        int e = errno;
        if (r == UMM__FAULT_NOTOURS && si->si_code == SEGV_ACCERR &&
            mincore((void *)(addr & UMM_PAGE_MASK), UMM_PAGE_SIZE, &vec) != 0 && errno == ENOMEM)
            si->si_code = SEGV_MAPERR;
        errno = e;
    }
    pthread_rwlock_unlock(&umm__mm.lock);
    if (handled) {
        atomic_fetch_add(&umm__mm.faults, 1);
        if (traced)
            umm__trace_fault(addr, t0);
    }
    return handled;
}

/*
 * Hand a signal that is not libumm's to whoever would have had it: a real
 * fault elsewhere, or a SIGSEGV or SIGBUS sent with kill(), raise() or
 * sigqueue() (si_code <= 0), which does not come again by itself.
 */
static void chain(int sig, siginfo_t *si, void *uctx)
{
    struct sigaction *prog = umm__program_action(sig);
    struct sigaction p = *prog;
    int sent = si && si->si_code <= 0;
    atomic_fetch_add(&umm__mm.signals, 1);
    /* The kernel drops an ignored signal that is sent; the trap stays. */
    if (p.sa_handler == SIG_IGN && sent)
        return;
    if (p.sa_handler == SIG_DFL || p.sa_handler == SIG_IGN || !uctx) {
        /* The default action, with nothing lost: write back, put the
         * default back; a fault happens again at the real instruction and
         * the kernel does what it always did (it cannot be ignored: the
         * kernel kills anyway), a sent signal is sent again. */
        umm__signal_die(sig, !sent, !sent && si ? (uintptr_t)si->si_addr : 0);
        return;
    }
    /* Deliver as the kernel would have: SA_RESETHAND resets the handler
     * (only the handler: the flags and mask read back as they were). */
    if (p.sa_flags & SA_RESETHAND)
        prog->sa_handler = SIG_DFL;
    umm__signal_deliver(sig, si, uctx, &p);
}

static void trap(int sig, siginfo_t *si, void *uctx)
{
    int saved_errno = errno;
    if (!umm_handle_fault(sig, si, uctx))
        chain(sig, si, uctx);
    errno = saved_errno;
}

int umm__trap_init(void)
{
    if (umm__sigbus_init() != 0 || umm__signals_init(trap) != 0)
        return -1;
    atomic_store(&installed, 1);
    return 0;
}

/* ------------------------------------------------ Valgrind's registers */

/*
 * The trap restarts the faulting instruction with the registers the signal
 * frame holds.  Under Valgrind those are exact at a memory access only with
 * --vex-iropt-register-updates=allregs-at-mem-access; by default a register
 * changed just before the access may be stale there, and the restarted
 * instruction then uses the old value (a store went to the wrong address
 * and crashed the program).  So, once, under Valgrind, libumm tries it: a
 * register is changed and used by a store to a page that is not resident,
 * and the store must land where the new value says.  If it does not, one
 * sentence on stderr says what to do.  A second probe checks that a fault
 * in a function just called is retried there, not from the call (below).
 * x86-64 only (the probes are assembly).
 */
void umm__trap_selfcheck(char *page)
{
#if defined(__x86_64__)
    uint64_t saved[] = { atomic_load(&umm__mm.faults), atomic_load(&umm__mm.pages_read),
                         atomic_load(&umm__mm.pages_written), atomic_load(&umm__mm.cow_copies),
                         atomic_load(&umm__mm.signals) };
    int was_tracing = umm_trace(0);
    /* Two pages of libumm's own, of which memcheck keeps no block (mman.c
     * maps them and says why). */
    if (page) {
        /* The indirect jump ends Valgrind's block, so rax = page is in
         * its register state; the add and the store share the next one. */
        __asm__ volatile("mov %[p], %%rax\n\t"
                         "lea 1f(%%rip), %%rcx\n\t"
                         "jmp *%%rcx\n"
                         "1:\n\t"
                         "add $64, %%rax\n\t"
                         "movq $0x5a5a5a5a, (%%rax)\n\t"
                         /* rax dead after the store: by default Valgrind
                          * then never writes the add's value back, which
                          * makes the probe's answer the same whatever
                          * code the compiler put after it. */
                         "xor %%eax, %%eax\n\t"
                         :
                         : [p] "r"(page)
                         : "rax", "rcx", "memory");
        int exact = *(volatile uint64_t *)(page + 64) == 0x5a5a5a5a;
        /* The second: a fault on the first instruction of a function just
         * called.  Valgrind translates a direct call together with its
         * target ("chasing"), and then reports the call, not the faulting
         * instruction, as where the fault was: the retry calls again and
         * the stack pointer ends 8 bytes off (memcheck's own reports said
         * so; the program crashed later, far away).  Measured with the
         * stack pointer before and after, then put back. */
        int64_t drift;
        __asm__ volatile("sub $128, %%rsp\n\t" /* clear of any red zone */
                         "mov %%rsp, %%r8\n\t"
                         "call 2f\n\t"
                         "jmp 3f\n"
                         "2:\n\t"
                         "movq $1, 128(%[p])\n\t"
                         "ret\n"
                         "3:\n\t"
                         "mov %%rsp, %[d]\n\t"
                         "sub %%r8, %[d]\n\t"
                         "mov %%r8, %%rsp\n\t"
                         "add $128, %%rsp\n\t"
                         : [d] "=&r"(drift)
                         : [p] "r"(page + UMM_PAGE_SIZE)
                         : "r8", "memory");
        /* One sentence, naming what is missing. */
        const char *missing = !exact && drift ? "--vex-iropt-register-updates=allregs-at-mem-access and "
                                                "--vex-guest-chase=no"
                              : !exact ? "--vex-iropt-register-updates=allregs-at-mem-access"
                              : drift  ? "--vex-guest-chase=no"
                                       : NULL;
        if (missing) {
            char msg[512];
            int n = snprintf(msg, sizeof msg,
                             "libumm: Valgrind is running without %s, so instructions that libumm restarts "
                             "after a fault may run with wrong registers and crash; add %s to the valgrind "
                             "command line.\n",
                             missing, !exact && drift ? "both" : "it");
            if (n > 0)
                (void)!umm__sys_write(2, msg, (size_t)n < sizeof msg ? (size_t)n : sizeof msg - 1);
        }
    }
    umm_trace(was_tracing);
    atomic_store(&umm__mm.faults, saved[0]);
    atomic_store(&umm__mm.pages_read, saved[1]);
    atomic_store(&umm__mm.pages_written, saved[2]);
    atomic_store(&umm__mm.cow_copies, saved[3]);
    atomic_store(&umm__mm.signals, saved[4]);
#endif
}
