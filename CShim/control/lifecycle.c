/*
 * lifecycle.c - load, fork, exit and credentials: when the writer runs.
 *
 * Load (constructor): resolve the next allocator, go inert if AT_SECURE,
 * dup stderr, parse the environment once into hs_opt, find the shim's text
 * (stacks), register the fork child's setup with the sampler, then set up
 * signal control (writer.c: the handlers; the channel and the writer
 * thread, with every signal blocked, under HEAPSNAP_WRITER=load or when
 * first needed). With HEAPSNAP_START, sampling starts before the
 * constructor returns.
 *
 * fork (pthread_atfork): prepare takes the control lock, quiesces sampling
 * (so no thread is inside libunwind or holds a stripe lock on our behalf) and
 * takes every table lock; the parent releases them and resumes; the child
 * gets fresh locks, no tables, sampling off, seq 0, and makes its own pipe
 * and writer thread on its first allocation (hs_child_setup) if its parent
 * was sampling, else (HEAPSNAP_WRITER=on-demand, the default) when it first
 * needs one, as its parent would (writer.c, "The writer made on demand").
 * A process with no session since it was loaded or forked skips the table
 * locks and resets (sampler.h). A child forked while its parent sampled
 * then starts a session of its own at once (a start request queued for its
 * writer), so the workers a pre-fork server forks later sample as its
 * first ones do. Children made without fork handlers (vfork, clone) exec
 * or exit at once.
 *
 * Exit: the AT_EXIT snapshot, then sampling stays off for good. It must
 * show what the program held, so it is written before the program's own
 * teardown: the interposed __libc_start_main (interpose.c) runs main
 * through main_wrapper, which registers at_exit with atexit(3) as main
 * begins (C++ static destructors and handlers registered before main were
 * registered earlier, so run later: exit runs handlers last in, first out)
 * and calls it itself when main returns, and the interposed exit() calls it
 * first (both before handlers registered during main). The library
 * destructor stays as the fallback (a process started without
 * __libc_start_main passing through us).
 *
 * Credentials: the writer thread leaves before a setuid()-family call and a
 * new one starts after it (see hs_setxid_begin).
 *
 * References: pthread_atfork(3), getauxval(3) AT_SECURE, nptl's setxid.
 */
#define _GNU_SOURCE
#include "control/lifecycle.h"
#include "control/writer.h"
#include "sampling/sampler.h"
#include "tables/stacks.h"
#include "tables/unwind.h"
#include "base/options.h"
#include "base/stderr.h"
#include "base/forward.h"
#include "base/got.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/auxv.h>

/* ------------------------------------------------------------------ fork */

/* Context: the forking thread, before fork. */
static void fork_prepare(void)
{
    hs_writer_fork_prepare();
    hs_sampler_fork_prepare();
}

static void fork_parent(void)
{
    hs_sampler_fork_parent();
    hs_writer_fork_parent();
}

/* Context: fork child, single-threaded; the parent's locks were copied held.
 * The child gets its own channel and writer thread, but lazily: most fork
 * children exec or exit at once, and a thread per child would cost every
 * fork(2) in the host ~0.1 ms. hs_active = HS_CHILD_SETUP sends the child's
 * first allocation to hs_child_setup(), which creates them. Signals that
 * arrive before that are remembered in pending[] (writer.c) and run then. */
static void fork_child(void)
{
    bool sampling = hs_sampler_forked_sampling();
    hs_sampler_fork_child();
    hs_writer_fork_child(sampling);
    if (hs_sampler_forked_tables())
        hs_unwind_reset_child();        /* the last walks: only sessions walk */
    hs_got_fork_child();
    /* HEAPSNAP_WRITER=on-demand: a child of a parent that was not sampling
     * waits for its first command too. */
    if (!hs_ctl_inert() && (sampling || !hs_opt.writer_on_demand))
        hs_sampler_expect_setup();
}

void hs_child_setup(void)
{
    if (hs_guard_held())
        return;                         /* pthread_create's own allocations */
    bool guarded = hs_guard_enter();
    hs_ctl_lock();
    if (hs_child_setup_pending())
        hs_writer_setup();
    hs_ctl_unlock();
    hs_guard_leave(guarded);
}

/* ----------------------------------------------------------- credentials */

/* Credentials: glibc's setuid() family changes every thread's credentials
 * by signalling each thread to make the same system call, and aborts the
 * process if any thread's call fails where the caller's succeeded (nptl
 * setxid). Hosts that first change per-thread state (setpriv and libcap-ng:
 * PR_SET_KEEPCAPS, capset() on the calling thread only) would then abort
 * because of our writer thread. So the interposed setxid functions
 * (interpose.c) take the writer out for the duration of the call and start
 * a new one afterwards, from the calling thread, with its new credentials.
 * Returns true when it stopped the writer (pass that to hs_setxid_end). */
bool hs_setxid_begin(void)
{
    if (!hs_ctl_ready() || hs_guard_held())
        return false;
    return hs_writer_leave();
}

void hs_setxid_end(bool stopped)
{
    if (!stopped)
        return;
    int saved = errno;                  /* the caller reads errno of its setxid call */
    bool guarded = hs_guard_enter();
    hs_ctl_lock();
    int err = hs_writer_start();
    hs_ctl_unlock();
    hs_guard_leave(guarded);
    if (err)
        hs_say_errno("cannot restart the writer thread after a credentials change; signals are ignored", -err);
    errno = saved;
}

/* ------------------------------------------------------------- load/exit */

/* The set-up shared by load and attach. 0 or -errno. Context: the
 * constructor, or hs_attach; guard held. */
static int init_control(void)
{
    hs_stacks_init();
    hs_sampler_on_child_setup(hs_child_setup);
    int err = hs_writer_init();
    if (err)
        return err;
    pthread_atfork(fork_prepare, fork_parent, fork_child);
    hs_ctl_set_ready();
    return 0;
}

__attribute__((constructor(102))) static void hs_init(void)
{
    hs_forward_init();
    if (getauxval(AT_SECURE))
        return;                         /* setuid/setgid: stay inert, forward only */
    /* Loaded by dlopen into a running process (heapsnap attach, or a
     * program that dlopens us): nothing here; heapsnap_attach does the
     * set-up with the attach's settings, not the process's environment. */
    if (hs_got_loaded_late((const void *)hs_init))
        return;
    hs_say_init();
    bool guarded = hs_guard_enter();
    hs_options_parse();
    int err = init_control();
    if (err) {
        hs_say_errno("cannot set up signal control; heapsnap stays inactive", -err);
        hs_ctl_set_inert();
        hs_guard_leave(guarded);
        return;
    }
    if (hs_opt.start)
        hs_writer_start_now();
    hs_guard_leave(guarded);
}

/* Normal exit (exit() or return from main): writes the AT_EXIT snapshot,
 * then stops sampling for good (the guard stays set: nothing this thread
 * allocates afterwards is sampled). Runs up to three times, the first one
 * writes: when main returns, from atexit, from the library destructor.
 * Context: the exiting thread, no shim lock held (unless interrupted). */
static void at_exit(void)
{
    if (!hs_ctl_ready())
        return;
    if (hs_guard_held()) {
        /* exit() from a signal handler that interrupted this thread inside
         * the shim (it may hold a stripe lock and count as in flight):
         * waiting for quiesce would wait for itself. Just stop. (After
         * at_exit ran on this thread, this is a no-op.) */
        hs_sampler_halt();
        return;
    }
    hs_guard_enter();
    hs_writer_at_exit();
}

static hs_main_fn host_main;        /* written once, before main runs */

/* The program's main, run by __libc_start_main. Context: the main thread,
 * after every constructor (the program's static objects exist). */
static int main_wrapper(int argc, char **argv, char **envp)
{
    if (atexit(at_exit) != 0)
        hs_say("cannot register the at-exit snapshot before the program's own; "
               "it is written after the program's destructors", NULL, NULL, NULL);
    int status = host_main(argc, argv, envp);
    at_exit();
    return status;
}

int hs_start_main(hs_start_main_fn next, hs_main_fn main, int argc, char **argv,
                  void *init, void *fini, void *rtld_fini, void *stack_end)
{
    /* Only with HEAPSNAP_AT_EXIT: otherwise main is not touched. */
    if (hs_ctl_ready() && hs_opt.at_exit && !host_main) {
        host_main = main;
        main = main_wrapper;
    }
    return next(main, argc, argv, init, fini, rtld_fini, stack_end);
}

void hs_exit_called(void)
{
    if (__atomic_load_n(&host_main, __ATOMIC_RELAXED))     /* main wrapped: HEAPSNAP_AT_EXIT */
        at_exit();
}

/* Names the shim exports that are not routed: the control API,
 * __libc_start_main (it ran long ago), and pthread_create and the signal
 * masks (the writer is made at attach). */
static const char *const not_routed[] = { "heapsnap_", "__libc_start_main", "pthread_create", "pthread_sigmask",
                                          "sigprocmask", NULL };

int hs_attach(const char *spec, void *dlopen_route)
{
    if (getauxval(AT_SECURE))
        return -EPERM;
    if (hs_ctl_ready() || hs_got_enabled())
        return -EALREADY;               /* preloaded, or attached before: the signals start it */
    bool guarded = hs_guard_enter();
    hs_say_init();
    hs_options_parse_spec(spec);
    /* The writer at once: the injector stopped this thread at a safe point,
     * and a signal may later find none (see writer.c, "The writer made on
     * demand"). */
    hs_opt.writer_on_demand = false;
    struct hs_got_extra extra[] = { { "dlopen", dlopen_route } };
    int err = hs_got_init((const void *)hs_attach, not_routed, extra, 1);
    if (!err) {
        hs_forward_reinit(hs_got_lookup);
        err = init_control();
    }
    if (err) {
        hs_say_errno("cannot attach; the process is left as it was", -err);
        hs_guard_leave(guarded);
        return err;
    }
    if (hs_opt.start)
        hs_writer_start_now();
    hs_guard_leave(guarded);
    return 0;
}

__attribute__((destructor(101))) static void hs_fini(void)
{
    at_exit();
}
