/*
 * shimctl.h - how the test programs drive the shim from inside: its real
 * signals sent to themselves, then waiting until they took effect
 * (heapsnap_sampling(), or the snapshot file appearing), so that every run
 * is deterministic. Shared by sites.c and robust.c; needs _GNU_SOURCE.
 *
 * Exit codes: 90 not under the shim, 91 sampling never changed, 92 the
 * snapshot never appeared (after 10 and 20 s).
 */
#ifndef SHIMCTL_H
#define SHIMCTL_H

#include <dlfcn.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* The shim's signal k (0 start, 1 stop, 2 snapshot); SITES_SIGNAL_BASE sends
 * signals that are not the shim's (a test that moved them). */
static int sig(int k)
{
    const char *b = getenv("SITES_SIGNAL_BASE");
    if (!b)
        b = getenv("HEAPSNAP_SIGNAL_BASE");
    return SIGRTMIN + (b ? atoi(b) : 1) + k;
}

static void sleep_ms(int ms)
{
    struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
    nanosleep(&ts, NULL);
}

/* Waits until heapsnap_sampling() == want (10 s at most). */
static void wait_sampling(int want)
{
    int (*sampling)(void) = (int (*)(void))dlsym(RTLD_DEFAULT, "heapsnap_sampling");
    if (!sampling) {
        fprintf(stderr, "%s: not running under the shim\n", program_invocation_short_name);
        exit(90);
    }
    for (int i = 0; i < 10000 && sampling() != want; i++) {
        free(malloc(16));           /* a fork child sets up its writer at its first allocation */
        sleep_ms(1);
    }
    if (sampling() != want) {
        fprintf(stderr, "%s: sampling never became %d\n", program_invocation_short_name, want);
        exit(91);
    }
}

/* Waits until heapsnap.<pid>.<seq>.heapsnap exists in HEAPSNAP_DIR (20 s at most). */
static void wait_file(int seq)
{
    const char *dir = getenv("HEAPSNAP_DIR");
    char path[4096];
    snprintf(path, sizeof path, "%s/heapsnap.%d.%d.heapsnap", dir ? dir : "/tmp", (int)getpid(), seq);
    struct stat st;
    for (int i = 0; i < 20000 && stat(path, &st) != 0; i++)
        sleep_ms(1);
    if (stat(path, &st) != 0) {
        fprintf(stderr, "%s: %s never appeared\n", program_invocation_short_name, path);
        exit(92);
    }
}

static void start(void) { kill(getpid(), sig(0)); wait_sampling(1); }
static void snapshot(int seq) { kill(getpid(), sig(2)); wait_file(seq); }
static void stop(int seq) { kill(getpid(), sig(1)); wait_sampling(0); wait_file(seq); }

#endif
