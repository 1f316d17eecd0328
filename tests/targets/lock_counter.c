/* lock_counter: "lock_counter [N]" starts 8 threads that each add 1 to the
 * global counter N times (default 5000) with __atomic_fetch_add, whose result
 * is unused, so gcc makes it one `lock addl $1, counter(%rip)` per
 * iteration (tests/test_memory.py checks with objdump). Prints
 *
 *   counter = 40000              8 * N
 *
 * Each lock add is a read and a write of counter; nothing else in the
 * program touches it but main's final read. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#define THREADS 8

int counter;
static long iterations = 5000;

__attribute__((noipa)) void *worker(void *arg)
{
    (void)arg;
    for (long i = 0; i < iterations; i++)
        __atomic_fetch_add(&counter, 1, __ATOMIC_SEQ_CST);
    return NULL;
}

int main(int argc, char **argv)
{
    pthread_t threads[THREADS];
    if (argc > 1)
        iterations = atol(argv[1]);
    for (int i = 0; i < THREADS; i++)
        if (pthread_create(&threads[i], NULL, worker, NULL) != 0)
            return 1;
    for (int i = 0; i < THREADS; i++)
        pthread_join(threads[i], NULL);
    printf("counter = %d\n", counter);
    return 0;
}
