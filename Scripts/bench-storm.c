/*
 * The allocation storm Scripts/bench measures: tens of millions of malloc
 * family calls of mixed sizes (16 B to 8 MiB) from several call sites a few
 * frames deep. Short-lived temporaries, long-lived survivors replaced at
 * random, realloc chains, calloc and aligned allocations. Deterministic:
 * each thread runs its own xorshift generator from a fixed seed.
 *
 * usage: bench-storm THREADS ROUNDS   (prints a checksum so nothing is elided)
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SURVIVORS 4096

struct worker {
	uint64_t rng;
	long rounds;
	uint64_t checksum;
	void *survivors[SURVIVORS];
};

static uint64_t next(struct worker *w)
{
	w->rng ^= w->rng << 13;
	w->rng ^= w->rng >> 7;
	w->rng ^= w->rng << 17;
	return w->rng;
}

/* Mostly small blocks, a tail of medium ones, rarely a large one. */
static size_t pick_size(struct worker *w)
{
	uint64_t r = next(w);
	switch (r % 1000) {
	case 0:
		return (size_t)1 << (20 + (r >> 20) % 4); /* 1-8 MiB */
	case 1 ... 30:
		return 4096 + (r >> 12) % 61440; /* 4-64 KiB */
	default:
		return 16 + (r >> 12) % 496; /* 16-511 B */
	}
}

static __attribute__((noinline)) void *leaf_alloc(struct worker *w, size_t size)
{
	void *p = malloc(size);
	if (p)
		((volatile char *)p)[0] = (char)size;
	(void)w;
	return p;
}

static __attribute__((noinline)) void temporaries(struct worker *w)
{
	for (int i = 0; i < 8; i++) {
		void *p = leaf_alloc(w, pick_size(w));
		w->checksum += (uintptr_t)p & 0xff;
		free(p);
	}
}

static __attribute__((noinline)) void replace_survivor(struct worker *w)
{
	size_t slot = next(w) % SURVIVORS;
	free(w->survivors[slot]);
	w->survivors[slot] = calloc(1, pick_size(w) / 2 + 1);
}

static __attribute__((noinline)) void realloc_chain(struct worker *w)
{
	size_t size = 16;
	char *p = NULL;
	for (int i = 0; i < 6; i++) {
		size = size * 2 + next(w) % 64;
		char *q = realloc(p, size);
		if (!q)
			break;
		p = q;
		p[size - 1] = 1;
	}
	free(p);
}

static __attribute__((noinline)) void aligned(struct worker *w)
{
	void *p = NULL;
	if (posix_memalign(&p, 64, pick_size(w)) == 0)
		free(p);
	p = aligned_alloc(4096, 4096 * (1 + next(w) % 4));
	free(p);
}

static __attribute__((noinline)) void request(struct worker *w)
{
	temporaries(w);
	replace_survivor(w);
	if (next(w) % 4 == 0)
		realloc_chain(w);
	if (next(w) % 16 == 0)
		aligned(w);
}

static void *run(void *arg)
{
	struct worker *w = arg;
	for (long i = 0; i < w->rounds; i++)
		request(w);
	for (int i = 0; i < SURVIVORS; i++)
		free(w->survivors[i]);
	return NULL;
}

int main(int argc, char **argv)
{
	int threads = argc > 1 ? atoi(argv[1]) : 1;
	long rounds = argc > 2 ? atol(argv[2]) : 1000000;
	if (threads < 1 || threads > 64 || rounds < 1) {
		fprintf(stderr, "usage: %s THREADS ROUNDS\n", argv[0]);
		return 2;
	}
	struct worker *workers = calloc((size_t)threads, sizeof *workers);
	pthread_t ids[64];
	for (int t = 0; t < threads; t++) {
		workers[t].rng = 0x9E3779B97F4A7C15ull * (uint64_t)(t + 1);
		workers[t].rounds = rounds / threads;
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
