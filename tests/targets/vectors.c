/* Full 256-bit vector values that must survive probes: an __m256d argument
 * (ymm0 at entry), an __m256d result (ymm0 at exit), and a value kept in a
 * ymm register across a raw system call. Built with -mavx; prints "bad=N"
 * and exits 1 if any value changed. */
#include <immintrin.h>
#include <stdio.h>
#include <sys/syscall.h>

__attribute__((noipa)) double sum4(__m256d v) {
    double out[4];
    _mm256_storeu_pd(out, v);
    return out[0] + out[1] + out[2] + out[3];
}

__attribute__((noipa)) __m256d twice(__m256d v) {
    return _mm256_add_pd(v, v);
}

int main(void) {
    int bad = 0;
    for (int i = 0; i < 100; i++) {
        if (sum4(_mm256_set_pd(i, 2.0 * i, 3.0 * i, 4.0 * i)) != 10.0 * i)
            bad++;
        double out[4];
        _mm256_storeu_pd(out, twice(_mm256_set_pd(i, 1, 2, 3)));
        if (out[3] != 2.0 * i)
            bad++;
        __m256d kept = _mm256_set_pd(1.5 * i, 2.5, 3.5, 4.5);
        __asm__ volatile("" : "+x"(kept));
        long r;
        __asm__ volatile("syscall" : "=a"(r) : "a"(SYS_getppid) : "rcx", "r11", "memory");
        __asm__ volatile("" : "+x"(kept));
        _mm256_storeu_pd(out, kept);
        if (out[3] != 1.5 * i)
            bad++;
    }
    printf("bad=%d\n", bad);
    return bad != 0;
}
