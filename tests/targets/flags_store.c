/* flags_store: stores whose neighbours read the arithmetic flags, for
 * tests/test_memory.py. A memory probe's code around a store (its tests,
 * and on the way to a clean call a copy of the store and the after-write
 * call) must leave the flags as the program left them. Prints:
 *
 *   carries W O        add_carrying on `watched`, then on `other`: N
 *                      `add addend, (p)` each followed by `adc $0`,
 *                      which reads the carry the add left (the add of
 *                      the word's top bit carries every second time)
 *   below W O          store_below on each: N `cmp; mov %, (p); setb`,
 *                      the store between a compare and the setb that
 *                      reads its flags (below every second time)
 *   values W O         the final values of the two words
 *
 * Every store is through a pointer (objdump: `add %rdx,(%rdi)` and
 * `mov %rdx,(%rdi)`): its address is not known when its block is built.
 * The words are unsigned longs: 8 bytes on x86-64, 4 with gcc -m32. */
#include <stdio.h>
#include <stdlib.h>

/* The suffix of a word-sized instruction. */
#ifdef __x86_64__
#define W "q"
#else
#define W "l"
#endif

unsigned long watched __attribute__((aligned(64)));
unsigned long other __attribute__((aligned(64)));

__attribute__((noipa)) unsigned long add_carrying(unsigned long *p, unsigned long addend, long n)
{
    unsigned long carries = 0;
    for (long i = 0; i < n; i++)
        __asm__ volatile("add" W " %2, %0\n\tadc" W " $0, %1" : "+m"(*p), "+r"(carries) : "r"(addend) : "cc");
    return carries;
}

__attribute__((noipa)) unsigned long store_below(unsigned long *p, long n)
{
    unsigned long below = 0;
    for (long i = 0; i < n; i++) {
        unsigned char b;
        unsigned long a = (unsigned long)i, limit = (unsigned long)(i | 1) - (unsigned long)(i & 1);
        __asm__ volatile("cmp" W " %3, %2\n\tmov" W " %2, %0\n\tsetb %1" : "=m"(*p), "=q"(b) : "r"(a), "r"(limit) : "cc");
        below += b;
    }
    return below;
}

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 1000;
    unsigned long top = 1UL << (8 * sizeof(unsigned long) - 1);
    unsigned long w = add_carrying(&watched, top, n);
    unsigned long o = add_carrying(&other, top, n);
    printf("carries %lu %lu\n", w, o);
    w = store_below(&watched, n);
    o = store_below(&other, n);
    printf("below %lu %lu\n", w, o);
    printf("values %lu %lu\n", watched, other);
    return 0;
}
