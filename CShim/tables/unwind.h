/*
 * unwind.h - walking the calling thread's stack: a cached per-address rule
 * from .eh_frame, with unw_backtrace as the fallback.
 *
 * Tables layer, beside stacks.c (its only caller on the sampled path).
 * hs_unwind() fills the buffer unw_backtrace() would fill if its caller
 * had called it: return addresses, innermost first, the first one into
 * the caller (the caller drops the shim's frames). HEAPSNAP_UNWIND
 * (options.h) selects the fast walk (default), libunwind alone, or both compared.
 */
#ifndef HS_UNWIND_H
#define HS_UNWIND_H

#include <stdint.h>
#include <stdbool.h>

/* Up to `max` frames of the calling thread into `buf`, exactly as
 * unw_backtrace(buf, max) called in place of hs_unwind would record them,
 * less the shim's own frames at the top when `entry` is given; returns the
 * count.
 *
 * `entry` saves walking the shim's frames: NULL, or the frame address
 * (__builtin_frame_address(0)) of a shim function that the host's call
 * reached by tail jumps only, so that its return address is into the host.
 * The fast walk then starts there. If it was not reached that way, the walk
 * starts in the shim's frames, which callers drop anyway (hs_unwind_in_shim);
 * libunwind always walks from here.
 *
 * Context: inside malloc, reentrancy guard held, no shim lock held: no
 * allocation; a rule cache miss takes the loader's lock (dl_iterate_phdr),
 * as libunwind does. Never from a signal handler. */
int hs_unwind(void **buf, int max, const void *entry);

/* hs_unwind, the frames ending after the first whose address is in
 * [stop.lo, stop.lo + stop.size) (size 0: none): the fast walk stops there,
 * libunwind's list is cut there (HEAPSNAP_NATIVE=inner). */
struct hs_unwind_stop {
    uintptr_t lo, size;
};

static inline bool hs_unwind_at_stop(struct hs_unwind_stop stop, uintptr_t pc) { return pc - stop.lo < stop.size; }
int hs_unwind_to(void **buf, int max, const void *entry, struct hs_unwind_stop stop);

/* Finds the shim's own text (hs_unwind_in_shim). Context: constructor. */
void hs_unwind_init(void);

/* Loads libunwind (dlopen) for the fallback walk, once: not at load, so a
 * process that never samples does not map it (nor liblzma, which it pulls
 * in). Called before the first sampling starts: by the writer thread when
 * the first request comes, or by the constructor with HEAPSNAP_START. Until
 * then, and if it cannot be loaded (one line on stderr), a stack the fast
 * walk cannot follow is recorded without frames. Context: no shim lock
 * held; not inside malloc. */
#define HS_LIBUNWIND "libunwind.so.8"
void hs_unwind_load(void);

/* The shim's own text, [lo, hi): written once by hs_unwind_init. */
extern uintptr_t hs_shim_text_lo __attribute__((visibility("hidden")));
extern uintptr_t hs_shim_text_hi __attribute__((visibility("hidden")));

/* Is `addr` in the shim's own text? Context: any, after hs_unwind_init. */
static inline bool hs_unwind_in_shim(uintptr_t addr)
{
    return addr - hs_shim_text_lo < hs_shim_text_hi - hs_shim_text_lo;
}

/* Forgets every cached rule: a module is about to go, or just went
 * (interpose.c's dlclose calls it before and after the real one).
 * Context: any thread, no lock held; one atomic add. */
void hs_unwind_forget(void);

/* Walks by path since the process (or fork child) began. Counted only
 * under HEAPSNAP_UNWIND=check (an atomic add per stack is not free in
 * exact mode, and only check mode reports them). */
struct hs_unwind_stats {
    uint64_t fast;          /* the fast walk reached the end of the stack */
    uint64_t fallback;      /* it gave up and unw_backtrace walked instead */
    uint64_t compared;      /* check mode: captures walked both ways */
    uint64_t differed;      /* check mode: fast walks whose frames differed */
};
void hs_unwind_stats(struct hs_unwind_stats *out);

/* Context: fork child, single-threaded: the counts start again (the rule
 * cache stays valid: the same modules are mapped). */
void hs_unwind_reset_child(void);

#endif
