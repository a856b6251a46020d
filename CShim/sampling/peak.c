/*
 * peak.c - the running maximum of the in-use estimate and the peak copy,
 * taken on the allocating thread (see peak.h and CShim/DESIGN.md, "Memory
 * over time: the peak and the series").
 *
 * The high. After a publish that raises the total to within the slack of
 * the high, the estimate is summed exactly over the 64 stripes (or, when
 * every change publishes, the total is exact already) and, if higher,
 * becomes the high, with the variance of the moment and its time. Series
 * points, snapshots and copies, which sum the stripes themselves, raise it
 * too (hs_peak_note). So the high is the estimate's running maximum, up to
 * how far the estimate moves between two publishes (less than 2 x slack,
 * in practice about one step).
 *
 * The copy. The trigger is armed at high + max(5% of high, 2 x rate),
 * minus twice the slack (at most half the margin): a publish that cannot
 * see the stripes' residues still trips it before the estimate is more
 * than the margin above the last copy. The thread that swaps the trigger
 * for HS_PEAK_WANTED copies, once out of its stripe: under copy_lock it
 * maps the scratch (one group per stack id, with headroom for stacks made
 * meanwhile), bumps the copy generation (the copy's moment) and saves each
 * stripe into the scratch under that stripe's lock, unless a thread that
 * was about to change the stripe saved it first (hs_peak_before_change).
 * Then the stripes' pending alloc counts are flushed (a block seen live has
 * its sample in its stack's alloc group), and if the copy's total is above
 * the peak table's, a new table is filled (in-use from the scratch, alloc
 * of the moment) and replaces it. Re-armed above the higher of the two; if
 * the estimate has meanwhile passed the new trigger (other threads
 * allocating during a long walk), the copy is taken again at once (at most
 * a few times).
 *
 * Memory: the peak table (88 B per stack live at the peak) is mapped under
 * HEAPSNAP_MAX_MEMORY and kept; a new one exists beside it only while it
 * replaces it. The scratch (40 B per stack id) is mapped for the copy and
 * unmapped after it, outside the budget like a snapshot's buffers. Over
 * budget, the copy is skipped and the trigger re-armed above the high.
 *
 * Locks: copy_lock before any live stripe (the copy; hs_peak_read; cycled
 * by quiesce, held across fork); scratch_lock and high_lock are leaves
 * under a live stripe lock. Nothing here allocates with malloc.
 */
#define _GNU_SOURCE
#include "sampling/peak.h"
#include "tables/live.h"
#include "tables/stacks.h"
#include "base/mem.h"
#include "base/options.h"
#include "base/lock.h"
#include "base/session_gate.h"

#include <string.h>
#include <time.h>

#define HS_STEP_MIN ((int64_t)4 << 10)
#define HS_STEP_MAX ((int64_t)64 << 10)
#define HS_RECOPIES 4

struct hs_peak_state hs_peak_state;
struct hs_peak_total hs_peak_total;

/* The high's units are hs_peak_total.high; its time and variance here.
 * Written under high_lock (a leaf), read under it by hs_peak_high. */
static hs_lock_t high_lock = HS_LOCK_INIT;
static struct {
    uint64_t time_ns;
    double var;
} high;

/* The scratch, one group per stack id: mapped under copy_lock before a
 * copy's generation is published, unmapped after its walk; the groups and
 * `units` are written under scratch_lock while the copy is under way (by
 * the copier and by threads saving their stripe), read by the copier after
 * its walk. */
static hs_lock_t scratch_lock = HS_LOCK_INIT;
static struct {
    struct hs_group *g;
    size_t size;
    uint32_t cap;
    int64_t units;          /* in-use units of the entries saved into slots */
} scratch;

/* The peak table: the last copy, replaced by a copy that is higher.
 * Protected by copy_lock. */
struct table {
    struct hs_peak_entry *e;
    size_t size;
    uint32_t count;
    uint64_t time_ns;
    double bytes, var;
    int64_t units;
};
static hs_lock_t copy_lock = HS_LOCK_INIT;
static struct table cur;
static int64_t cur_units;       /* cur.units, for hs_peak_settled to read without copy_lock (relaxed) */
static int64_t settled_high;    /* control only: the high at the last series point */

static uint64_t realtime_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* ------------------------------------------------------------------ high */

static void raise_high(int64_t units, double var, uint64_t time_ns)
{
    hs_lock(&high_lock);
    if (units > hs_peak_total.high) {
        __atomic_store_n(&hs_peak_total.high, units, __ATOMIC_RELAXED);
        high.time_ns = time_ns;
        high.var = var > 0 ? var : 0;
    }
    hs_unlock(&high_lock);
}

void hs_peak_note(int64_t units, double var, uint64_t time_ns)
{
    if (units > __atomic_load_n(&hs_peak_total.high, __ATOMIC_RELAXED))
        raise_high(units, var, time_ns);
}

void hs_peak_high(struct hs_high *out)
{
    hs_lock(&high_lock);
    out->units = __atomic_load_n(&hs_peak_total.high, __ATOMIC_RELAXED);
    out->time_ns = high.time_ns;
    out->var = high.var;
    hs_unlock(&high_lock);
}

/* The stripes' exact in-use units (read without their locks: each is
 * current as of its last change) and, wanted, their variance. */
static int64_t stripes_units(void)
{
    int64_t units = 0;
    for (int i = 0; i < HS_LIVE_STRIPES; i++)
        units += __atomic_load_n(&hs_live_stripes[i].inuse_units, __ATOMIC_RELAXED);
    return units;
}

static double stripes_var(void)
{
    double var = 0;
    for (int i = 0; i < HS_LIVE_STRIPES; i++) {
        double v;
        __atomic_load(&hs_live_stripes[i].inuse_var, &v, __ATOMIC_RELAXED);
        var += v;
    }
    return var;
}

/* Context: sampled path, a live stripe locked (peak.h, hs_peak_add). */
bool hs_peak_rise(int64_t now)
{
    int64_t e = now;
    if (__atomic_load_n(&hs_peak_state.slack, __ATOMIC_RELAXED))
        e = stripes_units();    /* the published total may trail: sum exactly */
    if (e > __atomic_load_n(&hs_peak_total.high, __ATOMIC_RELAXED))
        raise_high(e, hs_opt.rate <= 1 ? 0 : stripes_var(), realtime_ns());
    int64_t next = __atomic_load_n(&hs_peak_state.next, __ATOMIC_RELAXED);
    return e >= next && next != HS_PEAK_WANTED &&
           __atomic_compare_exchange_n(&hs_peak_state.next, &next, HS_PEAK_WANTED, false,
                                       __ATOMIC_ACQ_REL, __ATOMIC_RELAXED);
}

/* --------------------------------------------------------------- trigger */

/* The next copy is due when the estimate passes high by max(5%, 2 x rate),
 * less twice the slack (at most half of that margin), as seen at a publish.
 * Context: copy_lock held, or quiesced (start). */
static void arm(int64_t high_units)
{
    int64_t rate = (int64_t)(hs_opt.rate > (1ull << 40) ? 1ull << 40 : hs_opt.rate);
    int64_t margin = high_units / 20;
    if (margin < 2 * rate)
        margin = 2 * rate;
    int64_t step = high_units / 16384;
    if (step < HS_STEP_MIN)
        step = HS_STEP_MIN;
    if (step > HS_STEP_MAX || rate >= HS_STEP_MAX)
        step = HS_STEP_MAX;
    /* A sample weighs at least the rate: at or above the step, every
     * change publishes and the total is exact. */
    int64_t slack = rate >= step ? 0 : HS_LIVE_STRIPES * step;
    int64_t early = 2 * slack;
    if (early > margin / 2)
        early = margin / 2;
    __atomic_store_n(&hs_peak_state.bias, (uint64_t)step - 1, __ATOMIC_RELAXED);
    __atomic_store_n(&hs_peak_state.width, 2 * (uint64_t)step - 2, __ATOMIC_RELAXED);
    __atomic_store_n(&hs_peak_state.slack, slack, __ATOMIC_RELAXED);
    __atomic_store_n(&hs_peak_state.next, high_units + margin - early, __ATOMIC_RELEASE);
}

/* ------------------------------------------------------------------ copy */

/* Adds every live record of st to the scratch, in place (no call per
 * record: in exact mode a copy walks every live block).
 * Context: st locked, scratch_lock held. */
static void save_stripe(const struct hs_live_stripe *st)
{
    bool exact = hs_opt.rate <= 1;
    int64_t units = 0;
    for (size_t j = 0; j < st->cap; j++) {
        const struct hs_live_entry *e = &st->slots[j];
        if (!e->addr || e->stack >= scratch.cap)
            continue;           /* empty, or a stack made after the copy was sized: left out */
        struct hs_group *g = &scratch.g[e->stack];
        if (exact) {            /* weights s and 1, no variance (objects = samples, set by install) */
            g->samples++;
            g->bytes += (double)e->size;
            units += (int64_t)e->size;
        } else {
            struct hs_weights w;
            hs_weights(e->size, &w);
            hs_group_add(g, &w);
            units += hs_inuse_units(w.bytes);
        }
    }
    scratch.units += units;
}

void hs_peak_save(struct hs_live_stripe *st)
{
    uint32_t gen = __atomic_load_n(&hs_peak_state.gen, __ATOMIC_ACQUIRE);
    if (st->copied_gen == gen)
        return;
    if (st->count) {
        hs_lock(&scratch_lock);
        save_stripe(st);
        hs_unlock(&scratch_lock);
    }
    st->copied_gen = gen;
}

/* Maps the scratch for one copy: `want` groups, zeroed. Unaccounted, like
 * a snapshot's buffers: it exists only while a copy runs, and only the
 * pages of the stack ids met are touched.
 * Context: copy_lock held, no copy under way. */
static bool scratch_map(uint32_t want)
{
    size_t size = (size_t)want * sizeof(struct hs_group);
    struct hs_group *g = hs_map(size, false);
    if (!g)
        return false;
    scratch.g = g;
    scratch.size = size;
    scratch.cap = want;
    scratch.units = 0;
    return true;
}

/* Context: copy_lock held, every stripe saved (no thread writes the scratch). */
static void scratch_unmap(void)
{
    hs_unmap(scratch.g, scratch.size, false);
    memset(&scratch, 0, sizeof scratch);
}

/* Turns the scratch into the peak table if its total is higher.
 * Context: copy_lock held, every stripe saved, pending alloc flushed. */
static void install(uint64_t time_ns)
{
    uint32_t count = 0;
    double bytes = 0, var = 0;
    bool exact = hs_opt.rate <= 1;
    for (uint32_t i = 0; i < scratch.cap; i++) {
        struct hs_group *g = &scratch.g[i];
        if (!g->samples)
            continue;
        if (exact)
            g->objects = (double)g->samples;    /* save_stripe leaves it out */
        count++;
        bytes += g->bytes;
        var += g->bytes_var;
    }
    hs_peak_note(scratch.units, var, time_ns);
    if (scratch.units <= cur.units || !count)
        return;                 /* not higher: the last copy stays */
    size_t size = (size_t)count * sizeof(struct hs_peak_entry);
    struct hs_peak_entry *e = hs_map(size, true);
    if (!e)
        return;                 /* over budget: the last copy stays */
    uint32_t k = 0;
    bytes = var = 0;
    for (uint32_t i = 0; i < scratch.cap && k < count; i++) {
        const struct hs_group *g = &scratch.g[i];
        if (!g->samples)
            continue;
        const struct hs_stack *st = hs_stack_get(i);
        if (!st)
            continue;           /* not published yet: left out, as a snapshot would */
        e[k].stack = i;
        e[k].inuse = *g;
        hs_stack_read_alloc(st, &e[k].alloc);
        bytes += g->bytes;
        var += g->bytes_var;
        k++;
    }
    hs_unmap(cur.e, cur.size, true);
    cur = (struct table){ e, size, k, time_ns, bytes, var, scratch.units };
    __atomic_store_n(&cur_units, cur.units, __ATOMIC_RELAXED);
}

/* The copy's generation is abandoned (the session closed under the walk):
 * the stripes it has not saved are marked as saved, so that no thread
 * writes the scratch outside a copy (a fork parent reopens the same
 * session). Context: copy_lock held; quiesce is waiting for it, holding no
 * stripe. */
static void abandon(uint32_t gen)
{
    for (int i = 0; i < HS_LIVE_STRIPES; i++) {
        struct hs_live_stripe *st = &hs_live_stripes[i];
        hs_lock(&st->lock);
        st->copied_gen = gen;
        hs_unlock(&st->lock);
    }
}

/* One copy; returns the in-use units it found (the high when over budget,
 * so that the trigger is re-armed above it), -1 when the session closed
 * under it. Context: copy_lock held, the session entered. */
static int64_t copy_once(void)
{
    uint32_t n = hs_stack_count();
    if (!scratch_map(n + n / 8 + 64))
        return __atomic_load_n(&hs_peak_total.high, __ATOMIC_RELAXED);
    uint32_t gen = hs_peak_state.gen + 1;
    if (gen == 0)
        gen = 1;                /* 0 is every stripe's generation at start */
    uint64_t t = realtime_ns();
    /* The moment of the copy: from here on, a stripe changes only after
     * it was saved (hs_peak_before_change). */
    __atomic_store_n(&hs_peak_state.gen, gen, __ATOMIC_SEQ_CST);
    for (int i = 0; i < HS_LIVE_STRIPES; i++) {
        struct hs_live_stripe *st = &hs_live_stripes[i];
        hs_lock(&st->lock);
        bool open = hs_gate_open();
        if (open)
            hs_peak_save(st);
        hs_unlock(&st->lock);
        if (!open) {
            abandon(gen);
            scratch_unmap();
            return -1;
        }
    }
    hs_live_flush_alloc();      /* after the walk: a block seen live has its sample in alloc */
    install(t);
    int64_t units = scratch.units;
    scratch_unmap();
    return units;
}

void hs_peak_copy(void)
{
    hs_lock(&copy_lock);
    for (int round = 1; hs_gate_open(); round++) {
        int64_t units = copy_once();
        arm(units > cur.units ? units : cur.units);
        if (units < 0 || round == HS_RECOPIES)
            break;
        /* Passed the new trigger while the walk ran (other threads
         * allocating): copy again now, or no publish may come to trip it
         * before the estimate falls. */
        int64_t next = __atomic_load_n(&hs_peak_state.next, __ATOMIC_RELAXED);
        if (stripes_units() < next ||
            !__atomic_compare_exchange_n(&hs_peak_state.next, &next, HS_PEAK_WANTED, false,
                                         __ATOMIC_ACQ_REL, __ATOMIC_RELAXED))
            break;
    }
    hs_unlock(&copy_lock);
}

/* Context: writer thread, control lock held (the session cannot change). */
void hs_peak_settled(int64_t units)
{
    int64_t high = __atomic_load_n(&hs_peak_total.high, __ATOMIC_RELAXED);
    bool settled = high == settled_high;
    settled_high = high;
    int64_t copy = __atomic_load_n(&cur_units, __ATOMIC_RELAXED);
    int64_t rate = (int64_t)(hs_opt.rate > (1ull << 40) ? 1ull << 40 : hs_opt.rate);
    int64_t margin = copy / 20 > 2 * rate ? copy / 20 : 2 * rate;
    if (!settled || units < copy + margin / 8)
        return;
    hs_gate_enter();            /* this thread's view of the session, for the copy's checks */
    hs_peak_copy();
}

/* ---------------------------------------------------------------- readers */

void hs_peak_read(struct hs_peak *out)
{
    memset(out, 0, sizeof *out);
    hs_lock(&copy_lock);
    out->time_ns = cur.time_ns;
    out->bytes = cur.bytes;
    out->bytes_var = cur.var;
    if (cur.count) {
        size_t size = (size_t)cur.count * sizeof *cur.e;
        out->entries = hs_map(size, false);
        if (out->entries) {
            memcpy(out->entries, cur.e, size);
            out->count = cur.count;
            out->mapped = size;
        } else {
            out->bytes = out->bytes_var = 0;    /* no memory: as if no copy */
            out->time_ns = 0;
        }
    }
    hs_unlock(&copy_lock);
}

void hs_peak_read_done(struct hs_peak *pk)
{
    hs_unmap(pk->entries, pk->mapped, false);
    memset(pk, 0, sizeof *pk);
}

/* ------------------------------------------------------------- lifecycle */

void hs_peak_lock(void) { hs_lock(&copy_lock); }
void hs_peak_unlock(void) { hs_unlock(&copy_lock); }

void hs_peak_fork_parent(void)
{
    /* A thread that won the trigger and took copy_lock while the fork had
     * closed the gate left without copying; the parent goes on with the
     * same session, so arm again (a winner still waiting copies anyway). */
    if (__atomic_load_n(&hs_peak_state.next, __ATOMIC_RELAXED) == HS_PEAK_WANTED) {
        int64_t h = __atomic_load_n(&hs_peak_total.high, __ATOMIC_RELAXED);
        arm(cur.units > h ? cur.units : h);
    }
    hs_unlock(&copy_lock);
}

void hs_peak_release(void)
{
    hs_unmap(scratch.g, scratch.size, false);     /* only a fork child finds one */
    hs_unmap(cur.e, cur.size, true);
    memset(&scratch, 0, sizeof scratch);
    memset(&cur, 0, sizeof cur);
    memset(&high, 0, sizeof high);
    cur_units = settled_high = 0;
    __atomic_store_n(&hs_peak_total.inuse, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&hs_peak_total.high, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&hs_peak_state.gen, 0, __ATOMIC_RELAXED);
}

void hs_peak_start(void)
{
    hs_peak_release();
    arm(0);
}

void hs_peak_reset_child(void)
{
    hs_lock_init(&copy_lock);
    hs_lock_init(&scratch_lock);
    hs_lock_init(&high_lock);
    hs_peak_release();
    memset(&hs_peak_state, 0, sizeof hs_peak_state);
}
