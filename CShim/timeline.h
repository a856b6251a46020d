/*
 * timeline.h - memory over time: the peak table and the series of points.
 *
 * Both belong to the control side: the writer thread (and the exiting
 * thread, for the AT_EXIT snapshot) fills and reads them, always under the
 * control lock, so they need no lock of their own. What the sampling
 * threads do for them is in the sampler (hs_inuse_total, the peak trigger)
 * and the live table (per-stripe sums): additions on the sampled paths only.
 *
 * Above the sampler and the tables (it walks the live table and reads the
 * stacks' alloc groups), below the snapshot writer (which writes PEAK and
 * SERS from here, docs/FORMAT.md 1.2) and the writer thread (which ticks it).
 */
#ifndef HS_TIMELINE_H
#define HS_TIMELINE_H

#include <stdbool.h>
#include <stdint.h>

#include "stacks.h"

/* One PEAK entry: a stack id (not yet its STKS index) and its groups. */
struct hs_peak_entry {
    uint32_t stack;
    struct hs_group inuse, alloc;
};

/* The last peak copy: empty (count 0, bytes 0) until the first one. */
struct hs_peak {
    uint64_t time_ns;           /* CLOCK_REALTIME of the copy */
    double bytes, bytes_var;    /* sums of the entries' in-use bytes and bytes_var */
    uint32_t count;
    const struct hs_peak_entry *entries;
};

/* One SERS point (40 bytes in the file). */
struct hs_point {
    uint64_t time_ns;           /* CLOCK_REALTIME */
    double inuse_bytes, inuse_bytes_var, alloc_bytes;
    uint64_t rss_bytes;         /* /proc/self/statm, 0 when unknown */
};

/* The ring: at most HS_SERIES_CAP points; when full, every other point is
 * dropped and the spacing doubles. */
#define HS_SERIES_CAP 2048
#define HS_SERIES_INTERVAL_NS 100000000ull

/* Sampling starts: forget the last session's peak and points, take the
 * first point. Context: control lock held, sampling just started. */
void hs_timeline_start(void);

/* While sampling, at every wake-up of the writer: takes the peak copy a
 * sampling thread asked for (or one the estimate has earned since the last
 * copy, at most once per point), and the point that is due. Lowers
 * *timeout_ms to the time left until the next point.
 * Context: writer thread, control lock held. */
void hs_timeline_tick(int *timeout_ms);

/* Reads the last peak copy and the points so far (valid until the next
 * call of any hs_timeline_* function). Context: control lock held. */
void hs_timeline_peak(struct hs_peak *out);
const struct hs_point *hs_timeline_points(uint32_t *count, uint64_t *interval_ns);

/* Resident set size from /proc/self/statm (no allocation), 0 when unknown.
 * Context: control (writer thread or exiting thread). */
uint64_t hs_timeline_rss(void);

/* Drops the peak table and the points (stop, after the FINAL snapshot).
 * Context: control lock held. */
void hs_timeline_release(void);

/* Fork child: the copies of the parent's tables are unmapped.
 * Context: fork child, single-threaded. */
void hs_timeline_reset_child(void);

#endif
