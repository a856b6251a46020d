// End-to-end test program: known allocation sites, driven by the real shim.
//   leaky once   allocate 48 MiB at BIG_SITE and 1 MiB at SMALL_SITE, exit
//   leaky serve  print the pid, then every 5 ms leak 64 KiB at LEAK_SITE and
//                churn 64 KiB at CHURN_SITE, until killed
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "once") == 0) {
        for (int i = 0; i < 48; i++) big_site(i);
        for (int i = 0; i < 64; i++) small_site(1000 + i);
        return 0;
    }
    if (argc > 1 && strcmp(argv[1], "serve") == 0) {
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
