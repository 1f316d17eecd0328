/* fpflags: return values in the registers the ABI gives them (on 32-bit
 * x86, EDX:EAX for a long long and x87's st0 for a double), and the
 * floating-point exception flags of the program across calls that
 * handlers may watch:
 *
 *   twice(0x123456789)  a long long, 0x2468acf12
 *   third(1.5)          a double, 0.5
 *   half(1.5L)          a long double, 0.75 (in x87's st0 on both
 *                       architectures)
 *
 * The flags are cleared before the calls and tested after them (neither
 * raises one: 1.5 / 3 is exact). Prints "twice = R", "third = R" (%.17g)
 * "half = R" (%.17Lg) and "flags = F" (fetestexcept(FE_ALL_EXCEPT), 0
 * natively). */
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

__attribute__((noipa)) long double half(long double v)
{
    return v / 2;
}

int main(void)
{
    feclearexcept(FE_ALL_EXCEPT);
    long long w = twice(0x123456789LL);
    double t = third(1.5);
    long double h = half(1.5L);
    int flags = fetestexcept(FE_ALL_EXCEPT);
    printf("twice = %lld\nthird = %.17g\nhalf = %.17Lg\nflags = %d\n", w, t, h, flags);
    return 0;
}
