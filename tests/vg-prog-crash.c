/* Run by test-memcheck.sh under memcheck: a read of the first page of a
 * PROT_NONE mapping, with SIGSEGV left to its default action.  The process
 * dies of that SIGSEGV there, as without Valgrind: handing the mappings to
 * the leak check as the process dies must not make that page readable. */
#include "vg-prog.h"

int main(void)
{
    volatile unsigned char *p = umm_mmap(NULL, 2 * PAGE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return 2;
    return p[0] == 42 ? 3 : 4; /* dies here */
}
