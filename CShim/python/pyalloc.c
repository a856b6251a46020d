/*
 * pyalloc.c - wrappers of CPython's MEM and OBJ allocator domains (pyalloc.h).
 *
 * Installing from the writer thread. tracemalloc installs its hooks with the
 * GIL held; we install ours from the writer thread without it, which is safe
 * for these reasons. PyMem_SetAllocator copies a PyMemAllocatorEx (a context
 * and four function pointers) into a global that allocating threads read
 * without a lock; each pointer is stored and loaded whole (aligned, 8 bytes).
 * Our wrappers keep the wrapped domain's context unchanged, and take the
 * wrapped functions from `orig`, never from their context, so a thread that
 * reads a mix of old and new pointers still calls a working pair. A block
 * allocated through one and freed through the other is harmless: a wrapper's
 * free looks the block up in the live table (as the free hook does), the
 * original's free skips it, and the live table is dropped when sampling
 * stops. Installing this way does not wait for the main thread to run
 * bytecode, which a service blocked in accept() or join() may never do.
 *
 * `orig` is written only when no wrapper of ours is in the domain's chain
 * (`placed` false), so a wrapper never ends up calling itself.
 */
#define _GNU_SOURCE
#include "python/pyalloc.h"
#include "tables/pyframes.h"
#include "sampling/sampler.h"
#include "tables/live.h"

#include <stdbool.h>
#include <stddef.h>
#include <string.h>

/* PyMemAllocatorEx (Include/cpython/pymem.h, the same since 3.5). */
struct allocator {
    void *ctx;
    void *(*malloc)(void *ctx, size_t size);
    void *(*calloc)(void *ctx, size_t nelem, size_t elsize);
    void *(*realloc)(void *ctx, void *ptr, size_t size);
    void (*free)(void *ctx, void *ptr);
};

enum { DOMAIN_RAW = 0, DOMAIN_MEM = 1, DOMAIN_OBJ = 2 };

/* Written by control (ctl_lock) while `placed` is false; read by wrappers. */
static struct allocator orig[3];
static bool placed[3];
static uint32_t flags;

/* The wrappers, one set per domain and kind (so each knows its `orig`
 * without a context of its own). Context: inside the interpreter's
 * allocator, any thread, GIL held or not; the same rules as the malloc hooks.
 *
 * SMALL: the domain is plain pymalloc, which serves 1..512 bytes from its
 * arenas and hands everything else to PyMem_RawMalloc, i.e. to our malloc
 * hook. So the wrapper counts only what pymalloc keeps, and costs a compare
 * and a tail call for the rest; a sampled block tail-jumps into
 * *_sampled_malloc, whose return address is then the interpreter's, so the
 * stack walk starts at its frame (HS_ENTRY_FRAME) without walking ours.
 * realloc is the exception: the old block may
 * be pymalloc's or malloc's, so for a small new size the countdown is held
 * and the wrapper counts the block itself.
 * HOLD: any other chain (debug hooks, an allocator installed by the program):
 * nothing is known of what it passes on, so every block is counted by the
 * wrapper with the countdown held. */
#define SMALL_REQUEST_THRESHOLD 512     /* Objects/obmalloc.c, 3.8 to 3.13 */
#define SMALL(n) ((n) - 1 < SMALL_REQUEST_THRESHOLD)   /* 1..512; 0 wraps around */

#define WRAPPERS(D, name)                                                          \
    static __attribute__((noinline, cold)) void *name##_sampled_malloc(void *ctx, size_t n) \
    {                                                                              \
        void *p = hs_sample_slow(orig[D].malloc(ctx, n), n, HS_ENTRY_FRAME());     \
        HS_NO_TAIL(p);                                                             \
        return p;                                                                  \
    }                                                                              \
    static __attribute__((noinline, cold)) void *name##_sampled_calloc(void *ctx, size_t a, size_t b) \
    {                                                                              \
        void *p = hs_sample_slow(orig[D].calloc(ctx, a, b), a * b, HS_ENTRY_FRAME()); \
        HS_NO_TAIL(p);                                                             \
        return p;                                                                  \
    }                                                                              \
    static void *name##_small_malloc(void *ctx, size_t n)                         \
    {                                                                              \
        if (!counts_down(n))                                                       \
            return name##_sampled_malloc(ctx, n);                                  \
        return orig[D].malloc(ctx, n);                                             \
    }                                                                              \
    static void *name##_small_calloc(void *ctx, size_t a, size_t b)               \
    {                                                                              \
        size_t n;                                                                  \
        if (!__builtin_mul_overflow(a, b, &n) && !counts_down(n))                  \
            return name##_sampled_calloc(ctx, a, b);                               \
        return orig[D].calloc(ctx, a, b);                                          \
    }                                                                              \
    static void *name##_hold_malloc(void *ctx, size_t n)                          \
    {                                                                              \
        if (!hs_is_active())                                                       \
            return orig[D].malloc(ctx, n);                                         \
        struct hs_hold h = hs_hold();                                              \
        void *p = orig[D].malloc(ctx, n);                                          \
        hs_unhold(h);                                                              \
        return hs_after_alloc(p, n);                                               \
    }                                                                              \
    static void *name##_hold_calloc(void *ctx, size_t a, size_t b)                \
    {                                                                              \
        if (!hs_is_active())                                                       \
            return orig[D].calloc(ctx, a, b);                                      \
        struct hs_hold h = hs_hold();                                              \
        void *p = orig[D].calloc(ctx, a, b);                                       \
        hs_unhold(h);                                                              \
        return p ? hs_after_alloc(p, a * b) : p;  /* no overflow: it failed otherwise */ \
    }                                                                              \
    static void *name##_realloc(void *ctx, void *old, size_t n)                   \
    {                                                                              \
        if (!hs_is_active())                                                       \
            return orig[D].realloc(ctx, old, n);                                   \
        uint64_t osize = 0;                                                        \
        uint32_t ostack = 0;                                                       \
        bool had = old && hs_live_maybe(old) && hs_realloc_take(old, &osize, &ostack); \
        bool hold = !small[D] || SMALL(n);                                         \
        struct hs_hold h = hold ? hs_hold() : (struct hs_hold){ 0 };               \
        void *p = orig[D].realloc(ctx, old, n);                                    \
        if (hold)                                                                  \
            hs_unhold(h);                                                          \
        if (!p && n && had)                                                        \
            hs_realloc_restore(old, osize, ostack);                                \
        return p && hold ? hs_after_alloc(p, n) : p;                               \
    }                                                                              \
    static void name##_free(void *ctx, void *p)                                   \
    {                                                                              \
        if (__builtin_expect(hs_live_maybe(p), 0))                                 \
            free_tracked(p);                                                       \
        orig[D].free(ctx, p);                                                      \
    }

static bool small[3];                   /* written with orig */

/* The counting of a small wrapper, before the call, so that the call itself
 * is a tail jump: true when the block is not to be sampled (larger than
 * pymalloc serves, or the countdown not reached; then it is counted down),
 * false when it is (the caller takes the sampling path, which allocates,
 * draws the next countdown and records). No test of hs_active: a wrapper is
 * only in place while sampling (or, wrapped by someone else after stop,
 * with the countdown of a finished session: the slow path then finds
 * sampling off and records nothing). Context: inside the allocator. */
static inline __attribute__((always_inline)) bool counts_down(size_t n)
{
    return !SMALL(n) || hs_counts_down(n);
}

/* A free of a possibly sampled block (the filter said maybe; zeroed when
 * sampling stops). Context: inside the interpreter's free. */
static __attribute__((noinline, cold)) void free_tracked(void *p)
{
    if (p && hs_is_active())
        hs_before_free_slow(p);
}

WRAPPERS(DOMAIN_MEM, mem)
WRAPPERS(DOMAIN_OBJ, obj)

static const struct allocator ours_small[3] = {
    [DOMAIN_MEM] = { NULL, mem_small_malloc, mem_small_calloc, mem_realloc, mem_free },
    [DOMAIN_OBJ] = { NULL, obj_small_malloc, obj_small_calloc, obj_realloc, obj_free },
};
static const struct allocator ours_hold[3] = {
    [DOMAIN_MEM] = { NULL, mem_hold_malloc, mem_hold_calloc, mem_realloc, mem_free },
    [DOMAIN_OBJ] = { NULL, obj_hold_malloc, obj_hold_calloc, obj_realloc, obj_free },
};

/* Whether `a` is one of our wrappers of domain d. */
static bool is_ours(int d, const struct allocator *a)
{
    return a->free == ours_small[d].free;
}

void hs_pyalloc_install(void)
{
    if (!hs_py_api.mem_get || !hs_py_api.mem_set)
        return;
    struct allocator raw;
    hs_py_api.mem_get(DOMAIN_RAW, &raw);
    /* "pymalloc" when the domains are plain pymalloc (PYTHONMALLOC unset);
     * "pymalloc_debug", "malloc_debug", or NULL for a custom chain. */
    const char *name = hs_py_api.allocator_name ? hs_py_api.allocator_name() : NULL;
    bool plain = name && strcmp(name, "pymalloc") == 0;
    uint32_t f = 0;
    for (int d = DOMAIN_MEM; d <= DOMAIN_OBJ; d++) {
        if (placed[d]) {
            f |= HS_PYALLOC_WRAPPED;
            continue;
        }
        struct allocator cur;
        hs_py_api.mem_get(d, &cur);
        if (cur.malloc == raw.malloc && cur.free == raw.free) {
            f |= HS_PYALLOC_MALLOC;     /* already malloc: the hooks see every block */
            continue;
        }
        orig[d] = cur;
        small[d] = plain;
        struct allocator w = plain ? ours_small[d] : ours_hold[d];
        w.ctx = cur.ctx;
        hs_py_api.mem_set(d, &w);
        placed[d] = true;
        f |= HS_PYALLOC_WRAPPED;
    }
    __atomic_store_n(&flags, f, __ATOMIC_RELAXED);
}

void hs_pyalloc_remove(void)
{
    if (!hs_py_api.mem_get || !hs_py_api.mem_set)
        return;
    for (int d = DOMAIN_MEM; d <= DOMAIN_OBJ; d++) {
        if (!placed[d])
            continue;
        struct allocator cur;
        hs_py_api.mem_get(d, &cur);
        if (!is_ours(d, &cur))
            continue;                   /* wrapped by someone else: stay, pass through */
        hs_py_api.mem_set(d, &orig[d]);
        placed[d] = false;
    }
    __atomic_store_n(&flags, 0, __ATOMIC_RELAXED);
}

uint32_t hs_pyalloc_flags(void)
{
    return __atomic_load_n(&flags, __ATOMIC_RELAXED);
}
