/* hello: the simplest well-behaved target.
 *
 * Prints three known lines to stdout and exits 0. Used to check that a
 * script's top-level output comes before the target's, and that tracing
 * leaves the target's output and exit status untouched. */
#include <stdio.h>

int main(void)
{
    puts("hello, world");
    puts("second line");
    printf("third line: %d\n", 42);
    return 0;
}
