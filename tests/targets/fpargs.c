/* fpargs: functions whose arguments need a prototype to be read right.
 *
 *   mix(-2.5, -1234567890123, -42, -300, 4000000000, 77, -8, -7)
 *       a double (in xmm0) and seven integers of different widths and
 *       signedness: six in registers, the seventh (g) on the stack.
 *   scale(1.5f, -0.125, 3)    a float and a double, returning a double.
 *   wide(0xfffffffffffffff0, 200, -100)  unsigned and narrow integers.
 *
 * Prints "mix = R", "scale = R" (R with %.17g) and "wide = R" (%lu).
 * The prototypes are in fpargs.h. */
#include <stdio.h>
#include "fpargs.h"

__attribute__((noipa)) double mix(double x, long a, int b, short c, unsigned d, long e, long f, char g)
{
    return x * 1000.0 + (double)a + b * 3 + c * 5 + (double)d * 7 + e * 11 + f * 13 + g * 17;
}

__attribute__((noipa)) double scale(float v, double w, int n)
{
    return (v + w) * n;
}

__attribute__((noipa)) unsigned long wide(unsigned long u, unsigned char b, signed char s)
{
    return u + b + s;
}

int main(void)
{
    printf("mix = %.17g\n", mix(-2.5, -1234567890123L, -42, -300, 4000000000U, 77, -8, -7));
    printf("scale = %.17g\n", scale(1.5f, -0.125, 3));
    printf("wide = %lu\n", wide(0xfffffffffffffff0UL, 200, -100));
    return 0;
}
