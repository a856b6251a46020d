/*
 * attach_lib.c - a library that attach_target dlopens after `heapsnap attach`
 * (AttachTests): its allocations must reach the shim as the program's do.
 * attach_lib_alloc(N) keeps N blocks of 1000 bytes allocated at
 * attach_lib_site, in its own 4 KiB-aligned slot.
 */
#include <stdlib.h>

static void *volatile held[100000];

__attribute__((noinline, used, aligned(4096))) void attach_lib_site(int i) { held[i] = malloc(1000); }

void attach_lib_alloc(int n)
{
    for (int i = 0; i < n && i < 100000; i++)
        attach_lib_site(i);
}
