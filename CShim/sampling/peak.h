/*
 * peak.h - the peak: the running maximum of the in-use estimate, and the
 * per-stack copy taken on the allocating thread when the estimate passes
 * the last copy by max(5%, 2 x rate).
 *
 * The estimate is the sum of the live stripes' in-use units (live.h). Each
 * stripe adds its changes to one shared number, the published total
 * (hs_peak_total.inuse), once they reach the publishing step either way (every sample at rates of 64 KiB and
 * more; in exact mode between 4 and 64 KiB, growing with the high), so that
 * a shared atomic add is paid per step, not per allocation. Only a publish
 * that raises the total and comes within the slack (what the stripes may
 * hold unpublished: 64 steps, or 0 when every change publishes) of the high
 * or of the trigger looks further: it sums the stripes exactly, raises the
 * high and, past the trigger, wins the copy for this thread.
 *
 * The copy (hs_peak_copy) runs on that thread once it has left its stripe:
 * it bumps the copy generation, which is the copy's moment, and walks the
 * 64 stripes into a scratch table per stack id. A thread that is about to
 * change a stripe the walk has not reached yet (hs_peak_before_change,
 * under that stripe's lock) first adds the stripe to the scratch itself, so
 * the copy holds every stripe as it was at that moment, whatever the other
 * threads free meanwhile, and no thread waits for more than one stripe's
 * walk. The result replaces the peak table when its total is higher; the
 * trigger is re-armed above it.
 *
 * Locks (CShim/DESIGN.md's table): copy_lock (a copy, reading the peak
 * table, quiesce and fork) is taken before any live stripe; the scratch lock
 * and the high's lock are leaves under a live stripe lock. Below the sampler
 * (which publishes, triggers and calls the copy), above the tables (live,
 * stacks) and memory.
 */
#ifndef HS_PEAK_H
#define HS_PEAK_H

#include <stdbool.h>
#include <stdint.h>

#include "tables/live.h"
#include "tables/stacks.h"

/* Read-mostly: written when a copy starts and when the trigger is armed (or
 * swapped by the thread that wins it), read by every sampled change. */
struct hs_peak_state {
    int64_t next;       /* the trigger: the estimate at which the next copy is due; HS_PEAK_WANTED while one is under way */
    uint64_t bias;      /* the publishing step less 1: a stripe publishes its change c once */
    uint64_t width;     /*   c + bias > width, i.e. |c| >= step (width = 2 x step - 2: one add, one compare) */
    int64_t slack;      /* how far the published total may trail the stripes' sum: 64 steps, or 0 when every change publishes */
    uint32_t gen;       /* the copy generation: a stripe whose copied_gen differs is saved before it changes */
} __attribute__((aligned(64)));
extern struct hs_peak_state hs_peak_state;
#define HS_PEAK_WANTED INT64_MAX

/* Written by the publishing threads: the published total (relaxed atomic
 * adds) and the high's units beside it (relaxed stores under the high's
 * lock), so that the compare after a publish reads the line it just wrote. */
struct hs_peak_total {
    int64_t inuse;      /* the published total: the stripes' units, less what each holds unpublished */
    int64_t high;       /* the running maximum of the estimate, in units */
} __attribute__((aligned(64)));
extern struct hs_peak_total hs_peak_total;

/* After a publish that may raise the high or reach the trigger: sums the
 * stripes when the total may trail them, raises the high, and swaps the
 * trigger for HS_PEAK_WANTED when reached (true: this thread copies).
 * Context: sampled path, a live stripe locked. */
bool hs_peak_rise(int64_t now);

/* Adds a block's in-use units (negative: leaving) to its stripe and, in
 * steps, to the published total. Returns true when this thread won a copy:
 * the caller calls hs_peak_copy once it holds no shim lock. Nothing beyond
 * the stripe's own fields unless the change reaches the step.
 * Context: sampled path, guard held, st locked. */
static inline bool hs_peak_add(struct hs_live_stripe *st, int64_t units)
{
    __atomic_store_n(&st->inuse_units, st->inuse_units + units, __ATOMIC_RELAXED);
    int64_t due = st->unpublished + units;
    if ((uint64_t)due + __atomic_load_n(&hs_peak_state.bias, __ATOMIC_RELAXED) <=
        __atomic_load_n(&hs_peak_state.width, __ATOMIC_RELAXED)) {
        st->unpublished = due;      /* -step < due < step */
        return false;
    }
    st->unpublished = 0;
    int64_t now = __atomic_add_fetch(&hs_peak_total.inuse, due, __ATOMIC_RELAXED);
    if (__builtin_expect(due < 0, 1))
        return false;           /* falling: no new high, no copy */
    int64_t reach = now + __atomic_load_n(&hs_peak_state.slack, __ATOMIC_RELAXED);
    if (reach <= __atomic_load_n(&hs_peak_total.high, __ATOMIC_RELAXED) &&
        reach < __atomic_load_n(&hs_peak_state.next, __ATOMIC_RELAXED))
        return false;
    return hs_peak_rise(now);
}

/* Before a sampled path changes a stripe's entries (records, takes, puts
 * back): if a copy is under way and has not saved this stripe yet, save it
 * now. One load of the read-mostly state and a compare.
 * Context: sampled path, st locked, gate checked. */
void hs_peak_save(struct hs_live_stripe *st);

static inline void hs_peak_before_change(struct hs_live_stripe *st)
{
    if (__builtin_expect(st->copied_gen != __atomic_load_n(&hs_peak_state.gen, __ATOMIC_RELAXED), 0))
        hs_peak_save(st);
}

/* Takes the copy this thread won (hs_peak_add returned true).
 * Context: inside malloc, guard held, the session entered, no shim lock held. */
void hs_peak_copy(void);

/* A series point found the estimate at `units`. When the high has not
 * moved since the last point (memory stopped growing) and the estimate is
 * still above the last copy by an eighth of the trigger's margin, copy now:
 * a peak the program holds gets a copy of its own plateau, not of the last
 * step below it; at most eight such copies per high.
 * Context: writer thread, control lock held. */
void hs_peak_settled(int64_t units);

/* One PEAK entry: a stack id (not yet its STKS index) and its groups. */
struct hs_peak_entry {
    uint32_t stack;
    struct hs_group inuse, alloc;
};

/* The last copy, as hs_peak_read hands it out: empty (count 0, bytes 0)
 * until the first one. */
struct hs_peak {
    uint64_t time_ns;           /* CLOCK_REALTIME of the copy's moment */
    double bytes, bytes_var;    /* sums of the entries' in-use bytes and bytes_var */
    uint32_t count;
    struct hs_peak_entry *entries;  /* the reader's own mapping (unaccounted), or NULL */
    size_t mapped;              /* its size, for hs_peak_read_done */
};

/* The running maximum of the estimate: units (bytes in exact mode), the
 * variance of the estimate then, and when. */
struct hs_high {
    uint64_t time_ns;
    int64_t units;
    double var;
};

/* Copies the last copy out under copy_lock (into a mapping of the
 * reader's own, unmapped by hs_peak_read_done). Context: control. */
void hs_peak_read(struct hs_peak *out);
void hs_peak_read_done(struct hs_peak *pk);

/* The high, and an exact sum the control side took (a series point, a
 * snapshot's own totals) that may raise it. Context: control, or any
 * thread (the high's lock is a leaf). */
void hs_peak_high(struct hs_high *out);
void hs_peak_note(int64_t units, double var, uint64_t time_ns);

/* Control side. start: a session begins (quiesced): no high, no copy, the
 * trigger armed at 2 x rate. release: drop the tables (quiesced).
 * lock/unlock: copy_lock, for quiesce (cycled) and fork prepare (held
 * across the fork); fork_parent re-arms a trigger left taken, then unlocks.
 * reset_child: fork child, single-threaded. */
void hs_peak_start(void);
void hs_peak_release(void);
void hs_peak_lock(void);
void hs_peak_unlock(void);
void hs_peak_fork_parent(void);
void hs_peak_reset_child(void);

#endif
