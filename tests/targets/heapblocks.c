/* heapblocks: malloc blocks of known sizes, writes a known number of stores
 * into each, frees them, for the AddressSet test of tests/test_memory.py.
 * Prints, unbuffered (stdout is set unbuffered before the first malloc, so
 * stdio allocates no buffer of its own):
 *
 *   block 0: 24 bytes, 6 int stores          fill_ints(p, 6)
 *   block 1: 100 bytes, 100 byte stores      fill_bytes(p, 100)
 *   block 2: 4000 bytes, 500 long stores     fill_longs(p, 500)
 *   block 3: 24 bytes, 3 int stores          after block 0 was freed (glibc
 *                                            gives its chunk again)
 *   stack: 16 byte stores                    fill_bytes into a stack array:
 *                                            not heap, not to be counted
 *   checksum C                               the sum of what was stored
 *
 * Each fill_* is a -O1 loop of one store per element (no vectorisation,
 * no memset: tests/test_memory.py checks the store count with objdump).
 * Total stores into heap blocks: 6 + 100 + 500 + 3 = 609. */
#include <stdio.h>
#include <stdlib.h>

__attribute__((noipa)) void fill_ints(int *p, int n)
{
    for (int i = 0; i < n; i++)
        p[i] = i + 1;
}

__attribute__((noipa)) void fill_bytes(unsigned char *p, int n)
{
    for (int i = 0; i < n; i++)
        p[i] = (unsigned char)(i * 3 + 1);
}

__attribute__((noipa)) void fill_longs(long *p, int n)
{
    for (int i = 0; i < n; i++)
        p[i] = (long)i * 1000 + 7;
}

__attribute__((noipa)) long sum_bytes(const unsigned char *p, int n)
{
    long s = 0;
    for (int i = 0; i < n; i++)
        s += p[i];
    return s;
}

int main(void)
{
    unsigned char local[16];
    long checksum = 0;

    setvbuf(stdout, NULL, _IONBF, 0);

    int *b0 = malloc(24);
    fill_ints(b0, 6);
    printf("block 0: 24 bytes, 6 int stores\n");
    unsigned char *b1 = malloc(100);
    fill_bytes(b1, 100);
    printf("block 1: 100 bytes, 100 byte stores\n");
    long *b2 = malloc(4000);
    fill_longs(b2, 500);
    printf("block 2: 4000 bytes, 500 long stores\n");
    checksum += sum_bytes((unsigned char *)b0, 24) + sum_bytes(b1, 100) + sum_bytes((unsigned char *)b2, 4000);
    free(b0);
    int *b3 = malloc(24);
    fill_ints(b3, 3);
    printf("block 3: 24 bytes, 3 int stores\n");
    fill_bytes(local, 16);
    printf("stack: 16 byte stores\n");
    checksum += sum_bytes((unsigned char *)b3, 12) + sum_bytes(local, 16);
    free(b1);
    free(b2);
    free(b3);
    printf("checksum %ld\n", checksum);
    return 0;
}
