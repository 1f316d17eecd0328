/* dlopen_plugin: "dlopen_plugin PATH": loads the shared library at PATH
 * (libplugin.so) with dlopen, calls its plugin_compute(6, 7) through
 * dlsym, then calls its own, different plugin_compute(2, 3) (a static
 * function of the same name), and prints both results:
 * "plugin: 49" and "local: 1005". "dlopen_plugin PATH N" loads, calls
 * (with 6, 7, 8, ... as first argument) and dlcloses the library N times.
 *
 * Used to check function probes on a library loaded after start-up, and
 * module_name in predicates (the name exists in two modules). */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>

__attribute__((noipa)) static long plugin_compute(long a, long b)
{
    return a + b + 1000;
}

int main(int argc, char **argv)
{
    void *plugin;
    long (*compute)(long, long);

    if (argc < 2) {
        fprintf(stderr, "usage: dlopen_plugin PATH\n");
        return 2;
    }
    int cycles = argc > 2 ? atoi(argv[2]) : 1;
    for (int i = 0; i < cycles; i++) {
        plugin = dlopen(argv[1], RTLD_NOW);
        if (!plugin) {
            fprintf(stderr, "dlopen: %s\n", dlerror());
            return 1;
        }
        *(void **)&compute = dlsym(plugin, "plugin_compute");
        if (!compute) {
            fprintf(stderr, "dlsym: %s\n", dlerror());
            return 1;
        }
        printf("plugin: %ld\n", compute(6 + i, 7));
        if (i == 0)
            printf("local: %ld\n", plugin_compute(2, 3));
        dlclose(plugin);
    }
    return 0;
}
