/* flags_store: stores whose neighbours read the arithmetic flags, for
 * tests/test_memory.py. A memory probe's code around a store (its tests,
 * and on the way to a clean call a copy of the store and the after-write
 * call) must leave the flags as the program left them. Prints:
 *
 *   carries W O        add_carrying on `watched`, then on `other`: N
 *                      `addq addend, (p)` each followed by `adcq $0`,
 *                      which reads the carry the add left (the add of
 *                      2^63 carries every second time)
 *   below W O          store_below on each: N `cmpq; movq %, (p); setb`,
 *                      the store between a compare and the setb that
 *                      reads its flags (below every second time)
 *   values W O         the final values of the two words
 *
 * Every store is through a pointer (objdump: `add %rdx,(%rdi)` and
 * `mov %rdx,(%rdi)`): its address is not known when its block is built. */
#include <stdio.h>
#include <stdlib.h>

unsigned long watched __attribute__((aligned(64)));
unsigned long other __attribute__((aligned(64)));

__attribute__((noipa)) unsigned long add_carrying(unsigned long *p, unsigned long addend, long n)
{
    unsigned long carries = 0;
    for (long i = 0; i < n; i++)
        __asm__ volatile("addq %2, %0\n\tadcq $0, %1" : "+m"(*p), "+r"(carries) : "r"(addend) : "cc");
    return carries;
}

__attribute__((noipa)) unsigned long store_below(unsigned long *p, long n)
{
    unsigned long below = 0;
    for (long i = 0; i < n; i++) {
        unsigned char b;
        unsigned long a = (unsigned long)i, limit = (unsigned long)(i | 1) - (unsigned long)(i & 1);
        __asm__ volatile("cmpq %3, %2\n\tmovq %2, %0\n\tsetb %1" : "=m"(*p), "=q"(b) : "r"(a), "r"(limit) : "cc");
        below += b;
    }
    return below;
}

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 1000;
    unsigned long w = add_carrying(&watched, 1UL << 63, n);
    unsigned long o = add_carrying(&other, 1UL << 63, n);
    printf("carries %lu %lu\n", w, o);
    w = store_below(&watched, n);
    o = store_below(&other, n);
    printf("below %lu %lu\n", w, o);
    printf("values %lu %lu\n", watched, other);
    return 0;
}
