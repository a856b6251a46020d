/*
 * lock.c - the contended halves of the tables' mutex (lock.h).
 */
#define _GNU_SOURCE
#include "base/lock.h"

#include <errno.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

/* Spins a little (the holder is usually a few hundred instructions from
 * unlocking), then marks the lock contended and sleeps until it is free.
 * Context: any thread; no allocation. */
static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ volatile("yield");
#endif
}

/* futex(2) without touching the host's errno (we may be inside malloc). */
static void futex(int *addr, int op, int val)
{
    int saved = errno;
    syscall(SYS_futex, addr, op, val, NULL, NULL, 0);
    errno = saved;
}

void hs_lock_wait(hs_lock_t *l, int seen)
{
    for (int i = 0; i < 64 && seen != 2; i++) {
        cpu_relax();
        seen = __atomic_load_n(&l->state, __ATOMIC_RELAXED);
        if (seen == 0) {
            if (__atomic_compare_exchange_n(&l->state, &seen, 1, false, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED))
                return;
        }
    }
    /* From here on the lock is taken as "contended", so that our unlock
     * wakes whoever else went to sleep meanwhile. */
    while (__atomic_exchange_n(&l->state, 2, __ATOMIC_ACQUIRE) != 0)
        futex(&l->state, FUTEX_WAIT_PRIVATE, 2);
}

void hs_lock_wake(hs_lock_t *l)
{
    futex(&l->state, FUTEX_WAKE_PRIVATE, 1);
}
