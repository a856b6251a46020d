/*
 * sampler.c - Poisson byte sampling, weights, and the recording slow path.
 *
 * Each thread counts down bytes to its next sample. The countdown is drawn
 * from a geometric distribution (the integer version of an exponential) with
 * mean hs_opt.rate, so each allocation of s bytes is sampled with probability
 * p = 1 - exp(-s/R), independently of every other allocation (the countdown
 * is memoryless). CShim/DESIGN.md derives the weights s/p, 1/p and their
 * variances. In exact mode (rate 1) every allocation is recorded with p = 1.
 *
 * Entering the slow path: hs_enter() sets the reentrancy guard and notes the
 * open session (session_gate.h). Every table access then happens under a table lock
 * that first checks the session is still open. hs_quiesce() clears
 * hs_active, closes the gate and takes and drops every table lock once:
 * afterwards no thread touches the tables, or will, until the next start
 * opens the gate for a new session. That is what makes the exact final
 * view, releasing memory on stop and taking the fork locks safe, at no
 * atomic read-modify-write per allocation (the locks are taken anyway).
 *
 * Memory over time costs the sampled paths only: a recorded sample adds its
 * in-use units to its live stripe (a tracked free subtracts them), which
 * publishes them in steps and raises the high and trips the peak trigger
 * (peak.h); the sample that trips it takes the peak copy on this thread,
 * after leaving its stripe. Each change of a stripe first asks whether a
 * copy under way still needs the stripe as it was (hs_peak_before_change).
 * Nothing changes for an allocation that is not sampled or a free that is
 * not tracked.
 */
#define _GNU_SOURCE
#include "sampling/sampler.h"
#include "base/options.h"
#include "tables/live.h"
#include "tables/stacks.h"
#include "base/mem.h"
#include "tables/pyframes.h"
#include "base/session_gate.h"
#include "sampling/peak.h"
#include "base/exp_log.h"

#include <sched.h>
#include <string.h>
#include <time.h>

int hs_active;
__thread int hs_reentry __attribute__((tls_model("initial-exec")));
struct hs_counters hs_count;
uint32_t hs_session;
static int fork_was_active;     /* hs_active across fork prepare/parent (control lock held) */
static bool fork_tables;         /* the tables had been used when the process forked (control lock held) */
static void (*child_setup)(void);   /* registered once at load (lifecycle.c), read after */

__thread struct hs_thread hs_tls __attribute__((tls_model("initial-exec")));

static const struct hs_routes *sampling_paths;     /* registered once at load (hooks.c) */

/* Points the exported functions at the sampling paths while hs_active is
 * nonzero, at the next allocator otherwise. Context: as for set_active. */
static void route(void)
{
    hs_forward_init();      /* hs_idle_route is complete */
    const struct hs_routes *paths = __atomic_load_n(&sampling_paths, __ATOMIC_ACQUIRE);
    bool on = __atomic_load_n(&hs_active, __ATOMIC_RELAXED) != 0;
    hs_route_set(on && paths ? paths : &hs_idle_route);
}

/* hs_active and the routes that follow it. Context: control under its lock,
 * a forking thread, a fork child, or exit. */
static void set_active(int v)
{
    __atomic_store_n(&hs_active, v, __ATOMIC_SEQ_CST);
    route();
}

void hs_sampler_set_paths(const struct hs_routes *paths)
{
    __atomic_store_n(&sampling_paths, paths, __ATOMIC_RELEASE);
    route();
}

static uint64_t next_random(struct hs_thread *t)
{
    if (!t->rng) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        t->rng = ((uint64_t)(uintptr_t)t * 0x9E3779B97F4A7C15ull) ^ (uint64_t)ts.tv_nsec ^
                 ((uint64_t)ts.tv_sec << 32) ^ 0x2545F4914F6CDD1Dull;
        if (!t->rng)
            t->rng = 1;
    }
    uint64_t x = t->rng;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    t->rng = x;
    return x * 0x2545F4914F6CDD1Dull;
}

/* Geometric countdown with mean R: floor(Exp(R)) + 1, so that an
 * allocation of s bytes is sampled iff s >= countdown, with P = 1 - e^(-s/R).
 * Exact mode draws 0: every allocation, size 0 included, is sampled. */
static int64_t draw_countdown(struct hs_thread *t)
{
    if (hs_opt.rate <= 1)
        return 0;
    double u = ((double)(next_random(t) >> 11) + 1.0) * 0x1.0p-53;   /* (0, 1] */
    double x = -hs_log(u) * (double)hs_opt.rate;
    if (x > 4e18)
        x = 4e18;
    return (int64_t)x + 1;
}

/* Enter the slow path: false if this thread is already in shim code or
 * sampling stopped meanwhile. The tables themselves are checked again under
 * their locks (hs_gate_open). Context: inside malloc/free. */
static bool hs_enter(void)
{
    if (hs_guard_held())
        return false;
    hs_guard_enter();
    if (__atomic_load_n(&hs_active, __ATOMIC_RELAXED) != 1 || !hs_gate_enter()) {
        hs_guard_leave(false);
        return false;
    }
    return true;
}

static void hs_leave(void)
{
    hs_guard_leave(false);
}

/* Records one sampled allocation. Context: inside malloc, guard held, no
 * shim lock held on entry (unwinding first, then the live stripe lock; a
 * stack lock nested only for a new stack or a pending slot handed over). */
static inline __attribute__((always_inline)) void record(void *p, size_t n, const void *entry)
{
    uintptr_t frames[hs_opt.max_depth];
    bool truncated;
    uint32_t depth = hs_stack_capture(frames, &truncated, entry);
    struct hs_weights w;
    hs_weights(n, &w);

    /* Room in the live table first, then the stack (found without a lock
     * when known) and its sample, counted in the stripe's pending slots,
     * then the live entry, all under the one live stripe lock: a writer
     * that sees the entry has also seen its sample, since it adds the
     * pending samples to the stacks after its walk of the live table. */
    struct hs_live_stripe *st = hs_live_lock(p);
    if (!hs_gate_open()) {
        hs_live_unlock(st);
        return;
    }
    hs_peak_before_change(st);
    bool copy = false;
    uint32_t id = HS_NO_STACK;
    if (hs_live_reserve(st))
        id = hs_stack_intern(frames, depth, truncated);
    if (id != HS_NO_STACK) {
        hs_live_count_alloc(st, id, &w);
        uint64_t stale = HS_NO_STALE;
        int64_t units = hs_live_put(st, p, n, id, &w, true, &stale);
        if (__builtin_expect(stale != HS_NO_STALE, 0))
            units -= hs_live_forget(st, stale);
        copy = hs_peak_add(st, units);
    } else {
        __atomic_add_fetch(&hs_count.dropped, 1, __ATOMIC_RELAXED);
    }
    hs_live_unlock(st);
    if (__builtin_expect(copy, 0))
        hs_peak_copy();         /* this sample passed the trigger: the peak copy, out of the stripe */
}

/* An allocation crossed this thread's countdown (or found it never drawn):
 * draw the next countdown and record the block. Allocations made by shim code itself (hs_enter
 * fails under the guard) draw too, as if sampled and discarded, so they
 * never leave the countdown spent for the host's next block.
 * Context: inside malloc, off the fast path. */
void *hs_sample_slow(void *p, size_t n, const void *entry)
{
    hs_uncount(n);      /* hs_counts_down took n on its way here */
    if (__builtin_expect(__atomic_load_n(&hs_active, __ATOMIC_RELAXED) == HS_CHILD_SETUP, 0)) {
        if (child_setup)
            child_setup();
        return p;
    }
    struct hs_thread *t = &hs_tls;
    if (t->countdown == 0 && hs_opt.rate > 1) {
        /* Never drawn on this thread (a drawn countdown stays >= 1): this
         * block is sampled only if it reaches the first draw. */
        t->countdown = draw_countdown(t);
        if ((uint64_t)t->countdown > n) {
            t->countdown -= (int64_t)n;
            return p;
        }
    }
    t->countdown = hs_opt.rate <= 1 ? 0 : draw_countdown(t);     /* exact mode: every block */
    if (!p || !hs_enter())
        return p;
    record(p, n, entry);
    hs_leave();
    return p;
}

/* Takes p's record out of the live table, if there is one, and its units
 * out of the estimate; false if none. Context: guard held (hs_enter). */
static inline __attribute__((always_inline)) bool take(const void *p, uint64_t *size, uint32_t *stack)
{
    struct hs_live_stripe *st = hs_live_lock(p);
    if (!hs_gate_open()) {
        hs_live_unlock(st);
        return false;
    }
    hs_peak_before_change(st);
    int64_t units;
    bool found = hs_live_take(st, p, size, stack, &units);
    if (found)
        hs_peak_add(st, -units);    /* falling: never a copy */
    hs_live_unlock(st);
    return found;
}

void hs_before_free_slow(void *p)
{
    if (!hs_enter())
        return;
    uint64_t size;
    uint32_t stack;
    take(p, &size, &stack);
    hs_leave();
}

bool hs_realloc_take(void *old, uint64_t *size, uint32_t *stack)
{
    if (!hs_enter())
        return false;
    bool found = take(old, size, stack);
    hs_leave();
    return found;
}

void hs_realloc_restore(void *old, uint64_t size, uint32_t stack)
{
    if (!hs_enter())
        return;
    struct hs_weights w;
    hs_weights(size, &w);
    struct hs_live_stripe *st = hs_live_lock(old);
    bool copy = false;
    if (hs_gate_open()) {
        hs_peak_before_change(st);
        if (hs_live_reserve(st)) {
            uint64_t stale = HS_NO_STALE;
            int64_t units = hs_live_put(st, old, size, stack, &w, false, &stale);
            if (stale != HS_NO_STALE)
                units -= hs_live_forget(st, stale);
            copy = hs_peak_add(st, units);
        }
    }
    hs_live_unlock(st);
    if (copy)
        hs_peak_copy();
    hs_leave();
}

/* Closes the gate, then takes and drops every lock under which a sampled
 * path touches the tables: whoever held one has left it, whoever takes one
 * later finds the gate closed (session_gate.h). Context: control, or a forking
 * thread; never while holding a table lock. */
void hs_quiesce(void)
{
    set_active(0);
    __atomic_store_n(&hs_gate, 0, __ATOMIC_SEQ_CST);
    hs_live_lock_all();
    hs_live_unlock_all();
    hs_py_lock();
    hs_py_unlock();
    hs_peak_lock();             /* a peak copy under way (it checks the gate under each stripe) */
    hs_peak_unlock();
}

void hs_sampler_release(void)
{
    hs_peak_release();
    hs_live_release();
    hs_stacks_release();
    hs_py_release();
    hs_arena_release();
}

void hs_sampler_start(void)
{
    hs_quiesce();
    hs_sampler_release();
    hs_live_start();
    memset(&hs_count, 0, sizeof hs_count);
    hs_peak_start();
    uint32_t session = __atomic_add_fetch(&hs_session, 1, __ATOMIC_RELAXED);
    if (session == 0)
        session = __atomic_add_fetch(&hs_session, 1, __ATOMIC_RELAXED);    /* 0 is "closed" */
    __atomic_store_n(&hs_gate, session, __ATOMIC_RELEASE);
    set_active(1);
}

void hs_sampler_halt(void)
{
    set_active(0);
    __atomic_store_n(&hs_gate, 0, __ATOMIC_SEQ_CST);
}

/* Context: the forking thread, control lock held. */
void hs_sampler_fork_prepare(void)
{
    fork_was_active = __atomic_load_n(&hs_active, __ATOMIC_RELAXED);
    /* No session since load (or since this process was forked): the tables
     * are as they were made and no thread holds their locks (only sessions
     * and the writer, under the control lock held here, take them). Taking
     * them here and making them anew in the child wrote ~160 pages of the
     * shim's own (the live stripes, the last walks), each a page fault in
     * the child: 0.4 ms a fork, twice the cost of a shell's `$(...)`. */
    fork_tables = __atomic_load_n(&hs_session, __ATOMIC_RELAXED) != 0;
    if (!fork_tables)
        return;
    hs_quiesce();
    hs_peak_lock();
    hs_live_lock_all();
    hs_stacks_lock_all();
    hs_py_lock();
    hs_arena_lock();
}

/* Context: the parent after fork, control lock held. */
void hs_sampler_fork_parent(void)
{
    if (!fork_tables)
        return;
    hs_arena_unlock();
    hs_py_unlock();
    hs_stacks_unlock_all();
    hs_live_unlock_all();
    hs_peak_fork_parent();
    if (fork_was_active == 1)
        __atomic_store_n(&hs_gate, __atomic_load_n(&hs_session, __ATOMIC_RELAXED), __ATOMIC_RELEASE);
    if (fork_was_active)
        set_active(fork_was_active);
}

bool hs_sampler_forked_sampling(void) { return fork_was_active == 1; }
bool hs_sampler_forked_tables(void) { return fork_tables; }
void hs_sampler_on_child_setup(void (*fn)(void)) { child_setup = fn; }
void hs_sampler_expect_setup(void) { set_active(HS_CHILD_SETUP); }

void hs_sampler_ask_setup(void)
{
    int idle = 0;
    if (__atomic_compare_exchange_n(&hs_active, &idle, HS_CHILD_SETUP, false, __ATOMIC_SEQ_CST, __ATOMIC_RELAXED))
        route();
}
void hs_sampler_setup_done(void) { set_active(0); }

/* Context: fork child, single-threaded, after the parent's fork locks. */
void hs_sampler_fork_child(void)
{
    set_active(0);     /* control may expect setup */
    hs_gate = 0;
    memset(&hs_count, 0, sizeof hs_count);
    hs_tls.countdown = 0;       /* the next allocation takes the slow path (child setup) */
    if (!fork_tables)
        return;                 /* as made at load: nothing to make anew */
    hs_arena_reset_child();
    hs_live_reset_child();
    hs_stacks_reset_child();
    hs_py_reset_child();
    hs_peak_reset_child();
    hs_arena_release();
    hs_session = 0;
}
