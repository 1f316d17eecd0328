/* exit_with: exits with the status given as argv[1] (default 0).
 *
 * Used to check that process_exit sees the target's exit status and that
 * processtap exits with it too. Prints nothing. */
#include <stdlib.h>

int main(int argc, char **argv)
{
    int status = argc > 1 ? atoi(argv[1]) : 0;
    exit(status);
}
