/* tinycat FILE...: cat with open, read, write and close, for the 32-bit
 * system-call tests (Debian's i386 coreutils is seldom installed): each
 * file is opened, read in 64 KiB reads until one returns 0, written to
 * stdout, and closed. Exit status 1 if a file cannot be opened or read. */
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    static char buffer[65536];
    int status = 0;
    for (int i = 1; i < argc; i++) {
        int fd = open(argv[i], O_RDONLY);
        if (fd < 0) {
            perror(argv[i]);
            status = 1;
            continue;
        }
        ssize_t n;
        while ((n = read(fd, buffer, sizeof buffer)) > 0) {
            if (write(1, buffer, (size_t)n) != n)
                return 1;
        }
        if (n < 0) {
            perror(argv[i]);
            status = 1;
        }
        close(fd);
    }
    return status;
}
