/* malloc_loop N: N malloc/free pairs of small sizes, then prints
 * "mallocs N". For tests that need many events cheaply (a handler on
 * malloc that raises, 2 million times). */
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 1000;
    volatile unsigned long sum = 0;
    for (long i = 0; i < n; i++) {
        char *volatile p = malloc(16 + (i & 63));
        p[0] = (char)i;
        sum += (unsigned char)p[0];
        free(p);
    }
    printf("mallocs %ld\n", n);
    return sum == 0xdeadbeef;
}
