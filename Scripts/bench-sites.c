/*
 * The second allocation storm Scripts/bench measures: small blocks from
 * eight call sites, two to five frames deep, each site keeping a ring of
 * recent blocks and freeing the oldest when it allocates (so every block
 * lives for a while and the heap holds a few thousand). No large blocks:
 * the allocator's own work per call is small, so what a profiler adds
 * per call shows at full size. Deterministic: each thread runs its own
 * xorshift generator from a fixed seed.
 *
 * usage: bench-sites THREADS ALLOCATIONS   (the allocations are split among
 * the threads; each is matched by a free; prints a checksum)
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SITES 8
#define RING 512

struct worker {
	uint64_t rng;
	long allocations;
	uint64_t checksum;
	void *ring[SITES][RING];
	unsigned head[SITES];
};

static uint64_t next(struct worker *w)
{
	w->rng ^= w->rng << 13;
	w->rng ^= w->rng >> 7;
	w->rng ^= w->rng << 17;
	return w->rng;
}

/* Allocates at `site` and retires the site's oldest block. */
static __attribute__((noinline)) void keep(struct worker *w, int site, size_t size)
{
	char *p = malloc(size);
	if (!p)
		abort();
	p[0] = (char)size;
	unsigned *h = &w->head[site];
	free(w->ring[site][*h]);
	w->ring[site][*h] = p;
	*h = (*h + 1) % RING;
	w->checksum += size;
}

static __attribute__((noinline)) void parse_header(struct worker *w) { keep(w, 0, 24 + next(w) % 40); }
static __attribute__((noinline)) void parse_body(struct worker *w) { keep(w, 1, 64 + next(w) % 192); }
static __attribute__((noinline)) void parse(struct worker *w)
{
	parse_header(w);
	if (next(w) % 2)
		parse_body(w);
}
static __attribute__((noinline)) void session_token(struct worker *w) { keep(w, 2, 32); }
static __attribute__((noinline)) void session_state(struct worker *w) { keep(w, 3, 128 + next(w) % 128); }
static __attribute__((noinline)) void session(struct worker *w)
{
	session_token(w);
	session_state(w);
}
static __attribute__((noinline)) void row_key(struct worker *w) { keep(w, 4, 16 + next(w) % 16); }
static __attribute__((noinline)) void row_value(struct worker *w) { keep(w, 5, 48 + next(w) % 464); }
static __attribute__((noinline)) void row(struct worker *w)
{
	row_key(w);
	row_value(w);
}
static __attribute__((noinline)) void rows(struct worker *w) { row(w); }
static __attribute__((noinline)) void query(struct worker *w) { rows(w); }
static __attribute__((noinline)) void log_line(struct worker *w) { keep(w, 6, 80 + next(w) % 80); }
static __attribute__((noinline)) void respond(struct worker *w) { keep(w, 7, 256 + next(w) % 256); }

/* One request: seven or eight allocations over the eight sites. */
static __attribute__((noinline)) long request(struct worker *w)
{
	long before = (long)w->checksum;
	parse(w);
	session(w);
	query(w);
	log_line(w);
	respond(w);
	return (long)w->checksum - before;
}

static void *run(void *arg)
{
	struct worker *w = arg;
	long made = 0;
	while (made < w->allocations) {
		request(w);
		made += 8;
	}
	for (int s = 0; s < SITES; s++)
		for (int i = 0; i < RING; i++)
			free(w->ring[s][i]);
	return NULL;
}

int main(int argc, char **argv)
{
	int threads = argc > 1 ? atoi(argv[1]) : 1;
	long allocations = argc > 2 ? atol(argv[2]) : 18000000;
	if (threads < 1 || threads > 64 || allocations < 1) {
		fprintf(stderr, "usage: %s THREADS ALLOCATIONS\n", argv[0]);
		return 2;
	}
	struct worker *workers = calloc((size_t)threads, sizeof *workers);
	if (!workers)
		return 1;
	pthread_t ids[64];
	for (int t = 0; t < threads; t++) {
		workers[t].rng = 0x9E3779B97F4A7C15ull * (uint64_t)(t + 1);
		workers[t].allocations = allocations / threads;
		pthread_create(&ids[t], NULL, run, &workers[t]);
	}
	uint64_t sum = 0;
	for (int t = 0; t < threads; t++) {
		pthread_join(ids[t], NULL);
		sum += workers[t].checksum;
	}
	printf("checksum %llu\n", (unsigned long long)sum);
	free(workers);
	return 0;
}
