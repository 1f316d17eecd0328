/* close_stdio: prints a line, then closes stdout and stderr (both the stdio
 * streams and file descriptors 0, 1 and 2) and exits 0.
 *
 * Used to check that the tracer's own output (what the script prints at
 * process_exit) does not depend on the target's descriptors 1 and 2. */
#include <stdio.h>
#include <unistd.h>

int main(void)
{
    puts("before close");
    fflush(stdout);
    fclose(stdout);
    fclose(stderr);
    close(0);
    close(1);
    close(2);
    return 0;
}
