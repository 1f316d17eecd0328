/* fpflags: return values in the registers the ABI gives them (on 32-bit
 * x86, EDX:EAX for a long long and x87's st0 for a double), and the
 * floating-point exception flags of the program across calls that
 * handlers may watch:
 *
 *   twice(0x123456789)  a long long, 0x2468acf12
 *   third(1.5)          a double, 0.5
 *
 * The flags are cleared before the calls and tested after them (neither
 * raises one: 1.5 / 3 is exact). Prints "twice = R", "third = R" (%.17g)
 * and "flags = F" (fetestexcept(FE_ALL_EXCEPT), 0 natively). */
#include <fenv.h>
#include <stdio.h>

__attribute__((noipa)) long long twice(long long v)
{
    return v * 2;
}

__attribute__((noipa)) double third(double v)
{
    return v / 3.0;
}

int main(void)
{
    feclearexcept(FE_ALL_EXCEPT);
    long long w = twice(0x123456789LL);
    double t = third(1.5);
    int flags = fetestexcept(FE_ALL_EXCEPT);
    printf("twice = %lld\nthird = %.17g\nflags = %d\n", w, t, flags);
    return 0;
}
