/*
 * cxx.c - operator new and delete, for allocators that bring their own.
 *
 * With glibc, libstdc++'s operator new calls malloc and its operator delete
 * calls free, which reach hooks.c: here there is nothing to do but forward.
 * jemalloc and tcmalloc define the operators themselves and serve them
 * without calling malloc, so `LD_PRELOAD="libheapsnap... libjemalloc.so.2"`
 * would show none of a C++ program's new/delete. The shim therefore exports
 * the 20 replaceable operators (C++17, [new.delete]) too, and forwards each
 * to the next definition. When that definition lives in the same object as
 * the next malloc (the allocator brings its own operators), blocks are
 * sampled and looked up here, exactly as malloc and free do in hooks.c.
 * Otherwise the forward is a tail jump and the sampling happens in malloc.
 *
 * The next definitions are resolved on first call, not at load: libstdc++
 * may come later with dlopen (a Python extension written in C++). Racing
 * first calls resolve the same values; each entry is published with release
 * after its `own` flag, so a reader that sees `fn` sees `own`.
 *
 * Exceptions: operator new throws std::bad_alloc through these frames. C on
 * x86-64 and aarch64 always carries .eh_frame unwind tables, and these
 * functions hold nothing that needs cleaning up when it passes.
 */
#define _GNU_SOURCE
#include "base/forward.h"
#include "sampling/sampler.h"
#include "tables/live.h"

#include <dlfcn.h>
#include <stdlib.h>
#include <unistd.h>

#define HS_EXPORT __attribute__((visibility("default")))

enum op {
    NEW, NEW_ARR, NEW_NT, NEW_ARR_NT, NEW_AL, NEW_ARR_AL, NEW_AL_NT, NEW_ARR_AL_NT,
    DEL, DEL_ARR, DEL_SZ, DEL_ARR_SZ, DEL_NT, DEL_ARR_NT,
    DEL_AL, DEL_ARR_AL, DEL_SZ_AL, DEL_ARR_SZ_AL, DEL_AL_NT, DEL_ARR_AL_NT,
    N_OPS
};

/* Itanium C++ ABI names (size_t is unsigned long: `m`). */
static const char *const op_name[N_OPS] = {
    "_Znwm", "_Znam", "_ZnwmRKSt9nothrow_t", "_ZnamRKSt9nothrow_t",
    "_ZnwmSt11align_val_t", "_ZnamSt11align_val_t",
    "_ZnwmSt11align_val_tRKSt9nothrow_t", "_ZnamSt11align_val_tRKSt9nothrow_t",
    "_ZdlPv", "_ZdaPv", "_ZdlPvm", "_ZdaPvm", "_ZdlPvRKSt9nothrow_t", "_ZdaPvRKSt9nothrow_t",
    "_ZdlPvSt11align_val_t", "_ZdaPvSt11align_val_t", "_ZdlPvmSt11align_val_t", "_ZdaPvmSt11align_val_t",
    "_ZdlPvSt11align_val_tRKSt9nothrow_t", "_ZdaPvSt11align_val_tRKSt9nothrow_t",
};

/* Written once per entry by resolve(), read with acquire. */
static struct next_op {
    void *fn;           /* the next definition; NULL until resolved */
    bool own;           /* it belongs to the next malloc's object: sample here */
} next_op[N_OPS];

/* Resolves entry `op`. Context: first call of an operator; may allocate
 * (dlsym), which reaches our malloc as any host allocation would. */
static __attribute__((noinline)) void *resolve(enum op op)
{
    hs_forward_init();
    void *fn = hs_next_symbol(op_name[op]);
    if (!fn) {
        /* No C++ runtime after us, yet someone called the operator: a
         * program that brings its own runtime statically still resolves to
         * its own copy first, so this cannot happen in practice. */
        static const char msg[] = "heapsnap: no operator new/delete after the shim; aborting\n";
        (void)!write(2, msg, sizeof msg - 1);
        abort();
    }
    struct next_op *e = &next_op[op];
    e->own = hs_same_module(fn, *(void **)&hs_real.malloc_fn);
    __atomic_store_n(&e->fn, fn, __ATOMIC_RELEASE);
    return fn;
}

static inline void *next_fn(enum op op)
{
    void *fn = __atomic_load_n(&next_op[op].fn, __ATOMIC_ACQUIRE);
    return __builtin_expect(fn != NULL, 1) ? fn : resolve(op);
}

/* Sample here only while sampling and only if malloc will not see the block. */
static inline bool sample_here(enum op op)
{
    return __builtin_expect(hs_is_active() && next_op[op].own, 0);
}

typedef void *(*new_fn)(size_t);
typedef void *(*new_al_fn)(size_t, size_t);
typedef void *(*new_nt_fn)(size_t, const void *);
typedef void *(*new_al_nt_fn)(size_t, size_t, const void *);
typedef void (*del_fn)(void *);
typedef void (*del_sz_fn)(void *, size_t);
typedef void (*del_sz_al_fn)(void *, size_t, size_t);
typedef void (*del_nt_fn)(void *, const void *);
typedef void (*del_al_nt_fn)(void *, size_t, const void *);

/* As in hooks.c, each slow path is its own cold function, so that the
 * common path stays a tail jump that leaves no frame of ours on the stack.
 * align_val_t is an enum class over size_t: it is passed as a size_t. */
#define SLOW_PATH static __attribute__((noinline, cold))

#define NEW_OP(name, op, type, params, args)                                  \
    SLOW_PATH void *name##_slow_path params                                   \
    {                                                                         \
        return hs_after_alloc(((type)next_op[op].fn) args, n);                \
    }                                                                         \
    HS_EXPORT void *name params                                               \
    {                                                                         \
        type fn = (type)next_fn(op);                                          \
        if (!sample_here(op))                                                 \
            return fn args;                                                   \
        return name##_slow_path args;                                         \
    }

/* A delete of a possibly sampled block leaves the live table first. */
#define DEL_OP(name, op, type, params, args)                                  \
    SLOW_PATH void name##_slow_path params                                    \
    {                                                                         \
        if (p && hs_live_maybe(p))                                            \
            hs_before_free_slow(p);                                           \
        ((type)next_op[op].fn) args;                                          \
    }                                                                         \
    HS_EXPORT void name params                                                \
    {                                                                         \
        type fn = (type)next_fn(op);                                          \
        if (!sample_here(op))                                                 \
            return fn args;                                                   \
        name##_slow_path args;                                                \
    }

NEW_OP(_Znwm, NEW, new_fn, (size_t n), (n))
NEW_OP(_Znam, NEW_ARR, new_fn, (size_t n), (n))
NEW_OP(_ZnwmRKSt9nothrow_t, NEW_NT, new_nt_fn, (size_t n, const void *nt), (n, nt))
NEW_OP(_ZnamRKSt9nothrow_t, NEW_ARR_NT, new_nt_fn, (size_t n, const void *nt), (n, nt))
NEW_OP(_ZnwmSt11align_val_t, NEW_AL, new_al_fn, (size_t n, size_t al), (n, al))
NEW_OP(_ZnamSt11align_val_t, NEW_ARR_AL, new_al_fn, (size_t n, size_t al), (n, al))
NEW_OP(_ZnwmSt11align_val_tRKSt9nothrow_t, NEW_AL_NT, new_al_nt_fn, (size_t n, size_t al, const void *nt), (n, al, nt))
NEW_OP(_ZnamSt11align_val_tRKSt9nothrow_t, NEW_ARR_AL_NT, new_al_nt_fn, (size_t n, size_t al, const void *nt), (n, al, nt))

DEL_OP(_ZdlPv, DEL, del_fn, (void *p), (p))
DEL_OP(_ZdaPv, DEL_ARR, del_fn, (void *p), (p))
DEL_OP(_ZdlPvm, DEL_SZ, del_sz_fn, (void *p, size_t n), (p, n))
DEL_OP(_ZdaPvm, DEL_ARR_SZ, del_sz_fn, (void *p, size_t n), (p, n))
DEL_OP(_ZdlPvRKSt9nothrow_t, DEL_NT, del_nt_fn, (void *p, const void *nt), (p, nt))
DEL_OP(_ZdaPvRKSt9nothrow_t, DEL_ARR_NT, del_nt_fn, (void *p, const void *nt), (p, nt))
DEL_OP(_ZdlPvSt11align_val_t, DEL_AL, del_sz_fn, (void *p, size_t al), (p, al))
DEL_OP(_ZdaPvSt11align_val_t, DEL_ARR_AL, del_sz_fn, (void *p, size_t al), (p, al))
DEL_OP(_ZdlPvmSt11align_val_t, DEL_SZ_AL, del_sz_al_fn, (void *p, size_t n, size_t al), (p, n, al))
DEL_OP(_ZdaPvmSt11align_val_t, DEL_ARR_SZ_AL, del_sz_al_fn, (void *p, size_t n, size_t al), (p, n, al))
DEL_OP(_ZdlPvSt11align_val_tRKSt9nothrow_t, DEL_AL_NT, del_al_nt_fn, (void *p, size_t al, const void *nt), (p, al, nt))
DEL_OP(_ZdaPvSt11align_val_tRKSt9nothrow_t, DEL_ARR_AL_NT, del_al_nt_fn, (void *p, size_t al, const void *nt), (p, al, nt))
