/* Promise: the file I/O layer holds the address-space lock across a read
 * or write of a mapped file without blocking signals while the program has
 * no handler of its own (no rt_sigprocmask per call), and stays correct:
 *  - a fatal signal that arrives inside (SIGXFSZ raised by the pwrite
 *    itself) still ends the process with its dirty pages written back,
 *    before the call returns;
 *  - once the program has a handler, it never runs while the lock is held
 *    (a handler that maps memory would wait for itself): pread in a loop,
 *    the handler maps and unmaps on every signal, no deadlock. */
#include <fcntl.h>
#include <pthread.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>
#include "util.h"

static void xfsz_child(int fd, int pfd)
{
    unsigned char *m = umm_mmap(NULL, 4 * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (m == MAP_FAILED)
        _exit(2);
    m[100] = 0x77; /* dirty, not written back */
    char b = 1;
    if (pwrite(fd, &b, 1, 8) != 1) /* the file is libumm's: the section */
        _exit(3);
    struct rlimit rl = { 64 * 1024, 64 * 1024 };
    setrlimit(RLIMIT_FSIZE, &rl);
    pwrite(fd, &b, 1, 64 * 1024); /* SIGXFSZ inside the section */
    (void)!write(pfd, "returned", 8);
    _exit(4);
}

static int fd2;
static unsigned char *map2;
static volatile int stop;
static _Atomic int handled;

static void on_usr1(int sig)
{
    (void)sig;
    void *p = umm_mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p != MAP_FAILED)
        umm_munmap(p, PAGE);
    handled++;
}

static void *reader(void *arg)
{
    int *bad = arg;
    char buf[PAGE];
    for (int i = 0; i < 20000; i++) {
        if (pread(fd2, buf, sizeof buf, (off_t)(i % 8) * PAGE) != PAGE || buf[0] != (char)pattern((uint64_t)(i % 8) * PAGE, 3))
            (*bad)++;
    }
    stop = 1;
    return NULL;
}

int main(void)
{
    /* 1: no handler of the program; SIGXFSZ from inside a pwrite. */
    int fd = tmpfile_make(4 * PAGE, 2, O_RDWR, NULL);
    int pfd[2];
    ok(pipe(pfd) == 0, "pipe");
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        close(pfd[0]);
        xfsz_child(fd, pfd[1]);
    }
    close(pfd[1]);
    int st = 0;
    ok(waitpid(pid, &st, 0) == pid, "child done");
    ok(WIFSIGNALED(st) && WTERMSIG(st) == SIGXFSZ, "the child died of SIGXFSZ (status %#x)", st);
    char got[16];
    is_int(read(pfd[0], got, sizeof got), 0, "before its pwrite returned");
    unsigned char c = 0;
    read_file(fd, &c, 1, 100);
    is_int(c, 0x77, "its dirty page was written back");
    read_file(fd, &c, 1, 8);
    is_int(c, 1, "its first pwrite is there");
    close(pfd[0]);
    close(fd);

    /* 2: a handler that maps memory, signals sent while another thread
     * reads a mapped file in a loop. */
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_usr1;
    sa.sa_flags = SA_RESTART;
    ok(sigaction(SIGUSR1, &sa, NULL) == 0, "SIGUSR1 handler");
    fd2 = tmpfile_make(8 * PAGE, 3, O_RDWR, NULL);
    map2 = umm_mmap(NULL, 8 * PAGE, PROT_READ, MAP_SHARED, fd2, 0);
    ok(map2 != MAP_FAILED, "map");
    ok(map2[0] == pattern(0, 3), "resident");
    alarm(60); /* a deadlock ends the test */
    int bad = 0;
    pthread_t t;
    ok(pthread_create(&t, NULL, reader, &bad) == 0, "reader");
    int sent = 0;
    while (!stop) {
        pthread_kill(t, SIGUSR1);
        sent++;
        usleep(50);
    }
    pthread_join(t, NULL);
    alarm(0);
    is_int(bad, 0, "every pread saw the file");
    ok(handled > 0, "%d handlers ran (%d signals), none waited for itself", (int)handled, sent);
    is_int(umm_munmap(map2, 8 * PAGE), 0, "unmap");
    close(fd2);
    check_released();
    return tap_done();
}
