/*
 * live.c - striped open-addressing table of sampled live allocations.
 *
 * Linear probing with backward-shift deletion (no tombstones), per stripe,
 * grown by doubling at 1/2 load into a fresh mapping (short clusters: a free
 * deletes by shifting its cluster back). Entries are 24 bytes.
 * The stripe is the address hash's top bits, probe positions its bits
 * 20..; the filter uses the address's own bits 4..21 (live.h).
 *
 * Invariant: hs_filter[i] >= number of entries whose filter index is i
 * (equal until a counter saturates at 255, after which it stays 255 until
 * hs_live_release). Therefore a zero counter proves "not sampled". In
 * exact mode every counter is 255 from the start and nothing is counted
 * (a zero counter would still prove nothing was sampled: there is none).
 *
 * Each stripe also sums, under its lock, the variance of its live entries'
 * in-use weights and the byte weights of every sample put since start (the
 * series' variance and allocated bytes, timeline.c); the in-use bytes
 * themselves are the sampler's one running total, from the units that put
 * and take return.
 */
#define _GNU_SOURCE
#include "tables/live.h"
#include "tables/stacks.h"
#include "base/mem.h"
#include "base/options.h"
#include "base/lock.h"

#include <string.h>
#include <sys/mman.h>

uint8_t hs_filter[1u << HS_FILTER_BITS] __attribute__((aligned(4096)));   /* compare-and-swap */

/* Adds to one of a stripe's sums: written under the stripe lock, read
 * without it by hs_live_sums (relaxed: a plain load and store). */
static void sum_add(double *sum, double v)
{
    double x;
    __atomic_load(sum, &x, __ATOMIC_RELAXED);
    x += v;
    __atomic_store(sum, &x, __ATOMIC_RELAXED);
}

/* Counts one more entry with filter index i (entries of other stripes may
 * share it: a compare-and-swap; a sample is rare enough). In exact mode
 * every counter is 255 from the start (hs_live_start) and nothing is
 * counted: every block is sampled, so the filter could only say "maybe",
 * and counting would cost a locked instruction per allocation and free.
 * Context: the entry's stripe lock held. */
static void filter_add(uint32_t i)
{
    if (hs_opt.rate <= 1)
        return;
    uint8_t v = __atomic_load_n(&hs_filter[i], __ATOMIC_RELAXED);
    while (v < 255 && !__atomic_compare_exchange_n(&hs_filter[i], &v, (uint8_t)(v + 1), true,
                                                   __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
    }
}

/* Counts one entry less (a saturated counter stays). Context: the entry's stripe lock held. */
static void filter_remove(uint32_t i)
{
    if (hs_opt.rate <= 1)
        return;
    uint8_t v = __atomic_load_n(&hs_filter[i], __ATOMIC_RELAXED);
    while (v != 0 && v != 255 && !__atomic_compare_exchange_n(&hs_filter[i], &v, (uint8_t)(v - 1), true,
                                                               __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
    }
}
struct hs_live_stripe hs_live_stripes[HS_LIVE_STRIPES] = {
    [0 ... HS_LIVE_STRIPES - 1] = { .lock = HS_LOCK_INIT },
};

static size_t pos(uint64_t h, size_t cap) { return (h >> 20) & (cap - 1); }


/* Doubles st's table (hs_live_reserve found it half full): false when
 * the budget refuses the new one. */
bool hs_live_grow(struct hs_live_stripe *st)
{
    size_t ncap = st->cap ? st->cap * 2 : 128;
    struct hs_live_entry *ns = hs_map(ncap * sizeof *ns, true);
    if (!ns)
        return false;
    for (size_t i = 0; i < st->cap; i++) {
        struct hs_live_entry *e = &st->slots[i];
        if (!e->addr)
            continue;
        size_t j = pos(hs_addr_hash((void *)e->addr), ncap);
        while (ns[j].addr)
            j = (j + 1) & (ncap - 1);
        ns[j] = *e;
    }
    hs_unmap(st->slots, st->cap * sizeof *ns, true);
    st->slots = ns;
    st->cap = ncap;
    return true;
}

int64_t hs_live_put(struct hs_live_stripe *st, const void *p, uint64_t size, uint32_t stack,
                    const struct hs_weights *w, bool fresh, uint64_t *stale)
{
    uint64_t h = hs_addr_hash(p);
    size_t j = pos(h, st->cap);
    while (st->slots[j].addr && st->slots[j].addr != (uintptr_t)p)
        j = (j + 1) & (st->cap - 1);
    if (!st->slots[j].addr) {
        /* A stale record for the same address (its free bypassed us) is
         * simply replaced; only a new entry bumps the filter. */
        st->count++;
        filter_add(hs_filter_index(p));
    } else {
        *stale = st->slots[j].size;
    }
    st->slots[j] = (struct hs_live_entry){ (uintptr_t)p, size, stack, 0 };
    if (fresh)
        sum_add(&st->alloc_bytes, w->bytes);
    if (hs_opt.rate <= 1)
        return (int64_t)size;       /* exact mode: weight s, variance 0 */
    sum_add(&st->inuse_var, w->bytes_var);
    return hs_inuse_units(w->bytes);
}

int64_t hs_live_forget(struct hs_live_stripe *st, uint64_t size)
{
    struct hs_weights w;
    hs_weights(size, &w);
    sum_add(&st->inuse_var, -w.bytes_var);
    return hs_block_units(size, &w);
}

bool hs_live_take(struct hs_live_stripe *st, const void *p, uint64_t *size, uint32_t *stack, int64_t *units)
{
    uint64_t h = hs_addr_hash(p);
    if (!st->cap)
        return false;
    size_t mask = st->cap - 1, j = pos(h, st->cap);
    while (st->slots[j].addr && st->slots[j].addr != (uintptr_t)p)
        j = (j + 1) & mask;
    if (!st->slots[j].addr)
        return false;
    *size = st->slots[j].size;
    *stack = st->slots[j].stack;
    if (hs_opt.rate <= 1) {
        *units = (int64_t)*size;    /* exact mode: weight s, variance 0 */
    } else {
        struct hs_weights w;
        hs_weights(*size, &w);
        *units = hs_inuse_units(w.bytes);
        sum_add(&st->inuse_var, -w.bytes_var);
    }
    /* Backward-shift deletion: pull later entries of the cluster into the
     * hole when their home position allows it. */
    size_t hole = j, k = j;
    for (;;) {
        k = (k + 1) & mask;
        if (!st->slots[k].addr)
            break;
        size_t home = pos(hs_addr_hash((void *)st->slots[k].addr), st->cap);
        if (((k - home) & mask) >= ((k - hole) & mask)) {
            st->slots[hole] = st->slots[k];
            hole = k;
        }
    }
    st->slots[hole].addr = 0;
    st->count--;
    filter_remove(hs_filter_index(p));
    return true;
}

static void pending_flush(struct hs_pending *e)
{
    const struct hs_stack *s = hs_stack_get(e->stack);
    if (s)
        hs_stack_add_alloc(s, &e->g);
    memset(&e->g, 0, sizeof e->g);
}

/* Gives pending slot e to stack id (e's samples go to their stack first). */
__attribute__((noinline, cold)) void hs_live_pending_take(struct hs_live_stripe *st, struct hs_pending *e, uint32_t id)
{
    if (e->g.samples)
        pending_flush(e);
    e->stack = id;
    __atomic_store_n(&st->pending_used, st->pending_used | 1u << (id % HS_LIVE_PENDING), __ATOMIC_RELAXED);
}

void hs_live_flush_alloc(void)
{
    for (int i = 0; i < HS_LIVE_STRIPES; i++) {
        struct hs_live_stripe *st = &hs_live_stripes[i];
        /* None pending: nothing to lock for. A sample whose entry the
         * caller's live walk saw set this under the lock the walk took. */
        if (!__atomic_load_n(&st->pending_used, __ATOMIC_RELAXED))
            continue;
        hs_lock(&st->lock);
        for (uint32_t used = st->pending_used; used; used &= used - 1) {
            struct hs_pending *e = &st->pending[__builtin_ctz(used)];
            if (e->g.samples)
                pending_flush(e);
            e->stack = HS_NO_STACK;     /* its next sample sets the bit again */
        }
        __atomic_store_n(&st->pending_used, 0, __ATOMIC_RELAXED);
        hs_unlock(&st->lock);
    }
}

void hs_live_foreach(void (*fn)(void *ctx, uint64_t size, uint32_t stack), void *ctx)
{
    for (int i = 0; i < HS_LIVE_STRIPES; i++) {
        struct hs_live_stripe *st = &hs_live_stripes[i];
        if (!__atomic_load_n(&st->count, __ATOMIC_RELAXED))
            continue;               /* empty: nothing to lock for (a racing insert is as if after the walk) */
        hs_lock(&st->lock);
        for (size_t j = 0; j < st->cap; j++)
            if (st->slots[j].addr)
                fn(ctx, st->slots[j].size, st->slots[j].stack);
        hs_unlock(&st->lock);
    }
}

void hs_live_sums(int64_t *inuse_units, double *inuse_var, double *alloc_bytes)
{
    int64_t units = 0;
    double var = 0, alloc = 0;
    for (int i = 0; i < HS_LIVE_STRIPES; i++) {
        double v, a;
        units += __atomic_load_n(&hs_live_stripes[i].inuse_units, __ATOMIC_RELAXED);
        __atomic_load(&hs_live_stripes[i].inuse_var, &v, __ATOMIC_RELAXED);
        __atomic_load(&hs_live_stripes[i].alloc_bytes, &a, __ATOMIC_RELAXED);
        var += v;
        alloc += a;
    }
    *inuse_units = units;
    *inuse_var = var > 0 ? var : 0;     /* floating sums may end a hair below 0 */
    *alloc_bytes = alloc;
}

uint64_t hs_live_count(void)
{
    uint64_t n = 0;
    for (int i = 0; i < HS_LIVE_STRIPES; i++)
        n += __atomic_load_n(&hs_live_stripes[i].count, __ATOMIC_RELAXED);
    return n;
}

void hs_live_release(void)
{
    hs_live_lock_all();
    for (int i = 0; i < HS_LIVE_STRIPES; i++) {
        struct hs_live_stripe *st = &hs_live_stripes[i];
        hs_unmap(st->slots, st->cap * sizeof *st->slots, true);
        st->slots = NULL;
        st->cap = st->count = 0;
        st->inuse_var = st->alloc_bytes = 0;
        st->inuse_units = st->unpublished = 0;
        memset(st->pending, 0, sizeof st->pending);
        for (int k = 0; k < HS_LIVE_PENDING; k++)
            st->pending[k].stack = HS_NO_STACK;
        st->pending_used = 0;
        st->copied_gen = 0;
    }
    /* Gives the touched pages back and reads as zeros from now on. */
    madvise(hs_filter, sizeof hs_filter, MADV_DONTNEED);
    hs_live_unlock_all();
}

void hs_live_start(void)
{
    if (hs_opt.rate <= 1)
        memset(hs_filter, 0xff, sizeof hs_filter);
}

void hs_live_lock_all(void)
{
    for (int i = 0; i < HS_LIVE_STRIPES; i++)
        hs_lock(&hs_live_stripes[i].lock);
}

void hs_live_unlock_all(void)
{
    for (int i = HS_LIVE_STRIPES - 1; i >= 0; i--)
        hs_unlock(&hs_live_stripes[i].lock);
}

/* Context: fork child, single-threaded. */
void hs_live_reset_child(void)
{
    for (int i = 0; i < HS_LIVE_STRIPES; i++)
        hs_lock_init(&hs_live_stripes[i].lock);
    hs_live_release();
}
