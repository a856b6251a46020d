/*
 * sampler.h - the Poisson byte sampler and the entry points of the slow path.
 *
 * hs_active is the one global the fast path reads: a plain int, written only
 * by sampler.c (seq_cst stores, in the functions below that control calls),
 * read with a relaxed load (a plain mov). Each thread keeps its own countdown
 * of bytes to the next sample in TLS; the fast path never touches TLS while
 * idle.
 *
 * Above live, stacks and mem; below the snapshot writer and control. The one
 * call that must go up (a fork child's first allocation sets the child up)
 * goes through a function that lifecycle.c registers at load.
 */
#ifndef HS_SAMPLER_H
#define HS_SAMPLER_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

#include "base/forward.h"

/* 0 idle, 1 sampling, HS_CHILD_SETUP in a fork child that has not yet made
 * its writer thread. Written only by sampler.c: start, quiesce, halt and the
 * fork functions below, which control calls under its lock (or single-
 * threaded: fork child, exit). Read relaxed by the fast path (any nonzero
 * value takes the slow path); control reads it to decide what to run. */
extern int hs_active HS_HIDDEN;
#define HS_CHILD_SETUP 2

static inline bool hs_is_active(void)
{
    return __builtin_expect(__atomic_load_n(&hs_active, __ATOMIC_RELAXED), 0);
}

/* The sampling paths the routes (forward.h) switch to while hs_active is
 * nonzero: hooks.c registers them at load, before anything can start
 * sampling. Context: constructor. */
void hs_sampler_set_paths(const struct hs_routes *paths);

/* True in a fork child whose first allocation has not set it up yet. */
static inline bool hs_child_setup_pending(void)
{
    return __atomic_load_n(&hs_active, __ATOMIC_SEQ_CST) == HS_CHILD_SETUP;
}

/* The reentrancy guard: nonzero while this thread runs shim code (sampling,
 * unwinding, writing a snapshot, control). Allocations made under it -
 * libunwind's, pthread_create's, our own threads' - are forwarded and never
 * sampled; frees are not looked up. Set and cleared only through the helpers
 * below. Context: any thread; thread-local, so no synchronisation. */
extern __thread int hs_reentry __attribute__((tls_model("initial-exec")));

/* Is this thread inside shim code? */
static inline bool hs_guard_held(void)
{
    return hs_reentry != 0;
}

/* Marks this thread as inside shim code; returns whether it already was,
 * for hs_guard_leave. */
static inline bool hs_guard_enter(void)
{
    bool was = hs_reentry != 0;
    hs_reentry = 1;
    return was;
}

/* Undoes hs_guard_enter: `was` is what it returned. */
static inline void hs_guard_leave(bool was)
{
    hs_reentry = was;
}

/* Session counters (PROC). Written with relaxed atomic adds. PROC's other
 * two counters are derived by the writer from the stack table, so recording
 * a sample touches no shared counter: samples = dropped + the alloc samples
 * of every stack, truncated = the alloc samples of truncated stacks. */
struct hs_counters {
    uint64_t dropped;       /* sampled but not recorded: budget full */
};
extern struct hs_counters hs_count;
extern uint32_t hs_session;     /* incremented by each start (PROC.session; the session gate) */

/* Per-thread sampler state. The fast path reads and writes countdown only.
 * A countdown outlives a stop: it is a draw from a memoryless distribution
 * at the one rate of the process, as good for the next session as a fresh
 * one. */
struct hs_thread {
    int64_t countdown;          /* bytes left before the next sample; 0 = take the slow path */
    uint64_t rng;               /* xorshift64* state, 0 = unseeded */
};
extern __thread struct hs_thread hs_tls __attribute__((tls_model("initial-exec")));

/* Called after hs_counts_down(n) said false: puts the n bytes back, draws
 * the next countdown and records the block when due; returns p.
 * `entry` is where the stack walk may start (hs_unwind, unwind.h): the
 * HS_ENTRY_FRAME() of a shim function the host's call reached by tail
 * jumps only, or NULL.
 * Context: inside malloc: no allocation; takes stripe locks. */
void *hs_sample_slow(void *p, size_t n, const void *entry) __attribute__((cold));

/* The calling function's frame, for hs_sample_slow's `entry` (it makes the
 * compiler give that function a frame pointer). The frame must outlive the
 * walk: pass the result of the call through HS_NO_TAIL, or the compiler
 * turns the call into a jump that leaves the frame behind. */
#define HS_ENTRY_FRAME() __builtin_frame_address(0)
#define HS_NO_TAIL(x) __asm__ volatile("" : "+r"(x))

/* Counts a new block of n bytes against this thread's countdown: true when
 * it is not to be sampled (the common case: one subtract from TLS memory
 * and a branch on its flags, no atomic, no lock, no shared store). A
 * countdown of 0 never passes, which sends exact mode, new threads and fork
 * children to the slow path. The n bytes come off either way: a false
 * return leaves the countdown at old - n (mod 2^64), and whoever gets false
 * calls hs_sample_slow with the same n, which puts them back first, or
 * hs_uncount. Context: inside an allocation function. */
static inline __attribute__((always_inline)) bool hs_counts_down(size_t n)
{
    struct hs_thread *t = &hs_tls;
    uint64_t c = (uint64_t)t->countdown;
    t->countdown = (int64_t)(c - n);    /* with the compare: sub %rdi,%fs:(..); jbe */
    return __builtin_expect(c > n, 1);
}

/* Gives back the n bytes a false hs_counts_down took, for a caller that
 * does not go on to hs_sample_slow. */
static inline void hs_uncount(size_t n)
{
    hs_tls.countdown = (int64_t)((uint64_t)hs_tls.countdown + n);
}

/* Counts a new block of n bytes at p and returns p, sampling it when due.
 * Called by the exported functions only when hs_is_active(). */
static inline __attribute__((always_inline)) void *hs_after_alloc(void *p, size_t n)
{
    return hs_counts_down(n) ? p : hs_sample_slow(p, n, NULL);
}

/* Holding the countdown: while an allocator we wrap ourselves (Python's
 * domains, pyalloc.c) runs, blocks it passes on to malloc must not be
 * counted a second time. hs_hold parks the thread's countdown out of reach
 * (so the malloc hook takes no slow path) and hs_unhold puts back what was
 * there. Context: inside an allocator. */
struct hs_hold { int64_t countdown; };

static inline struct hs_hold hs_hold(void)
{
    struct hs_hold h = { hs_tls.countdown };
    hs_tls.countdown = INT64_MAX;
    return h;
}

static inline void hs_unhold(struct hs_hold h)
{
    hs_tls.countdown = h.countdown;
}

/* Context: inside free/realloc: no allocation; takes a stripe lock. */
void hs_before_free_slow(void *p);
/* realloc: take the old record out before the call (callers ask the filter,
 * hs_live_maybe, first), put it back on failure. */
bool hs_realloc_take(void *old, uint64_t *size, uint32_t *stack);
void hs_realloc_restore(void *old, uint64_t size, uint32_t stack);


/* Control side. Context: control (writer thread or exiting thread) holding
 * the control lock. */
void hs_sampler_start(void);        /* fresh state, then hs_active = 1 */
void hs_quiesce(void);              /* hs_active = 0, close the gate, cycle the table locks */
void hs_sampler_release(void);      /* drop all tables; requires quiesced */

/* hs_active = 0 without waiting: exit() from a signal handler that
 * interrupted this thread inside the shim (quiesce would wait for itself). */
void hs_sampler_halt(void);

/* fork, from control's atfork handlers (control lock held around them).
 * prepare: quiesce, remember whether sampling ran, take every table lock;
 * parent: release them and resume; child: clean, idle state (fresh locks,
 * no tables, no counters). A process that has had no session since it was
 * loaded or forked skips all of it but the counters: its tables are as made.
 * Context: the forking thread / the fork child. */
void hs_sampler_fork_prepare(void);
void hs_sampler_fork_parent(void);
void hs_sampler_fork_child(void);

/* A fork child's first allocation: hs_sampler_expect_setup() sets
 * hs_active = HS_CHILD_SETUP, so that the next allocation (or control
 * request) calls the function registered with hs_sampler_on_child_setup
 * (lifecycle.c, at load: the sampler never calls up into control by name),
 * which calls hs_sampler_setup_done() (hs_active = 0). */
void hs_sampler_on_child_setup(void (*fn)(void));
/* In a fork child: whether the parent was sampling when it forked (read by
 * control's child handler, before hs_sampler_fork_child's reset is seen
 * anywhere else). */
bool hs_sampler_forked_sampling(void);
/* In a fork child: whether the parent's tables had been used (a session
 * since load or its own fork), so that the child's must be made anew. */
bool hs_sampler_forked_tables(void);
void hs_sampler_expect_setup(void);
void hs_sampler_setup_done(void);
/* The same from a signal handler, for a process with no writer yet
 * (HEAPSNAP_WRITER=on-demand): only from idle (a compare-and-swap of
 * hs_active from 0), then the routes' stores. If it races a setup
 * finishing or a route change, the routes may briefly mix idle and sampling
 * paths, which is harmless while hs_active is not 1, and the next set_active
 * or setup puts them right. Context: any, async-signal-safe once the
 * constructor has resolved the next allocator (before handlers exist). */
void hs_sampler_ask_setup(void);

#endif
