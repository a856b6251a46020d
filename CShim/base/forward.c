/*
 * forward.c - resolving the next allocator with dlsym(RTLD_NEXT), and the
 * bootstrap allocator that solves dlsym's own allocations.
 *
 * Why dlsym and not glibc's __libc_malloc family: __libc_* always reach
 * glibc's heap, so with an allocator preloaded after us (jemalloc, tcmalloc)
 * some blocks would come from glibc and be freed into jemalloc, which aborts.
 * dlsym(RTLD_NEXT) finds whatever allocator comes next in the lookup order.
 *
 * The bootstrap problem: dlsym may allocate (dlerror buffers, the first call
 * in a thread), and those allocations reach our malloc before hs_real is
 * resolved. While `resolving` is set, such calls are served from hs_boot_buf,
 * a static bump buffer; free() ignores pointers into it forever (hs_is_boot),
 * realloc copies out of it. hs_real and hs_route start out pointing at
 * boot_* functions that resolve on first use, so the exported functions
 * never test a flag. Once resolved, the idle routes skip the bootstrap
 * checks altogether if the buffer was never used.
 *
 * Missing functions: jemalloc has no pvalloc, some allocators lack valloc,
 * memalign or reallocarray. They are built from the next allocator's own
 * memalign/posix_memalign/realloc, never from glibc's, so heaps never mix.
 */
#define _GNU_SOURCE
#include "base/forward.h"

#include <dlfcn.h>
#include <link.h>
#include <sched.h>
#include <errno.h>
#include <string.h>
#include <unistd.h>

char hs_boot_buf[HS_BOOT_SIZE] __attribute__((aligned(4096)));
static size_t boot_used;          /* bump offset; protected by `resolving` spin */
static int resolving;             /* 1 while dlsym runs: bootstrap mode */
static int resolved;              /* 1 once hs_real is complete */

/* Each bootstrap block has a 16-byte header holding its size. */
static void *boot_alloc(size_t align, size_t n)
{
    if (align < 16)
        align = 16;
    size_t off = (boot_used + 16 + align - 1) & ~(align - 1);
    if (n > HS_BOOT_SIZE || off + n > HS_BOOT_SIZE)
        return NULL;
    boot_used = off + n;
    ((size_t *)(hs_boot_buf + off))[-1] = n;
    return hs_boot_buf + off;   /* static storage is zeroed: calloc-ready */
}

size_t hs_boot_usable(void *p) { return ((size_t *)p)[-1]; }

static void *boot_malloc(size_t n);
static void boot_free(void *p);
static void *boot_calloc(size_t a, size_t b);
static void *boot_realloc(void *p, size_t n);
static void *boot_reallocarray(void *p, size_t a, size_t b);
static int boot_posix_memalign(void **out, size_t al, size_t n);
static void *boot_aligned_alloc(size_t al, size_t n);
static void *boot_memalign(size_t al, size_t n);
static void *boot_valloc(size_t n);
static void *boot_pvalloc(size_t n);
static size_t boot_usable(void *p);
static int boot_sigaction(int s, const struct sigaction *a, struct sigaction *o);

struct hs_real_fns hs_real = {
    boot_malloc, boot_free, boot_calloc, boot_realloc, boot_reallocarray,
    boot_posix_memalign, boot_aligned_alloc, boot_memalign, boot_valloc,
    boot_pvalloc, boot_usable, boot_sigaction,
};

struct hs_routes hs_route = {
    boot_malloc, boot_free, boot_calloc, boot_realloc, boot_posix_memalign,
    boot_aligned_alloc, boot_memalign, boot_valloc, boot_pvalloc,
};
struct hs_routes hs_idle_route;

bool hs_boot_in_use(void) { return boot_used != 0; }

/* Idle free and realloc while bootstrap blocks exist: those never reach
 * the next allocator. */
static void idle_free_boot(void *p)
{
    if (__builtin_expect(hs_is_boot(p), 0))
        return;
    hs_real.free_fn(p);
}

static void *idle_realloc_boot(void *p, size_t n)
{
    if (__builtin_expect(hs_is_boot(p), 0))
        return hs_boot_realloc(p, n);
    return hs_real.realloc_fn(p, n);
}

void hs_route_set(const struct hs_routes *r)
{
    void **to = (void **)&hs_route;
    void *const *from = (void *const *)r;
    for (size_t i = 0; i < sizeof *r / sizeof(void *); i++)
        __atomic_store_n(&to[i], from[i], __ATOMIC_RELAXED);
}

/* Replacements for functions the next allocator lacks, built from its own. */
static void *synth_memalign_from_posix(size_t al, size_t n)
{
    void *p = NULL;
    int err = hs_real.posix_memalign_fn(&p, al < sizeof(void *) ? sizeof(void *) : al, n);
    if (err) {
        errno = err;
        return NULL;
    }
    return p;
}

static void *synth_valloc(size_t n)
{
    return hs_real.memalign_fn((size_t)sysconf(_SC_PAGESIZE), n);
}

static void *synth_pvalloc(size_t n)
{
    size_t pg = (size_t)sysconf(_SC_PAGESIZE);
    size_t r = (n + pg - 1) & ~(pg - 1);
    if (r < n) {
        errno = ENOMEM;
        return NULL;
    }
    return hs_real.memalign_fn(pg, r ? r : pg);
}

static void *synth_aligned_alloc(size_t al, size_t n)
{
    return hs_real.memalign_fn(al, n);
}

static int synth_posix_memalign(void **out, size_t al, size_t n)
{
    if (al < sizeof(void *) || (al & (al - 1)))
        return EINVAL;
    int saved = errno;
    void *p = hs_real.memalign_fn(al, n);
    if (!p && n) {
        int e = errno ? errno : ENOMEM;
        errno = saved;
        return e;
    }
    *out = p;
    return 0;
}

static void *synth_reallocarray(void *p, size_t a, size_t b)
{
    size_t n;
    return hs_array_bytes(a, b, &n) ? hs_real.realloc_fn(p, n) : NULL;
}

static void *synth_calloc(size_t a, size_t b)
{
    size_t n;
    if (__builtin_mul_overflow(a, b, &n)) {
        errno = ENOMEM;
        return NULL;
    }
    void *p = hs_real.malloc_fn(n);
    if (p)
        memset(p, 0, n);
    return p;
}

static size_t synth_usable(void *p) { (void)p; return 0; }

static void *rtld_next(const char *name) { return dlsym(RTLD_NEXT, name); }

/* How the next definitions are found: dlsym(RTLD_NEXT) while preloaded;
 * attach mode sets a lookup that never lands on a PLT stub (got.c). */
static void *(*lookup)(const char *) = rtld_next;

void *hs_next_symbol(const char *name) { return lookup(name); }

#define RESOLVE(field, name) \
    do { void *f = lookup(name); if (f) { *(void **)&r.field = f; } } while (0)

void hs_forward_reinit(void *(*fn)(const char *))
{
    lookup = fn;
    __atomic_store_n(&resolved, 0, __ATOMIC_RELEASE);
    __atomic_store_n(&resolving, 0, __ATOMIC_RELEASE);
    hs_forward_init();
}

void hs_forward_init(void)
{
    if (__atomic_load_n(&resolved, __ATOMIC_ACQUIRE))
        return;
    /* First thread in wins; others (rare: threads before our constructor)
     * spin until hs_real is complete. The winner's nested calls see
     * `resolving` and use the bootstrap buffer (boot_* below). */
    int expected = 0;
    if (!__atomic_compare_exchange_n(&resolving, &expected, 1, false, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
        while (!__atomic_load_n(&resolved, __ATOMIC_ACQUIRE))
            sched_yield();
        return;
    }
    struct hs_real_fns r;
    memset(&r, 0, sizeof r);
    RESOLVE(malloc_fn, "malloc");
    RESOLVE(free_fn, "free");
    RESOLVE(calloc_fn, "calloc");
    RESOLVE(realloc_fn, "realloc");
    RESOLVE(reallocarray_fn, "reallocarray");
    RESOLVE(posix_memalign_fn, "posix_memalign");
    RESOLVE(aligned_alloc_fn, "aligned_alloc");
    RESOLVE(memalign_fn, "memalign");
    RESOLVE(valloc_fn, "valloc");
    RESOLVE(pvalloc_fn, "pvalloc");
    RESOLVE(malloc_usable_size_fn, "malloc_usable_size");
    RESOLVE(sigaction_fn, "sigaction");
    if (!r.malloc_fn || !r.free_fn || !r.realloc_fn) {
        static const char msg[] = "heapsnap: cannot find the next malloc/free/realloc; aborting\n";
        (void)!write(2, msg, sizeof msg - 1);
        _exit(127);
    }
    /* dlsym(RTLD_NEXT) finds the next object that defines a name, which is
     * glibc for names the next allocator lacks (jemalloc has no pvalloc nor
     * reallocarray): glibc's pvalloc would hand out glibc blocks that get
     * freed into jemalloc. Keep only functions from malloc's own object. */
    void **fns[] = { (void **)&r.calloc_fn, (void **)&r.reallocarray_fn, (void **)&r.posix_memalign_fn,
                     (void **)&r.aligned_alloc_fn, (void **)&r.memalign_fn, (void **)&r.valloc_fn,
                     (void **)&r.pvalloc_fn, (void **)&r.malloc_usable_size_fn };
    for (size_t i = 0; i < sizeof fns / sizeof fns[0]; i++)
        if (*fns[i] && !hs_same_module(*fns[i], *(void **)&r.malloc_fn))
            *fns[i] = NULL;
    if (!r.calloc_fn)
        r.calloc_fn = synth_calloc;
    /* Publish the complete table before synth_* may use hs_real.memalign_fn. */
    hs_real = r;
    if (!hs_real.memalign_fn)
        hs_real.memalign_fn = hs_real.posix_memalign_fn ? synth_memalign_from_posix : hs_real.aligned_alloc_fn;
    if (!hs_real.posix_memalign_fn)
        hs_real.posix_memalign_fn = synth_posix_memalign;
    if (!hs_real.aligned_alloc_fn)
        hs_real.aligned_alloc_fn = synth_aligned_alloc;
    if (!hs_real.valloc_fn)
        hs_real.valloc_fn = synth_valloc;
    if (!hs_real.pvalloc_fn)
        hs_real.pvalloc_fn = synth_pvalloc;
    if (!hs_real.reallocarray_fn)
        hs_real.reallocarray_fn = synth_reallocarray;
    if (!hs_real.malloc_usable_size_fn)
        hs_real.malloc_usable_size_fn = synth_usable;
    bool boot = hs_boot_in_use();
    hs_idle_route = (struct hs_routes){
        hs_real.malloc_fn, boot ? idle_free_boot : hs_real.free_fn, hs_real.calloc_fn,
        boot ? idle_realloc_boot : hs_real.realloc_fn, hs_real.posix_memalign_fn,
        hs_real.aligned_alloc_fn, hs_real.memalign_fn, hs_real.valloc_fn, hs_real.pvalloc_fn,
    };
    hs_route_set(&hs_idle_route);
    __atomic_store_n(&resolved, 1, __ATOMIC_RELEASE);
}

/* The boot_* functions: hs_real's initial values. Each either serves a
 * nested call from the bootstrap buffer (while dlsym runs) or resolves and
 * forwards. Context: before initialisation; single-threaded in practice. */
#define BOOTING() (__atomic_load_n(&resolving, __ATOMIC_ACQUIRE) && !__atomic_load_n(&resolved, __ATOMIC_ACQUIRE))

static void *boot_malloc(size_t n)
{
    if (BOOTING())
        return boot_alloc(16, n);
    hs_forward_init();
    return hs_real.malloc_fn(n);
}

static void boot_free(void *p)
{
    if (BOOTING() || hs_is_boot(p))
        return;
    hs_forward_init();
    hs_real.free_fn(p);
}

static void *boot_calloc(size_t a, size_t b)
{
    size_t n;
    if (__builtin_mul_overflow(a, b, &n))
        return NULL;
    if (BOOTING())
        return boot_alloc(16, n);
    hs_forward_init();
    return hs_real.calloc_fn(a, b);
}

static void *boot_realloc(void *p, size_t n)
{
    if (BOOTING()) {
        void *q = boot_alloc(16, n);
        if (q && p)
            memcpy(q, p, hs_boot_usable(p) < n ? hs_boot_usable(p) : n);
        return q;
    }
    hs_forward_init();
    if (hs_is_boot(p))
        return hs_boot_realloc(p, n);
    return hs_real.realloc_fn(p, n);
}

static void *boot_reallocarray(void *p, size_t a, size_t b)
{
    size_t n;
    if (__builtin_mul_overflow(a, b, &n))
        return NULL;
    if (BOOTING())
        return boot_realloc(p, n);
    hs_forward_init();
    return hs_real.reallocarray_fn(p, a, b);
}

static int boot_posix_memalign(void **out, size_t al, size_t n)
{
    if (BOOTING()) {
        void *p = boot_alloc(al, n);
        if (!p)
            return ENOMEM;
        *out = p;
        return 0;
    }
    hs_forward_init();
    return hs_real.posix_memalign_fn(out, al, n);
}

static void *boot_aligned_alloc(size_t al, size_t n)
{
    if (BOOTING())
        return boot_alloc(al, n);
    hs_forward_init();
    return hs_real.aligned_alloc_fn(al, n);
}

static void *boot_memalign(size_t al, size_t n)
{
    if (BOOTING())
        return boot_alloc(al, n);
    hs_forward_init();
    return hs_real.memalign_fn(al, n);
}

static void *boot_valloc(size_t n)
{
    if (BOOTING())
        return boot_alloc(4096, n);
    hs_forward_init();
    return hs_real.valloc_fn(n);
}

static void *boot_pvalloc(size_t n)
{
    if (BOOTING())
        return boot_alloc(4096, (n + 4095) & ~(size_t)4095);
    hs_forward_init();
    return hs_real.pvalloc_fn(n);
}

static size_t boot_usable(void *p)
{
    if (hs_is_boot(p))
        return hs_boot_usable(p);
    hs_forward_init();
    return hs_real.malloc_usable_size_fn(p);
}

static int boot_sigaction(int s, const struct sigaction *a, struct sigaction *o)
{
    hs_forward_init();
    return hs_real.sigaction_fn(s, a, o);
}

/* Used by hooks.c for a realloc of a bootstrap block: copy into the real heap. */
void *hs_boot_realloc(void *p, size_t n)
{
    void *q = hs_real.malloc_fn(n ? n : 1);
    if (q) {
        size_t old = hs_boot_usable(p);
        memcpy(q, p, old < n ? old : n);
    }
    return q;
}

struct module_query { uintptr_t addr; uintptr_t base; };

static int find_module(struct dl_phdr_info *info, size_t size, void *arg)
{
    (void)size;
    struct module_query *q = arg;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        uintptr_t lo = info->dlpi_addr + ph->p_vaddr;
        if (ph->p_type == PT_LOAD && q->addr >= lo && q->addr - lo < ph->p_memsz) {
            q->base = (uintptr_t)info->dlpi_phdr;     /* one per object, never 0 */
            return 1;
        }
    }
    return 0;
}

bool hs_same_module(const void *a, const void *b)
{
    struct module_query qa = { (uintptr_t)a, 0 }, qb = { (uintptr_t)b, 0 };
    dl_iterate_phdr(find_module, &qa);
    dl_iterate_phdr(find_module, &qb);
    return qa.base && qa.base == qb.base;
}
