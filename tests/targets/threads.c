/* threads: starts N threads (argv[1], default 8), each doing a little work,
 * joins them all and prints "joined N".
 *
 * Used to check thread_start / thread_exit: exactly N of each, N distinct
 * thread ids, and no hang. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

static void *work(void *arg)
{
    unsigned long seed = (unsigned long)(size_t)arg;
    volatile unsigned long sum = 0;

    for (unsigned long i = 0; i < 100000; i++)
        sum += (i * 2654435761UL) ^ seed;
    return (void *)(size_t)(sum & 1);
}

int main(int argc, char **argv)
{
    int n = argc > 1 ? atoi(argv[1]) : 8;
    pthread_t *threads;
    int joined = 0;

    if (n < 0)
        n = 0;
    threads = calloc((size_t)n + 1, sizeof *threads);
    if (!threads)
        return 1;
    for (int i = 0; i < n; i++) {
        if (pthread_create(&threads[i], NULL, work, (void *)(size_t)i) != 0) {
            perror("pthread_create");
            return 1;
        }
    }
    for (int i = 0; i < n; i++) {
        if (pthread_join(threads[i], NULL) == 0)
            joined++;
    }
    printf("joined %d\n", joined);
    free(threads);
    return joined == n ? 0 : 1;
}
