/*
 * demo-app.c - a small "server" for Scripts/demo: it handles fake requests
 * forever. Each request allocates a buffer and parses it (churn: freed at
 * once); one request in five replaces an entry of a fixed-size item index
 * (8 MiB live, steady); one in ten is remembered in a session cache that is
 * never pruned (the leak); a stats table is rebuilt now and then.
 * Run it under libheapsnap_preload.so and drive it with kill -s RTMIN+1/3/2.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct session {
    struct session *next;
    char user[48];
    char token[200];
};

static struct session *cache;               /* never pruned: the leak */
static char **stats;
static char *item_index[2048];              /* bounded: 2048 x 4 KiB */
static volatile sig_atomic_t done;

static void on_term(int sig) { (void)sig; done = 1; }

static __attribute__((noinline)) char *read_request(unsigned id)
{
    char *buf = malloc(4096);
    snprintf(buf, 4096, "GET /item/%u HTTP/1.1\r\nUser: user%u\r\n\r\n", id, id % 977);
    return buf;
}

static __attribute__((noinline)) char **parse_headers(const char *req)
{
    char **h = calloc(16, sizeof *h);
    for (int i = 0; i < 4; i++)
        h[i] = strdup(req + i);
    return h;
}

static __attribute__((noinline)) void cache_remember(unsigned id)
{
    struct session *s = malloc(sizeof *s);
    snprintf(s->user, sizeof s->user, "user%u", id % 977);
    memset(s->token, 'x', sizeof s->token);
    s->next = cache;
    cache = s;
}

static __attribute__((noinline)) void index_store(unsigned id, const char *req)
{
    unsigned slot = (id / 5) % 2048;
    free(item_index[slot]);
    item_index[slot] = malloc(4096);
    memcpy(item_index[slot], req, 64);
}

static __attribute__((noinline)) void rebuild_stats(unsigned id)
{
    if (stats) {
        for (int i = 0; i < 64; i++)
            free(stats[i]);
        free(stats);
    }
    stats = malloc(64 * sizeof *stats);
    for (int i = 0; i < 64; i++) {
        stats[i] = malloc(128 + (id + (unsigned)i) % 512);
        memset(stats[i], 0, 128);
    }
}

static void handle(unsigned id)
{
    char *req = read_request(id);
    char **h = parse_headers(req);
    if (id % 5 == 0)
        index_store(id, req);
    if (id % 10 == 0)
        cache_remember(id);
    for (int i = 0; i < 4; i++)
        free(h[i]);
    free(h);
    free(req);
    if (id % 1000 == 0)
        rebuild_stats(id);
}

int main(void)
{
    signal(SIGTERM, on_term);
    printf("demo-app: pid %d, serving\n", (int)getpid());
    fflush(stdout);
    struct timespec pause = { 0, 100000 };  /* 0.1 ms between bursts */
    for (unsigned id = 1; !done; id++) {
        handle(id);
        if (id % 50 == 0)
            nanosleep(&pause, NULL);
    }
    printf("demo-app: stopped\n");
    return 0;
}
