/* segv: dies of SIGSEGV by writing through a NULL pointer.
 *
 * Used to check that process_exit reports signal 11 (exit_code 139) and
 * that processtap itself exits with 139. Prints a line first (flushed) so
 * tests can see the target did run. */
#include <stdio.h>

int main(void)
{
    volatile int *null = (volatile int *)0;

    puts("about to crash");
    fflush(stdout);
    *null = 1;
    puts("not reached");
    return 0;
}
