// End-to-end test program: known allocation sites, driven by the real shim.
//   leaky once   allocate 48 MiB at BIG_SITE and 1 MiB at SMALL_SITE, exit
//   leaky serve  print the pid, then every 5 ms leak 64 KiB at LEAK_SITE and
//                churn 64 KiB at CHURN_SITE, until killed
//   leaky serve scrub-environ   first overwrite the environment strings the
//                process started with, as redis does for its process title
//                (/proc/PID/environ then shows only 'x'), keeping a copy for getenv
//   leaky serve raw-reset       first reset SIGRTMIN+1..+7 to SIG_DFL with the raw
//                rt_sigaction syscall, which the shim's interposed sigaction never sees
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

extern char **environ;

static void *volatile keep[100000];

__attribute__((noinline)) void big_site(int i) {
    keep[i] = malloc(1 << 20); // BIG_SITE
    memset(keep[i], 1, 64);
}
__attribute__((noinline)) void small_site(int i) {
    keep[i] = malloc(1 << 14); // SMALL_SITE
}
__attribute__((noinline)) void leak_site(int i) {
    keep[i % 100000] = malloc(64 << 10); // LEAK_SITE
}
__attribute__((noinline)) void churn_site(void) {
    void *volatile p = malloc(64 << 10); // CHURN_SITE
    free(p);
}

static void scrub_environ(void) {
    int n = 0;
    while (environ[n]) n++;
    char **copy = malloc((n + 1) * sizeof *copy);
    for (int i = 0; i < n; i++) copy[i] = strdup(environ[i]);
    copy[n] = NULL;
    char **original = environ;
    environ = copy;
    for (int i = 0; i < n; i++) memset(original[i], 'x', strlen(original[i]));
}

static void raw_reset(void) {
    unsigned long kernel_sigaction[4] = {0}; // handler SIG_DFL, no flags, empty mask
    for (int sig = SIGRTMIN + 1; sig <= SIGRTMIN + 7; sig++)
        syscall(SYS_rt_sigaction, sig, kernel_sigaction, NULL, sizeof(unsigned long));
}

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "once") == 0) {
        for (int i = 0; i < 48; i++) big_site(i);
        for (int i = 0; i < 64; i++) small_site(1000 + i);
        return 0;
    }
    if (argc > 1 && strcmp(argv[1], "serve") == 0) {
        if (argc > 2 && strcmp(argv[2], "scrub-environ") == 0) scrub_environ();
        if (argc > 2 && strcmp(argv[2], "raw-reset") == 0) raw_reset();
        printf("%d\n", (int)getpid());
        fflush(stdout);
        for (int i = 0;; i++) {
            leak_site(i);
            churn_site();
            usleep(5000);
        }
    }
    fprintf(stderr, "usage: leaky once|serve\n");
    return 2;
}
