/*
 * timeline.c - the series of points (docs/FORMAT.md SERS), kept by the
 * control side while sampling.
 *
 * At most HS_SERIES_CAP points, one every interval (100 ms at start); a
 * full ring keeps every other point and doubles the interval, so the
 * points always span the whole session evenly. A point sums the live
 * stripes (hs_live_sums) and hands its total to the high (peak.h), so the
 * high is never below a point, and to hs_peak_settled, which copies a peak
 * the program holds (the high unchanged since the last point) when the
 * estimate is still above the last copy. RSS comes from /proc/self/statm,
 * read into a stack buffer (no allocation).
 *
 * The peak is not kept here: the high and the per-stack copy are taken on
 * the allocating thread (peak.c), at the moment the estimate passes them.
 *
 * Context: everything here runs under the control lock (writer thread, or
 * the exiting thread for AT_EXIT), so the state below has no lock of its own.
 */
#define _GNU_SOURCE
#include "snapshot/timeline.h"
#include "sampling/peak.h"
#include "tables/live.h"
#include "base/mem.h"
#include "base/clock.h"

#include <fcntl.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Protected by the control lock. */
static struct {
    struct hs_point *p;             /* accounted mapping of HS_SERIES_CAP points, or NULL */
    uint32_t n;
    uint64_t interval_ns;           /* spacing now */
    uint64_t next_ns;               /* CLOCK_MONOTONIC deadline of the next point */
} ser;

/* ---------------------------------------------------------------- series */

/* Parses the second field of /proc/self/statm (resident pages). */
uint64_t hs_timeline_rss(void)
{
    int fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    char b[128];
    ssize_t n = read(fd, b, sizeof b - 1);
    close(fd);
    if (n <= 0)
        return 0;
    b[n] = 0;
    const char *p = b;
    while (*p >= '0' && *p <= '9')
        p++;
    while (*p == ' ')
        p++;
    uint64_t pages = 0;
    if (*p < '0' || *p > '9')
        return 0;
    while (*p >= '0' && *p <= '9')
        pages = pages * 10 + (uint64_t)(*p++ - '0');
    return pages * (uint64_t)getpagesize();
}

/* Takes a point; its total may raise the high (an exact sum of the stripes).
 * Returns that total. */
static int64_t take_point(struct hs_point *pt)
{
    pt->time_ns = hs_now_ns(CLOCK_REALTIME);
    int64_t units;
    hs_live_sums(&units, &pt->inuse_bytes_var, &pt->alloc_bytes);
    pt->inuse_bytes = units > 0 ? (double)units : 0;
    pt->rss_bytes = hs_timeline_rss();
    hs_peak_note(units, pt->inuse_bytes_var, pt->time_ns);
    return units;
}

/* Appends a point, thinning a full ring first; returns its in-use units. */
static int64_t add_point(void)
{
    if (!ser.p) {
        ser.p = hs_map(HS_SERIES_CAP * sizeof *ser.p, true);
        if (!ser.p) {               /* over budget: snapshots carry their own point only */
            struct hs_point pt;
            return take_point(&pt);
        }
    }
    if (ser.n == HS_SERIES_CAP) {
        for (uint32_t i = 0; i < HS_SERIES_CAP / 2; i++)
            ser.p[i] = ser.p[2 * i];
        ser.n = HS_SERIES_CAP / 2;
        ser.interval_ns *= 2;
    }
    return take_point(&ser.p[ser.n++]);
}

const struct hs_point *hs_timeline_points(uint32_t *count, uint64_t *interval_ns)
{
    *count = ser.p ? ser.n : 0;
    *interval_ns = ser.interval_ns ? ser.interval_ns : HS_SERIES_INTERVAL_NS;
    return ser.p;
}

/* ------------------------------------------------------------- lifecycle */

void hs_timeline_start(void)
{
    hs_timeline_release();
    ser.interval_ns = HS_SERIES_INTERVAL_NS;
    ser.next_ns = hs_now_ns(CLOCK_MONOTONIC) + ser.interval_ns;
    add_point();
}

void hs_timeline_tick(int *timeout_ms)
{
    uint64_t now = hs_now_ns(CLOCK_MONOTONIC);
    if (now >= ser.next_ns) {
        hs_peak_settled(add_point());   /* a held peak: copied at its plateau */
        ser.next_ns += ser.interval_ns;
        if (ser.next_ns <= now)
            ser.next_ns = now + ser.interval_ns;
    }
    uint64_t wait_ms = (ser.next_ns - now + 999999) / 1000000;
    if (timeout_ms && wait_ms < (uint64_t)*timeout_ms)
        *timeout_ms = (int)wait_ms;
}

void hs_timeline_release(void)
{
    if (ser.p)
        hs_unmap(ser.p, HS_SERIES_CAP * sizeof *ser.p, true);
    memset(&ser, 0, sizeof ser);
}

void hs_timeline_reset_child(void)
{
    hs_timeline_release();
}
