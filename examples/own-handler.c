/*
 * own-handler: a program with its own SIGSEGV handler, forwarding faults
 * to libumm with umm_handle_fault().
 *
 * libumm's sigaction() already keeps its trap in front of a handler the
 * program installs, so most programs need nothing.  A handler installed
 * behind the C library's back (a raw rt_sigaction system call, a runtime
 * with its own signal code) replaces the trap; such a handler calls
 * umm_handle_fault() first, as here.  Calling it when it is not needed is
 * harmless: it returns 0 for faults that are not libumm's.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <umm.h>

static sigjmp_buf recover;

static void handler(int sig, siginfo_t *si, void *uctx)
{
    if (umm_handle_fault(sig, si, uctx))
        return; /* libumm's page: it is resident now, the access runs again */
    /* The program's own fault handling. */
    siglongjmp(recover, 1);
}

int main(void)
{
    char *anon = umm_mmap(NULL, 1 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    char *guard = mmap(NULL, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = handler;
    sa.sa_flags = SA_SIGINFO;
    sigaction(SIGSEGV, &sa, NULL);

    strcpy(anon + 4096, "libumm pages fault in through the program's handler");
    printf("%s\n", anon + 4096);
    if (sigsetjmp(recover, 1) == 0)
        guard[0] = 1; /* not libumm's: the program's own handling */
    else
        printf("a fault of the program's own was handled by the program\n");
    umm_munmap(anon, 1 << 20);
    return 0;
}
