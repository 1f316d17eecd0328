/* System calls made from sites the instrumentation finds hard, each
 * printing what it returned:
 * - a `syscall` instruction in a block of its own, its number set in the
 *   block before (so the number is known only when the call is made), whose
 *   next instruction was already run, reached by a jump, before the system
 *   call ever was (its block was in the code cache before anyone knew a
 *   system call returns there);
 * - libc's generic syscall(), whose number comes from its argument.
 * Usage: syscall_sites ROUNDS.
 *
 * syscall_sites signal: a one-byte write to a pipe nobody reads, which
 * raises SIGPIPE, whose handler makes a system call of its own (getppid)
 * while the write waits for its exit.
 *
 * syscall_sites restart: a one-byte read of a pipe, interrupted by a
 * SIGUSR1 (SA_RESTART, its handler calls getppid) that a child sends before
 * it writes the byte: the kernel restarts the read, which then returns 1. */
#include <sys/wait.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>

/* getppid() if `make_call`, else SYS_getppid (left in RAX), with one
 * return point. The branch ends a block: the `syscall` starts the next. */
__attribute__((noipa)) long getppid_or_skip(int make_call) {
    long r;
    __asm__ volatile(
        "mov %2, %%eax\n\t"
        "test %1, %1\n\t"
        "jz 1f\n\t"
        "syscall\n"
        "1:\n\t"
        "nop"
        : "=&a"(r)
        : "r"(make_call), "i"(SYS_getppid)
        : "rcx", "r11", "memory");
    return r;
}

/* A signal handler that makes a system call of its own. */
static void call_getppid(int sig) {
    (void)sig;
    getppid();
}

static void handle(int sig, int flags) {
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_handler = call_getppid;
    action.sa_flags = flags;
    sigaction(sig, &action, NULL);
}

static int broken_pipe_write(void) {
    int fds[2];
    if (pipe(fds) != 0)
        return 1;
    close(fds[0]);
    handle(SIGPIPE, 0);
    ssize_t n = write(fds[1], "x", 1);
    printf("write %zd %s\n", n, n < 0 && errno == EPIPE ? "EPIPE" : "?");
    return 0;
}

static int restarted_read(void) {
    int fds[2];
    if (pipe(fds) != 0)
        return 1;
    handle(SIGUSR1, SA_RESTART);
    pid_t parent = getpid();
    if (fork() == 0) {
        usleep(200000); /* the parent is in its read by then */
        kill(parent, SIGUSR1);
        usleep(200000);
        _exit(write(fds[1], "x", 1) == 1 ? 0 : 1);
    }
    char byte = '?';
    ssize_t n = read(fds[0], &byte, 1);
    int status;
    wait(&status);
    printf("read %zd %c\n", n, byte);
    return 0;
}

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "signal") == 0)
        return broken_pipe_write();
    if (argc > 1 && strcmp(argv[1], "restart") == 0)
        return restarted_read();
    int rounds = argc > 1 ? atoi(argv[1]) : 3;
    /* The return point runs first, with no system call before it. */
    for (int i = 0; i < rounds; i++)
        printf("skipped %ld\n", getppid_or_skip(0));
    for (int i = 0; i < rounds; i++)
        printf("own-block %ld\n", getppid_or_skip(1));
    for (int i = 0; i < rounds; i++)
        printf("generic %ld\n", syscall(SYS_getppid));
    return 0;
}
