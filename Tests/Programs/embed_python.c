/*
 * embed_python.c - a C program that loads CPython by dlopen after sampling
 * started, as a host that embeds the interpreter does.
 *
 * Usage: embed_python LIBPYTHON SCRIPT. Starts sampling with its signal and
 * lets the writer look for Python a few times (there is none yet), then
 * dlopens LIBPYTHON, initializes it, waits for the writer to notice, runs
 * SCRIPT (which keeps what it allocates) and takes snapshot 0.
 */
#define _GNU_SOURCE
#include "shimctl.h"

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: embed_python LIBPYTHON SCRIPT\n");
        return 2;
    }
    start();
    sleep_ms(300);
    void *lib = dlopen(argv[1], RTLD_NOW | RTLD_GLOBAL);
    if (!lib) {
        fprintf(stderr, "embed_python: %s\n", dlerror());
        return 3;
    }
    void (*initialize)(int) = (void (*)(int))dlsym(lib, "Py_InitializeEx");
    int (*run_string)(const char *) = (int (*)(const char *))dlsym(lib, "PyRun_SimpleString");
    if (!initialize || !run_string)
        return 4;
    initialize(0);
    sleep_ms(300);
    char code[4500];
    snprintf(code, sizeof code, "exec(compile(open('%s').read(), '%s', 'exec'))", argv[2], argv[2]);
    if (run_string(code) != 0)
        return 5;
    snapshot(0);
    printf("done\n");
    return 0;
}
