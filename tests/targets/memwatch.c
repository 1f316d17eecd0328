/* memwatch: globals read and written in known ways, for the memory-probe
 * tests (tests/test_memory.py). Built -O2 so that the loops over table[]
 * are vectorised (16-byte SSE loads and stores: movdqa/paddd on table).
 * Prints, unbuffered (stdout is set unbuffered first, so printf keeps no
 * heap buffer):
 *
 *   table[5] = V              after each of ROUNDS (4) calls of add_round(r),
 *                             r = 1..4: V = 5 + 1 + 2 + ... + r, so
 *                             6, 8, 11, 15 (table[i] starts as i)
 *   sum = S                   sum_table(): the sum of the 64 entries after
 *                             the rounds: 2016 + 64 * 10 = 2656
 *   counter = 25              bump() called 25 times: addl $1, counter(%rip)
 *   flags: 0 3 0 0 7 0 1      set_flag(v) for each of those values (one
 *                             store of v into the global flag)
 *   memcpy 4096               copy(buffer, source, 4096), a call of glibc's
 *                             memcpy: source[i] = i*7 & 0xff
 *   memset 8192               fill(buffer, 0x5a, 8192), a call of memset
 *   stosb 300                 rep stosb of 0xa5 into buffer+100, 300 bytes
 *   buffer sum = B            the sum of the 8192 bytes of buffer at the end
 *   target_fn calls = 9       target_fn(i) called 9 times (i = 0..8)
 *   loop total = 666          loop_fn(37): a loop whose body holds a
 *                             bswap (found by objdump), run 37 times
 *
 * What the code does, from objdump (tests/test_memory.py checks this again
 * on the built binary):
 *   - init_table: 16 16-byte stores (movaps) over table, no loads;
 *   - add_round: 16 16-byte loads + 16 stores (movdqa, paddd, movaps);
 *   - sum_table: 16 16-byte loads (paddd table(%rip)...);
 *   - main reads table[5] once per round (RIP-relative mov) to print it;
 *   - bump: one addl $1, counter(%rip) (a read and a write), and main reads
 *     counter once to print it;
 *   - set_flag: one movl %edi, flag(%rip). */
#include <stdio.h>
#include <string.h>

#define ROUNDS 4
#define BUMPS 25
#define TARGET_CALLS 9
#define LOOP_COUNT 37

int table[64] __attribute__((aligned(64)));
int counter;
int flag;
unsigned char buffer[8192] __attribute__((aligned(64)));
unsigned char source[4096];
volatile int sink;

__attribute__((noipa)) void init_table(void)
{
    for (int i = 0; i < 64; i++)
        table[i] = i;
}

__attribute__((noipa)) void add_round(int r)
{
    for (int i = 0; i < 64; i++)
        table[i] += r;
}

__attribute__((noipa)) int sum_table(void)
{
    int s = 0;
    for (int i = 0; i < 64; i++)
        s += table[i];
    return s;
}

__attribute__((noipa)) void bump(void)
{
    counter += 1;
}

__attribute__((noipa)) void set_flag(int v)
{
    flag = v;
}

/* memcpy and memset through functions the compiler cannot see into, so that
 * they stay calls of glibc's (with a constant size and a global buffer, gcc
 * would inline them as rep movsq / rep stosq). */
__attribute__((noipa)) void copy(void *dst, const void *src, unsigned long n)
{
    memcpy(dst, src, n);
}

__attribute__((noipa)) void fill(void *dst, int value, unsigned long n)
{
    memset(dst, value, n);
}

__attribute__((noipa)) void stosb(void *dst, int value, unsigned long n)
{
    __asm__ volatile("rep stosb" : "+D"(dst), "+c"(n) : "a"(value) : "memory");
}

__attribute__((noipa)) int target_fn(int i)
{
    return i * 3 + 1;
}

/* The loop body holds the only bswap of loop_fn (two, which cancel): the
 * tests find its address with objdump and watch it with memory_execute; it
 * runs once per iteration and touches no memory. */
__attribute__((noipa)) int loop_fn(int n)
{
    int total = 0;
    for (int i = 0; i < n; i++) {
        __asm__ volatile("bswap %0\n\tbswap %0\n\taddl %1, %0" : "+r"(total) : "r"(i));
        sink = total;
    }
    return total;
}

int main(void)
{
    static const int flags[] = {0, 3, 0, 0, 7, 0, 1};
    unsigned long buffer_sum = 0;
    int calls = 0;

    setvbuf(stdout, NULL, _IONBF, 0);

    init_table();
    for (int r = 1; r <= ROUNDS; r++) {
        add_round(r);
        printf("table[5] = %d\n", table[5]);
    }
    printf("sum = %d\n", sum_table());

    for (int i = 0; i < BUMPS; i++)
        bump();
    printf("counter = %d\n", counter);

    printf("flags:");
    for (unsigned i = 0; i < sizeof flags / sizeof flags[0]; i++) {
        set_flag(flags[i]);
        printf(" %d", flags[i]);
    }
    printf("\n");

    for (int i = 0; i < 4096; i++)
        source[i] = (unsigned char)(i * 7);
    copy(buffer, source, 4096);
    printf("memcpy 4096\n");
    fill(buffer, 0x5a, 8192);
    printf("memset 8192\n");
    stosb(buffer + 100, 0xa5, 300);
    printf("stosb 300\n");
    for (int i = 0; i < 8192; i++)
        buffer_sum += buffer[i];
    printf("buffer sum = %lu\n", buffer_sum);

    for (int i = 0; i < TARGET_CALLS; i++) {
        sink = target_fn(i);
        calls++;
    }
    printf("target_fn calls = %d\n", calls);
    printf("loop total = %d\n", loop_fn(LOOP_COUNT));
    return 0;
}
