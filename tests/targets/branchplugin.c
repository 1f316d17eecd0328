/* libbranchplugin.so: a plugin for dlopen_plugin with one conditional
 * branch. plugin_compute(a, b) returns a * b when a is even and a + b when
 * it is odd: "dlopen_plugin libbranchplugin.so 3" prints 42, 14, 56 (a =
 * 6, 7, 8; b = 7), its branch going the even way twice and the odd way
 * once. */
long plugin_compute(long a, long b)
{
    if (a % 2 == 0)
        return a * b;
    return a + b;
}
