/*
 * stacks.c - stack capture and the striped, deduplicating stack table.
 *
 * Capture: hs_unwind (unwind.c) walks the caller's stack with cached
 * .eh_frame rules, or unw_backtrace where they do not apply; either way
 * without allocating and giving unw_backtrace's frames. It is only ever
 * called on the allocating thread inside malloc, never in a signal handler
 * (libunwind in a handler deadlocked against dlclose: an ABBA on its lock
 * and the loader's). Frames inside the shim's own text (hooks, sampler,
 * Python allocator wrappers) are dropped by address, wherever they are in
 * the stack. We ask for max_depth + 1 user frames to know whether the stack
 * was cut. On threads that run Python, pyframes.c then replaces each
 * activation of the interpreter's eval loop by the Python frames it ran.
 *
 * Table: 16 stripes, each an open-addressing table of stack pointers keyed
 * by a hash of the frames, with its own lock (lock.h) for inserting and for
 * the stacks' alloc groups. A known stack is found without the lock: slots
 * are published with release once the stack is complete, and a table
 * replaced by a grow stays mapped until release. Every stack also gets
 * a dense id and a slot in a chunked id directory (so the writer can walk
 * them in order and index SMPL by STKS position). Stacks and directory
 * chunks live in the arena (mem.c) and are only freed all at once.
 *
 * Lock order: live stripe -> stack stripe -> arena. The writer holds at most
 * one of these at a time.
 */
#define _GNU_SOURCE
#include "tables/stacks.h"
#include "base/options.h"
#include "base/mem.h"
#include "include/heapsnap.h"
#include "tables/pyframes.h"
#include "base/lock.h"
#include "tables/unwind.h"

#include <link.h>
#include <dlfcn.h>
#include <string.h>

#define HS_STACK_STRIPES 16
#define HS_SKIP_SLACK 8                 /* room for the shim's own frames */
#define HS_DIR_CHUNK 4096
#define HS_DIR_CHUNKS 1024              /* up to 4M distinct stacks */

/* A stripe's table: published whole (release) and never unmapped while
 * the session lasts, so a lock-free reader may probe one that a grow has
 * replaced (it then misses, and looks again under the lock). */
struct table {
    struct table *retired;              /* the table this one replaced */
    size_t cap;
    uintptr_t slots[];                  /* a stack's address, its hash's top 16 bits above; 0 = empty; stores with release */
};

/* A slot's word: the stack's address (below 2^48, checked when it is
 * made) and its hash's top 16 bits, so that a probe passes a stack of
 * another hash without reading it (each such read was a cache miss:
 * probing was interning's largest cost in wall time). */
#define SLOT_TAG(h) ((uintptr_t)((h) >> 48) << 48)
#define SLOT_STACK(v) ((struct hs_stack *)((v) & ~SLOT_TAG(UINT64_MAX)))

struct stripe {
    hs_lock_t lock;
    struct table *table;                /* written under lock (release), read lock-free */
    size_t count;                       /* protected by lock */
} __attribute__((aligned(64)));

static struct stripe stripes[HS_STACK_STRIPES];
static uint32_t next_id;                                /* atomic fetch_add */
static uint64_t epoch = 1;      /* bumped by hs_stacks_release: memo entries of older epochs are stale */

/* Each thread remembers the stacks it interned last, two in each pair of
 * slots, the pair chosen by the four innermost frames and the depth (with
 * one slot a stack and two frames, two of the sites storm's eight stacks
 * could take turns in one slot, and json_loads' stacks of one site at
 * other depths did), so that a stack the thread just recorded is matched
 * by comparing its frames, without hashing them or probing the table. In
 * exact mode most allocations repeat the previous stack from the same site
 * (a loop that allocates). An entry is dereferenced only while its epoch
 * is current: the arena that holds the stack is freed only after
 * hs_stacks_release, which bumps the epoch, and never while a recorder
 * is inside (quiesce). */
#define HS_MEMO_BITS 5
#define HS_MEMO_SLOTS (1 << HS_MEMO_BITS)
struct memo {
    const struct hs_stack *stack;
    uint64_t epoch;
};
static __thread struct memo memo[HS_MEMO_SLOTS] __attribute__((tls_model("initial-exec")));

/* HEAPSNAP_NATIVE=none: the token of the thread's last capture, and the
 * stack interned last with its token. A capture whose token is the
 * interned one's has its frames (pyframes.h): the stack is known without
 * comparing them. */
static __thread struct hs_py_token py_token __attribute__((tls_model("initial-exec")));
static __thread struct {
    struct hs_py_token token;
    struct memo at;
} py_last __attribute__((tls_model("initial-exec")));
static struct hs_stack **dir[HS_DIR_CHUNKS];            /* atomic CAS per chunk */

void hs_stacks_init(void)
{
    for (int i = 0; i < HS_STACK_STRIPES; i++)
        hs_lock_init(&stripes[i].lock);
    hs_unwind_init();
}

/* The stack interned last with a token, while its epoch lasts (its arena
 * is freed only after the epoch moves on); NULL otherwise. */
static inline const struct hs_stack *py_last_current(void)
{
    return py_last.at.epoch == __atomic_load_n(&epoch, __ATOMIC_RELAXED) ? py_last.at.stack : NULL;
}

/* The token whose frames the caller of hs_py_frames_only has already: the
 * stack interned last, whole and of this epoch, which the intern then
 * finds by its token (py_last_match) without reading frames. Its epoch
 * holds until the intern: a recorder is inside the gate, which release
 * waits for. */
static inline const struct hs_py_token *py_known(void)
{
    const struct hs_stack *s = py_last_current();
    return s && !(s->flags & HEAPSNAP_STACK_TRUNCATED) ? &py_last.token : NULL;
}

uint32_t hs_stack_capture(uintptr_t *frames, bool *truncated, const void *entry)
{
    uint32_t max = hs_opt.max_depth;
    int want = (int)max + 1 + HS_SKIP_SLACK;
    void *buf[want];
    int n;
    if (__builtin_expect(hs_opt.native == HS_NATIVE_ALL, 1)) {
        n = hs_unwind(buf, want, entry);    /* unw_backtrace's frames, mostly without it (unwind.c) */
    } else if (hs_opt.native == HS_NATIVE_INNER) {
        /* HEAPSNAP_NATIVE=inner: on a thread running Python the natives end
         * at the innermost activation of the eval loop; the merge adds
         * every Python frame after it. */
        struct hs_unwind_stop stop;
        hs_py_eval_returns(&stop.lo, &stop.size);
        n = hs_unwind_to(buf, want, entry, stop);
    } else {
        /* HEAPSNAP_NATIVE=none: a thread running Python records its Python
         * frames and walks no native; any other stack is walked as `all`. */
        bool cut = false;
        uint32_t got = hs_py_frames_only(frames, max, &cut, &py_token, py_known());
        if (got) {
            *truncated = cut;
            return got;
        }
        n = hs_unwind(buf, want, entry);
    }
    /* The shim's own frames go wherever they are: at the top (the hooks and
     * the sampler) and in the middle (a wrapper of Python's allocator
     * domains between the interpreter and pymalloc, which hands large
     * blocks on to malloc). */
    uintptr_t *f = (uintptr_t *)buf, lo = hs_shim_text_lo, size = hs_shim_text_hi - lo;
    uint32_t got = 0;
    for (int i = 0; i < n; i++) {       /* compacted in place, without a branch a frame */
        uintptr_t pc = f[i];
        f[got] = pc;
        got += pc - lo >= size;         /* !hs_unwind_in_shim(pc) */
    }
    bool cut = got > max;
    if (cut)
        got = max;
    got = hs_py_merge(f, got, frames, max, &cut);  /* with Python frames, when the thread runs Python */
    *truncated = cut;
    return got;
}

/* Four multiply chains, each over every fourth frame, run side by side:
 * one chain waited a multiply's latency at every frame, and the hash of a
 * ~60-frame stack was the largest part of interning one in wall time. */
static uint64_t hash_frames(const uintptr_t *f, uint32_t depth, bool truncated)
{
    const uint64_t m = 0xff51afd7ed558ccdull;
    uint64_t a = 0x9E3779B97F4A7C15ull ^ depth ^ ((uint64_t)truncated << 40), b = 0x243F6A8885A308D3ull,
             c = 0x13198A2E03707344ull, d = 0xA4093822299F31D0ull;
#define MIX(h, x) (h ^= (x), h *= m, h ^= h >> 32)
    uint32_t i = 0;
    for (; i + 4 <= depth; i += 4) {
        MIX(a, f[i]);
        MIX(b, f[i + 1]);
        MIX(c, f[i + 2]);
        MIX(d, f[i + 3]);
    }
    for (; i < depth; i++)
        MIX(a, f[i]);
#undef MIX
    uint64_t h = a ^ ((b << 16) | (b >> 48)) ^ ((c << 32) | (c >> 32)) ^ ((d << 48) | (d >> 16));
    h ^= h >> 29;
    h *= 0xc4ceb9fe1a85ec53ull;
    h ^= h >> 32;
    return h;
}

static bool same(const struct hs_stack *s, uint64_t h, const uintptr_t *f, uint32_t depth, bool truncated)
{
    return s->hash == h && s->depth == depth && (s->flags & HEAPSNAP_STACK_TRUNCATED) == (truncated ? HEAPSNAP_STACK_TRUNCATED : 0) &&
           memcmp(s->frames, f, depth * sizeof *f) == 0;
}

static size_t table_bytes(size_t cap) { return sizeof(struct table) + cap * sizeof(uintptr_t); }

/* Doubles a stripe's table; the old one stays mapped for readers until
 * release. Context: stripe lock held. 0 or -ENOMEM. */
static int grow(struct stripe *st)
{
    struct table *old = st->table;
    size_t cap = old ? old->cap : 0, ncap = cap ? cap * 2 : 256;
    struct table *t = hs_map(table_bytes(ncap), true);
    if (!t)
        return -12;
    t->retired = old;
    t->cap = ncap;
    for (size_t i = 0; i < cap; i++) {
        uintptr_t v = old->slots[i];
        if (!v)
            continue;
        size_t j = (SLOT_STACK(v)->hash >> 8) & (ncap - 1);
        while (t->slots[j])
            j = (j + 1) & (ncap - 1);
        t->slots[j] = v;
    }
    __atomic_store_n(&st->table, t, __ATOMIC_RELEASE);
    return 0;
}

/* Finds a published stack without the lock: NULL if `t` does not hold it
 * (yet). Context: any; t from an acquire load of a stripe's table. */
static struct hs_stack *find(const struct table *t, uint64_t h, const uintptr_t *frames, uint32_t depth, bool truncated)
{
    if (!t)
        return NULL;
    const uintptr_t tag = SLOT_TAG(h);
    for (size_t j = (h >> 8) & (t->cap - 1);; j = (j + 1) & (t->cap - 1)) {
        uintptr_t v = __atomic_load_n(&t->slots[j], __ATOMIC_ACQUIRE);
        if (!v)
            return NULL;
        if ((v & SLOT_TAG(UINT64_MAX)) == tag && same(SLOT_STACK(v), h, frames, depth, truncated))
            return SLOT_STACK(v);
    }
}

/* Publishes `s` under a fresh id. Context: stripe lock held. */
static bool assign_id(struct hs_stack *s)
{
    uint32_t id = __atomic_load_n(&next_id, __ATOMIC_RELAXED);
    if (id / HS_DIR_CHUNK >= HS_DIR_CHUNKS)
        return false;
    struct hs_stack **chunk = __atomic_load_n(&dir[id / HS_DIR_CHUNK], __ATOMIC_ACQUIRE);
    if (!chunk) {
        struct hs_stack **fresh = hs_arena_alloc(HS_DIR_CHUNK * sizeof *fresh);
        if (!fresh)
            return false;
        memset(fresh, 0, HS_DIR_CHUNK * sizeof *fresh);
        struct hs_stack **expected = NULL;
        if (__atomic_compare_exchange_n(&dir[id / HS_DIR_CHUNK], &expected, fresh, false,
                                        __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
            chunk = fresh;
        else
            chunk = expected;   /* another stripe won; ours stays in the arena */
    }
    id = __atomic_fetch_add(&next_id, 1, __ATOMIC_RELAXED);
    if (id / HS_DIR_CHUNK >= HS_DIR_CHUNKS)
        return false;
    chunk = __atomic_load_n(&dir[id / HS_DIR_CHUNK], __ATOMIC_ACQUIRE);
    if (!chunk)                 /* raced past a chunk boundary: leave a hole */
        return false;
    s->id = id;
    __atomic_store_n(&chunk[id % HS_DIR_CHUNK], s, __ATOMIC_RELEASE);
    return true;
}

/* The pair of slots a stack may be in: the first holds the newer. */
static inline struct memo *memo_slot(const uintptr_t *frames, uint32_t depth)
{
    uint64_t k = (uint64_t)depth << 40 ^ (depth > 0 ? frames[0] : 0) ^ (depth > 1 ? frames[1] << 13 : 0) ^
                 (depth > 2 ? frames[2] << 26 : 0) ^ (depth > 3 ? frames[3] << 39 : 0);
    return &memo[((k * 0x9E3779B97F4A7C15ull) >> (64 - HS_MEMO_BITS)) & ~1u];
}

static inline void memo_put(struct memo *m, const struct hs_stack *s)
{
    m[1] = m[0];
    m[0] = (struct memo){ s, __atomic_load_n(&epoch, __ATOMIC_RELAXED) };
}

/* Is the remembered stack this one? Context: inside record (quiesce holds off release). */
static inline bool memo_matches(const struct memo *m, const uintptr_t *frames, uint32_t depth, bool truncated)
{
    if (m->epoch != __atomic_load_n(&epoch, __ATOMIC_RELAXED))
        return false;
    const struct hs_stack *s = m->stack;
    if (s->depth != depth || (s->flags & HEAPSNAP_STACK_TRUNCATED) != (truncated ? HEAPSNAP_STACK_TRUNCATED : 0))
        return false;
    return memcmp(s->frames, frames, depth * sizeof *frames) == 0;
}

static inline __attribute__((always_inline)) const struct hs_stack *lookup(const uintptr_t *frames, uint32_t depth,
                                                                           bool truncated);

/* The thread's last interned stack, when this capture's token is its. */
static inline const struct hs_stack *py_last_match(uint32_t depth, bool truncated)
{
    const struct hs_stack *s;
    if (hs_py_same_token(&py_token, &py_last.token) && (s = py_last_current()) && s->depth == depth &&
        (s->flags & HEAPSNAP_STACK_TRUNCATED) == (truncated ? HEAPSNAP_STACK_TRUNCATED : 0))
        return s;
    return NULL;
}

/* A capture with a token (HEAPSNAP_NATIVE=none) that is not the last
 * interned one's: looked up, and remembered with it. */
static __attribute__((noinline)) uint32_t intern_by_token(const uintptr_t *frames, uint32_t depth, bool truncated)
{
    const struct hs_stack *s = lookup(frames, depth, truncated);
    if (!s)
        return HS_NO_STACK;
    py_last.token = py_token;
    py_last.at = (struct memo){ s, __atomic_load_n(&epoch, __ATOMIC_RELAXED) };
    return s->id;
}

uint32_t hs_stack_intern(const uintptr_t *frames, uint32_t depth, bool truncated)
{
    const struct hs_stack *s;
    if (__builtin_expect(py_token.gen != 0, 0))     /* one test for any other capture */
        return (s = py_last_match(depth, truncated)) ? s->id : intern_by_token(frames, depth, truncated);
    s = lookup(frames, depth, truncated);
    return s ? s->id : HS_NO_STACK;
}

/* The stack's entry, found or made; NULL when the budget is full. */
static inline __attribute__((always_inline)) const struct hs_stack *lookup(const uintptr_t *frames, uint32_t depth,
                                                                           bool truncated)
{
    struct memo *m = memo_slot(frames, depth);
    if (memo_matches(m, frames, depth, truncated))
        return m->stack;
    if (memo_matches(m + 1, frames, depth, truncated))
        return m[1].stack;
    uint64_t h = hash_frames(frames, depth, truncated);
    struct stripe *st = &stripes[h & (HS_STACK_STRIPES - 1)];
    struct hs_stack *s = find(__atomic_load_n(&st->table, __ATOMIC_ACQUIRE), h, frames, depth, truncated);
    if (__builtin_expect(s != NULL, 1)) {
        memo_put(m, s);
        return s;
    }
    const struct hs_stack *found = NULL;
    hs_lock(&st->lock);
    if ((s = find(st->table, h, frames, depth, truncated)) != NULL) {
        found = s;              /* another thread published it meanwhile */
        goto out;
    }
    if ((!st->table || st->count * 4 >= st->table->cap * 3) && grow(st) != 0)
        goto out;
    struct table *t = st->table;
    size_t j = (h >> 8) & (t->cap - 1);
    while (t->slots[j])
        j = (j + 1) & (t->cap - 1);
    s = hs_arena_alloc(sizeof *s + depth * sizeof *frames);
    if (!s || (uintptr_t)s >> 48)
        goto out;                       /* no room, or an address no slot holds (never seen: mmap stays below 2^47) */
    memset(s, 0, sizeof *s);
    s->hash = h;
    s->depth = (uint16_t)depth;
    s->flags = truncated ? HEAPSNAP_STACK_TRUNCATED : 0;
    memcpy(s->frames, frames, depth * sizeof *frames);
    if (!assign_id(s))
        goto out;               /* the arena keeps the bytes; counted as dropped */
    __atomic_store_n(&t->slots[j], (uintptr_t)s | SLOT_TAG(h), __ATOMIC_RELEASE);
    st->count++;
    found = s;
    memo_put(m, s);
out:
    hs_unlock(&st->lock);
    return found;
}

void hs_stack_add_alloc(const struct hs_stack *cs, const struct hs_group *g)
{
    struct hs_stack *s = (struct hs_stack *)cs;
    struct stripe *st = &stripes[s->hash & (HS_STACK_STRIPES - 1)];
    hs_lock(&st->lock);
    s->alloc.samples += g->samples;
    s->alloc.bytes += g->bytes;
    s->alloc.objects += g->objects;
    s->alloc.bytes_var += g->bytes_var;
    s->alloc.objects_var += g->objects_var;
    hs_unlock(&st->lock);
}

uint32_t hs_stack_count(void)
{
    uint32_t n = __atomic_load_n(&next_id, __ATOMIC_ACQUIRE);
    return n > HS_DIR_CHUNK * HS_DIR_CHUNKS ? HS_DIR_CHUNK * HS_DIR_CHUNKS : n;
}

const struct hs_stack *hs_stack_get(uint32_t id)
{
    if (id / HS_DIR_CHUNK >= HS_DIR_CHUNKS)
        return NULL;
    struct hs_stack **chunk = __atomic_load_n(&dir[id / HS_DIR_CHUNK], __ATOMIC_ACQUIRE);
    return chunk ? __atomic_load_n(&chunk[id % HS_DIR_CHUNK], __ATOMIC_ACQUIRE) : NULL;
}

void hs_stack_read_alloc(const struct hs_stack *s, struct hs_group *out)
{
    struct stripe *st = &stripes[s->hash & (HS_STACK_STRIPES - 1)];
    hs_lock(&st->lock);
    *out = s->alloc;
    hs_unlock(&st->lock);
}

void hs_stacks_release(void)
{
    for (int i = 0; i < HS_STACK_STRIPES; i++) {
        struct stripe *st = &stripes[i];
        hs_lock(&st->lock);
        for (struct table *t = st->table, *next; t; t = next) {
            next = t->retired;
            hs_unmap(t, table_bytes(t->cap), true);
        }
        st->table = NULL;
        st->count = 0;
        hs_unlock(&st->lock);
    }
    memset(dir, 0, sizeof dir);     /* chunks lived in the arena */
    __atomic_store_n(&next_id, 0, __ATOMIC_RELEASE);
    __atomic_add_fetch(&epoch, 1, __ATOMIC_RELEASE);    /* every thread's memo goes stale */
}

void hs_stacks_lock_all(void)
{
    for (int i = 0; i < HS_STACK_STRIPES; i++)
        hs_lock(&stripes[i].lock);
}

void hs_stacks_unlock_all(void)
{
    for (int i = HS_STACK_STRIPES - 1; i >= 0; i--)
        hs_unlock(&stripes[i].lock);
}

/* Context: fork child, single-threaded: fresh locks, tables dropped. */
void hs_stacks_reset_child(void)
{
    for (int i = 0; i < HS_STACK_STRIPES; i++)
        hs_lock_init(&stripes[i].lock);
    hs_stacks_release();
}
