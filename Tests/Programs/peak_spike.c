/*
 * peak_spike.c - a program whose peak lasts well under a millisecond, for
 * the timeline tests: only a copy taken on the allocating thread, at the
 * moment the estimate passes its step, can hold it.
 *
 * Usage: peak_spike THREADS (1 to 8). Site keep gets 48 MiB first. Then the
 * threads grow sites a (64 MiB), b (48 MiB) and c (48 MiB) in 64 KiB blocks,
 * each thread its share in that order, and meet at a barrier (208 MiB in
 * use); they grow site top by 16 MiB (the last 7% of the 224 MiB maximum,
 * so that a copy taken up to 5% below it still holds a, b and c whole),
 * meet again and at once free a and b. Returns with keep, c and top in use,
 * for the AT_EXIT snapshot. The blocks are not written (no page faults):
 * the whole rise takes a few milliseconds. The sizes give every site about
 * 90 samples or more at the default rate (512 KiB), so that a test of
 * "within 4 standard deviations" (as estimated from the samples, which
 * fails more often than a normal law would with few samples) rarely fails
 * by chance.
 *
 * Prints "site NAME 0xADDR" for keep, a, b, c, top, then "peak_ns T"
 * (CLOCK_REALTIME when the last block of top was in place), "drop_ns T"
 * (when the first thread began freeing) and "held_ns D" (their difference:
 * how long the maximum lasted). Sites sit in 4 KiB slots of "hs_sites", as
 * in sites.c.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define SITE __attribute__((noinline, used, section("hs_sites"), aligned(4096)))
#define BLOCK ((size_t)64 << 10)
#define MIB_BLOCKS (((size_t)1 << 20) / BLOCK)
#define MAX_THREADS 8

enum { KEEP = 48, A = 64, B = 48, C = 48, TOP = 16 };   /* MiB */

static void *volatile keep[KEEP * MIB_BLOCKS], *volatile a[A * MIB_BLOCKS], *volatile b[B * MIB_BLOCKS],
    *volatile c[C * MIB_BLOCKS], *volatile top[TOP * MIB_BLOCKS];

SITE void site_keep(size_t i) { keep[i] = malloc(BLOCK); }
SITE void site_a(size_t i) { a[i] = malloc(BLOCK); }
SITE void site_b(size_t i) { b[i] = malloc(BLOCK); }
SITE void site_c(size_t i) { c[i] = malloc(BLOCK); }
SITE void site_top(size_t i) { top[i] = malloc(BLOCK); }

static int threads;
static pthread_barrier_t grown, topped;
static _Atomic unsigned long long peak_ns, drop_ns = ~0ull;

static unsigned long long now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (unsigned long long)ts.tv_sec * 1000000000ull + (unsigned long long)ts.tv_nsec;
}

/* Thread t's share of n blocks: [lo, hi). */
static void share(int t, size_t n, size_t *lo, size_t *hi)
{
    *lo = n * (size_t)t / (size_t)threads;
    *hi = n * (size_t)(t + 1) / (size_t)threads;
}

static void *worker(void *arg)
{
    int t = (int)(intptr_t)arg;
    size_t lo, hi;
    share(t, A * MIB_BLOCKS, &lo, &hi);
    for (size_t i = lo; i < hi; i++)
        site_a(i);
    share(t, B * MIB_BLOCKS, &lo, &hi);
    for (size_t i = lo; i < hi; i++)
        site_b(i);
    share(t, C * MIB_BLOCKS, &lo, &hi);
    for (size_t i = lo; i < hi; i++)
        site_c(i);
    pthread_barrier_wait(&grown);
    share(t, TOP * MIB_BLOCKS, &lo, &hi);
    for (size_t i = lo; i < hi; i++)
        site_top(i);
    unsigned long long t1 = now_ns(), seen = atomic_load(&peak_ns);
    while (t1 > seen && !atomic_compare_exchange_weak(&peak_ns, &seen, t1)) {
    }
    pthread_barrier_wait(&topped);
    unsigned long long t2 = now_ns();
    seen = atomic_load(&drop_ns);
    while (t2 < seen && !atomic_compare_exchange_weak(&drop_ns, &seen, t2)) {
    }
    share(t, A * MIB_BLOCKS, &lo, &hi);
    for (size_t i = lo; i < hi; i++)
        free(a[i]);
    share(t, B * MIB_BLOCKS, &lo, &hi);
    for (size_t i = lo; i < hi; i++)
        free(b[i]);
    return NULL;
}

int main(int argc, char **argv)
{
    threads = argc > 1 ? atoi(argv[1]) : 1;
    if (threads < 1 || threads > MAX_THREADS) {
        fprintf(stderr, "usage: peak_spike THREADS (1 to %d)\n", MAX_THREADS);
        return 2;
    }
    printf("site keep %p\nsite a %p\nsite b %p\nsite c %p\nsite top %p\n", (void *)site_keep, (void *)site_a,
           (void *)site_b, (void *)site_c, (void *)site_top);
    fflush(stdout);
    for (size_t i = 0; i < KEEP * MIB_BLOCKS; i++)
        site_keep(i);
    pthread_barrier_init(&grown, NULL, (unsigned)threads);
    pthread_barrier_init(&topped, NULL, (unsigned)threads);
    pthread_t ids[MAX_THREADS];
    for (int t = 1; t < threads; t++)
        if (pthread_create(&ids[t], NULL, worker, (void *)(intptr_t)t) != 0)
            return 3;
    worker((void *)0);
    for (int t = 1; t < threads; t++)
        pthread_join(ids[t], NULL);
    unsigned long long p = atomic_load(&peak_ns), d = atomic_load(&drop_ns);
    printf("peak_ns %llu\ndrop_ns %llu\nheld_ns %lld\n", p, d, (long long)(d - p));
    return 0;
}
