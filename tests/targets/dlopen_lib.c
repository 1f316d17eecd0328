/* dlopen_lib: loads libm.so.6 at run time with dlopen, looks up cos with
 * dlsym and prints cos(0) ("cos(0) = 1").
 *
 * The program is not linked against libm, so libm is loaded only by the
 * dlopen call: used to check that module_load fires for modules loaded
 * after start-up. */
#include <dlfcn.h>
#include <stdio.h>

int main(void)
{
    void *libm = dlopen("libm.so.6", RTLD_NOW);
    double (*cosine)(double);

    if (!libm) {
        fprintf(stderr, "dlopen: %s\n", dlerror());
        return 1;
    }
    *(void **)&cosine = dlsym(libm, "cos");
    if (!cosine) {
        fprintf(stderr, "dlsym: %s\n", dlerror());
        return 1;
    }
    printf("cos(0) = %g\n", cosine(0.0));
    dlclose(libm);
    return 0;
}
