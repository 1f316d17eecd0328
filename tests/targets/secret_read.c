/* secret_read: reads the global secret_value (41) once, RIP-relative, in
 * compute(), and prints
 *
 *   answer = 83                  2 * secret_value + 1
 *
 * A memory_read handler that makes that read return 1000 makes it print
 * "answer = 2001" (tests/test_memory.py). */
#include <stdio.h>

int secret_value = 41;

__attribute__((noipa)) int compute(void)
{
    return 2 * secret_value + 1;
}

int main(void)
{
    printf("answer = %d\n", compute());
    return 0;
}
