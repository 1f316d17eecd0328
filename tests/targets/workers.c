/* workers: "workers THREADS CALLS MAIN_CALLS" starts THREADS threads that
 * each call work(t, i) CALLS times (t = 1..THREADS, i = 0..CALLS-1), while
 * the initial thread calls work(0, i) MAIN_CALLS times; then it joins them.
 * Before starting the threads, the initial thread calls alpha(1), beta(2),
 * delta(3), worker(4) and wor(5) once each.
 *
 * Prints "names N" (the sum of the named functions' results), then
 * "thread t: S" for each thread t = 0..THREADS (S: the sum of that
 * thread's work() results) and "joined THREADS".
 *
 * Used to check function probes under threads (per-thread counts) and the
 * predicates on function names and thread ids. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

__attribute__((noipa)) long work(long thread, long i) { return thread * 1000003 + i; }
__attribute__((noipa)) long alpha(long x) { return x + 10; }
__attribute__((noipa)) long beta(long x) { return x + 20; }
__attribute__((noipa)) long delta(long x) { return x + 30; }
__attribute__((noipa)) long worker(long x) { return x + 40; }
__attribute__((noipa)) long wor(long x) { return x + 50; }

static long calls;

struct job {
    pthread_t thread;
    long id;
    long sum;
};

static void *run(void *arg)
{
    struct job *job = arg;
    for (long i = 0; i < calls; i++)
        job->sum += work(job->id, i);
    return NULL;
}

int main(int argc, char **argv)
{
    long threads = argc > 1 ? atol(argv[1]) : 8;
    long main_calls = argc > 3 ? atol(argv[3]) : 0;
    struct job *jobs;
    long joined = 0;

    calls = argc > 2 ? atol(argv[2]) : 10000;
    if (threads < 0)
        threads = 0;
    jobs = calloc((size_t)threads + 1, sizeof *jobs);
    if (!jobs)
        return 1;
    printf("names %ld\n", alpha(1) + beta(2) + delta(3) + worker(4) + wor(5));
    for (long t = 1; t <= threads; t++) {
        jobs[t].id = t;
        if (pthread_create(&jobs[t].thread, NULL, run, &jobs[t]) != 0) {
            perror("pthread_create");
            return 1;
        }
    }
    for (long i = 0; i < main_calls; i++)
        jobs[0].sum += work(0, i);
    for (long t = 1; t <= threads; t++) {
        if (pthread_join(jobs[t].thread, NULL) == 0)
            joined++;
    }
    for (long t = 0; t <= threads; t++)
        printf("thread %ld: %ld\n", t, jobs[t].sum);
    printf("joined %ld\n", joined);
    free(jobs);
    return joined == threads ? 0 : 1;
}
