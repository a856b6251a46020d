/*
 * session_gate.h - the session gate: may this thread still touch the tables?
 *
 * A thread enters the sampled path with the session it saw (hs_gate_enter,
 * from the sampler) and, under each table lock it takes, checks that the
 * gate still shows that session (hs_gate_open). The sampler closes the gate
 * (stores 0) before it releases, copies or forks the tables, and then takes
 * and drops every table lock once: a thread that locks after that sees the
 * gate closed, one that locked before has finished. So stopping waits for
 * no per-allocation counter, and entering costs no atomic read-modify-write.
 * A session number is never reused (start increments it), so a thread that
 * entered before a stop and locks after the next start sees a different
 * number and touches nothing of the new session.
 *
 * Below everything that takes a table lock (live, stacks, python); written
 * only by sampler.c (control, under its lock).
 */
#ifndef HS_SESSION_GATE_H
#define HS_SESSION_GATE_H

#include <stdbool.h>
#include <stdint.h>

extern uint32_t hs_gate;    /* the open session's number; 0 = closed */
extern __thread uint32_t hs_gate_entered __attribute__((tls_model("initial-exec")));

/* Remembers the open session for this thread's table accesses; false when
 * the gate is closed. Context: sampled path, guard held. */
static inline bool hs_gate_enter(void)
{
    uint32_t s = __atomic_load_n(&hs_gate, __ATOMIC_ACQUIRE);
    hs_gate_entered = s;
    return s != 0;
}

/* Is the session this thread entered under still open? Context: a table
 * lock held (the lock orders this load after a closing sampler's store). */
static inline bool hs_gate_open(void)
{
    uint32_t s = __atomic_load_n(&hs_gate, __ATOMIC_RELAXED);
    return s != 0 && s == hs_gate_entered;
}

#endif
