/* malloc_sizes: calls malloc with a fixed series of sizes, printing each
 * size before the call ("malloc N"), then frees everything and prints
 * "freed N blocks".
 *
 * Used to check function_entry on malloc: the calls made from this
 * program's own code (not from libc's stdio) are exactly these sizes, in
 * this order. The pointers are kept in a volatile array so that the
 * compiler cannot elide a malloc/free pair. */
#include <stdio.h>
#include <stdlib.h>

static const size_t sizes[] = {17, 1000, 4242, 1, 65536, 333333, 24, 4096};
#define COUNT (sizeof sizes / sizeof sizes[0])

static void *volatile blocks[COUNT];

int main(void)
{
    for (size_t i = 0; i < COUNT; i++) {
        printf("malloc %zu\n", sizes[i]);
        blocks[i] = malloc(sizes[i]);
        if (!blocks[i]) {
            perror("malloc");
            return 1;
        }
    }
    for (size_t i = 0; i < COUNT; i++)
        free(blocks[i]);
    printf("freed %zu blocks\n", COUNT);
    return 0;
}
