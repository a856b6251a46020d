/*
 * clock.h - the time in nanoseconds.
 */
#ifndef HS_CLOCK_H
#define HS_CLOCK_H

#include <stdint.h>
#include <time.h>

/* CLOCK_REALTIME for what a snapshot records, CLOCK_MONOTONIC for deadlines.
 * Context: any (clock_gettime is async-signal-safe). */
static inline uint64_t hs_now_ns(clockid_t clk)
{
    struct timespec ts;
    clock_gettime(clk, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

#endif
