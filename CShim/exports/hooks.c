/*
 * hooks.c - the exported allocation functions and their sampling paths.
 *
 * Each exported function is one indirect jump through its route (forward.h):
 * idle, straight into the next allocator, with no test, no TLS, no frame of
 * ours; while sampling, into the paths below, which the sampler switches the
 * routes to (registered at load, hooks_register). A sampling path counts the
 * block against the thread's countdown (sampler.h: one TLS subtract and a
 * branch) and tail-jumps into the next allocator; only a block that crosses
 * the countdown takes the *_slow_path function, which allocates and records.
 * A free asks the filter (live.h, one load) and tail-jumps too; a possibly
 * sampled block is looked up *before* the memory goes back, so the address
 * cannot be reused and re-sampled by another thread before its old record
 * is gone.
 */
#define _GNU_SOURCE
#include "base/forward.h"
#include "sampling/sampler.h"
#include "tables/live.h"

#include <errno.h>
#include <malloc.h>
#include <stdlib.h>

#define HS_EXPORT __attribute__((visibility("default")))

/* The work of a sampled block, apart from the paths' tail jumps, so that no
 * path sets up a frame for it (objdump -d shows each path as a few
 * instructions and a jump). A *_slow_path function is reached from the
 * exported name by tail jumps only, so its frame's return address is into
 * the host: the stack walk starts there (HS_ENTRY_FRAME, hs_sample_slow)
 * instead of walking the shim's own frames. */
#define SLOW_PATH static __attribute__((noinline, cold))

/* ------------------------------------------- fast paths and slow paths */

SLOW_PATH void *malloc_slow_path(size_t n)
{
    void *p = hs_sample_slow(hs_real.malloc_fn(n), n, HS_ENTRY_FRAME());
    HS_NO_TAIL(p);
    return p;
}

static void *malloc_fast_path(size_t n)
{
    if (hs_counts_down(n))
        return hs_real.malloc_fn(n);
    return malloc_slow_path(n);
}

/* A free of a possibly sampled block: out of the live table first, then
 * back to the allocator (see the top of this file). Context: inside free. */
SLOW_PATH void free_slow_path(void *p)
{
    if (hs_is_boot(p))
        return;
    if (p)
        hs_before_free_slow(p);
    hs_real.free_fn(p);
}

static void free_fast_path(void *p)
{
    if (hs_live_maybe(p))
        return free_slow_path(p);
    hs_real.free_fn(p);
}

/* While bootstrap blocks exist (forward.h), free checks for them first. */
static void free_fast_path_boot(void *p)
{
    if (__builtin_expect(hs_is_boot(p), 0))
        return;
    free_fast_path(p);
}

SLOW_PATH void *calloc_slow_path(size_t a, size_t b)
{
    void *p = hs_sample_slow(hs_real.calloc_fn(a, b), a * b, HS_ENTRY_FRAME());  /* no overflow: calloc failed otherwise */
    HS_NO_TAIL(p);
    return p;
}

static void *calloc_fast_path(size_t a, size_t b)
{
    if (hs_counts_down(a * b))      /* an overflowed product is counted, and calloc fails */
        return hs_real.calloc_fn(a, b);
    return calloc_slow_path(a, b);
}

/* The old block leaves the live table before the allocator may reuse its
 * address; a failed realloc puts it back. The new block counts as a fresh
 * allocation of n bytes: `crossed` says realloc_fast_path already counted it
 * and found it due (hs_counts_down said false), else it is counted here.
 * Context: inside realloc. */
SLOW_PATH void *realloc_slow_path(void *old, size_t n, bool crossed)
{
    uint64_t osize = 0;
    uint32_t ostack = 0;
    bool had = old && hs_live_maybe(old) && hs_realloc_take(old, &osize, &ostack);
    void *p = hs_real.realloc_fn(old, n);
    if (!p && n && had)
        hs_realloc_restore(old, osize, ostack);    /* failed: old block still live */
    if (!p) {
        if (crossed)
            hs_uncount(n);      /* nothing allocated, nothing counted */
    } else if (crossed || !hs_counts_down(n)) {
        p = hs_sample_slow(p, n, HS_ENTRY_FRAME());
    }
    HS_NO_TAIL(p);
    return p;
}

static void *realloc_fast_path(void *old, size_t n)
{
    if (hs_live_maybe(old))
        return realloc_slow_path(old, n, false);
    if (hs_counts_down(n))
        return hs_real.realloc_fn(old, n);
    return realloc_slow_path(old, n, true);
}

/* While bootstrap blocks exist (forward.h), realloc checks for them first. */
static void *realloc_fast_path_boot(void *old, size_t n)
{
    if (__builtin_expect(hs_is_boot(old), 0))
        return hs_boot_realloc(old, n);
    return realloc_fast_path(old, n);
}

SLOW_PATH int posix_memalign_slow_path(void **out, size_t align, size_t n)
{
    int r = hs_real.posix_memalign_fn(out, align, n);
    if (r == 0)
        hs_sample_slow(*out, n, HS_ENTRY_FRAME());
    else
        hs_sample_slow(NULL, n, NULL);      /* draws the next countdown */
    return r;
}

static int posix_memalign_fast_path(void **out, size_t align, size_t n)
{
    if (hs_counts_down(n))
        return hs_real.posix_memalign_fn(out, align, n);
    return posix_memalign_slow_path(out, align, n);
}

/* The aligned allocators and valloc/pvalloc: one path each, the same shape. */
#define ALIGNED_PATH(name, params, args)                                      \
    SLOW_PATH void *name##_slow_path params                                   \
    {                                                                         \
        void *p = hs_sample_slow(hs_real.name##_fn args, n, HS_ENTRY_FRAME()); \
        HS_NO_TAIL(p);                                                        \
        return p;                                                             \
    }                                                                         \
    static void *name##_fast_path params                                      \
    {                                                                         \
        if (hs_counts_down(n))                                                \
            return hs_real.name##_fn args;                                    \
        return name##_slow_path args;                                         \
    }

ALIGNED_PATH(aligned_alloc, (size_t align, size_t n), (align, n))
ALIGNED_PATH(memalign, (size_t align, size_t n), (align, n))
ALIGNED_PATH(valloc, (size_t n), (n))
ALIGNED_PATH(pvalloc, (size_t n), (n))

static struct hs_routes fast_paths = {
    malloc_fast_path, free_fast_path, calloc_fast_path, realloc_fast_path, posix_memalign_fast_path,
    aligned_alloc_fast_path, memalign_fast_path, valloc_fast_path, pvalloc_fast_path,
};

/* Before lifecycle.c's constructor (102), which may start sampling. */
__attribute__((constructor(101))) static void hooks_register(void)
{
    hs_forward_init();
    if (hs_boot_in_use()) {
        fast_paths.free_fn = free_fast_path_boot;
        fast_paths.realloc_fn = realloc_fast_path_boot;
    }
    hs_sampler_set_paths(&fast_paths);
}

/* ------------------------------------------------------- exported names */

HS_EXPORT void *malloc(size_t n) { return hs_route.malloc_fn(n); }
HS_EXPORT void free(void *p) { hs_route.free_fn(p); }
HS_EXPORT void *calloc(size_t a, size_t b) { return hs_route.calloc_fn(a, b); }
HS_EXPORT void *realloc(void *old, size_t n) { return hs_route.realloc_fn(old, n); }
HS_EXPORT int posix_memalign(void **out, size_t align, size_t n) { return hs_route.posix_memalign_fn(out, align, n); }
HS_EXPORT void *aligned_alloc(size_t align, size_t n) { return hs_route.aligned_alloc_fn(align, n); }
HS_EXPORT void *memalign(size_t align, size_t n) { return hs_route.memalign_fn(align, n); }
HS_EXPORT void *valloc(size_t n) { return hs_route.valloc_fn(n); }
HS_EXPORT void *pvalloc(size_t n) { return hs_route.pvalloc_fn(n); }

HS_EXPORT void *reallocarray(void *old, size_t a, size_t b)
{
    size_t n;
    return hs_array_bytes(a, b, &n) ? hs_route.realloc_fn(old, n) : NULL;
}

HS_EXPORT size_t malloc_usable_size(void *p)
{
    if (__builtin_expect(hs_is_boot(p), 0))
        return hs_boot_usable(p);
    return hs_real.malloc_usable_size_fn(p);
}
