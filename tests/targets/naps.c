/* naps N MS: sleeps N times for MS milliseconds each, through libc's
 * nanosleep (a real call: the function probe sees it, and the system call
 * it makes), then prints "slept N". The tests of ctx.timestamp and
 * ctx.duration know how long each call takes at least. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

int main(int argc, char **argv)
{
    int n = argc > 1 ? atoi(argv[1]) : 1;
    long ms = argc > 2 ? atol(argv[2]) : 10;
    struct timespec nap = { ms / 1000, (ms % 1000) * 1000000L };
    for (int i = 0; i < n; i++) {
        if (nanosleep(&nap, NULL) != 0) {
            perror("nanosleep");
            return 1;
        }
    }
    printf("slept %d\n", n);
    return 0;
}
