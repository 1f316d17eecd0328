/* Benchmark target for bench/branches.py: branch_heavy N.
 *
 * hot() takes N keys from a ring of KEYS pseudo-random 32-bit keys and
 * partitions them around a pivot, as one step of a quicksort does: a key
 * below the pivot (a quarter of them) goes into low[], the others into
 * high[]. The two arms store to different arrays, which gcc does not turn
 * into a conditional move, and the keys come from xorshift32 at run time,
 * so the `if` stays a branch, one the CPU cannot predict well.
 * __builtin_expect only lays the rarer arm out of line.
 *
 * gcc 12 -O2 -no-pie makes hot() three conditional branches; objdump -d
 * --no-show-raw-insn, set-up and padding left out:
 *
 *   401210:  test   %rdi,%rdi
 *   401213:  jle    401288 <hot+0x78>    N <= 0: return 0      once
 *   401230:  mov    %rax,%rdx            the loop
 *   401233:  and    $0xfff,%edx
 *   401239:  mov    (%r9,%rdx,4),%edx    k = keys[i % KEYS]
 *   40123d:  cmp    %esi,%edx
 *   40123f:  jb     401268 <hot+0x58>    k < pivot             N times
 *   401241:  ...                         store into high[]
 *   401253:  add    $0x1,%rax
 *   401257:  cmp    %rax,%rdi
 *   40125a:  jne    401230 <hot+0x20>    the back edge         N times
 *   401260:  ret
 *   401268:  ...                         store into low[]
 *   401280:  jmp    401253 <hot+0x43>
 *
 * So for N > 0 hot() executes 2N + 1 conditional branches: jle not taken
 * once, jb taken once per key below the pivot, jne taken N - 1 times; for
 * N = 0 only jle, taken. The program prints these counts for the
 * benchmark's check: "taken T nottaken F checksum C". For N = 1000 they
 * were checked once by hand: valgrind --tool=cachegrind --branch-sim=yes
 * counts 2,001 conditional branches in hot(), and gdb stepping hot() an
 * instruction at a time sees 1,249 taken and 752 not, as printed.
 * bench/branches.py checks with objdump that hot() still has exactly
 * jle, jb and jne.
 *
 * unused_function() is never called: the benchmark probes it. */
#include <stdio.h>
#include <stdlib.h>

#define KEYS 4096

unsigned keys[KEYS];
unsigned low[KEYS], high[KEYS];

__attribute__((noinline, noipa)) long hot(long n, unsigned pivot)
{
    long below = 0, above = 0;
    for (long i = 0; i < n; i++) {
        unsigned k = keys[i % KEYS];
        if (__builtin_expect(k < pivot, 0))
            low[below++ % KEYS] = k;
        else
            high[above++ % KEYS] = k;
    }
    return below;
}

__attribute__((noinline, noipa)) void unused_function(void)
{
    low[0] = high[0] = 0;
}

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 5000000;
    unsigned x = 2463534242u;
    for (int i = 0; i < KEYS; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        keys[i] = x;
    }
    long below = hot(n, 1u << 30);
    /* The directions of hot()'s jle, jb and jne, laid out as above. */
    long taken = n > 0 ? below + (n - 1) : 1;
    long nottaken = n > 0 ? 1 + (n - below) + 1 : 0;
    unsigned checksum = 0;
    for (int i = 0; i < KEYS; i++)
        checksum = checksum * 31 + low[i] + high[i];
    printf("taken %ld nottaken %ld checksum %u\n", taken, nottaken, checksum);
    return 0;
}
