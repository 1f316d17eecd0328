/* recurse: prints factorial(N) for N = argv[1] (default 10), computed by
 * a recursive function: "factorial(N) = X".
 *
 * factorial(n) calls factorial(n - 1) down to factorial(1), so the
 * recursion is N calls deep. Built with -O0 so that the compiler keeps the
 * recursion as real calls (and keeps frame pointers). */
#include <stdio.h>
#include <stdlib.h>

__attribute__((noipa)) unsigned long factorial(unsigned long n)
{
    if (n <= 1)
        return 1;
    return n * factorial(n - 1);
}

int main(int argc, char **argv)
{
    unsigned long n = argc > 1 ? strtoul(argv[1], NULL, 10) : 10;
    printf("factorial(%lu) = %lu\n", n, factorial(n));
    return 0;
}
