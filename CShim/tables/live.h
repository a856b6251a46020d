/*
 * live.h - the table of sampled allocations that are still live.
 *
 * Keyed by address, split into 64 stripes, each with its own lock and
 * open-addressing table. In front of it sits a counting filter over sampled
 * addresses, hs_filter: free() of an address whose counter is 0 was never
 * sampled and costs one byte load, no lock. A nonzero counter sends free to
 * the table (a false positive costs one lookup under a stripe lock).
 *
 * The filter is indexed by the address itself (bits 4..21, blocks being at
 * least 16-byte aligned), not by a hash: the free path computes the index
 * with a shift and a mask, and blocks close in the heap share cache lines.
 * Counters of one index are shared by addresses of every stripe, so they
 * change by compare-and-swap, on recorded samples and tracked frees only
 * (exact mode counts nothing). The stripe is a hash of the whole address:
 * two threads whose arenas lie at the same offsets of their 64 MiB heaps
 * must not meet on the same stripes.
 */
#ifndef HS_LIVE_H
#define HS_LIVE_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

#include "tables/stacks.h"
#include "base/lock.h"

#define HS_FILTER_BITS 18
#define HS_LIVE_STRIPES 64

/* Counter i is nonzero while some live entry's address has filter index i
 * (live.c; a counter that reaches 255 stays there until release). 256 KiB,
 * of which a heap touches the pages its addresses map to. Static (never
 * unmapped, so a racing reader can never fault); given back with
 * madvise(MADV_DONTNEED) when sampling stops. Written with relaxed
 * compare-and-swap, read with plain byte loads. */
extern uint8_t hs_filter[1u << HS_FILTER_BITS] __attribute__((visibility("hidden")));

static inline uint32_t hs_filter_index(const void *p)
{
    return (uint32_t)((uintptr_t)p >> 4) & ((1u << HS_FILTER_BITS) - 1);
}

/* A multiplicative hash of the address: the stripe is its top 6 bits, the
 * probe positions in the stripe's table use its bits 20.. */
static inline uint64_t hs_addr_hash(const void *p)
{
    return (uintptr_t)p * 0x9E3779B97F4A7C15ull;
}

static inline uint32_t hs_live_stripe_of(const void *p)
{
    return (uint32_t)(hs_addr_hash(p) >> (64 - 6));
}
_Static_assert(HS_LIVE_STRIPES == 1 << 6, "hs_live_stripe_of takes 6 bits");

/* Could `p` be a sampled live allocation? Context: inside free: one load.
 * A volatile byte read (the kernel's READ_ONCE) rather than a relaxed
 * atomic load: both are one plain load, but this one the compiler folds
 * into the compare (cmpb), one instruction less on every free. */
static inline bool hs_live_maybe(const void *p)
{
    return ((const volatile uint8_t *)hs_filter)[hs_filter_index(p)] != 0;
}

/* A live record: 24 bytes in a stripe's open-addressing table. */
struct hs_live_entry {
    uintptr_t addr;         /* 0 = empty */
    uint64_t size;
    uint32_t stack;
    uint32_t pad;
};

/* Samples recorded in a stripe but not yet added to their stack's alloc
 * group: one slot per stack id modulo HS_LIVE_PENDING. Recording a sample
 * then takes one lock, its live stripe's, and adds to the stack under it;
 * a slot taken by another stack is added to its stack first (that stack's
 * stripe lock, nested). The writer adds them all before it reads alloc
 * groups (hs_live_flush_alloc). */
#define HS_LIVE_PENDING 32     /* bits of pending_used */
struct hs_pending {
    uint32_t stack;         /* the slot's stack id, while g.samples != 0; HS_NO_STACK after a flush */
    struct hs_group g;
};

/* One stripe of the table. Its lock is taken inline (exact mode takes one
 * per allocation and per free); the rest belongs to live.c. */
struct hs_live_stripe {
    hs_lock_t lock;
    struct hs_live_entry *slots;    /* protected by lock; `cap` of them, empty ones with addr 0 */
    size_t cap, count;      /* protected by lock */
    double inuse_var;       /* written under lock (relaxed atomic stores): sum of live entries' bytes_var */
    double alloc_bytes;     /* written under lock (relaxed atomic stores): sum of recorded samples' bytes */
    int64_t inuse_units;    /* written under lock (relaxed atomic stores): in-use units of the live entries */
    int64_t unpublished;    /* under lock: units not yet added to the published total (peak.h) */
    struct hs_pending pending[HS_LIVE_PENDING];     /* under lock */
    uint32_t pending_used;  /* under lock (relaxed stores; read without it by the flush): bit k = pending[k] took a stack since the last flush */
    uint32_t copied_gen;    /* under lock, by peak.c: the peak copy generation this stripe was last saved for */
} __attribute__((aligned(64)));

extern struct hs_live_stripe hs_live_stripes[HS_LIVE_STRIPES];

/* In-use bytes of a block, as the integer the sampler's running total
 * counts: its byte weight rounded (exact in exact mode), so adding and
 * subtracting the same block always cancels. */
static inline int64_t hs_inuse_units(double bytes_weight)
{
    return (int64_t)(bytes_weight + 0.5);
}

/* The same from a block's size and weights, without the conversions in
 * exact mode (where every allocation and free comes here). */
static inline int64_t hs_block_units(uint64_t size, const struct hs_weights *w)
{
    return hs_opt.rate <= 1 ? (int64_t)size : hs_inuse_units(w->bytes);
}

/* Insert protocol, used by the sampler: lock the address's stripe, make room
 * (false: budget full, nothing inserted), put, unlock. hs_live_put adds the
 * block's variance to the stripe's in-use sum and, for a new allocation
 * (`fresh`, not a failed realloc's old block put back), its byte weight to
 * the stripe's allocated sum; it returns the block's in-use units. When it
 * replaced a stale record (a block whose free bypassed us), it sets *stale
 * to that record's size: the caller then calls hs_live_forget (still under
 * the lock), which takes its variance out and returns its units. (Kept out
 * of hs_live_put so that it stays a leaf function: exact mode puts every
 * allocation.) Context: inside malloc; the stripe lock is taken before any
 * stack lock. */
static inline struct hs_live_stripe *hs_live_lock(const void *p)
{
    struct hs_live_stripe *st = &hs_live_stripes[hs_live_stripe_of(p)];
    hs_lock(&st->lock);
    return st;
}

static inline void hs_live_unlock(struct hs_live_stripe *st)
{
    hs_unlock(&st->lock);
}

bool hs_live_grow(struct hs_live_stripe *st);
static inline bool hs_live_reserve(struct hs_live_stripe *st)
{
    return (st->count + 1) * 2 <= st->cap || hs_live_grow(st);
}
int64_t hs_live_put(struct hs_live_stripe *st, const void *p, uint64_t size, uint32_t stack,
                    const struct hs_weights *w, bool fresh, uint64_t *stale);
int64_t hs_live_forget(struct hs_live_stripe *st, uint64_t size);
#define HS_NO_STALE UINT64_MAX

/* Counts one recorded sample of stack `id` (weights w) toward its alloc
 * group, in the stripe's pending slots. Context: inside malloc, st locked. */
void hs_live_pending_take(struct hs_live_stripe *st, struct hs_pending *e, uint32_t id);
static inline void hs_live_count_alloc(struct hs_live_stripe *st, uint32_t id, const struct hs_weights *w)
{
    struct hs_pending *e = &st->pending[id % HS_LIVE_PENDING];
    if (__builtin_expect(e->stack != id, 0))
        hs_live_pending_take(st, e, id);
    hs_group_add(&e->g, w);
}

/* Adds every stripe's pending samples to their stacks' alloc groups.
 * Context: writer, before it reads alloc groups (each live stripe lock in
 * turn, stack stripe locks nested). */
void hs_live_flush_alloc(void);

/* Removes `p` if present, returning its record and its in-use units (its
 * variance leaves the stripe's sum). Context: inside free/realloc, p's
 * stripe locked (hs_live_lock). */
bool hs_live_take(struct hs_live_stripe *st, const void *p, uint64_t *size, uint32_t *stack, int64_t *units);

/* Sums over the stripes, read without their locks: the in-use units of
 * the live blocks (the estimate of bytes in use), their variance (sum of
 * the live blocks' bytes_var) and the estimated bytes allocated since start
 * (sum of the recorded samples' byte weights). Context: writer. */
void hs_live_sums(int64_t *inuse_units, double *inuse_var, double *alloc_bytes);

/* Calls fn for every live record, one stripe at a time under its lock.
 * fn must not allocate or take shim locks. Context: writer. */
void hs_live_foreach(void (*fn)(void *ctx, uint64_t size, uint32_t stack), void *ctx);

uint64_t hs_live_count(void);
/* A session begins (after hs_live_release): exact mode sets every filter
 * bit, so that every free is looked up and nothing is counted. */
void hs_live_start(void);
void hs_live_release(void);         /* quiesced: drop tables, clear the filter */
void hs_live_lock_all(void);
void hs_live_unlock_all(void);
void hs_live_reset_child(void);

#endif
