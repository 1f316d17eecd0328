/* Benchmark target: N calls of a small function that is not inlined. */
#include <stdlib.h>
__attribute__((noinline)) long work(long x) {
    __asm__ volatile("" ::: "memory");
    return x * 3 + 1;
}
int main(int argc, char **argv) {
    long n = argc > 1 ? atol(argv[1]) : 1000000;
    volatile long acc = 0;
    for (long i = 0; i < n; i++)
        acc += work(i);
    return acc == 42;
}
