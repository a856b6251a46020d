/*
 * peak_curve.c - a program with a known memory curve, for the timeline tests.
 *
 * Usage: peak_curve [exit|stop|fork]. It waits 150 ms, then grows through
 * three sites (site a: 8 MiB, b: 4 MiB, c: 2 MiB, in 64 KiB blocks, each
 * written so that RSS follows), holds the peak for 250 ms, frees a and b,
 * waits 250 ms and ends with c (2 MiB) still in use. It prints its own
 * "peak_ns T" (CLOCK_REALTIME when the last block of c was in place) and
 * "drop_ns T" (just before the first free). Then, by mode:
 *   exit  return from main (the AT_EXIT snapshot shows c alone)
 *   stop  stop sampling with its signal (the FINAL snapshot)
 *   fork  fork a child that starts sampling, keeps 1 MiB at site child for
 *         250 ms and exits ("child PID"); the parent waits, then returns.
 * Sites sit in 4 KiB slots of "hs_sites", as in sites.c.
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "shimctl.h"

#define SITE __attribute__((noinline, used, section("hs_sites"), aligned(4096)))
#define BLOCK ((size_t)64 << 10)

static void *volatile a[128], *volatile b[64], *volatile c[32], *volatile kid[16];

static void *touched(size_t n)
{
    void *p = malloc(n);
    if (p)
        memset(p, 0x5A, n);
    return p;
}

SITE void site_a(int i) { a[i] = touched(BLOCK); }
SITE void site_b(int i) { b[i] = touched(BLOCK); }
SITE void site_c(int i) { c[i] = touched(BLOCK); }
SITE void site_child(int i) { kid[i] = touched(BLOCK); }

static unsigned long long now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (unsigned long long)ts.tv_sec * 1000000000ull + (unsigned long long)ts.tv_nsec;
}

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "exit";
    printf("site a %p\nsite b %p\nsite c %p\nsite child %p\n", (void *)site_a, (void *)site_b,
           (void *)site_c, (void *)site_child);
    fflush(stdout);
    sleep_ms(150);
    for (int i = 0; i < 128; i++) {
        site_a(i);
        if (i % 16 == 15)
            sleep_ms(10);
    }
    for (int i = 0; i < 64; i++) {
        site_b(i);
        if (i % 16 == 15)
            sleep_ms(10);
    }
    for (int i = 0; i < 32; i++) {
        site_c(i);
        if (i % 16 == 15)
            sleep_ms(10);
    }
    unsigned long long peak = now_ns();
    sleep_ms(250);
    unsigned long long drop = now_ns();
    for (int i = 0; i < 128; i++)
        free(a[i]);
    for (int i = 0; i < 64; i++)
        free(b[i]);
    printf("peak_ns %llu\ndrop_ns %llu\n", peak, drop);
    fflush(stdout);
    sleep_ms(250);

    if (strcmp(mode, "stop") == 0) {
        stop(0);
    } else if (strcmp(mode, "fork") == 0) {
        pid_t pid = fork();
        if (pid == 0) {
            start();
            for (int i = 0; i < 16; i++)
                site_child(i);
            sleep_ms(250);
            exit(0);
        }
        int status = 0;
        waitpid(pid, &status, 0);
        printf("child %d\n", (int)pid);
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
            return 3;
    }
    return 0;
}
