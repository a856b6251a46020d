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
#include "tables/python_layouts.h"
#include "base/clock.h"
#include "base/options.h"

#include <stdbool.h>
#include <stddef.h>
#include <string.h>
#include <sys/random.h>

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

/* The block cache: the float free list's work, done under the allocator
 * (CShim/DESIGN.md, "The block cache").
 *
 * Why. While sampling, the interpreter's free lists are kept empty
 * (pyreuse.c), so every float is a pymalloc allocation and free through our
 * wrappers: ~80 instructions a float where the free list took ~10, most of
 * what sampling costs a numeric program. The float free list cannot be kept
 * and counted: its pops are inline in the interpreter, and so are most of
 * its pushes (_PyFloat_ExactDealloc, not tp_dealloc). So the wrappers keep
 * a free list of their own, under the allocator: every block is still
 * counted and sampled as it is allocated and freed, and the interpreter's
 * own bookkeeping is untouched; only pymalloc is skipped.
 *
 * What. While the cache is active, requests of 17..24 bytes (a float is 24,
 * in 3.11 to 3.13) are asked of pymalloc as 32, the block pymalloc gives
 * them anyway (its size class of 17..32), and the wrapper writes a tag in
 * the 8 bytes past the request: the block's address XOR the activation's
 * key. A free whose block carries the tag is a 32-byte block of ours,
 * whatever its contents and whoever frees it: it goes on the cache (at most
 * 100 blocks, what the float free list itself holds) instead of back to
 * pymalloc, and the next request of 17..24 bytes takes it.
 *
 * When. Checking the tag costs each free ~8 instructions, which a program
 * that makes few such blocks would pay for nothing (0.3-1% of all its
 * instructions, measured). So the cache has wrappers of its own, placed in
 * the domains only while it is active: inactive, the wrappers are the plain
 * ones and cost nothing more. Sampling activates it while blocks of 17..24
 * bytes are about a quarter of the bytes allocated, and deactivates it
 * below an eighth (a sampled block of a wrapper decides: samples are drawn
 * in proportion to bytes, so the share of them that are 17..24 bytes long
 * estimates it); exact mode, where every block pays ~1,500
 * instructions to be recorded, keeps it active from the start. A switch
 * places the other wrappers (PyMem_SetAllocator) from the allocating
 * thread, under control's lock (only tried: hs_pyalloc_switch_request), as
 * install does from the writer.
 *
 * Why it is safe. The tag is read only where the block's 32 bytes cannot
 * cross a page (the block at most 4064 bytes into its page, not at its
 * start: NULL is not read either), so the 8 bytes read are in the page of
 * the block's first byte, mapped whatever the block is; a block that would
 * cross one is never tagged. While the cache is active, every free of both
 * domains goes through the cache's wrappers (activation requires both to
 * be ours, directly in the domains), which clear a tag before pymalloc gets
 * the block back (free, realloc, the drain): a pool that pymalloc carves
 * again into smaller blocks holds no tag the key matches. Every activation,
 * deactivation and removal draws a key never used before, so blocks tagged
 * under an earlier one and freed unchecked since (through the plain
 * wrappers, or around ours) keep a tag that no later key matches. An
 * untagged block matches by chance with
 * probability 2^-64. The GIL orders everything: both domains' callers hold
 * it, and so does a switch (the wrappers it replaces cannot be running).
 *
 * Context: inside the MEM and OBJ domains, whose callers hold the GIL;
 * that is the cache's lock, as it is pymalloc's. 3.12 and 3.13 can run
 * interpreters with their own GIL and their own pymalloc: once a second
 * interpreter has been made (_PyRuntime.interpreters.next_id above 1),
 * nothing is tagged or taken again (the blocks kept, the main
 * interpreter's, stay). Only for plain pymalloc. */
#define CACHE_MIN 17
#define CACHE_MAX 24
#define CACHE_BLOCK 32
#define CACHE_CAP 100                   /* PyFloat_MAXFREELIST */
#define CACHE_PAGE 4096                 /* the smallest page: a read within one never faults */
#define CACHE_SIZE(n) ((n) - CACHE_MIN <= CACHE_MAX - CACHE_MIN)   /* 17..24; 0 wraps around */

static struct {
    bool active;                        /* the cache's wrappers are in place; tags written and checked */
    uint32_t count;
    void *head;                         /* blocks linked through their first word */
    uintptr_t key;                      /* this activation's; never 0 */
    uint32_t share;                     /* of sampled blocks 17..24 bytes long, moving (decide) */
} cache;                                /* the GIL; `active` and `key` also control's lock, to change */
static uintptr_t key_base;              /* drawn at the first install */
static uint64_t keys_drawn;
/* The cache may be active while *cache_gate <= 1: a constant 2 (off: not
 * plain pymalloc, or a version we do not know), a constant 0 (3.11), or
 * _PyRuntime.interpreters.next_id (3.12+: 1 until a second interpreter). */
static const int64_t gate_off = 2, gate_on = 0;
static const volatile int64_t *cache_gate = &gate_off;
void (*hs_pyalloc_switch_request)(void);   /* set by control at load */

/* A key no tag was ever written with. */
static uintptr_t fresh_key(void)
{
    return (key_base ^ (++keys_drawn * 0x9E3779B97F4A7C15ull)) | 1;
}

static inline bool cache_usable(void) { return *cache_gate <= 1; }

/* `active` and `key` are written by a switch (the GIL and control's lock)
 * and by remove (control's lock, from the writer: a wrapper of ours someone
 * else's chain kept may be running), read by the wrappers: whole, relaxed. */
static inline bool cache_active(void) { return __atomic_load_n(&cache.active, __ATOMIC_RELAXED); }
static inline uintptr_t cache_key(void) { return __atomic_load_n(&cache.key, __ATOMIC_RELAXED); }
static inline void cache_set_active(bool on) { __atomic_store_n(&cache.active, on, __ATOMIC_RELAXED); }
static inline void cache_set_key(uintptr_t k) { __atomic_store_n(&cache.key, k, __ATOMIC_RELAXED); }

/* Whether a block may carry a tag: its 32 bytes within one page, not at
 * the page's start. */
static inline bool taggable(uintptr_t a) { return (a & (CACHE_PAGE - 1)) - 1 < CACHE_PAGE - CACHE_BLOCK; }

/* Whether p is a 32-byte block of ours, tagged under the active key. */
static inline bool tagged(const void *p)
{
    uintptr_t a = (uintptr_t)p;
    return taggable(a) && ((const uintptr_t *)p)[3] == (a ^ cache_key());
}

static inline void untag(void *p) { ((uintptr_t *)p)[3] = 0; }

/* Gives the cache's blocks back to pymalloc, untagged. Not once a second
 * interpreter exists: this thread may be running it, with its own pymalloc,
 * and the blocks are the main one's (they stay, at most 3,200 bytes).
 * Context: the GIL. */
static void cache_empty(void)
{
    int d = orig[DOMAIN_OBJ].free ? DOMAIN_OBJ : DOMAIN_MEM;   /* both pymalloc: the cache is only for plain */
    while (cache.head && orig[d].free && cache_usable()) {
        void **b = cache.head;
        cache.head = *b;
        cache.count--;
        untag(b);
        orig[d].free(orig[d].ctx, b);
    }
}

/* pymalloc's 32-byte block, tagged when it may be. */
static __attribute__((noinline)) void *cache_refill(int d, void *ctx)
{
    void *b = orig[d].malloc(ctx, CACHE_BLOCK);
    uintptr_t a = (uintptr_t)b;
    if (taggable(a))
        ((uintptr_t *)b)[3] = a ^ cache_key();
    return b;
}

/* A block for a request of 17..24 bytes of domain d while active: the
 * cache's last, or pymalloc's 32-byte one. */
static inline void *cache_alloc(int d, void *ctx, size_t n)
{
    void **b = cache.head;
    if (__builtin_expect(!cache_usable(), 0))
        return orig[d].malloc(ctx, n);
    if (!b)
        return cache_refill(d, ctx);
    cache.head = *b;
    cache.count--;
    return b;
}

/* Keeps a freed block that carries the tag; false for any other. A tagged
 * block the cache cannot keep loses its tag before pymalloc gets it back.
 * Neither the gate nor `active` is checked: only cache_alloc tags, while
 * active and the gate open, and the key retires whenever the cache stops
 * being active, so a block another interpreter's thread frees, or one freed
 * while inactive, does not carry the key's tag. */
static inline bool cache_free(void *p)
{
    if (!tagged(p))
        return false;
    if (cache.count >= CACHE_CAP) {
        untag(p);
        return false;
    }
    *(void **)p = cache.head;
    cache.head = p;
    cache.count++;
    return true;
}

/* A block for a request of n bytes of domain d: the cache's for 17..24
 * bytes while it is active, pymalloc's otherwise. Context: the GIL. */
static inline void *block_alloc(int d, void *ctx, size_t n)
{
    return CACHE_SIZE(n) && cache_active() ? cache_alloc(d, ctx, n) : orig[d].malloc(ctx, n);
}

/* Gives p back: to the cache when it carries the tag, to pymalloc
 * otherwise. Context: the GIL, the cache's wrappers. */
static inline void block_free(int d, void *ctx, void *p)
{
    if (!cache_free(p))
        orig[d].free(ctx, p);
}

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
        decide(n);                                                                 \
        void *p = hs_sample_slow(block_alloc(D, ctx, n), n, HS_ENTRY_FRAME());     \
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
    static void *name##_cached_malloc(void *ctx, size_t n)                        \
    {                                                                              \
        if (!counts_down(n))                                                       \
            return name##_sampled_malloc(ctx, n);                                  \
        return block_alloc(D, ctx, n);                                             \
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
    static void *name##_cached_realloc(void *ctx, void *old, size_t n)            \
    {                                                                              \
        if (tagged(old))                                                           \
            untag(old);                                                            \
        return name##_realloc(ctx, old, n);                                        \
    }                                                                              \
    static void name##_free(void *ctx, void *p)                                   \
    {                                                                              \
        if (__builtin_expect(hs_live_maybe(p), 0))                                 \
            free_tracked(p);                                                       \
        orig[D].free(ctx, p);                                                      \
    }                                                                              \
    static __attribute__((noinline, cold)) void name##_cached_free_tracked(void *ctx, void *p) \
    {                                                                              \
        free_tracked(p);                                                           \
        block_free(D, ctx, p);                                                     \
    }                                                                              \
    static void name##_cached_free(void *ctx, void *p)                            \
    {                                                                              \
        if (__builtin_expect(hs_live_maybe(p), 0))                                 \
            return name##_cached_free_tracked(ctx, p);                             \
        block_free(D, ctx, p);                                                     \
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

/* At a sampled block n bytes long of a wrapper, in sampling (not exact)
 * mode: whether the cache should be active (see the top of the cache),
 * from the share of sampled blocks that are 17..24 bytes long, a moving
 * average over about the last eight (SHARE_ONE when every one is; the
 * decay rounds up, so it reaches 0); asks control for the switch when it
 * differs. Context: the GIL. */
#define SHARE_ONE 512
static inline bool cache_wanted(void)
{
    return cache_active() ? cache.share >= SHARE_ONE / 8 : cache.share >= SHARE_ONE / 4 && cache_usable();
}

static inline void decide(size_t n)
{
    if (hs_opt.rate <= 1)
        return;
    cache.share = cache.share - (cache.share + 7) / 8 + (CACHE_SIZE(n) ? SHARE_ONE / 8 : 0);
    if (cache_wanted() != cache_active() && hs_pyalloc_switch_request)
        hs_pyalloc_switch_request();
}

WRAPPERS(DOMAIN_MEM, mem)
WRAPPERS(DOMAIN_OBJ, obj)

static const struct allocator ours_small[3] = {
    [DOMAIN_MEM] = { NULL, mem_small_malloc, mem_small_calloc, mem_realloc, mem_free },
    [DOMAIN_OBJ] = { NULL, obj_small_malloc, obj_small_calloc, obj_realloc, obj_free },
};
static const struct allocator ours_cached[3] = {
    [DOMAIN_MEM] = { NULL, mem_cached_malloc, mem_small_calloc, mem_cached_realloc, mem_cached_free },
    [DOMAIN_OBJ] = { NULL, obj_cached_malloc, obj_small_calloc, obj_cached_realloc, obj_cached_free },
};
static const struct allocator ours_hold[3] = {
    [DOMAIN_MEM] = { NULL, mem_hold_malloc, mem_hold_calloc, mem_realloc, mem_free },
    [DOMAIN_OBJ] = { NULL, obj_hold_malloc, obj_hold_calloc, obj_realloc, obj_free },
};

/* Whether `a` is one of our wrappers of domain d (either kind). */
static bool is_ours(int d, const struct allocator *a)
{
    return a->free == ours_small[d].free || a->free == ours_cached[d].free;
}

/* The key base (drawn once) and the cache's gate, for the interpreter
 * found; inactive, its share forgotten. */
static void cache_setup(bool plain)
{
    if (!key_base && getrandom(&key_base, sizeof key_base, GRND_NONBLOCK) != (ssize_t)sizeof key_base)
        key_base = (uintptr_t)hs_now_ns(CLOCK_MONOTONIC) * 0x9E3779B97F4A7C15ull ^ (uintptr_t)&key_base;
    const struct hs_py_layout *l = hs_py_layout();
    uint32_t minor = (hs_py_version() >> 16) & 0xFF;
    bool known = l && (hs_py_version() >> 24) == 3 && minor >= 11 && minor <= 13;
    /* _PyRuntime.interpreters: {mutex, head, main, next_id} in 3.11 to 3.13. */
    cache_gate = !plain || !known ? &gate_off
                 : minor == 11  ? &gate_on
                                : (const volatile int64_t *)(hs_py_runtime() + l->rt_main + 8);
    cache_set_active(false);
    cache.share = 0;
}

void hs_pyalloc_switch(void)
{
    bool on = !cache_active();
    if (cache_wanted() != on || (on && !(placed[DOMAIN_MEM] && placed[DOMAIN_OBJ])))
        return;
    struct allocator cur[3];
    for (int d = DOMAIN_MEM; d <= DOMAIN_OBJ; d++) {
        hs_py_api.mem_get(d, &cur[d]);
        if (!is_ours(d, &cur[d]) && on)
            return;                     /* wrapped by someone else: their chain keeps ours as it was */
    }
    cache_set_key(fresh_key());         /* off: the tags written under the old key stop matching */
    if (!on)
        cache_set_active(false);
    for (int d = DOMAIN_MEM; d <= DOMAIN_OBJ; d++) {
        if (!is_ours(d, &cur[d]))
            continue;
        struct allocator w = on ? ours_cached[d] : ours_small[d];
        w.ctx = cur[d].ctx;
        hs_py_api.mem_set(d, &w);
    }
    if (on)
        cache_set_active(true);
    else
        cache_empty();
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
    /* Placing every wrapper anew: exact mode with the cache's, active from
     * the start, sampling with the plain ones (a sample activates it). */
    bool fresh = !placed[DOMAIN_MEM] && !placed[DOMAIN_OBJ];
    if (fresh)
        cache_setup(plain);
    bool cached = fresh && plain && hs_opt.rate <= 1 && cache_usable();
    if (cached)
        cache_set_key(fresh_key());
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
        struct allocator w = !plain ? ours_hold[d] : cached ? ours_cached[d] : ours_small[d];
        w.ctx = cur.ctx;
        hs_py_api.mem_set(d, &w);
        placed[d] = true;
        f |= HS_PYALLOC_WRAPPED;
    }
    if (cached)
        cache_set_active(placed[DOMAIN_MEM] && placed[DOMAIN_OBJ]);
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
    /* Frees that go around the cache's wrappers from now on leave tags
     * behind: the key retires; the blocks kept stay until the free lists'
     * call drains them (the GIL), or the next activation takes them. */
    cache_set_active(false);
    cache_set_key(fresh_key());
    __atomic_store_n(&flags, 0, __ATOMIC_RELAXED);
}

uint32_t hs_pyalloc_flags(void)
{
    return __atomic_load_n(&flags, __ATOMIC_RELAXED);
}

void hs_pyalloc_drain(void)
{
    cache_empty();
}
