/* Benchmark target for bench/memory.py: memory_walk N H.
 *
 * N rounds of work, each round:
 *   - walk(): STEPS steps along a ring of NODES nodes (a 1 MiB global
 *     array, linked through pointers). gcc 12 -O2 makes each step 5
 *     accesses: a load of the volatile global `counter` and a store of it
 *     (mov counter(%rip): RIP-relative), `add %rdx, 0x8(%rax)` on p->val
 *     (a read and a write), and a load of p->next;
 *   - sse_copy(): one 64 KiB block copied with explicit 16-byte SSE loads
 *     and stores (_mm_loadu_si128 / _mm_storeu_si128: movdqu, movups),
 *     BLOCK / 16 of each, from src into dst, a different block each round;
 * then hit() writes the global word `hits` exactly H times, for the
 * per-hit rows (gdb's hardware watchpoint, ProcessTap's probe on it).
 *
 * `watched` and `decoy` are never read or written: the benchmark watches
 * them. Every global starts a page of its own (aligned 4096), so the page
 * of `watched` holds nothing the program touches. bench/memory.py
 * checks with objdump that the accesses above are in the code.
 *
 * Prints nothing; exits with status 0 (the checksum is only there so the
 * work is not optimised away: it can never be the magic value). */
#include <emmintrin.h>
#include <stdlib.h>

#define NODES 65536          /* 16-byte nodes: 1 MiB */
#define STEPS 4096           /* ring steps per round */
#define BLOCK 65536          /* bytes copied per round */
#define BLOCKS 8             /* src holds 8 blocks: 512 KiB */

struct node {
    struct node *next;
    long val;
};

struct node nodes[NODES] __attribute__((aligned(4096)));
unsigned char src[BLOCK * BLOCKS] __attribute__((aligned(4096)));
unsigned char dst[BLOCK] __attribute__((aligned(4096)));
volatile long counter __attribute__((aligned(4096)));
/* Never touched by the program: the word and the region the benchmark's
 * memory_write probes watch. Aligned so that they start pages of their
 * own, apart from the globals the loop touches. */
int watched __attribute__((aligned(4096)));
unsigned char decoy[16 * 10000] __attribute__((aligned(4096)));
/* Written exactly H times by hit(). */
volatile int hits __attribute__((aligned(4096)));

__attribute__((noipa)) struct node *walk(struct node *p, long steps)
{
    for (long i = 0; i < steps; i++) {
        p->val += i;
        counter += 1;
        p = p->next;
    }
    return p;
}

__attribute__((noipa)) void sse_copy(void *to, const void *from, unsigned long bytes)
{
    __m128i *d = to;
    const __m128i *s = from;
    for (unsigned long i = 0; i < bytes / 16; i++)
        _mm_storeu_si128(d + i, _mm_loadu_si128(s + i));
}

__attribute__((noipa)) void hit(long h)
{
    for (long i = 0; i < h; i++)
        hits = (int)i + 1;
}

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 1000;
    long h = argc > 2 ? atol(argv[2]) : 0;
    for (long i = 0; i < NODES; i++)
        nodes[i].next = &nodes[(i + 1) % NODES];
    struct node *p = nodes;
    for (long r = 0; r < n; r++) {
        p = walk(p, STEPS);
        sse_copy(dst, src + BLOCK * (r % BLOCKS), BLOCK);
    }
    hit(h);
    return (nodes[0].val + dst[5] + counter + hits) == 0x7fffffffffffL;
}
