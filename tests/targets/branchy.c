/* branchy: conditional branches whose outcomes the program counts itself,
 * for the branch-probe tests (tests/test_branches.py). Built twice, at -O0
 * (branchy_O0) and -O2 (branchy_O2); the tests read which way each branch
 * goes from objdump, not from this source.
 *
 *   branchy decide N     N pseudo-random numbers, each classified by
 *                        decide(), whose one branch tests the low bit and
 *                        calls on_odd() or on_even(); prints
 *                        "odd O even E" (O + E = N)
 *   branchy loop N       counts to N in count_to(), a loop ended by one
 *                        conditional branch; prints "counted C" (C = N)
 *   branchy threads N    8 threads, each classifying N numbers with
 *                        decide(); prints "odd O even E" over all threads
 *                        (O + E = 8 N)
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define THREADS 8

static unsigned long odd, even;

__attribute__((noipa)) void on_odd(void)
{
    __atomic_fetch_add(&odd, 1, __ATOMIC_RELAXED);
}

__attribute__((noipa)) void on_even(void)
{
    __atomic_fetch_add(&even, 1, __ATOMIC_RELAXED);
}

__attribute__((noipa)) void decide(unsigned v)
{
    if (v & 1)
        on_odd();
    else
        on_even();
}

/* Classifies n numbers of a linear congruential sequence from seed. */
__attribute__((noipa)) void classify(unsigned long n, unsigned seed)
{
    unsigned x = seed;
    for (unsigned long i = 0; i < n; i++) {
        x = x * 1103515245u + 12345u;
        decide(x >> 16);
    }
}

__attribute__((noipa)) unsigned long count_to(volatile unsigned long *limit)
{
    unsigned long i = 0;
    while (i < *limit)
        i++;
    return i;
}

static unsigned long per_thread;

static void *worker(void *arg)
{
    classify(per_thread, (unsigned)(unsigned long)arg);
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: branchy decide|loop|threads N\n");
        return 2;
    }
    unsigned long n = strtoul(argv[2], NULL, 0);
    if (strcmp(argv[1], "decide") == 0) {
        classify(n, 12345);
        printf("odd %lu even %lu\n", odd, even);
    } else if (strcmp(argv[1], "loop") == 0) {
        volatile unsigned long limit = n;
        printf("counted %lu\n", count_to(&limit));
    } else if (strcmp(argv[1], "threads") == 0) {
        pthread_t threads[THREADS];
        per_thread = n;
        for (long t = 0; t < THREADS; t++)
            pthread_create(&threads[t], NULL, worker, (void *)(t + 1));
        for (int t = 0; t < THREADS; t++)
            pthread_join(threads[t], NULL);
        printf("odd %lu even %lu\n", odd, even);
    } else {
        fprintf(stderr, "branchy: unknown mode %s\n", argv[1]);
        return 2;
    }
    return 0;
}
