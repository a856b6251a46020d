/*
 * hooks.c - the exported allocation functions: the fast path and nothing else.
 *
 * Idle (hs_active == 0), each call is the forward through hs_real plus one
 * well-predicted branch on a plain global: no TLS, no lock, no atomic RMW.
 * free() adds one subtract-and-compare for bootstrap pointers (forward.c).
 * While sampling, allocations go to hs_after_alloc (sampler.h: a countdown
 * in TLS, rarely a sample) and frees of possibly-sampled addresses (one
 * filter load, live.h, inline in free) to hs_before_free_slow. Frees are looked up *before* the
 * memory goes back, so the address cannot be reused and re-sampled by
 * another thread before its old record is gone.
 */
#define _GNU_SOURCE
#include "forward.h"
#include "sampler.h"
#include "live.h"

#include <errno.h>
#include <malloc.h>
#include <stdlib.h>

#define HS_EXPORT __attribute__((visibility("default")))

/* Idle, each allocation function is a load, a branch and a tail jump into
 * the next allocator, with no stack frame. The sampling path of each lives
 * in its own noinline function (SAMPLING), reached by a tail jump: inline,
 * the compiler hoists the call into the next allocator above the branch
 * and gives the idle path a frame (objdump -d). */
#define SAMPLING static __attribute__((noinline, cold))

SAMPLING void *malloc_sampling(size_t n) { return hs_after_alloc(hs_real.malloc_fn(n), n); }

HS_EXPORT void *malloc(size_t n)
{
    if (!hs_is_active())
        return hs_real.malloc_fn(n);
    return malloc_sampling(n);
}

/* A free of a possibly sampled block: out of the live table first, then back
 * to the allocator (see the top of this file). Context: inside free. */
SAMPLING void free_tracked(void *p)
{
    if (hs_is_boot(p))
        return;
    if (p)
        hs_before_free_slow(p);
    hs_real.free_fn(p);
}

/* While sampling, a free costs one more load: the filter (live.h). */
HS_EXPORT void free(void *p)
{
    if (hs_is_active() && hs_live_maybe(p))
        return free_tracked(p);
    if (__builtin_expect(hs_is_boot(p), 0))
        return;
    hs_real.free_fn(p);
}

SAMPLING void *calloc_sampling(size_t a, size_t b)
{
    return hs_after_alloc(hs_real.calloc_fn(a, b), a * b);    /* no overflow: calloc failed otherwise */
}

HS_EXPORT void *calloc(size_t a, size_t b)
{
    if (!hs_is_active())
        return hs_real.calloc_fn(a, b);
    return calloc_sampling(a, b);
}

/* The old block leaves the live table before the allocator may reuse its
 * address; a failed realloc puts it back. The new block counts as a fresh
 * allocation of n bytes. Context: inside realloc. */
SAMPLING void *realloc_sampling(void *old, size_t n)
{
    uint64_t osize = 0;
    uint32_t ostack = 0;
    bool had = old && hs_live_maybe(old) && hs_realloc_take(old, &osize, &ostack);
    void *p = hs_real.realloc_fn(old, n);
    if (!p && n && had)
        hs_realloc_restore(old, osize, ostack);    /* failed: old block still live */
    return p ? hs_after_alloc(p, n) : p;
}

HS_EXPORT void *realloc(void *old, size_t n)
{
    if (__builtin_expect(hs_is_boot(old), 0))
        return hs_boot_realloc(old, n);
    if (!hs_is_active())
        return hs_real.realloc_fn(old, n);
    return realloc_sampling(old, n);
}

HS_EXPORT void *reallocarray(void *old, size_t a, size_t b)
{
    size_t n;
    if (__builtin_mul_overflow(a, b, &n)) {
        errno = ENOMEM;
        return NULL;
    }
    return realloc(old, n);
}

SAMPLING int posix_memalign_sampling(void **out, size_t align, size_t n)
{
    int r = hs_real.posix_memalign_fn(out, align, n);
    if (r == 0)
        hs_after_alloc(*out, n);
    return r;
}

HS_EXPORT int posix_memalign(void **out, size_t align, size_t n)
{
    if (!hs_is_active())
        return hs_real.posix_memalign_fn(out, align, n);
    return posix_memalign_sampling(out, align, n);
}

SAMPLING void *aligned_alloc_sampling(size_t align, size_t n) { return hs_after_alloc(hs_real.aligned_alloc_fn(align, n), n); }

HS_EXPORT void *aligned_alloc(size_t align, size_t n)
{
    if (!hs_is_active())
        return hs_real.aligned_alloc_fn(align, n);
    return aligned_alloc_sampling(align, n);
}

SAMPLING void *memalign_sampling(size_t align, size_t n) { return hs_after_alloc(hs_real.memalign_fn(align, n), n); }

HS_EXPORT void *memalign(size_t align, size_t n)
{
    if (!hs_is_active())
        return hs_real.memalign_fn(align, n);
    return memalign_sampling(align, n);
}

SAMPLING void *valloc_sampling(size_t n) { return hs_after_alloc(hs_real.valloc_fn(n), n); }

HS_EXPORT void *valloc(size_t n)
{
    if (!hs_is_active())
        return hs_real.valloc_fn(n);
    return valloc_sampling(n);
}

SAMPLING void *pvalloc_sampling(size_t n) { return hs_after_alloc(hs_real.pvalloc_fn(n), n); }

HS_EXPORT void *pvalloc(size_t n)
{
    if (!hs_is_active())
        return hs_real.pvalloc_fn(n);
    return pvalloc_sampling(n);
}

HS_EXPORT size_t malloc_usable_size(void *p)
{
    if (__builtin_expect(hs_is_boot(p), 0))
        return hs_boot_usable(p);
    return hs_real.malloc_usable_size_fn(p);
}
