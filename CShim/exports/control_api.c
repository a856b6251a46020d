/*
 * control_api.c - the public control API of include/heapsnap.h, and
 * heapsnap_attach, the way in for `heapsnap attach`.
 *
 * Top layer: five exported names, and the dlopen an attached process's
 * dlopen slots are routed to (not exported: a preloaded process keeps the
 * loader's own). A request is queued for the writer thread
 * exactly as a signal would be (writer.c), so it is safe from any host
 * thread, not from a signal handler. A fork child that has not allocated
 * yet is set up first, so that its request reaches a writer of its own.
 */
#define _GNU_SOURCE
#include "control/writer.h"
#include "control/lifecycle.h"
#include "sampling/sampler.h"
#include "include/heapsnap.h"
#include "base/got.h"
#include "base/forward.h"
#include "base/options.h"

#include <dlfcn.h>
#include <limits.h>
#include <stddef.h>

#include <errno.h>
#include <string.h>

#define HS_EXPORT __attribute__((visibility("default")))

/* 0 or -errno (-ENODEV when inert). Context: any host thread. */
static int request(enum hs_cmd cmd)
{
    if (!hs_ctl_ready())
        return -ENODEV;
    if (hs_child_setup_pending())
        hs_child_setup();
    hs_writer_send(cmd);
    if (hs_child_setup_pending())
        hs_child_setup();       /* HEAPSNAP_WRITER=on-demand: the send asked for the writer */
    return 0;
}

HS_EXPORT int heapsnap_start(void) { return request(HS_CMD_START); }
HS_EXPORT int heapsnap_stop(void) { return request(HS_CMD_STOP); }
HS_EXPORT int heapsnap_snapshot(void) { return request(HS_CMD_SNAPSHOT); }
HS_EXPORT int heapsnap_sampling(void) { return __atomic_load_n(&hs_active, __ATOMIC_ACQUIRE) == 1; }

/* ------------------------------------------------------------- attach */

/* What an attached process's dlopen slots hold (got.h). dlopen finds the
 * caller's DT_RPATH/DT_RUNPATH from its return address; called from here,
 * that would be ours (memray #525, #549). So a plain name the caller's own
 * path lists find is opened by its full path (unless a library of that name
 * is loaded already: then the loader's answer, RTLD_NOLOAD); then the new
 * objects are routed before dlopen returns to the caller (their
 * constructors ran unrouted: they run inside the loader's dlopen).
 * Context: a host thread calling dlopen. */
static void *routed_dlopen(const char *file, int mode)
{
    static void *(*next)(const char *, int);
    if (!__atomic_load_n(&next, __ATOMIC_ACQUIRE))
        __atomic_store_n(&next, (void *(*)(const char *, int))hs_next_symbol("dlopen"), __ATOMIC_RELEASE);
    if (!next)
        return NULL;
    const void *caller = __builtin_return_address(0);
    void *h = NULL;
    char path[PATH_MAX];
    if (file && !strchr(file, '/') && !(h = next(file, mode | RTLD_NOLOAD)) &&
        hs_got_caller_path(caller, file, path, sizeof path))
        h = next(path, mode);
    if (!h)
        h = next(file, mode);
    if (h)
        (void)hs_got_route(false);     /* only while routed (got.h) */
    return h;
}

/* What an attached library uses, for the tool (include/heapsnap.h). Written
 * once by heapsnap_attach, magic last; read by the tool with
 * process_vm_readv. */
HS_EXPORT struct heapsnap_attach_info heapsnap_attach_info;

/* The injector's second call (after dlopen of this library), on the thread
 * it stopped at a safe point: see hs_attach. `spec` holds the attach's
 * settings. 0, -EALREADY (set up before: start through the signal), or
 * -errno. */
HS_EXPORT int heapsnap_attach(const char *spec)
{
    int err = hs_attach(spec ? spec : "", (void *)routed_dlopen);
    if (err == 0) {
        heapsnap_attach_info.signal_base = hs_opt.signal_base;
        memcpy(heapsnap_attach_info.dir, hs_opt.dir, sizeof heapsnap_attach_info.dir);
        __atomic_store_n(&heapsnap_attach_info.magic, HEAPSNAP_ATTACH_MAGIC, __ATOMIC_RELEASE);
    }
    return err;
}
