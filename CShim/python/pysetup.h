/*
 * pysetup.h - the Python set-up of each sampling session.
 *
 * What a session needs from CPython beyond reading frames: the pymalloc
 * wrappers (pyalloc.h), the free lists kept empty (pyreuse.h) and, with
 * HEAPSNAP_AT_EXIT, a builtin registered with Python's atexit so that the
 * AT_EXIT snapshot is written before the interpreter finalizes. Control
 * drives it: at start and stop, from each writer tick, and from samples
 * that find Python while the set-up is not done (hs_py_on_thread).
 */
#ifndef HS_PYSETUP_H
#define HS_PYSETUP_H

/* Writes the AT_EXIT snapshot, from Python's atexit stage: registered by
 * control at load (a lower layer never calls up). */
extern void (*hs_pysetup_at_exit)(void);

/* A session starts: the set-up is asked of samples and of the writer for
 * the next 30 s, and runs once now. Context: control lock held. */
void hs_pysetup_start(void);

/* The writer's tick while sampling: the set-up once more, until it is done;
 * meanwhile it may shorten *timeout_ms (NULL: no wait to shorten) to 10 ms,
 * or 1 ms in the first second once Python frames were seen.
 * Context: control lock held, the writer (or start). */
void hs_pysetup_tick(int *timeout_ms);

/* From a sample that finds Python while hs_py_wanted is set: the set-up,
 * and hs_py_wanted cleared once it has nothing left to install or queue.
 * Context: inside malloc, sampled path, guard held, control lock held
 * (tried, never waited for); no allocation. */
void hs_pysetup_on_thread(void);

/* Stop, before the final snapshot: samples no longer do the set-up. */
void hs_pysetup_stop(void);

/* Stop, after the final snapshot: the wrappers removed where they are still
 * the current ones, the free lists on again at the main thread's next
 * chance. Context: control lock held, sampling quiesced. */
void hs_pysetup_undo(void);

#endif
