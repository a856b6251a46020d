/*
 * timeline.h - memory over time: the series of points.
 *
 * The series belongs to the control side: the writer thread (and the
 * exiting thread, for the AT_EXIT snapshot) fills and reads it, always
 * under the control lock, so it needs no lock of its own. Each point is an
 * exact sum of the live stripes and raises the high (peak.h) when above it.
 * The peak itself (the high and the per-stack copy) is kept by peak.c, on
 * the sampled paths.
 *
 * Above the sampler and the tables (it sums the live stripes), below the
 * snapshot writer (which writes SERS from here, docs/FORMAT.md) and the
 * writer thread (which ticks it).
 */
#ifndef HS_TIMELINE_H
#define HS_TIMELINE_H

#include <stdbool.h>
#include <stdint.h>

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

/* Sampling starts: forget the last session's points, take the first one.
 * Context: control lock held, sampling just started. */
void hs_timeline_start(void);

/* While sampling, at every wake-up of the writer: takes the point that is
 * due (which raises the high when above it) and lowers *timeout_ms to the
 * time left until the next point. Context: writer thread, control lock held. */
void hs_timeline_tick(int *timeout_ms);

/* The points so far (valid until the next call of any hs_timeline_*
 * function). Context: control lock held. */
const struct hs_point *hs_timeline_points(uint32_t *count, uint64_t *interval_ns);

/* Resident set size from /proc/self/statm (no allocation), 0 when unknown.
 * Context: control (writer thread or exiting thread). */
uint64_t hs_timeline_rss(void);

/* Drops the points (stop, after the FINAL snapshot).
 * Context: control lock held. */
void hs_timeline_release(void);

/* Fork child: the copy of the parent's ring is unmapped.
 * Context: fork child, single-threaded. */
void hs_timeline_reset_child(void);

#endif
