/* libplugin.so: a shared library that dlopen_plugin loads at run time.
 * plugin_compute(a, b) returns a * b + 7. */
long plugin_compute(long a, long b)
{
    return a * b + 7;
}
