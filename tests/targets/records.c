/* records: a function that no header declares, for declare().
 *
 * parse_record(s, n) counts the ';'-separated fields of the first n bytes
 * of s, or returns -1 when n is 0. main calls
 *   parse_record("id=7;name=ptap;size=42", 22)   -> 3
 *   parse_record("", 0)                          -> -1
 * and prints "fields: 3" and "fields: -1". */
#include <stddef.h>
#include <stdio.h>

__attribute__((noipa)) int parse_record(const char *s, size_t n)
{
    int fields = 1;

    if (n == 0)
        return -1;
    for (size_t i = 0; i < n; i++)
        fields += s[i] == ';';
    return fields;
}

int main(void)
{
    static const char record[] = "id=7;name=ptap;size=42";

    printf("fields: %d\n", parse_record(record, sizeof record - 1));
    printf("fields: %d\n", parse_record("", 0));
    return 0;
}
