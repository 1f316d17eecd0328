/* forks: forks once. The child makes 3 getppid() calls, tries to open
 * "/nonexistent/child" and exits with status 7; the parent waits for it,
 * makes 2 getppid() calls, tries to open "/nonexistent/parent" and prints
 * "child PID exited 7" (PID: the child's process id).
 *
 * Used to check that system-call probes follow a forked child. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

static void calls(int getppids, const char *path)
{
    for (int i = 0; i < getppids; i++)
        getppid();
    if (open(path, O_RDONLY) >= 0)
        abort();
}

int main(void)
{
    int status;
    pid_t child = fork();

    if (child < 0) {
        perror("fork");
        return 1;
    }
    if (child == 0) {
        calls(3, "/nonexistent/child");
        _exit(7);
    }
    if (waitpid(child, &status, 0) != child || !WIFEXITED(status))
        return 1;
    calls(2, "/nonexistent/parent");
    printf("child %d exited %d\n", (int)child, WEXITSTATUS(status));
    return 0;
}
