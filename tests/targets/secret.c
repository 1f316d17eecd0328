/* secret: prints "secret(A, B) = R" where R = secret_function(A, B) and
 * A, B are argv[1], argv[2] (default 7 and 35).
 *
 * Built three ways: secret (PIE, with symbols), secret_stripped (the same
 * PIE, stripped: no .symtab) and secret_nopie_stripped (not PIE, so the
 * function's run-time address is the one nm prints, and stripped). Used to
 * check probes on function addresses where there is no symbol. */
#include <stdio.h>
#include <stdlib.h>

__attribute__((noipa)) long secret_function(long a, long b)
{
    return a * 3 + b;
}

int main(int argc, char **argv)
{
    long a = argc > 1 ? atol(argv[1]) : 7;
    long b = argc > 2 ? atol(argv[2]) : 35;
    printf("secret(%ld, %ld) = %ld\n", a, b, secret_function(a, b));
    return 0;
}
