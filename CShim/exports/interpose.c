/*
 * interpose.c - the libc names other than the allocation functions that the
 * shim exports: sigaction, signal, pthread_create, the signal masks, and
 * the setuid family.
 *
 * Top layer, like hooks.c and cxx.c: each function here is a thin wrapper
 * that hands the call to the file that owns the concern.
 * - sigaction, signal: signal control must survive hosts that install
 *   handlers for our signals (writer.c, hs_sigaction). Both are needed:
 *   glibc's signal() calls its internal __sigaction, not the PLT sigaction.
 * - setuid & co.: the writer thread must step out of glibc's all-threads
 *   setxid (lifecycle.c, hs_setxid_begin). glibc's internal calls (e.g.
 *   initgroups) do not pass through the PLT and are not covered.
 * - __libc_start_main: the AT_EXIT snapshot must come before the program's
 *   static destructors and atexit handlers (lifecycle.c, hs_start_main).
 *   glibc 2.34 gave it a new version (__libc_start_main@@GLIBC_2.34, the
 *   old __libc_start_main@GLIBC_2.2.5 kept for older binaries, both the same
 *   function in csu/libc-start.c); our definition is unversioned, which the
 *   dynamic linker binds to references of either version, and we pass on
 *   to the default version found with dlsym(RTLD_NEXT).
 * - exit: the same snapshot when the program calls exit(), before the
 *   handlers it registered during main.
 * - pthread_create: under HEAPSNAP_WRITER=on-demand the writer thread is
 *   made with the host's first thread (writer.c, hs_pthread_create).
 *   glibc's internal threads (timer_create's SIGEV_THREAD helper, AIO) do
 *   not pass through the PLT.
 * - pthread_sigmask, sigprocmask: a host that blocks our signals before
 *   any writer exists gets one at its next allocation, to read them from
 *   the signalfd (writer.c, hs_sigmask).
 * - dlclose: the unwinder's cached rules (unwind.c) may describe the
 *   module's code; they are forgotten before and after it goes.
 */
#define _GNU_SOURCE
#include "control/writer.h"
#include "control/lifecycle.h"
#include "tables/unwind.h"
#include "base/forward.h"
#include "base/got.h"

#include <dlfcn.h>
#include <errno.h>
#include <grp.h>
#include <signal.h>
#include <stdlib.h>
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

/* Called once, by the executable's _start, after every constructor (ours
 * included, so dlsym's allocations are served normally). */
HS_EXPORT int __libc_start_main(hs_main_fn main, int argc, char **argv, void *init, void *fini,
                                void *rtld_fini, void *stack_end)
{
    hs_start_main_fn next = (hs_start_main_fn)hs_next_symbol("__libc_start_main");
    if (!next)
        abort();                    /* no libc to start the program with */
    return hs_start_main(next, main, argc, argv, init, fini, rtld_fini, stack_end);
}

/* exit(3) called by the program (through the PLT, from main or any
 * thread or library): the AT_EXIT snapshot first, before even the atexit
 * handlers the program registered during main, which exit runs before the
 * one registered as main began (lifecycle.c, hs_exit_called). A return
 * from main is covered by the wrapper; glibc's internal calls are not
 * interposed and need not be. */
HS_EXPORT void exit(int status)
{
    static void (*next)(int);
    if (!__atomic_load_n(&next, __ATOMIC_ACQUIRE))
        __atomic_store_n(&next, (void (*)(int))hs_next_symbol("exit"), __ATOMIC_RELEASE);
    hs_exit_called();
    if (next)
        next(status);               /* does not return */
    _exit(status);                  /* no libc exit found: cannot happen with glibc */
}

/* dlclose(3): forgets the unwinder's cached rules before the module may be
 * unmapped (no walk uses a rule of its code after that), and again after,
 * for rules another thread derived from it meanwhile (while the module was
 * still listed by dl_iterate_phdr). */
HS_EXPORT int dlclose(void *handle)
{
    static int (*next)(void *);
    if (!__atomic_load_n(&next, __ATOMIC_ACQUIRE))
        __atomic_store_n(&next, (int (*)(void *))hs_next_symbol("dlclose"), __ATOMIC_RELEASE);
    if (!next)
        return -1;                  /* no libdl to close with: cannot happen with glibc */
    hs_unwind_forget();
    int ret = next(handle);
    hs_unwind_forget();
    hs_got_forget_unloaded();       /* attached: no slot kept in memory another object may get */
    return ret;
}

HS_EXPORT int pthread_sigmask(int how, const sigset_t *set, sigset_t *old)
{
    return hs_sigmask(how, set, old, false);
}

HS_EXPORT int sigprocmask(int how, const sigset_t *set, sigset_t *old)
{
    return hs_sigmask(how, set, old, true);
}

HS_EXPORT int pthread_create(pthread_t *t, const pthread_attr_t *attr, void *(*fn)(void *), void *arg)
{
    return hs_pthread_create(t, attr, fn, arg);
}

/* The next definition is found on first use; these calls are rare. */
#define SETXID(name, params, args)                                            \
    HS_EXPORT int name params                                                 \
    {                                                                         \
        static int (*next) params;                                            \
        if (!__atomic_load_n(&next, __ATOMIC_ACQUIRE))                        \
            __atomic_store_n(&next, (int (*) params)hs_next_symbol(#name), __ATOMIC_RELEASE); \
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
