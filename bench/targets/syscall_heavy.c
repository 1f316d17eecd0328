/* Benchmark target: N rounds of getppid() and a one-byte write to /dev/null,
 * that is 2N system calls (N from argv[1]). */
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>
int main(int argc, char **argv) {
    long n = argc > 1 ? atol(argv[1]) : 100000;
    int fd = open("/dev/null", O_WRONLY);
    long sum = 0;
    if (fd < 0)
        return 1;
    for (long i = 0; i < n; i++) {
        sum += getppid();
        sum += write(fd, "x", 1);
    }
    return sum == 42;
}
