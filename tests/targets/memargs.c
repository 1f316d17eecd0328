/* memargs: functions whose arguments point at the target's memory, or are
 * plain numbers, for ctx.mem and ctx.args tests. Prints, unbuffered:
 *
 *   greet: hello, world             greet("world")
 *   greet: hello, caf?              greet("caf\xe9"), not UTF-8
 *   inspect: 4 fields               inspect(&record)
 *   show: original text             show(buffer) (buffer holds "original text")
 *   number: 1                       show_number(1), then 2, then -3
 *   number: 2
 *   number: -3
 *
 * The record passed to inspect holds known values: u8 0x12, u16 0x3456,
 * u32 0x789abcde, u64 0x0123456789abcdef, i8 -2, i16 -300, i32 -70000,
 * i64 -5000000000 and a pointer to the string "pointed-to". */
#include <stdint.h>
#include <stdio.h>

struct record {
    uint8_t u8;
    uint16_t u16;
    uint32_t u32;
    uint64_t u64;
    int8_t i8;
    int16_t i16;
    int32_t i32;
    int64_t i64;
    const char *text;
};

__attribute__((noipa)) void greet(const char *name)
{
    printf("greet: hello, %s\n", name);
}

__attribute__((noipa)) int inspect(const struct record *r)
{
    return r->u8 != 0 && r->text != NULL ? 4 : 0;
}

__attribute__((noipa)) void show(const char *buffer)
{
    printf("show: %s\n", buffer);
}

__attribute__((noipa)) void show_number(long n)
{
    printf("number: %ld\n", n);
}

int main(void)
{
    static const struct record record = {
        0x12, 0x3456, 0x789abcdeU, 0x0123456789abcdefULL,
        -2, -300, -70000, -5000000000LL, "pointed-to",
    };
    char buffer[32] = "original text";

    setvbuf(stdout, NULL, _IONBF, 0);
    greet("world");
    greet("caf\xe9");
    printf("inspect: %d fields\n", inspect(&record));
    show(buffer);
    show_number(1);
    show_number(2);
    show_number(-3);
    return 0;
}
