/*
 * mem.h - the shim's own memory: mmap only, counted against one budget.
 *
 * The shim never calls malloc (that would recurse into itself and mix its
 * bookkeeping with the host's heap). Every byte it keeps comes from mmap and
 * is counted in hs_mem_used against hs_opt.max_memory; a request that would
 * exceed the budget fails and the caller counts a dropped sample. Long-lived
 * small objects (stacks) come from a bump arena; growable tables map their
 * own regions. hs_arena_release() unmaps the arena when sampling stops
 * (callers guarantee nobody still points into it: sampler.c's quiesce).
 */
#ifndef HS_MEM_H
#define HS_MEM_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

/* Bytes the shim's tables use now. Written with atomic adds, read relaxed. */
extern size_t hs_mem_used;

/* Maps `size` bytes (rounded up to pages) if the budget allows; NULL otherwise.
 * `account` false maps outside the budget (temporary writer buffers).
 * Context: any thread, inside malloc too: no allocation, no locks. */
void *hs_map(size_t size, bool account);
void hs_unmap(void *p, size_t size, bool account);

/* Bump allocation from the arena, 16-byte aligned; NULL when over budget.
 * Context: inside malloc: takes the arena lock (a leaf lock). */
void *hs_arena_alloc(size_t size);

/* Unmaps every arena chunk. Context: control, with sampling quiesced. */
void hs_arena_release(void);

/* fork support: the arena lock is taken/released around fork. */
void hs_arena_lock(void);
void hs_arena_unlock(void);
void hs_arena_reset_child(void);

#endif
