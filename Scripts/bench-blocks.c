/* bench-blocks.c: one thread allocating and freeing blocks of 2-3 KiB, above
 * glibc's per-thread cache (1,032 bytes), so every call reaches the arena:
 * unlocked in a single-threaded process, locked once a second thread exists.
 * Scripts/bench times it idle with and without heapsnap's writer thread.
 *
 * bench-blocks ROUNDS */
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv)
{
    long rounds = argc > 1 ? atol(argv[1]) : 5000000;
    void *v[4];
    size_t sum = 0;
    for (long i = 0; i < rounds; i++) {
        for (int k = 0; k < 4; k++) {
            v[k] = malloc(2048 + 256 * (size_t)k);
            sum += (size_t)v[k] & 0xff;
        }
        for (int k = 0; k < 4; k++)
            free(v[k]);
    }
    printf("%zu\n", sum);
    return 0;
}
