/*
 * The cost of one stack capture, fast walk against libunwind: a loop over
 * hs_unwind() (CShim/tables/unwind.c) at the bottom of a recursion of DEPTH frames
 * (DEPTH + 6 frames in all, with main and the C runtime's).
 *
 * Built against the shim's sources, not the preloaded library (hs_unwind is
 * internal):
 *   cc -O2 -g -ICShim -o /tmp/bench-unwind Scripts/bench-unwind.c \
 *      CShim/tables/unwind.c CShim/base/options.c CShim/base/stderr.c -lunwind -lm
 * usage: bench-unwind fast|libunwind CAPTURES DEPTH
 * Prints the frames per capture and the nanoseconds per capture (take the
 * best of a few runs: the figure is a latency, and other load only adds).
 */
#define _GNU_SOURCE
#include "tables/unwind.h"
#include "base/options.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static long captures;

static double now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

__attribute__((noinline)) static void leaf(void)
{
	void *buf[256];
	int n = 0;
	double t0 = now();
	for (long i = 0; i < captures; i++) {
		n = hs_unwind(buf, 256);
		__asm__ volatile("" : : "r"(buf) : "memory");
	}
	double t = now() - t0;
	printf("%s: %d frames, %.1f ns per capture\n",
	       hs_opt.unwind == HS_UNWIND_FAST ? "fast" : "libunwind", n, t / (double)captures * 1e9);
}

__attribute__((noinline)) static void descend(int depth)
{
	if (depth == 0)
		leaf();
	else
		descend(depth - 1);
	__asm__ volatile("");       /* not a tail call: one frame per level */
}

int main(int argc, char **argv)
{
	if (argc != 4 || (strcmp(argv[1], "fast") != 0 && strcmp(argv[1], "libunwind") != 0)) {
		fprintf(stderr, "usage: bench-unwind fast|libunwind CAPTURES DEPTH\n");
		return 2;
	}
	hs_opt.unwind = strcmp(argv[1], "fast") == 0 ? HS_UNWIND_FAST : HS_UNWIND_LIBUNWIND;
	captures = atol(argv[2]);
	descend(atoi(argv[3]));
	return 0;
}
