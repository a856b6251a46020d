/*
 * pyreuse.h - Python objects charged to the line that creates them.
 *
 * CPython keeps dead lists, dicts, tuples and floats on per-type free lists
 * and hands them to the next object of that type without calling any
 * allocator. An allocation profiler then charges the new object to the line
 * that first allocated its block: a handler that keeps nothing shows as the
 * holder of what another line keeps. tracemalloc re-charges the block when
 * the object is created again (_PyTraceMalloc_NewReference). The shim gets
 * the same answer another way: while sampling, those four free lists are
 * kept empty, so every such object is a fresh allocation, seen (and sampled)
 * on the line that creates it. How, per version, is in pyreuse.c.
 */
#ifndef HS_PYREUSE_H
#define HS_PYREUSE_H

#include <stdint.h>

/* PYTH.flags bit (beside HS_PYALLOC_*): the free lists were off in this
 * session, so reused objects are charged where they were created. */
#define HS_PYREUSE_OFF 4u

/* Brings the interpreter's free lists in line with sampling: off (emptied
 * and kept empty) while sampling, back on otherwise. Idempotent.
 * Context: a thread holding the GIL (a pending call, or the gc callback it
 * registers); never while the interpreter finalizes. */
void hs_pyreuse_sync(void);

/* Is the state hs_pyreuse_sync would set already in place (or can it set
 * none: an interpreter without what it needs)? Context: any, no allocation. */
int hs_pyreuse_in_sync(void);

/* A new session starts: forget whether the last one had them off. Context:
 * control, ctl_lock held. */
void hs_pyreuse_session(void);

/* HS_PYREUSE_OFF when this session has had the free lists off since its
 * first Python sample could have been taken, else 0. Context: any. */
uint32_t hs_pyreuse_flags(void);

#endif
