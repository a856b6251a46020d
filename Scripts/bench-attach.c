/*
 * A preloaded helper for Scripts/bench --attach: its constructor loads
 * libheapsnap_preload.so with dlopen and calls heapsnap_attach, as the
 * injector does at a safe point, so that the library runs routed (GOT slots
 * rewritten, not preloaded) in a process that valgrind's callgrind can
 * count (ptrace cannot attach to a process under valgrind).
 *
 * usage: LD_PRELOAD=bench-attach.so BENCH_ATTACH_LIB=libheapsnap_preload.so
 *        BENCH_ATTACH_SPEC='HEAPSNAP_START=1' PROGRAM ...
 */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

__attribute__((constructor)) static void attach_now(void)
{
    const char *lib = getenv("BENCH_ATTACH_LIB");
    const char *spec = getenv("BENCH_ATTACH_SPEC");
    void *h = lib ? dlopen(lib, RTLD_NOW) : NULL;
    int (*attach)(const char *) = h ? (int (*)(const char *))dlsym(h, "heapsnap_attach") : NULL;
    if (!attach) {
        fprintf(stderr, "bench-attach: cannot load %s: %s\n", lib ? lib : "(BENCH_ATTACH_LIB unset)", dlerror());
        exit(2);
    }
    char buf[4096];
    snprintf(buf, sizeof buf, "%s\n", spec ? spec : "HEAPSNAP_START=1");
    for (char *p = buf; *p; p++)
        if (*p == ';')
            *p = '\n';
    int err = attach(buf);
    if (err)
        fprintf(stderr, "bench-attach: heapsnap_attach returned %d\n", err);
}
