/* longjmp_out: outer() calls inner(), and inner() either returns or
 * longjmps back to main, leaving both calls without a return.
 *
 * main makes 5 rounds, round r calling outer(r, jump) with jump = r odd:
 * rounds 1 and 3 longjmp out of inner (through outer), rounds 0, 2 and 4
 * return normally. Prints one line per round, and "done". Used to check
 * that each call of a probed function gets exactly one function_exit,
 * marked unwound when it was left by longjmp. */
#include <setjmp.h>
#include <stdio.h>

static jmp_buf back;

__attribute__((noipa)) int inner(int round, int jump)
{
    if (jump)
        longjmp(back, round + 100);
    return round * 10;
}

__attribute__((noipa)) int outer(int round, int jump)
{
    return inner(round, jump) + 1;
}

int main(void)
{
    for (int round = 0; round < 5; round++) {
        volatile int r = round;
        int jumped = setjmp(back);
        if (jumped) {
            printf("round %d: longjmp %d\n", r, jumped);
            continue;
        }
        printf("round %d: returned %d\n", r, outer(r, r % 2));
    }
    puts("done");
    return 0;
}
