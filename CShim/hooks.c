/*
 * hooks.c - the exported libc names: the fast path and nothing else.
 *
 * Idle (hs_active == 0), each call is the forward through hs_real plus one
 * well-predicted branch on a plain global: no TLS, no lock, no atomic RMW.
 * free() adds one subtract-and-compare for bootstrap pointers (forward.c).
 * While sampling, allocations go to hs_after_alloc (sampler.c: countdown in
 * TLS, rarely a sample) and frees of possibly-sampled addresses (one filter
 * load, live.h) to hs_before_free_slow. Frees are looked up *before* the
 * memory goes back, so the address cannot be reused and re-sampled by
 * another thread before its old record is gone.
 */
#define _GNU_SOURCE
#include "forward.h"
#include "sampler.h"
#include "live.h"
#include "control.h"

#include <errno.h>
#include <malloc.h>
#include <signal.h>
#include <stdlib.h>

#define HS_EXPORT __attribute__((visibility("default")))

HS_EXPORT void *malloc(size_t n)
{
    void *p = hs_real.malloc(n);
    if (hs_is_active())
        hs_after_alloc(p, n);
    return p;
}

HS_EXPORT void free(void *p)
{
    if (__builtin_expect(hs_is_boot(p), 0))
        return;
    if (hs_is_active() && p && hs_live_maybe(p))
        hs_before_free_slow(p);
    hs_real.free(p);
}

HS_EXPORT void *calloc(size_t a, size_t b)
{
    void *p = hs_real.calloc(a, b);
    if (hs_is_active())
        hs_after_alloc(p, a * b);   /* no overflow: calloc failed otherwise */
    return p;
}

HS_EXPORT void *realloc(void *old, size_t n)
{
    if (__builtin_expect(hs_is_boot(old), 0))
        return hs_boot_realloc(old, n);
    if (!hs_is_active())
        return hs_real.realloc(old, n);
    uint64_t osize = 0;
    uint32_t ostack = 0;
    bool had = old && hs_realloc_take(old, &osize, &ostack);
    void *p = hs_real.realloc(old, n);
    if (!p && n && had)
        hs_realloc_restore(old, osize, ostack);    /* failed: old block still live */
    if (p)
        hs_after_alloc(p, n);
    return p;
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

HS_EXPORT int posix_memalign(void **out, size_t align, size_t n)
{
    int r = hs_real.posix_memalign(out, align, n);
    if (hs_is_active() && r == 0)
        hs_after_alloc(*out, n);
    return r;
}

HS_EXPORT void *aligned_alloc(size_t align, size_t n)
{
    void *p = hs_real.aligned_alloc(align, n);
    if (hs_is_active())
        hs_after_alloc(p, n);
    return p;
}

HS_EXPORT void *memalign(size_t align, size_t n)
{
    void *p = hs_real.memalign(align, n);
    if (hs_is_active())
        hs_after_alloc(p, n);
    return p;
}

HS_EXPORT void *valloc(size_t n)
{
    void *p = hs_real.valloc(n);
    if (hs_is_active())
        hs_after_alloc(p, n);
    return p;
}

HS_EXPORT void *pvalloc(size_t n)
{
    void *p = hs_real.pvalloc(n);
    if (hs_is_active())
        hs_after_alloc(p, n);
    return p;
}

HS_EXPORT size_t malloc_usable_size(void *p)
{
    if (__builtin_expect(hs_is_boot(p), 0))
        return hs_boot_usable(p);
    return hs_real.malloc_usable_size(p);
}

/* Signal control must survive hosts that install handlers (control.c). */
HS_EXPORT int sigaction(int sig, const struct sigaction *act, struct sigaction *old)
{
    return hs_sigaction(sig, act, old);
}

HS_EXPORT sighandler_t signal(int sig, sighandler_t handler)
{
    return hs_signal(sig, handler);
}
