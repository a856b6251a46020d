/*
 * timeline.c - the peak table and the series of points (docs/FORMAT.md
 * PEAK and SERS), kept by the control side while sampling.
 *
 * Peak. The sampling threads keep the in-use units of the live sampled
 * blocks per live stripe, publish them to one running number,
 * hs_inuse_total (sampler.h), in steps of at most 64 KiB per stripe, and
 * trip the peak trigger when it passes the last copy by max(5%, 2 x rate).
 * Series points sum the stripes themselves (hs_live_sums). The copy is
 * taken here, on the writer thread, woken by a byte: one walk of the live
 * table (a stripe at a time, as a snapshot does), summed per stack into a
 * scratch array indexed by stack id, then compacted into the peak table
 * (aggregated per stack, with each stack's alloc group of the moment). The
 * table is mapped under HEAPSNAP_MAX_MEMORY and replaced only by a copy
 * whose total is higher, so it only ever holds the highest state seen.
 * The trigger's margin keeps copies rare (one per 5% of growth); between
 * triggers, each series point that finds the estimate above the last copy
 * is followed by a copy (at most one per point, 10 a second), so the table
 * is never more than one point behind the real high-water mark, and not
 * below any point while memory grows.
 *
 * The copy is a fuzzy view like a snapshot taken while sampling continues
 * (DESIGN.md): blocks freed and allocated in different stripes during the
 * walk may both be seen or both missed. Its time is when the walk ran,
 * microseconds to a millisecond after the trigger.
 *
 * Series. At most HS_SERIES_CAP points, one every interval (100 ms at
 * start); a full ring keeps every other point and doubles the interval, so
 * the points always span the whole session evenly. RSS comes from
 * /proc/self/statm, read into a stack buffer (no allocation).
 *
 * Context: everything here runs under the control lock (writer thread, or
 * the exiting thread for AT_EXIT), so the state below has no lock of its own.
 */
#define _GNU_SOURCE
#include "timeline.h"
#include "sampler.h"
#include "live.h"
#include "stacks.h"
#include "mem.h"

#include <fcntl.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Protected by the control lock. */
static struct {
    struct hs_peak_entry *entries;  /* accounted mapping, `size` bytes */
    size_t size;
    uint32_t count;
    uint64_t time_ns;
    double bytes, bytes_var;
    int64_t units;                  /* in-use units of the copy (compared with each point's) */
} peak;

static struct {
    struct hs_point *p;             /* accounted mapping of HS_SERIES_CAP points, or NULL */
    uint32_t n;
    uint64_t interval_ns;           /* spacing now */
    uint64_t next_ns;               /* CLOCK_MONOTONIC deadline of the next point */
} ser;

static uint64_t now_ns(clockid_t clk)
{
    struct timespec ts;
    clock_gettime(clk, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* ------------------------------------------------------------------ peak */

struct walk {
    struct hs_group *g;             /* per stack id */
    uint32_t n;
    int64_t units;
};

/* Context: writer, inside hs_live_foreach (a live stripe lock held). */
static void add_live(void *arg, uint64_t size, uint32_t stack)
{
    struct walk *c = arg;
    if (stack >= c->n)
        return;                     /* a stack made after we counted: its block counts next time */
    struct hs_weights w;
    hs_weights(size, &w);
    hs_group_add(&c->g[stack], &w);
    c->units += hs_inuse_units(w.bytes);
}

static void drop_peak(void)
{
    if (peak.entries)
        hs_unmap(peak.entries, peak.size, true);
    memset(&peak, 0, sizeof peak);
}

/* Copies the per-stack in-use values of now into the peak table, if they
 * are above the last copy, and re-arms the trigger. Context: control lock. */
static void take_peak(void)
{
    int64_t high = peak.units;
    uint32_t n = hs_stack_count();
    size_t gsize = (size_t)n * sizeof(struct hs_group);
    struct hs_group *g = n ? hs_map(gsize, false) : NULL;   /* scratch, like the writer's buffers */
    if (g) {
        struct walk c = { g, n, 0 };
        hs_live_foreach(add_live, &c);
        hs_live_flush_alloc();  /* after the live walk: a block seen live has its sample in alloc */
        uint32_t count = 0;
        for (uint32_t i = 0; i < n; i++)
            count += g[i].samples != 0;
        if (c.units > peak.units && count) {
            size_t size = (size_t)count * sizeof(struct hs_peak_entry);
            struct hs_peak_entry *e = hs_map(size, true);
            if (e) {
                double bytes = 0, var = 0;
                uint32_t k = 0;
                for (uint32_t i = 0; i < n && k < count; i++) {
                    if (!g[i].samples)
                        continue;
                    const struct hs_stack *s = hs_stack_get(i);
                    if (!s)
                        continue;
                    e[k].stack = i;
                    e[k].inuse = g[i];
                    hs_stack_read_alloc(s, &e[k].alloc);
                    bytes += g[i].bytes;
                    var += g[i].bytes_var;
                    k++;
                }
                drop_peak();
                peak.entries = e;
                peak.size = size;
                peak.count = k;
                peak.time_ns = now_ns(CLOCK_REALTIME);
                peak.bytes = bytes;
                peak.bytes_var = var;
                peak.units = c.units;
            }
            /* Over budget: the last copy stays; wait for the next margin
             * before trying again rather than walking on every sample. */
            high = c.units;
        }
        hs_unmap(g, gsize, false);
    }
    hs_peak_arm(high > peak.units ? high : peak.units);
}

void hs_timeline_peak(struct hs_peak *out)
{
    out->time_ns = peak.time_ns;
    out->bytes = peak.bytes;
    out->bytes_var = peak.bytes_var;
    out->count = peak.count;
    out->entries = peak.entries;
}

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

static void take_point(struct hs_point *pt)
{
    pt->time_ns = now_ns(CLOCK_REALTIME);
    int64_t units;
    hs_live_sums(&units, &pt->inuse_bytes_var, &pt->alloc_bytes);
    pt->inuse_bytes = units > 0 ? (double)units : 0;
    pt->rss_bytes = hs_timeline_rss();
}

/* Appends a point, thinning a full ring first; returns the in-use units
 * it found. */
static int64_t add_point(void)
{
    if (!ser.p) {
        ser.p = hs_map(HS_SERIES_CAP * sizeof *ser.p, true);
        if (!ser.p) {               /* over budget: snapshots carry their own point only */
            struct hs_point pt;
            take_point(&pt);
            return (int64_t)pt.inuse_bytes;
        }
    }
    if (ser.n == HS_SERIES_CAP) {
        for (uint32_t i = 0; i < HS_SERIES_CAP / 2; i++)
            ser.p[i] = ser.p[2 * i];
        ser.n = HS_SERIES_CAP / 2;
        ser.interval_ns *= 2;
    }
    struct hs_point *pt = &ser.p[ser.n++];
    take_point(pt);
    return (int64_t)pt->inuse_bytes;
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
    ser.next_ns = now_ns(CLOCK_MONOTONIC) + ser.interval_ns;
    add_point();
}

void hs_timeline_tick(int *timeout_ms)
{
    if (hs_peak_wanted())
        take_peak();
    uint64_t now = now_ns(CLOCK_MONOTONIC);
    if (now >= ser.next_ns) {
        /* Growth below the trigger's margin since the last copy: copied
         * after the point, so that while memory grows the peak table is
         * never below the series. */
        int64_t at_point = add_point();
        if (at_point > peak.units)
            take_peak();
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
    drop_peak();
    if (ser.p)
        hs_unmap(ser.p, HS_SERIES_CAP * sizeof *ser.p, true);
    memset(&ser, 0, sizeof ser);
}

void hs_timeline_reset_child(void)
{
    hs_timeline_release();
}
