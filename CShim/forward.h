/*
 * forward.h - reaching the next allocator (the one the shim sits in front of).
 *
 * hs_real holds the functions the exported names forward to. Before the shim
 * has resolved them they point at bootstrap functions that resolve first; see
 * forward.c for the dlsym bootstrap problem and where it is solved.
 */
#ifndef HS_FORWARD_H
#define HS_FORWARD_H

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

/* Written once by hs_forward_init (before any thread but the first exists,
 * or under the bootstrap spin flag); read without synchronisation after. */
extern struct hs_real_fns hs_real;

/* The static bootstrap buffer that serves calls made while dlsym runs. */
extern char hs_boot_buf[] __attribute__((visibility("hidden")));
#define HS_BOOT_SIZE ((size_t)64 << 10)

/* True for pointers into the bootstrap buffer: never freed, never sampled.
 * Context: fast path; one subtract and compare. */
static inline bool hs_is_boot(const void *p)
{
    return (uintptr_t)p - (uintptr_t)hs_boot_buf < HS_BOOT_SIZE;
}

/* Resolves hs_real (idempotent). Context: constructor or first allocation. */
void hs_forward_init(void);

/* realloc / usable size for a bootstrap pointer. */
void *hs_boot_realloc(void *p, size_t n);

/* Do a and b lie in the same loaded object? By its program headers
 * (dl_iterate_phdr): dladdr answered the same but searched the symbol
 * table, ~90,000 instructions a call. Context: load, or the first call of
 * an operator; takes the loader's list lock like dladdr. */
bool hs_same_module(const void *a, const void *b);
size_t hs_boot_usable(void *p);

#endif
