# UMM_CHECK_FAULT_RESUME
# ----------------------
# Compile and run a program that maps a page PROT_NONE, touches it with a
# read and then a write, catches each SIGSEGV, reads the faulting address and
# the write bit from the signal context (src/platform.h), grants access and
# returns so the instruction runs again.  libumm's trap is exactly this, so if
# it does not work here nothing will.
AC_DEFUN([UMM_CHECK_FAULT_RESUME], [
AC_CACHE_CHECK([whether a fault can be caught, decoded and resumed],
  [umm_cv_fault_resume], [
  umm_save_CPPFLAGS="$CPPFLAGS"
  CPPFLAGS="$CPPFLAGS -I$srcdir/src"
  AC_RUN_IFELSE([AC_LANG_SOURCE([[
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>
#include "platform.h"
static char *page;
static volatile int faults, writes, wrong;
static void handler(int sig, siginfo_t *si, void *uctx)
{
  if ((char *)si->si_addr != page + 123) wrong = 1;
  int w = umm__fault_is_write(uctx);
  if (w < 0) wrong = 1;
  faults++;
  writes += w == 1;
  mprotect(page, 4096, w > 0 ? PROT_READ | PROT_WRITE : PROT_READ);
}
int main(void)
{
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = handler;
  sa.sa_flags = SA_SIGINFO;
  if (sigaction(SIGSEGV, &sa, 0) != 0) return 2;
  page = mmap(0, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (page == MAP_FAILED) return 3;
  volatile char *p = page + 123;
  char c = *p;            /* read fault */
  *p = (char)(c + 7);     /* write fault */
  if (page[123] != 7) return 4;
  return (faults == 2 && writes == 1 && !wrong) ? 0 : 5;
}
]])], [umm_cv_fault_resume=yes], [umm_cv_fault_resume=no], [umm_cv_fault_resume=cross])
  CPPFLAGS="$umm_save_CPPFLAGS"
])
AS_CASE([$umm_cv_fault_resume],
  [yes], [AC_DEFINE([UMM_FAULT_WRITE_BIT], [1], [Define if the signal context tells whether a fault was a write.])],
  [cross], [AC_MSG_WARN([cross-compiling: cannot prove fault-and-resume; assuming it works])
            AC_DEFINE([UMM_FAULT_WRITE_BIT], [1], [Define if the signal context tells whether a fault was a write.])],
  [AC_MSG_ERROR([on this platform libumm cannot catch a page fault, read its address and write bit from the signal context, and resume the instruction; see config.log])])
])
