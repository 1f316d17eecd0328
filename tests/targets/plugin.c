/* libplugin.so: a shared library that dlopen_plugin loads at run time.
 * plugin_compute(a, b) returns a * b + 7 and adds it to the global
 * plugin_total (a data object only this library defines, for memory
 * probes that follow a symbol of a library loaded later). */
long plugin_total;

long plugin_compute(long a, long b)
{
    long result = a * b + 7;

    plugin_total += result;
    return result;
}
