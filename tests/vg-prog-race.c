/* Run by test-race-tools.sh under helgrind and drd: a program with a real
 * data race in a libumm mapping.  Two threads each write the same word of
 * one page, with nothing ordering the two writes; the tools must report it
 * as they would in memory from the kernel's mmap.  The argument says which
 * kind of page: "anon" (private anonymous: the first write faults a zeroed
 * frame in), "cow" (private file: a copy-on-write copy), "shared" (shared
 * file: the page cache's frame). */
#include <fcntl.h>
#include <pthread.h>
#include "vg-prog.h"

static volatile uint64_t *word;

static void *race_writer(void *arg)
{
    *word = (uint64_t)(uintptr_t)arg; /* the race */
    return NULL;
}

int main(int argc, char **argv)
{
    const char *kind = argc > 1 ? argv[1] : "anon";
    int fd = tmpfile_make(4 * PAGE, 5, O_RDWR, NULL);
    unsigned char *m;
    if (strcmp(kind, "anon") == 0)
        m = umm_mmap(NULL, 4 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    else
        m = umm_mmap(NULL, 4 * PAGE, PROT_READ | PROT_WRITE, strcmp(kind, "cow") == 0 ? MAP_PRIVATE : MAP_SHARED,
                     fd, 0);
    if (m == MAP_FAILED)
        return 2;
    word = (volatile uint64_t *)(void *)(m + 2 * PAGE + 64);
    pthread_t a, b;
    if (pthread_create(&a, NULL, race_writer, (void *)1) != 0 || pthread_create(&b, NULL, race_writer, (void *)2) != 0)
        return 3;
    pthread_join(a, NULL);
    pthread_join(b, NULL);
    int ok = *word == 1 || *word == 2;
    return umm_munmap(m, 4 * PAGE) == 0 && ok ? 0 : 4;
}
