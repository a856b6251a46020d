/*
 * prefork.c - a pre-fork server in miniature, for ShimTests ("Services").
 *
 * The master keeps 100 blocks of 64 B at site master, forks two workers and
 * then reads commands on stdin, one per line:
 *   spawn      fork one more worker
 *   retire K   end worker K (SIGTERM); the master forks a replacement, as a
 *              server recycles a worker after max_requests
 * and, when stdin closes, ends every worker and exits 0 if each exited 0.
 * Every fork prints "worker K PID" (a replacement: "worker K PID replaces J").
 *
 * Worker K frees half of the master's blocks it inherited (they are not its
 * samples), then every 2 ms allocates one block of 1000 + 16 K bytes at site
 * worker and keeps the newest 400 (freeing the oldest): in exact mode every
 * in-use sample of its snapshots at site worker is 1000 + 16 K bytes, so a
 * test can tell whose allocations a snapshot holds.
 */
#define _GNU_SOURCE
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define SITE __attribute__((noinline, used, section("hs_sites"), aligned(4096)))
#define KEEP 400
#define MAX_WORKERS 64

static void *volatile master_blocks[100];
static void *volatile kept[KEEP];

SITE void site_master(int i) { master_blocks[i] = malloc(64); }
SITE void site_worker(int i, size_t n) { kept[i] = malloc(n); }

static volatile sig_atomic_t over;
static void on_term(int sig) { (void)sig; over = 1; }

static int worker(int k)
{
    struct sigaction sa = { 0 };
    sa.sa_handler = on_term;
    sigaction(SIGTERM, &sa, NULL);
    for (int i = 0; i < 100; i += 2)
        free(master_blocks[i]);
    struct timespec tick = { 0, 2 * 1000 * 1000 };
    for (int i = 0; !over; i++) {
        free(kept[i % KEEP]);
        site_worker(i % KEEP, 1000 + 16 * (size_t)k);
        nanosleep(&tick, NULL);
    }
    return 0;
}

static pid_t pids[MAX_WORKERS];
static int workers;

static void spawn(int replaces)
{
    if (workers == MAX_WORKERS)
        return;
    int k = workers++;
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0)
        _exit(worker(k));
    pids[k] = pid;
    if (replaces >= 0)
        printf("worker %d %d replaces %d\n", k, (int)pid, replaces);
    else
        printf("worker %d %d\n", k, (int)pid);
    fflush(stdout);
}

int main(void)
{
    printf("site master %p\nsite worker %p\n", (void *)site_master, (void *)site_worker);
    for (int i = 0; i < 100; i++)
        site_master(i);
    printf("master %d\n", (int)getpid());
    spawn(-1);
    spawn(-1);
    int bad = 0;
    char line[64];
    while (fgets(line, sizeof line, stdin)) {
        int k;
        if (strncmp(line, "spawn", 5) == 0) {
            spawn(-1);
        } else if (sscanf(line, "retire %d", &k) == 1 && k >= 0 && k < workers && pids[k] > 0) {
            int status = 0;
            kill(pids[k], SIGTERM);
            waitpid(pids[k], &status, 0);
            bad += !WIFEXITED(status) || WEXITSTATUS(status) != 0;
            pids[k] = 0;
            spawn(k);
        }
    }
    for (int k = 0; k < workers; k++) {
        if (pids[k] <= 0)
            continue;
        int status = 0;
        kill(pids[k], SIGTERM);
        waitpid(pids[k], &status, 0);
        bad += !WIFEXITED(status) || WEXITSTATUS(status) != 0;
    }
    printf("workers exited, %d bad\n", bad);
    return bad;
}
