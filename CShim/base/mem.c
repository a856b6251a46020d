/*
 * mem.c - budgeted mmap regions and the bump arena (see mem.h).
 *
 * Invariant: hs_mem_used equals the size of every accounted mapping the shim
 * holds. Arena chunks form a singly linked list (each chunk's first bytes hold
 * the link) protected by arena_lock; nothing is ever freed back to the arena,
 * it is released as a whole when sampling stops.
 */
#define _GNU_SOURCE
#include "base/mem.h"
#include "base/options.h"
#include "base/lock.h"

#include <sys/mman.h>
#include <unistd.h>

#define HS_CHUNK_SIZE ((size_t)256 << 10)

size_t hs_mem_used;

struct hs_chunk {
    struct hs_chunk *next;
    size_t size;
};

/* protected by arena_lock */
static hs_lock_t arena_lock = HS_LOCK_INIT;
static struct hs_chunk *arena_head;
static char *arena_cur, *arena_end;

static size_t page_round(size_t n)
{
    size_t pg = 4096;
    return (n + pg - 1) & ~(pg - 1);
}

void *hs_map(size_t size, bool account)
{
    size = page_round(size);
    if (account) {
        size_t now = __atomic_add_fetch(&hs_mem_used, size, __ATOMIC_RELAXED);
        if (now > hs_opt.max_memory) {
            __atomic_sub_fetch(&hs_mem_used, size, __ATOMIC_RELAXED);
            return NULL;
        }
    }
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) {
        if (account)
            __atomic_sub_fetch(&hs_mem_used, size, __ATOMIC_RELAXED);
        return NULL;
    }
    return p;
}

void hs_unmap(void *p, size_t size, bool account)
{
    if (!p)
        return;
    size = page_round(size);
    munmap(p, size);
    if (account)
        __atomic_sub_fetch(&hs_mem_used, size, __ATOMIC_RELAXED);
}

void *hs_arena_alloc(size_t size)
{
    size = (size + 15) & ~(size_t)15;
    hs_lock(&arena_lock);
    if ((size_t)(arena_end - arena_cur) < size) {
        size_t want = size + sizeof(struct hs_chunk) + 16;
        size_t csize = want > HS_CHUNK_SIZE ? page_round(want) : HS_CHUNK_SIZE;
        struct hs_chunk *c = hs_map(csize, true);
        if (!c) {
            hs_unlock(&arena_lock);
            return NULL;
        }
        c->next = arena_head;
        c->size = csize;
        arena_head = c;
        arena_cur = (char *)c + ((sizeof(*c) + 15) & ~(size_t)15);
        arena_end = (char *)c + csize;
    }
    void *p = arena_cur;
    arena_cur += size;
    hs_unlock(&arena_lock);
    return p;
}

void hs_arena_release(void)
{
    hs_lock(&arena_lock);
    struct hs_chunk *c = arena_head;
    while (c) {
        struct hs_chunk *next = c->next;
        hs_unmap(c, c->size, true);
        c = next;
    }
    arena_head = NULL;
    arena_cur = arena_end = NULL;
    hs_unlock(&arena_lock);
}

void hs_arena_lock(void) { hs_lock(&arena_lock); }
void hs_arena_unlock(void) { hs_unlock(&arena_lock); }

/* Context: fork child, single-threaded. The lock may have been copied held. */
void hs_arena_reset_child(void)
{
    hs_lock_init(&arena_lock);
}
