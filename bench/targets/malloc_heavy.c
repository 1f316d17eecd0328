/* Benchmark target: N malloc/free pairs of small sizes (N = argv[1]). */
#include <stdlib.h>
int main(int argc, char **argv) {
    long n = argc > 1 ? atol(argv[1]) : 1000000;
    volatile unsigned long sum = 0;
    for (long i = 0; i < n; i++) {
        char *p = malloc(16 + (i & 63));
        p[0] = (char)i;
        sum += (unsigned char)p[0];
        free(p);
    }
    return sum == 0xdeadbeef;
}
