/* syscall_threads: "syscall_threads THREADS CALLS MAIN_CALLS" starts THREADS
 * threads that each make CALLS getppid() system calls and CALLS one-byte
 * writes to /dev/null (thread t writes the byte 'a' + t - 1), while the
 * initial thread makes MAIN_CALLS getppid() calls and MAIN_CALLS writes of
 * the byte '0'; then it joins them.
 *
 * Prints "devnull FD" (the descriptor the writes go to), then
 * "thread t: P getppid, W bytes" for t = 0..THREADS and "joined THREADS".
 *
 * Used to check that system-call probes lose nothing under threads. */
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static long calls;
static int devnull;

struct job {
    pthread_t thread;
    long id;
    long getppids;
    long bytes;
};

static void run_calls(struct job *job, long n)
{
    char byte = job->id == 0 ? '0' : (char)('a' + job->id - 1);

    for (long i = 0; i < n; i++) {
        if (getppid() > 0)
            job->getppids++;
        if (write(devnull, &byte, 1) == 1)
            job->bytes++;
    }
}

static void *run(void *arg)
{
    run_calls(arg, calls);
    return NULL;
}

int main(int argc, char **argv)
{
    long threads = argc > 1 ? atol(argv[1]) : 8;
    long main_calls = argc > 3 ? atol(argv[3]) : 0;
    struct job *jobs;
    long joined = 0;

    calls = argc > 2 ? atol(argv[2]) : 1000;
    if (threads < 0 || threads > 26)
        threads = 8;
    devnull = open("/dev/null", O_WRONLY);
    jobs = calloc((size_t)threads + 1, sizeof *jobs);
    if (devnull < 0 || !jobs)
        return 1;
    printf("devnull %d\n", devnull);
    for (long t = 1; t <= threads; t++) {
        jobs[t].id = t;
        if (pthread_create(&jobs[t].thread, NULL, run, &jobs[t]) != 0) {
            perror("pthread_create");
            return 1;
        }
    }
    run_calls(&jobs[0], main_calls);
    for (long t = 1; t <= threads; t++) {
        if (pthread_join(jobs[t].thread, NULL) == 0)
            joined++;
    }
    for (long t = 0; t <= threads; t++)
        printf("thread %ld: %ld getppid, %ld bytes\n", t, jobs[t].getppids, jobs[t].bytes);
    printf("joined %ld\n", joined);
    free(jobs);
    return joined == threads ? 0 : 1;
}
