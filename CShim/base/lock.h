/*
 * lock.h - the tables' mutex: one int, taken and released inline.
 *
 * The sampled paths take two or three of these per allocation in exact mode
 * (a live stripe, a stack stripe; a live stripe again on free), where
 * pthread_mutex_lock and unlock cost ~90 instructions a pair in calls and
 * type checks. This is the three-state futex mutex of Drepper's "Futexes
 * Are Tricky" (0 free, 1 held, 2 held and someone may sleep): uncontended,
 * lock is one compare-and-swap and unlock one exchange, both inline; only a
 * contended lock spins briefly and then sleeps in the kernel, and only an
 * unlock that finds 2 makes the wake-up call. Never allocates; not
 * recursive; not robust (like a default pthread mutex). After fork, the
 * child re-initialises the locks it inherited held (hs_lock_init).
 */
#ifndef HS_LOCK_H
#define HS_LOCK_H

#include <stdbool.h>

typedef struct { int state; } hs_lock_t;
#define HS_LOCK_INIT { 0 }

/* The slow halves, in lock.c. */
void hs_lock_wait(hs_lock_t *l, int seen);
void hs_lock_wake(hs_lock_t *l);

static inline void hs_lock(hs_lock_t *l)
{
    int seen = 0;
    if (__builtin_expect(__atomic_compare_exchange_n(&l->state, &seen, 1, false,
                                                     __ATOMIC_ACQUIRE, __ATOMIC_RELAXED), 1))
        return;
    hs_lock_wait(l, seen);
}

static inline void hs_unlock(hs_lock_t *l)
{
    if (__builtin_expect(__atomic_exchange_n(&l->state, 0, __ATOMIC_RELEASE) != 1, 0))
        hs_lock_wake(l);
}

/* Free again, whatever it was: a fork child's copy of a lock the parent
 * held across fork. Context: single-threaded. */
static inline void hs_lock_init(hs_lock_t *l)
{
    __atomic_store_n(&l->state, 0, __ATOMIC_RELAXED);
}

#endif
