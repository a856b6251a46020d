/*
 * attach_target.c - a program started without heapsnap, for AttachTests:
 * `heapsnap attach` loads the shim into it while it runs.
 *
 * Usage: attach_target THREADS [seccomp]. With "seccomp", the process first
 * installs a seccomp filter that allows everything (Seccomp: 2 in
 * /proc/PID/status), which attach must refuse. THREADS threads allocate and free in a
 * storm (malloc, calloc, realloc, posix_memalign, free), each checking the
 * pattern it wrote into every block (a routed call that returned a wrong or
 * shared block shows up as "errors N"). Before it says "ready", the main
 * thread allocates 50 blocks of 2000 bytes at site_pre (before any attach).
 * Then it reads commands on stdin, one a line, and answers each with one line:
 *   leak N SIZE   frees the site_pre blocks (allocated before the attach),
 *                 allocates N blocks of SIZE at site_leak (kept) and N at
 *                 site_freed (freed at once)                -> "leaked"
 *   where         which object the program's malloc slot points into, and
 *                 whether its weak operator new reference is still null
 *                                                    -> "malloc in PATH weak null"
 *   dlopen PATH N dlopens PATH and calls its attach_lib_alloc(N)     -> "dlopened"
 *   quit          stops the threads                              -> "errors E", exit 7
 * Each site is a noinline function in its own 4 KiB-aligned slot ("site NAME
 * ADDRESS" lines first), as in sites.c.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SITE __attribute__((noinline, used, section("hs_sites"), aligned(4096)))

static void *volatile kept[100000];

/* A weak reference to a name the shim routes (aligned operator new) that
 * nothing in this C program defines: it must stay null (ddprof #348). */
extern void *_ZnwmSt11align_val_t(size_t, size_t) __attribute__((weak));
static void *volatile pre[50];
static volatile int stopping;
static unsigned long errors[64];

SITE void site_pre(int i, size_t n) { pre[i] = malloc(n); }
SITE void site_leak(int i, size_t n) { kept[i] = malloc(n); }
SITE void site_freed(size_t n) { void *volatile p = malloc(n); free(p); }

static int started;                     /* workers that reached their own code */

static void *worker(void *arg)
{
    long me = (long)arg;
    __atomic_add_fetch(&started, 1, __ATOMIC_RELEASE);
    unsigned char *slot[32] = { 0 };
    size_t len[32] = { 0 };
    for (unsigned long i = 0; !stopping; i++) {
        unsigned k = (unsigned)(i % 32);
        if (slot[k]) {
            for (size_t j = 0; j < len[k]; j += 61)
                if (slot[k][j] != (unsigned char)(k + me))
                    errors[me]++;
            free(slot[k]);
        }
        size_t n = 8 + (i * 2654435761u) % 3000;
        switch (i % 4) {
        case 0: slot[k] = malloc(n); break;
        case 1: slot[k] = calloc(1, n); break;
        case 2: slot[k] = realloc(malloc(16), n); break;
        default: {
            void *p = NULL;
            slot[k] = posix_memalign(&p, 64, n) == 0 ? p : NULL;
        }
        }
        if (!slot[k]) {
            errors[me]++;
            continue;
        }
        len[k] = n;
        memset(slot[k], (int)(k + me), n);
        if (i % 512 == 0)
            usleep(50);
    }
    for (unsigned k = 0; k < 32; k++)
        free(slot[k]);
    return NULL;
}

int main(int argc, char **argv)
{
    int threads = argc > 1 ? atoi(argv[1]) : 4;
    if (argc > 2 && strcmp(argv[2], "seccomp") == 0) {
        struct sock_filter allow[] = { BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW) };
        struct sock_fprog prog = { 1, allow };
        if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 || prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) != 0)
            perror("seccomp");
    }
    printf("site pre %p\nsite leak %p\nsite freed %p\n", (void *)site_pre, (void *)site_leak, (void *)site_freed);
    for (int i = 0; i < 50; i++)
        site_pre(i, 2000);
    /* SIGUSR2 blocked in every thread: one sent before an attach must still be
     * pending after it (AttachTests compare /proc/PID/task/ANY/status). */
    sigset_t usr2;
    sigemptyset(&usr2);
    sigaddset(&usr2, SIGUSR2);
    pthread_sigmask(SIG_BLOCK, &usr2, NULL);
    pthread_t t[64];
    for (long i = 0; i < threads && i < 64; i++)
        pthread_create(&t[i], NULL, worker, (void *)i);
    /* Every worker running its own code: until then a new thread has every
     * signal blocked (pthread_create's window), which a test reading the
     * masks would take for the thread's own. */
    while (__atomic_load_n(&started, __ATOMIC_ACQUIRE) < (threads < 64 ? threads : 64))
        sched_yield();
    printf("ready\n");
    fflush(stdout);
    char line[4200];
    while (fgets(line, sizeof line, stdin)) {
        int n = 0;
        size_t size = 0;
        char path[4096];
        if (sscanf(line, "leak %d %zu", &n, &size) == 2) {
            for (int i = 0; i < 50; i++) {
                free(pre[i]);
                pre[i] = NULL;
            }
            for (int i = 0; i < n && i < 100000; i++) {
                site_leak(i, size);
                site_freed(size);
            }
            printf("leaked\n");
        } else if (strncmp(line, "where", 5) == 0) {
            void *(*volatile m)(size_t) = malloc;       /* read from the GOT now */
            void *(*volatile w)(size_t, size_t) = _ZnwmSt11align_val_t;
            Dl_info info;
            printf("malloc in %s weak %s\n", dladdr((void *)m, &info) && info.dli_fname ? info.dli_fname : "?",
                   w ? "set" : "null");
        } else if (sscanf(line, "dlopen %4095s %d", path, &n) == 2) {
            void *h = dlopen(path, RTLD_NOW);
            void (*f)(int) = h ? (void (*)(int))dlsym(h, "attach_lib_alloc") : NULL;
            void *site = h ? dlsym(h, "attach_lib_site") : NULL;
            if (f)
                f(n);
            printf("site lib %p\n%s\n", site, f ? "dlopened" : dlerror());
        } else if (strncmp(line, "quit", 4) == 0) {
            break;
        }
        fflush(stdout);
    }
    stopping = 1;
    unsigned long e = 0;
    for (long i = 0; i < threads && i < 64; i++) {
        pthread_join(t[i], NULL);
        e += errors[i];
    }
    printf("errors %lu\n", e);
    return 7;
}
