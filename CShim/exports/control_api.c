/*
 * control_api.c - the public control API of include/heapsnap.h.
 *
 * Top layer: four exported names. A request is queued for the writer thread
 * exactly as a signal would be (writer.c), so it is safe from any host
 * thread, not from a signal handler. A fork child that has not allocated
 * yet is set up first, so that its request reaches a writer of its own.
 */
#define _GNU_SOURCE
#include "control/writer.h"
#include "control/lifecycle.h"
#include "sampling/sampler.h"
#include "include/heapsnap.h"

#include <errno.h>

#define HS_EXPORT __attribute__((visibility("default")))

/* 0 or -errno (-ENODEV when inert). Context: any host thread. */
static int request(enum hs_cmd cmd)
{
    if (!hs_ctl_ready())
        return -ENODEV;
    if (hs_child_setup_pending())
        hs_child_setup();
    hs_writer_send(cmd);
    return 0;
}

HS_EXPORT int heapsnap_start(void) { return request(HS_CMD_START); }
HS_EXPORT int heapsnap_stop(void) { return request(HS_CMD_STOP); }
HS_EXPORT int heapsnap_snapshot(void) { return request(HS_CMD_SNAPSHOT); }
HS_EXPORT int heapsnap_sampling(void) { return __atomic_load_n(&hs_active, __ATOMIC_ACQUIRE) == 1; }
