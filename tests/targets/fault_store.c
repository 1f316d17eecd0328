/* fault_store: stores that fault, caught by the program's own SIGSEGV
 * handler (siglongjmp out of it), for tests/test_memory.py. Prints,
 * unbuffered:
 *
 *   watch 4096                   watch(page, 4096): a hook for the tests'
 *                                scripts (they add the page to an
 *                                AddressSet); page is mmap'd PROT_READ
 *   store 1 faulted              *(int *)page = 111: SIGSEGV, caught
 *   store 2 faulted              *(int *)(page + 8) = 222: SIGSEGV, caught
 *   store 3 done                 after mprotect(page, RW): *(int *)(page + 16) = 333
 *   good = 7                     a store into the global good, after them
 *   faults 2
 *
 * Each store is one movl to memory in store_int (objdump: one store). */
#define _GNU_SOURCE
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

static sigjmp_buf env;
static volatile sig_atomic_t faults;
int good;

static void on_segv(int sig)
{
    (void)sig;
    faults++;
    siglongjmp(env, 1);
}

__attribute__((noipa)) void watch(void *page, unsigned long size)
{
    (void)page;
    printf("watch %lu\n", size);
}

__attribute__((noipa)) void store_int(int *p, int v)
{
    *p = v;
}

static void try_store(int n, int *p, int v)
{
    if (sigsetjmp(env, 1) == 0) {
        store_int(p, v);
        printf("store %d done\n", n);
    } else {
        printf("store %d faulted\n", n);
    }
}

int main(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_segv;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGSEGV, &sa, NULL);
    setvbuf(stdout, NULL, _IONBF, 0);

    char *page = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (page == MAP_FAILED)
        return 1;
    watch(page, 4096);
    try_store(1, (int *)page, 111);
    try_store(2, (int *)(page + 8), 222);
    mprotect(page, 4096, PROT_READ | PROT_WRITE);
    try_store(3, (int *)(page + 16), 333);
    store_int(&good, 7);
    printf("good = %d\n", good);
    printf("faults %d\n", (int)faults);
    return 0;
}
