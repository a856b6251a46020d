/*
 * robust.c - hosts for ShimTests' robustness suites (RobustnessTests.swift):
 * servers driven from outside, pre-fork workers, hosts that take or reset
 * our signals, dlopen storms, hundreds of thousands of distinct stacks, and
 * every way out of a process.
 *
 * Usage: robust MODE [args]. Sites are noinline functions, each in its own
 * 4 KiB-aligned slot of the "hs_sites" section (as in sites.c), announced as
 * "site NAME ADDRESS" lines first: frames in [ADDRESS, ADDRESS + 4096)
 * belong to NAME. Modes that wait for the test print "pid N" when ready and
 * run until their standard input closes. Compiled with -fno-builtin.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "shimctl.h"

#define SITE __attribute__((noinline, used, section("hs_sites"), aligned(4096)))

static void *volatile sink[1 << 16];
static void *volatile one;

SITE void site_parent(int i, size_t n) { sink[i] = malloc(n); }
SITE void site_worker0(int i, size_t n) { sink[i] = malloc(n); }
SITE void site_worker1(int i, size_t n) { sink[i] = malloc(n); }
SITE void site_worker2(int i, size_t n) { sink[i] = malloc(n); }
SITE void site_serve(int i, size_t n) { free(sink[i]); sink[i] = malloc(n); }
SITE void site_exit(int i, size_t n) { sink[i] = malloc(n); }

/* Two alternating functions whose call path encodes the bits of `i`: each
 * level calls path_a or path_b from its own call site, so 2^depth values of
 * i give 2^depth distinct stacks. */
SITE void path_a(int depth, uint32_t i);
SITE void path_b(int depth, uint32_t i);
#define PATH_STEP(depth, i)                                                    \
    do {                                                                       \
        if ((depth) == 0) {                                                    \
            one = malloc(16);                                                  \
            free(one);                                                         \
        } else if (((i) >> ((depth) - 1)) & 1) {                               \
            path_a((depth) - 1, (i));                                          \
        } else {                                                               \
            path_b((depth) - 1, (i));                                          \
        }                                                                      \
        __asm__ volatile("" ::: "memory"); /* not a tail call */               \
    } while (0)
SITE void path_a(int depth, uint32_t i) { PATH_STEP(depth, i); }
SITE void path_b(int depth, uint32_t i) { PATH_STEP(depth, i); }

/* Same, but the leaf keeps its block: a large exact-mode table to write. */
SITE void keep_a(int depth, uint32_t i);
SITE void keep_b(int depth, uint32_t i);
#define KEEP_STEP(depth, i)                                                    \
    do {                                                                       \
        if ((depth) == 0)                                                      \
            sink[(i) % (1 << 16)] = malloc(24);                                \
        else if (((i) >> ((depth) - 1)) & 1)                                   \
            keep_a((depth) - 1, (i));                                          \
        else                                                                   \
            keep_b((depth) - 1, (i));                                          \
        __asm__ volatile("" ::: "memory");                                     \
    } while (0)
SITE void keep_a(int depth, uint32_t i) { KEEP_STEP(depth, i); }
SITE void keep_b(int depth, uint32_t i) { KEEP_STEP(depth, i); }

static void print_sites(void)
{
    printf("site parent %p\nsite worker0 %p\nsite worker1 %p\nsite worker2 %p\n", (void *)site_parent,
           (void *)site_worker0, (void *)site_worker1, (void *)site_worker2);
    printf("site serve %p\nsite exit %p\nsite path_a %p\nsite path_b %p\n", (void *)site_serve, (void *)site_exit,
           (void *)path_a, (void *)path_b);
    fflush(stdout);
}


/* "VmRSS VmHWM" of this process in kB. */
static void memory_kb(long *rss, long *hwm)
{
    *rss = *hwm = -1;
    FILE *f = fopen("/proc/self/status", "r");
    if (!f)
        return;
    char line[256];
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "VmRSS:", 6) == 0)
            *rss = atol(line + 6);
        else if (strncmp(line, "VmHWM:", 6) == 0)
            *hwm = atol(line + 6);
    }
    fclose(f);
}

static volatile int over;

/* serve: allocate and free at site serve on a private slice of sink[]. */
static void *serve_main(void *arg)
{
    int t = (int)(intptr_t)arg;
    uint64_t x = 0x9E3779B97F4A7C15ull * (uint64_t)(t + 1);
    while (!over) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        site_serve(t * 4096 + (int)(x % 4096), (size_t)(x >> 40) % 3000 + 1);
    }
    for (int i = 0; i < 4096; i++) {
        free(sink[t * 4096 + i]);
        sink[t * 4096 + i] = NULL;
    }
    return NULL;
}

/* dlopen: load, use and unload libraries in a loop while others allocate. */
static volatile int dl_rounds;
static unsigned long dl_total, dl_bytes[2];
static void *dlopen_main(void *arg)
{
    (void)arg;
    static const char *const libs[] = { "libz.so.1", "liblzma.so.5", "libbz2.so.1.0" };
    unsigned long total = 0;
    for (int r = 0; r < dl_rounds; r++) {
        const char *name = libs[r % 3];
        void *h = dlopen(name, RTLD_NOW | RTLD_LOCAL);
        if (!h) {
            fprintf(stderr, "robust: dlopen %s: %s\n", name, dlerror());
            exit(80);
        }
        if (r % 3 == 0) {
            /* zlib's compress() allocates its state with malloc. */
            int (*compress)(unsigned char *, unsigned long *, const unsigned char *, unsigned long) =
                (int (*)(unsigned char *, unsigned long *, const unsigned char *, unsigned long))dlsym(h, "compress");
            unsigned char in[512], out[1024];
            for (int k = 0; k < 512; k++)
                in[k] = (unsigned char)(k * 7 + r);
            unsigned long n = sizeof out;
            if (!compress || compress(out, &n, in, sizeof in) != 0) {
                fprintf(stderr, "robust: compress failed\n");
                exit(81);
            }
            total += 1;
        }
        dlclose(h);
    }
    dl_total = total;
    return NULL;
}

static void *dl_alloc_main(void *arg)
{
    int t = (int)(intptr_t)arg;
    uint64_t x = 0x2545F4914F6CDD1Dull * (uint64_t)(t + 1), sum = 0;
    void *slot[512] = { 0 };
    for (int i = 0; i < 400000; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        int k = (int)(x % 512);
        size_t n = (size_t)(x >> 32) % 2048 + 1;
        free(slot[k]);
        slot[k] = malloc(n);
        memset(slot[k], (int)(n & 0xFF), n);
        sum += n;
    }
    for (int k = 0; k < 512; k++)
        free(slot[k]);
    dl_bytes[t] = (unsigned long)sum;
    return NULL;
}

static volatile sig_atomic_t host_calls[3];
static void host_handler(int s)
{
    for (int k = 0; k < 3; k++)
        if (s == sig(k))
            host_calls[k]++;
}

static void on_term(int s)
{
    (void)s;
    exit(9);
}

/* prefork worker k: allocate at its own site until the parent closes the pipe. */
static int worker(int k, int rfd)
{
    void (*site)(int, size_t) = k == 0 ? site_worker0 : k == 1 ? site_worker1 : site_worker2;
    int i = 0;
    for (;;) {
        for (int j = 0; j < 50; j++) {
            int slot = 1000 + k * 1000 + (i++ % 1000);
            free(sink[slot]);
            site(slot, 100 + (size_t)k);
        }
        struct pollfd p = { .fd = rfd, .events = POLLIN };
        if (poll(&p, 1, 1) > 0) {
            char c;
            if (read(rfd, &c, 1) <= 0)
                return 0;
        }
    }
}

/* latestart's exit handler: a start, then a snapshot, each given time to be
 * handled (the sleeps are the thing under test: the writer acting while the
 * process exits). */
static void late_start(void)
{
    kill(getpid(), sig(0));
    for (int i = 0; i < 200; i++) {
        free(malloc(64));
        sleep_ms(1);
    }
    kill(getpid(), sig(2));
    sleep_ms(200);
}

/* Each line read from stdin makes 10 blocks of 300 B at site serve, kept,
 * and answers "ok N"; returns 0 at end of input. Nothing is allocated
 * while it waits. */
static int idle_lines(void)
{
    char buf[256];
    int lines = 0;
    while (read(0, buf, sizeof buf) > 0) {
        for (int i = 0; i < 10; i++)
            site_serve((lines * 10 + i) % 4096, 300);
        printf("ok %d\n", ++lines);
        fflush(stdout);
    }
    return 0;
}

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "";
    struct rlimit nocore = { 0, 0 };
    setrlimit(RLIMIT_CORE, &nocore);        /* fatal-signal tests: no core files */
    print_sites();

    if (strcmp(mode, "serve") == 0) {
        /* serve THREADS CODE: THREADS threads allocate and free until stdin
         * closes; then exit with CODE. */
        int n = argc > 2 ? atoi(argv[2]) : 2;
        pthread_t th[16];
        if (n > 16)
            n = 16;
        for (int t = 0; t < n; t++)
            pthread_create(&th[t], NULL, serve_main, (void *)(intptr_t)t);
        printf("pid %d\n", (int)getpid());
        fflush(stdout);
        char buf[256];
        while (read(0, buf, sizeof buf) > 0) {
        }
        over = 1;
        for (int t = 0; t < n; t++)
            pthread_join(th[t], NULL);
        printf("done\n");
        return argc > 3 ? atoi(argv[3]) : 0;
    } else if (strcmp(mode, "blockrt") == 0 || strcmp(mode, "alone") == 0) {
        /* alone [fork]: one thread and no other, freeing and allocating at
         * site serve every 100 us until stdin closes; with "fork", a child
         * forked first does the same (HEAPSNAP_WRITER=on-demand: no writer
         * thread in either until its first command). */
        pid_t child = -1;
        if (strcmp(mode, "blockrt") == 0) {
            /* blockrt: as alone, with every real-time signal blocked first
             * (a host that reads its signals from a signalfd). */
            sigset_t rt;
            sigemptyset(&rt);
            for (int s = SIGRTMIN; s <= SIGRTMAX; s++)
                sigaddset(&rt, s);
            sigprocmask(SIG_BLOCK, &rt, NULL);
        }
        if (argc > 2 && strcmp(argv[2], "fork") == 0) {
            fflush(stdout);
            child = fork();
            if (child > 0)
                printf("child %d\n", (int)child);
        }
        if (child != 0) {
            printf("pid %d\n", (int)getpid());
            fflush(stdout);
        }
        struct pollfd in = { 0, POLLIN, 0 };
        for (int i = 0;; i = (i + 1) & 1023) {
            site_serve(i, 32 + (size_t)(i & 63));
            if (poll(&in, 1, 0) > 0) {
                char buf[256];
                if (read(0, buf, sizeof buf) <= 0)
                    break;
            }
            usleep(100);
        }
        if (child == 0)
            _exit(0);
        if (child > 0)
            waitpid(child, NULL, 0);
        printf("done\n");
        return 0;
    } else if (strcmp(mode, "prefork") == 0) {
        /* The parent keeps 100 blocks at site parent (sampled from load with
         * HEAPSNAP_START=1), forks 3 workers and waits for stdin to close. */
        for (int i = 0; i < 100; i++)
            site_parent(i, 64);
        int pipes[3][2];
        pid_t pids[3];
        for (int k = 0; k < 3; k++) {
            if (pipe(pipes[k]) != 0)
                return 70;
            fflush(stdout);
            pids[k] = fork();
            if (pids[k] == 0) {
                close(pipes[k][1]);
                for (int j = 0; j < k; j++)
                    close(pipes[j][1]);
                _exit(worker(k, pipes[k][0]));
            }
            close(pipes[k][0]);
            printf("worker %d %d\n", k, (int)pids[k]);
        }
        printf("pid %d\n", (int)getpid());
        fflush(stdout);
        char buf[256];
        while (read(0, buf, sizeof buf) > 0) {
        }
        int bad = 0;
        for (int k = 0; k < 3; k++) {
            close(pipes[k][1]);
            int status = 0;
            waitpid(pids[k], &status, 0);
            if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
                bad++;
        }
        printf("workers exited, %d bad\n", bad);
        return bad;
    } else if (strcmp(mode, "forksignal") == 0) {
        /* forksignal N: N times, fork a child and at once send it a snapshot
         * request; the child allocates for 20 ms and exits. The parent (sampling
         * with HEAPSNAP_START=1) is never asked for anything. */
        int n = argc > 2 ? atoi(argv[2]) : 20;
        for (int r = 0; r < n; r++) {
            fflush(stdout);
            pid_t pid = fork();
            if (pid == 0) {
                for (int i = 0; i < 20; i++) {
                    site_worker0(2000 + i, 64);
                    sleep_ms(1);
                }
                _exit(0);
            }
            kill(pid, sig(2));
            waitpid(pid, NULL, 0);
        }
        sleep_ms(200);
        printf("forked %d\n", n);
    } else if (strcmp(mode, "doubleclose") == 0) {
        /* doubleclose VICTIM: like bash, close descriptors twice (harmless in a
         * single-threaded program) in a loop: open VICTIM for appending, close,
         * close again; never write to it. Until stdin closes; prints VICTIM's size. */
        printf("pid %d\n", (int)getpid());
        fflush(stdout);
        struct pollfd p = { .fd = 0, .events = POLLIN };
        for (int i = 0;; i++) {
            int fd = open(argv[2], O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
            close(fd);
            struct timespec gap = { 0, 20000 };        /* some work between the two */
            nanosleep(&gap, NULL);
            close(fd);
            if (i % 16 == 0) {
                site_serve(i % 1024, 64);
                if (poll(&p, 1, 0) > 0)
                    break;
            }
        }
        struct stat st;
        printf("victim size %lld\n", stat(argv[2], &st) == 0 ? (long long)st.st_size : -1LL);
    } else if (strcmp(mode, "hostsigs") == 0) {
        /* The host installs handlers for all three of our signals, with
         * sigaction and signal(); reads them back; we keep control. */
        for (int k = 0; k < 3; k++) {
            struct sigaction sa, old;
            memset(&sa, 0, sizeof sa);
            sa.sa_handler = host_handler;
            sigemptyset(&sa.sa_mask);
            if (k == 1) {
                if (signal(sig(k), host_handler) == SIG_ERR)
                    return 60;
            } else if (sigaction(sig(k), &sa, NULL) != 0) {
                return 61;
            }
            if (sigaction(sig(k), NULL, &old) != 0 || old.sa_handler != host_handler)
                return 62;      /* the host's wish must be what it reads back */
        }
        start();
        for (int i = 0; i < 10; i++)
            site_exit(i, 100);
        snapshot(0);
        stop(1);
        printf("host handler calls %d %d %d\n", (int)host_calls[0], (int)host_calls[1], (int)host_calls[2]);
    } else if (strcmp(mode, "resetrt") == 0) {
        /* The host resets every real-time signal to SIG_DFL, many times,
         * with sigaction and with signal(). Our signals must not kill it. */
        for (int round = 0; round < 50; round++) {
            for (int s = SIGRTMIN; s <= SIGRTMAX; s++) {
                struct sigaction sa;
                memset(&sa, 0, sizeof sa);
                sa.sa_handler = SIG_DFL;
                sigemptyset(&sa.sa_mask);
                if (round % 2 == 0)
                    sigaction(s, &sa, NULL);
                else
                    signal(s, SIG_DFL);
            }
        }
        start();
        for (int i = 0; i < 10; i++)
            site_exit(i, 100);
        snapshot(0);
        stop(1);
        printf("alive\n");
    } else if (strcmp(mode, "dlopen") == 0) {
        /* dlopen ROUNDS: one thread dlopen()s, uses and dlclose()s libraries,
         * two allocate; fixed work, deterministic output. */
        dl_rounds = argc > 2 ? atoi(argv[2]) : 3000;
        pthread_t th[3];
        pthread_create(&th[0], NULL, dlopen_main, NULL);
        pthread_create(&th[1], NULL, dl_alloc_main, (void *)(intptr_t)0);
        pthread_create(&th[2], NULL, dl_alloc_main, (void *)(intptr_t)1);
        for (int t = 0; t < 3; t++)
            pthread_join(th[t], NULL);
        printf("dlopen rounds %d compressions %lu\nallocator bytes %lu %lu\n", dl_rounds, dl_total, dl_bytes[0],
               dl_bytes[1]);
    } else if (strcmp(mode, "distinct") == 0) {
        /* distinct DEPTH: 2^DEPTH distinct stacks under exact mode, each
         * block freed at once; prints the memory before and after. */
        int depth = argc > 2 ? atoi(argv[2]) : 18;
        long rss0, hwm0, rss1, hwm1;
        memory_kb(&rss0, &hwm0);
        start();
        for (uint32_t i = 0; i < (1u << depth); i++)
            path_a(depth, i);
        stop(0);
        memory_kb(&rss1, &hwm1);
        printf("stacks %u\nrss-before %ld\nhwm-before %ld\nrss-after %ld\nhwm-after %ld\n", 1u << depth, rss0,
               hwm0, rss1, hwm1);
    } else if (strcmp(mode, "bigtable") == 0) {
        /* bigtable DEPTH: 2^DEPTH distinct live stacks (a snapshot that
         * takes a while to write), then waits for stdin. SIGTERM exits(9). */
        int depth = argc > 2 ? atoi(argv[2]) : 16;
        signal(SIGTERM, on_term);
        for (uint32_t i = 0; i < (1u << depth); i++)
            keep_a(depth, i);
        printf("pid %d\n", (int)getpid());
        fflush(stdout);
        char buf[256];
        while (read(0, buf, sizeof buf) > 0) {
        }
    } else if (strcmp(mode, "exits") == 0) {
        /* exits exit|_exit|return|abort: 100 blocks at site exit, then leave. */
        for (int i = 0; i < 100; i++)
            site_exit(i, 200);
        const char *how = argc > 2 ? argv[2] : "return";
        printf("leaving by %s\n", how);
        fflush(stdout);
        if (strcmp(how, "exit") == 0)
            exit(3);
        if (strcmp(how, "_exit") == 0)
            _exit(4);
        if (strcmp(how, "abort") == 0)
            abort();
        return 5;
    } else if (strcmp(mode, "latestart") == 0) {
        /* 100 blocks at site exit, then exit(3); a handler of the program's
         * own, run after the shim's at-exit snapshot, asks for a start and a
         * snapshot while the process is going away. */
        for (int i = 0; i < 100; i++)
            site_exit(i, 200);
        atexit(late_start);
        exit(3);
    } else if (strcmp(mode, "waitstdin") == 0) {
        /* umask 000, 100 blocks at site exit, then waits for stdin to close. */
        umask(0);
        for (int i = 0; i < 100; i++)
            site_exit(i, 200);
        printf("pid %d\n", (int)getpid());
        fflush(stdout);
        char buf[256];
        while (read(0, buf, sizeof buf) > 0) {
        }
        return 0;
    } else if (strcmp(mode, "idle") == 0) {
        /* Allocates nothing until told: each line read from stdin makes 10
         * blocks of 300 B at site serve, kept, and answers "ok N". Exits at
         * end of input. A process the shim was loaded into and never asked
         * anything of should pay as little as possible for it. */
        printf("pid %d\n", (int)getpid());
        fflush(stdout);
        return idle_lines();
    } else if (strcmp(mode, "spin") == 0) {
        /* spin MS: runs MS milliseconds without a system call or an
         * allocation (the clock is the vDSO's), writes "spun", then behaves
         * as idle. A signal that arrives while it runs finds no thread
         * waiting and nothing allocating. */
        int ms = argc > 2 ? atoi(argv[2]) : 1000;
        printf("pid %d\n", (int)getpid());
        fflush(stdout);
        struct timespec t0, t;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        volatile unsigned long turns = 0;
        do {
            for (int i = 0; i < 100000; i++)
                turns++;
            clock_gettime(CLOCK_MONOTONIC, &t);
        } while ((t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000 < ms);
        (void)!write(1, "spun\n", 5);
        return idle_lines();
    } else {
        fprintf(stderr, "usage: robust serve|alone|blockrt|prefork|hostsigs|resetrt|dlopen|distinct|bigtable|exits|waitstdin|idle|spin\n");
        return 2;
    }
    return 0;
}
