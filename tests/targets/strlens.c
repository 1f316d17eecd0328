/* strlens: calls strlen on each of its arguments, in order, and prints
 * "N: LENGTH" for each (N from 1). Built with -fno-builtin, so that the
 * calls are real calls of libc's strlen. */
#include <stdio.h>
#include <string.h>

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        printf("%d: %zu\n", i, strlen(argv[i]));
    return 0;
}
