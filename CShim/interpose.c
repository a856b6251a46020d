/*
 * interpose.c - the libc names other than the allocation functions that the
 * shim exports: sigaction, signal, and the setuid family.
 *
 * Top layer, like hooks.c and cxx.c: each function here is a thin wrapper
 * that hands the call to the file that owns the concern.
 * - sigaction, signal: signal control must survive hosts that install
 *   handlers for our signals (writer.c, hs_sigaction). Both are needed:
 *   glibc's signal() calls its internal __sigaction, not the PLT sigaction.
 * - setuid & co.: the writer thread must step out of glibc's all-threads
 *   setxid (lifecycle.c, hs_setxid_begin). glibc's internal calls (e.g.
 *   initgroups) do not pass through the PLT and are not covered.
 */
#define _GNU_SOURCE
#include "writer.h"
#include "lifecycle.h"

#include <dlfcn.h>
#include <errno.h>
#include <grp.h>
#include <signal.h>
#include <unistd.h>

#define HS_EXPORT __attribute__((visibility("default")))

HS_EXPORT int sigaction(int sig, const struct sigaction *act, struct sigaction *old)
{
    return hs_sigaction(sig, act, old);
}

HS_EXPORT sighandler_t signal(int sig, sighandler_t handler)
{
    return hs_signal(sig, handler);
}

/* The next definition is found on first use; these calls are rare. */
#define SETXID(name, params, args)                                            \
    HS_EXPORT int name params                                                 \
    {                                                                         \
        static int (*next) params;                                            \
        if (!__atomic_load_n(&next, __ATOMIC_ACQUIRE))                        \
            __atomic_store_n(&next, (int (*) params)dlsym(RTLD_NEXT, #name), __ATOMIC_RELEASE); \
        if (!next) {                                                          \
            errno = ENOSYS;                                                   \
            return -1;                                                        \
        }                                                                     \
        bool stopped = hs_setxid_begin();                                     \
        int ret = next args;                                                  \
        hs_setxid_end(stopped);                                               \
        return ret;                                                           \
    }

SETXID(setuid, (uid_t u), (u))
SETXID(setgid, (gid_t g), (g))
SETXID(seteuid, (uid_t u), (u))
SETXID(setegid, (gid_t g), (g))
SETXID(setreuid, (uid_t r, uid_t e), (r, e))
SETXID(setregid, (gid_t r, gid_t e), (r, e))
SETXID(setresuid, (uid_t r, uid_t e, uid_t s), (r, e, s))
SETXID(setresgid, (gid_t r, gid_t e, gid_t s), (r, e, s))
SETXID(setgroups, (size_t n, const gid_t *list), (n, list))
