/*
 * forward.h - reaching the next allocator (the one the shim sits in front of),
 * and the routes the exported allocation functions jump through.
 *
 * hs_real holds the next allocator's functions. Before the shim has resolved
 * them they point at bootstrap functions that resolve first; see forward.c
 * for the dlsym bootstrap problem and where it is solved.
 *
 * hs_route holds what each exported allocation function (hooks.c) jumps to:
 * its whole body is one indirect jump through it. Idle, the route is the
 * next allocator itself (hs_idle_route); while sampling, the sampler's paths
 * (sampler.h, hs_sampler_route). Only the sampler switches it.
 */
#ifndef HS_FORWARD_H
#define HS_FORWARD_H

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>
#include <signal.h>

struct hs_real_fns {
    void *(*malloc_fn)(size_t);
    void (*free_fn)(void *);
    void *(*calloc_fn)(size_t, size_t);
    void *(*realloc_fn)(void *, size_t);
    void *(*reallocarray_fn)(void *, size_t, size_t);
    int (*posix_memalign_fn)(void **, size_t, size_t);
    void *(*aligned_alloc_fn)(size_t, size_t);
    void *(*memalign_fn)(size_t, size_t);
    void *(*valloc_fn)(size_t);
    void *(*pvalloc_fn)(size_t);
    size_t (*malloc_usable_size_fn)(void *);
    int (*sigaction_fn)(int, const struct sigaction *, struct sigaction *);
};

/* Hidden: the fast paths reach these with one rip-relative load, not
 * through the GOT. */
#define HS_HIDDEN __attribute__((visibility("hidden")))

/* Written once by hs_forward_init (before any thread but the first exists,
 * or under the bootstrap spin flag); read without synchronisation after. */
extern struct hs_real_fns hs_real HS_HIDDEN;

struct hs_routes {
    void *(*malloc_fn)(size_t);
    void (*free_fn)(void *);
    void *(*calloc_fn)(size_t, size_t);
    void *(*realloc_fn)(void *, size_t);
    int (*posix_memalign_fn)(void **, size_t, size_t);
    void *(*aligned_alloc_fn)(size_t, size_t);
    void *(*memalign_fn)(size_t, size_t);
    void *(*valloc_fn)(size_t);
    void *(*pvalloc_fn)(size_t);
};

/* The routes in use. Starts at the bootstrap functions; hs_forward_init
 * sets it to hs_idle_route, the sampler switches it (hs_route_set).
 * Each field is read with a relaxed load (the exported function's jump) and
 * written with a relaxed store: a call that read the previous route runs
 * that path, as a call that read the old hs_active did before. */
extern struct hs_routes hs_route HS_HIDDEN;

/* The idle routes: the next allocator's functions themselves, except that
 * free and realloc check for bootstrap blocks first when the bootstrap
 * buffer ever handed any out (with glibc it does not: dlsym does not
 * allocate). Complete once hs_forward_init returns; never changes after. */
extern struct hs_routes hs_idle_route HS_HIDDEN;

/* Points every route at `r`'s functions (relaxed stores). Context: the
 * sampler, under control's lock or single-threaded. */
void hs_route_set(const struct hs_routes *r);

/* Did the bootstrap buffer hand out any block? Fixed once hs_forward_init
 * returns (blocks come from it only while dlsym runs there). */
bool hs_boot_in_use(void);

/* The static bootstrap buffer that serves calls made while dlsym runs. */
extern char hs_boot_buf[] __attribute__((visibility("hidden")));
#define HS_BOOT_SIZE ((size_t)64 << 10)

/* True for pointers into the bootstrap buffer: never freed, never sampled.
 * Context: fast path; one subtract and compare. */
static inline bool hs_is_boot(const void *p)
{
    return (uintptr_t)p - (uintptr_t)hs_boot_buf < HS_BOOT_SIZE;
}

/* a * b bytes, as reallocarray(3) computes them: false, with errno ENOMEM,
 * when the product overflows. */
static inline bool hs_array_bytes(size_t a, size_t b, size_t *n)
{
    if (!__builtin_mul_overflow(a, b, n))
        return true;
    errno = ENOMEM;
    return false;
}

/* Resolves hs_real (idempotent). Context: constructor or first allocation. */
void hs_forward_init(void);

/* The next definition of `name` (dlsym(RTLD_NEXT) while preloaded; after
 * hs_forward_reinit, that lookup). Context: any thread, not inside malloc
 * while preloaded (dlsym may allocate). */
void *hs_next_symbol(const char *name);

/* Resolves hs_real and the idle routes again with `lookup` (attach mode:
 * got.c's hs_got_lookup, which never lands on a PLT stub), and uses it for
 * hs_next_symbol from then on. Context: attach, before anything is routed
 * to the shim. */
void hs_forward_reinit(void *(*lookup)(const char *));

/* realloc / usable size for a bootstrap pointer. */
void *hs_boot_realloc(void *p, size_t n);

/* Do a and b lie in the same loaded object? By its program headers
 * (dl_iterate_phdr): dladdr answered the same but searched the symbol
 * table, ~90,000 instructions a call. Context: load, or the first call of
 * an operator; takes the loader's list lock like dladdr. */
bool hs_same_module(const void *a, const void *b);
size_t hs_boot_usable(void *p);

#endif
