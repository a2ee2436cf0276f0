/* The README's example: map a file with umm_mmap and read it lazily. */
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>
#include <umm.h>

int main(int argc, char **argv)
{
    int fd = open(argc > 1 ? argv[1] : "/etc/passwd", O_RDONLY);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0)
        return perror("open"), 1;
    const char *p = umm_mmap(NULL, st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED)
        return perror("umm_mmap"), 1;
    long lines = 0;
    for (off_t i = 0; i < st.st_size; i++) /* each page traps in on first touch */
        lines += p[i] == '\n';
    struct umm_stats s;
    umm_stats(&s);
    printf("%ld lines; %llu traps, %llu pages read\n", lines,
           (unsigned long long)s.faults, (unsigned long long)s.pages_read);
    umm_munmap((void *)p, st.st_size);
    close(fd);
    return 0;
}
