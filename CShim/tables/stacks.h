/*
 * stacks.h - capturing call stacks and the deduplicated stack table.
 *
 * A stack is interned once and never changes afterwards except for its
 * `alloc` group, which its stripe's lock protects (samples reach it from
 * the live stripes' pending counts, live.h). Stacks get dense ids in
 * order of creation; the snapshot writer walks ids 0..hs_stack_count()-1.
 */
#ifndef HS_STACKS_H
#define HS_STACKS_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

#include "base/options.h"
#include "base/exp_log.h"

/* Weights of one sampled allocation (FORMAT.md SMPL); hs_weights() computes
 * them from the block's size. */
struct hs_weights { double bytes, objects, bytes_var, objects_var; };

/* FORMAT.md "group": sampled allocations and their estimates. */
struct hs_group {
    uint64_t samples;
    double bytes, objects, bytes_var, objects_var;
};

/* Weights of one sampled allocation of `size` bytes at hs_opt.rate
 * (CShim/DESIGN.md, "Sampling math"): s/p, 1/p and their variance terms,
 * p = 1 - exp(-s/R); exact mode s, 1, 0. Here, below the sampler, because
 * the live table subtracts a freed block's weights from its stripe's sums;
 * inline, because in exact mode every allocation and free computes it.
 * Context: any. */
static inline __attribute__((always_inline)) void hs_weights(uint64_t size, struct hs_weights *w)
{
    if (hs_opt.rate <= 1) {
        w->bytes = (double)size;
        w->objects = 1;
        w->bytes_var = w->objects_var = 0;
        return;
    }
    double s = (double)size;
    double p = -hs_expm1(-s / (double)hs_opt.rate);     /* 1 - e^(-s/R), accurate for small s */
    if (!(p > 0)) {
        /* Only size 0 gets here, and it is never sampled (countdown >= 1). */
        w->bytes = w->objects = w->bytes_var = w->objects_var = 0;
        return;
    }
    w->bytes = s / p;
    w->objects = 1 / p;
    w->bytes_var = w->bytes * w->bytes * (1 - p);
    w->objects_var = w->objects * w->objects * (1 - p);
}

static inline void hs_group_add(struct hs_group *g, const struct hs_weights *w)
{
    g->samples++;
    g->bytes += w->bytes;
    g->objects += w->objects;
    g->bytes_var += w->bytes_var;
    g->objects_var += w->objects_var;
}

struct hs_stack {
    uint64_t hash;
    uint32_t id;            /* dense, from 0; index in the id directory */
    uint16_t depth;
    uint16_t flags;         /* HEAPSNAP_STACK_TRUNCATED */
    struct hs_group alloc;  /* protected by the stripe lock of `hash` */
    uintptr_t frames[];     /* immutable once published */
};

#define HS_NO_STACK UINT32_MAX

/* Finds the shim's own text range (frames to drop). Context: constructor. */
void hs_stacks_init(void);

/* Unwinds the calling thread into `frames` (room for hs_opt.max_depth):
 * the frames unw_backtrace gives, walked by hs_unwind (unwind.c; `entry` as
 * there), minus the shim's own. Returns the depth.
 * Context: inside malloc, reentrancy guard held, no shim lock held (a rule
 * cache miss, like libunwind, takes the loader's lock). Never from a signal
 * handler. */
uint32_t hs_stack_capture(uintptr_t *frames, bool *truncated, const void *entry);

/* Interns a stack; returns its id, or HS_NO_STACK when the budget is full.
 * A known stack is found with no lock and no atomic read-modify-write; a
 * new one takes a stack stripe lock, then the arena lock. Its alloc group
 * is not touched: the live stripe that records the sample counts it
 * (live.h, hs_live_count_alloc) and adds it here later.
 * Context: inside malloc. */
uint32_t hs_stack_intern(const uintptr_t *frames, uint32_t depth, bool truncated);

/* Adds `g` to the stack's alloc group. Context: takes its stripe lock
 * (nested in a live stripe's, or alone). */
void hs_stack_add_alloc(const struct hs_stack *s, const struct hs_group *g);

/* Ids handed out so far (some may not be published yet: hs_stack_get NULL). */
uint32_t hs_stack_count(void);
const struct hs_stack *hs_stack_get(uint32_t id);
/* Copies a stack's alloc group under its stripe lock. Context: writer. */
void hs_stack_read_alloc(const struct hs_stack *s, struct hs_group *out);

/* Forget every stack (memory comes back with hs_arena_release). Quiesced. */
void hs_stacks_release(void);
void hs_stacks_lock_all(void);
void hs_stacks_unlock_all(void);
void hs_stacks_reset_child(void);

#endif
