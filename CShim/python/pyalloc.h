/*
 * pyalloc.h - objects that CPython's own allocator (pymalloc) serves.
 *
 * pymalloc carves objects of 512 bytes or less out of arenas it maps itself,
 * so they never reach malloc. While sampling, the shim wraps the interpreter's
 * MEM and OBJ allocator domains (PyMem_SetAllocator, as tracemalloc does);
 * each wrapper counts its blocks against the thread's byte countdown like
 * the malloc hooks, and holds the countdown while the wrapped allocator runs,
 * so a block pymalloc passes on to malloc is counted once, by the wrapper.
 */
#ifndef HS_PYALLOC_H
#define HS_PYALLOC_H

#include <stdint.h>

/* PYTH.flags bits. */
#define HS_PYALLOC_WRAPPED  1u     /* the MEM and OBJ domains are wrapped */
#define HS_PYALLOC_MALLOC   2u     /* they already use malloc (PYTHONMALLOC=malloc): nothing to wrap */

/* Wraps the MEM and OBJ domains (once; a wrapper that stayed in place is
 * reused). Call only once the interpreter has set its allocators up (a
 * thread state exists), or they would overwrite ours.
 * Context: control, ctl_lock held, reentrancy guard held. */
void hs_pyalloc_install(void);

/* Puts the interpreter's allocators back where ours are still the current
 * ones; where something wrapped ours meanwhile (tracemalloc.start()), ours
 * stay in the chain and pass every call through while idle.
 * Context: control, ctl_lock held, sampling quiesced. */
void hs_pyalloc_remove(void);

/* The block cache's switch (pyalloc.c, "The block cache"): places the
 * cache's wrappers, or the plain ones, as the samples asked. Context: a
 * thread running Python, inside a wrapper's sampled path, GIL held,
 * control's lock held (hs_pyalloc_switch_request, set by control, tries it
 * and calls this). */
void hs_pyalloc_switch(void);
extern void (*hs_pyalloc_switch_request)(void);

/* Gives the block cache's blocks back to pymalloc (pyalloc.c, "The block
 * cache"). Context: the GIL held (the free lists' pending call, as sampling
 * stops). */
void hs_pyalloc_drain(void);

/* HS_PYALLOC_* for the snapshot. */
uint32_t hs_pyalloc_flags(void);

#endif
