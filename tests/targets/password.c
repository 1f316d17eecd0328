/* password: checks argv[1] against a password with check_password() and
 * prints "access granted" or "access denied" (exit status 0 or 1).
 *
 * Used to check that a function_exit handler can change a return value
 * (ctx.retval = 1 grants access with a wrong password). */
#include <stdio.h>
#include <string.h>

__attribute__((noipa)) int check_password(const char *attempt)
{
    return strcmp(attempt, "swordfish") == 0;
}

int main(int argc, char **argv)
{
    if (check_password(argc > 1 ? argv[1] : "")) {
        puts("access granted");
        return 0;
    }
    puts("access denied");
    return 1;
}
