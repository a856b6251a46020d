/*
 * sites.c - a test program with known allocation sites, for ShimTests.
 *
 * Usage: sites MODE [args]. Each site is a noinline function in its own
 * 4 KiB-aligned slot of the "hs_sites" section, so a test can tell which
 * site a stack passes through from the "site NAME ADDRESS" lines printed
 * first: frames in [ADDRESS, ADDRESS + 4096) belong to NAME.
 *
 * The program drives the shim itself with real signals (kill(getpid(), ...))
 * and waits until they took effect (heapsnap_sampling(), or the snapshot file
 * appearing), so every run is deterministic. Compiled with -fno-builtin so the
 * compiler keeps every malloc/free.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "shimctl.h"

#define SITE __attribute__((noinline, used, section("hs_sites"), aligned(4096)))

static void *volatile sink[1 << 20];
static void *volatile one;

SITE void site_leak(int i, size_t n) { sink[i] = malloc(n); }
SITE void site_churn(size_t n) { one = malloc(n); free(one); }
SITE void site_calloc(int i, size_t n) { sink[i] = calloc(n, 1); }
SITE void site_realloc(int i, size_t n) { sink[i] = realloc(sink[i], n); }
SITE void site_posix_memalign(int i, size_t a, size_t n)
{
    void *p = NULL;
    if (posix_memalign(&p, a, n) != 0)
        abort();
    sink[i] = p;
}
SITE void site_aligned_alloc(int i, size_t a, size_t n) { sink[i] = aligned_alloc(a, n); }
SITE void site_memalign(int i, size_t a, size_t n) { sink[i] = memalign(a, n); }
SITE void site_valloc(int i, size_t n) { sink[i] = valloc(n); }
SITE void site_pvalloc(int i, size_t n) { sink[i] = pvalloc(n); }
SITE void site_thread(int i, size_t n) { sink[i] = malloc(n); }
SITE void site_child(int i, size_t n) { sink[i] = malloc(n); }
SITE void site_deep(int depth, int i, size_t n)
{
    if (depth > 0)
        site_deep(depth - 1, i, n);
    else
        sink[i] = malloc(n);
    __asm__ volatile("" ::: "memory");     /* not a tail call */
}

static void print_sites(void)
{
    printf("site leak %p\nsite churn %p\nsite calloc %p\nsite realloc %p\n", (void *)site_leak,
           (void *)site_churn, (void *)site_calloc, (void *)site_realloc);
    printf("site posix_memalign %p\nsite aligned_alloc %p\nsite memalign %p\nsite valloc %p\nsite pvalloc %p\n",
           (void *)site_posix_memalign, (void *)site_aligned_alloc, (void *)site_memalign,
           (void *)site_valloc, (void *)site_pvalloc);
    printf("site thread %p\nsite child %p\nsite deep %p\n", (void *)site_thread, (void *)site_child,
           (void *)site_deep);
    fflush(stdout);
}


static void *thread_main(void *arg)
{
    int t = (int)(intptr_t)arg;
    for (int i = 0; i < 1000; i++)
        site_thread(100000 + t * 1000 + i, 64);
    return NULL;
}

/* Block k (0-3) of every depth: sink[depth * 4 + k]. */
static void *stacks_main(void *arg)
{
    int k = (int)(intptr_t)arg;
    for (int d = 0; d < 300; d++)
        site_deep(d, d * 4 + k, (size_t)(8 * (d + 1)));
    return NULL;
}

static volatile int storm_over;

/* Random malloc/calloc/realloc/memalign/free on a private slot array. */
static void *storm_main(void *arg)
{
    uint64_t x = 0x9E3779B97F4A7C15ull * (uint64_t)(uintptr_t)(arg + 1);
    void *slot[256] = { 0 };
    while (!storm_over) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        int i = (int)(x % 256);
        size_t n = (size_t)(x >> 20) % 5000;
        switch ((x >> 40) % 4) {
        case 0: free(slot[i]); slot[i] = malloc(n); break;
        case 1: slot[i] = realloc(slot[i], n); break;
        case 2: free(slot[i]); slot[i] = memalign(64, n); break;
        default: free(slot[i]); slot[i] = calloc(1, n); break;
        }
    }
    for (int i = 0; i < 256; i++)
        free(slot[i]);
    return NULL;
}

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "";
    print_sites();

    if (strcmp(mode, "basic") == 0) {
        /* leak: 2000 blocks of 1000 B stay live; churn: 4000 x 1000 B freed;
         * calloc: 3000 blocks of mixed sizes 16..65536 stay live. */
        start();
        for (int i = 0; i < 2000; i++)
            site_leak(i, 1000);
        for (int i = 0; i < 4000; i++)
            site_churn(1000);
        size_t mixed = 0;
        for (int i = 0; i < 3000; i++) {
            size_t n = (size_t)16 << (i % 13);
            mixed += n;
            site_calloc(10000 + i, n);
        }
        printf("mixed %zu\n", mixed);
        snapshot(0);
        for (int i = 0; i < 1000; i++)
            free(sink[i]);          /* half the leak freed between snapshots */
        stop(1);
    } else if (strcmp(mode, "exact") == 0) {
        /* HEAPSNAP_RATE=1: 1000 leaks of i%100+1 bytes, the even ones freed;
         * 500 churns of 24 bytes; 7 zero-size mallocs kept. */
        start();
        size_t live = 0, all = 0;
        for (int i = 0; i < 1000; i++) {
            site_leak(i, (size_t)(i % 100 + 1));
            all += (size_t)(i % 100 + 1);
        }
        for (int i = 0; i < 1000; i += 2)
            free(sink[i]);
        for (int i = 1; i < 1000; i += 2)
            live += (size_t)(i % 100 + 1);
        for (int i = 0; i < 500; i++)
            site_churn(24);
        for (int i = 0; i < 7; i++)
            site_calloc(5000 + i, 0);
        printf("leak-live-bytes %zu\nleak-all-bytes %zu\n", live, all);
        stop(0);
    } else if (strcmp(mode, "threads") == 0) {
        /* 4 threads x 1000 x 64 B at site thread; main frees thread 0's. */
        start();
        pthread_t th[4];
        for (int t = 0; t < 4; t++)
            pthread_create(&th[t], NULL, thread_main, (void *)(intptr_t)t);
        for (int t = 0; t < 4; t++)
            pthread_join(th[t], NULL);
        for (int i = 0; i < 1000; i++)
            free(sink[100000 + i]);
        stop(0);
    } else if (strcmp(mode, "realloc") == 0) {
        /* 100 chains: malloc(16) then 10 reallocs doubling; 50 chains freed. */
        start();
        for (int c = 0; c < 100; c++) {
            site_leak(c, 16);
            for (int k = 1; k <= 10; k++)
                site_realloc(c, (size_t)16 << k);
        }
        for (int c = 0; c < 50; c++)
            free(sink[c]);
        /* realloc(p, 0) frees; realloc(NULL, n) allocates. */
        site_realloc(60, 0);
        site_realloc(2000, 100);
        stop(0);
    } else if (strcmp(mode, "aligned") == 0) {
        /* Each aligned function: 20 blocks of 100 B, 10 freed; checks alignment. */
        start();
        for (int i = 0; i < 20; i++) {
            site_posix_memalign(i, 64, 100);
            site_aligned_alloc(100 + i, 256, 100);
            site_memalign(200 + i, 4096, 100);
            site_valloc(300 + i, 100);
            site_pvalloc(400 + i, 100);
            if ((uintptr_t)sink[i] % 64 || (uintptr_t)sink[100 + i] % 256 || (uintptr_t)sink[200 + i] % 4096 ||
                (uintptr_t)sink[300 + i] % 4096 || (uintptr_t)sink[400 + i] % 4096) {
                fprintf(stderr, "sites: misaligned block\n");
                return 93;
            }
            if (malloc_usable_size(sink[400 + i]) < 4096) {
                fprintf(stderr, "sites: pvalloc did not round up\n");
                return 94;
            }
        }
        for (int i = 0; i < 10; i++) {
            free(sink[i]);
            free(sink[100 + i]);
            free(sink[200 + i]);
            free(sink[300 + i]);
            free(sink[400 + i]);
        }
        stop(0);
    } else if (strcmp(mode, "fork") == 0) {
        /* Parent samples 100 leaks, forks while sampling; the child samples
         * too, in a session of its own, without being asked: it frees 50 of
         * the parent's blocks (which are not its samples), allocates 30 at
         * site child, and stops. */
        start();
        for (int i = 0; i < 100; i++)
            site_leak(i, 64);
        fflush(stdout);
        pid_t pid = fork();
        if (pid == 0) {
            wait_sampling(1);
            for (int i = 0; i < 50; i++)
                free(sink[i]);
            for (int i = 0; i < 30; i++)
                site_child(1000 + i, 48);
            stop(0);
            printf("child %d\n", (int)getpid());
            fflush(stdout);
            _exit(0);
        }
        int status = 0;
        waitpid(pid, &status, 0);
        for (int i = 0; i < 10; i++)
            site_leak(200 + i, 64);
        stop(0);
        printf("parent %d\n", (int)getpid());
        return WIFEXITED(status) ? WEXITSTATUS(status) : 99;
    } else if (strcmp(mode, "handler") == 0) {
        /* The host takes over SIGRTMIN+1 (our start signal) with signal(). */
        signal(sig(0), SIG_IGN);
        struct sigaction old;
        sigaction(sig(0), NULL, &old);
        if (old.sa_handler != SIG_IGN)
            return 96;              /* the host's wish must be remembered */
        start();                    /* still ours */
        site_leak(0, 100);
        stop(0);
    } else if (strcmp(mode, "budget") == 0) {
        /* Exact mode with a 1 MiB budget: 200,000 live blocks must overflow it. */
        start();
        for (int i = 0; i < 200000; i++)
            site_deep(i % 50, i, 16);
        stop(0);
    } else if (strcmp(mode, "stacks") == 0) {
        /* HEAPSNAP_RATE=1: 300 distinct stacks (site_deep at depths 0..299),
         * 4 blocks of 8 * (depth + 1) bytes on each, from 2 threads, the
         * first two of each freed; a snapshot half way, a final one at stop. */
        start();
        for (int round = 0; round < 2; round++) {
            pthread_t th[2];
            for (int t = 0; t < 2; t++)
                pthread_create(&th[t], NULL, stacks_main, (void *)(intptr_t)(round * 2 + t));
            for (int t = 0; t < 2; t++)
                pthread_join(th[t], NULL);
            if (round == 0)
                snapshot(0);
        }
        for (int d = 0; d < 300; d++)
            for (int k = 0; k < 2; k++)
                free(sink[d * 4 + k]);
        stop(1);
    } else if (strcmp(mode, "storm") == 0) {
        /* 4 threads allocate at random while the main thread runs 20 rounds
         * of start, snapshot, stop, forking a short-lived child every round. */
        pthread_t th[4];
        for (int t = 0; t < 4; t++)
            pthread_create(&th[t], NULL, storm_main, (void *)(intptr_t)t);
        for (int k = 0; k < 20; k++) {
            start();
            sleep_ms(2);
            for (int i = 0; i < 64; i++)        /* samples even if the threads got no CPU (p = 1 - e^-16 each) */
                site_churn(4096);
            pid_t pid = fork();
            if (pid == 0) {
                for (int i = 0; i < 1000; i++)
                    free(malloc((size_t)i));
                _exit(0);
            }
            snapshot(2 * k);
            waitpid(pid, NULL, 0);
            stop(2 * k + 1);
        }
        storm_over = 1;
        for (int t = 0; t < 4; t++)
            pthread_join(th[t], NULL);
    } else if (strcmp(mode, "daemon") == 0) {
        /* Like a daemon: close every descriptor above 2, then open files that
         * get the shim's old numbers. Signals must neither write into them
         * nor be lost for good (the writer re-opens its channel). */
        for (int fd = 3; fd < 1024; fd++)
            close(fd);
        int fds[300];
        for (int i = 0; i < 300; i++)
            fds[i] = open(argv[2], O_WRONLY | O_CREAT | O_APPEND, 0600);
        start();
        site_leak(0, 100);
        stop(0);
        for (int i = 0; i < 300; i++)
            close(fds[i]);
    } else if (strcmp(mode, "serve") == 0) {
        /* Driven from outside: allocates until stdin closes. */
        printf("ready %d\n", (int)getpid());
        fflush(stdout);
        int i = 0;
        char c;
        while (read(0, &c, 1) != 0) {
            for (int k = 0; k < 100; k++) {
                site_leak(i++ % (1 << 19), 512);
                site_churn(4096);
            }
        }
    } else if (strcmp(mode, "exit") == 0) {
        /* For HEAPSNAP_START/AT_EXIT runs: leak 100 x 200 B, exit with argv[2]. */
        for (int i = 0; i < 100; i++)
            site_leak(i, 200);
        return argc > 2 ? atoi(argv[2]) : 0;
    } else {
        fprintf(stderr, "usage: sites basic|exact|stacks|threads|realloc|aligned|fork|handler|budget|serve|exit\n");
        return 2;
    }
    return 0;
}
