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

/* Up to `max` frames of the calling thread into `buf`, exactly as
 * unw_backtrace(buf, max) called in place of hs_unwind would record them;
 * returns the count.
 * Context: inside malloc, reentrancy guard held, no shim lock held: no
 * allocation; a rule cache miss takes the loader's lock (dl_iterate_phdr),
 * as libunwind does. Never from a signal handler. */
int hs_unwind(void **buf, int max);

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
