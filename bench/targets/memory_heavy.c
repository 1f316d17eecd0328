/* Benchmark target for bench/memory.py: memory_heavy ROUNDS HITS.
 * Each round walks a 1 MiB int array through pointers (out[i] = in[i] + 1,
 * counting into the global counter) and copies it back with memcpy; then
 * hit_loop() writes the global `hits` HITS times. `watched` is never
 * touched. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WORDS (1 << 18)

long counter;
volatile long hits;
int watched;
static int src[WORDS];
static int dst[WORDS];

struct bufs {
    int *in, *out;
};

static __attribute__((noipa)) void walk(struct bufs *b)
{
    int *in = b->in, *out = b->out;
    for (long i = 0; i < WORDS; i++) {
        out[i] = in[i] + 1;
        counter++;
    }
}

static __attribute__((noipa)) void copy(void)
{
    memcpy(src, dst, sizeof src);
}

__attribute__((noipa)) void hit_loop(long n)
{
    for (long i = 0; i < n; i++)
        hits = i;
}

int main(int argc, char **argv)
{
    long rounds = argc > 1 ? strtol(argv[1], NULL, 10) : 10;
    long n = argc > 2 ? strtol(argv[2], NULL, 10) : 0;
    struct bufs b = {src, dst};
    for (long r = 0; r < rounds; r++) {
        walk(&b);
        copy();
    }
    hit_loop(n);
    printf("%ld %d %ld\n", counter, src[WORDS - 1], hits);
    return 0;
}
