/*
 * pysetup.c - the Python set-up of each sampling session (pysetup.h).
 *
 * Three things, each done once per session and each needing the
 * interpreter at a moment of its own: the pymalloc wrappers, installed once
 * the interpreter's allocators exist (pyalloc.c); and two pending calls,
 * queued once it is initialized, that run on the main thread with the GIL:
 * the free lists off (pyreuse.c), and with HEAPSNAP_AT_EXIT the builtin
 * heapsnap_at_exit registered with Python's atexit (see CShim/DESIGN.md,
 * "The end of a run"). Until both calls have run, each writer tick wakes
 * the main interpreter (hs_py_wake_main, CPython gh-95820).
 *
 * Nothing here allocates: it runs on the writer thread and inside malloc
 * on the sampled path, always under the control lock (pysetup.h). The
 * pending calls take no lock of ours; they only store atomics here.
 */
#include "python/pysetup.h"
#include "python/pyalloc.h"
#include "python/pyreuse.h"
#include "tables/pyframes.h"
#include "sampling/sampler.h"
#include "base/options.h"
#include "base/stderr.h"
#include "base/clock.h"

#include <stdbool.h>
#include <stdint.h>

void (*hs_pysetup_at_exit)(void);

/* The set-up's state. at_exit and free_lists_queued are atomics (the
 * pending calls store them too); the deadlines are written under the
 * control lock. */
static struct {
    int at_exit;                /* the Python at-exit hook: PY_EXIT_* */
    int free_lists_queued;      /* py_sync_free_lists is queued (the pending call clears it) */
    uint64_t poll_until_ns;     /* CLOCK_MONOTONIC: the tick may ask for 10 ms polls until then */
    uint64_t fast_until_ns;     /* ... and for 1 ms polls until then, once Python frames were seen */
} state;

enum {
    PY_EXIT_TODO,       /* not queued (or the call found the main thread importing: again later) */
    PY_EXIT_QUEUED,     /* Py_AddPendingCall took py_register_at_exit */
    PY_EXIT_DONE,       /* registered, or given up */
};

/* The AT_EXIT snapshot from Python's atexit stage: the interpreter is about
 * to finalize (free nearly everything), so write it now, as tracemalloc
 * users would; control's exit handler then has nothing left to do at process exit.
 * Context: the main thread, in Python's atexit callbacks, GIL held. */
static void *py_at_exit(void *self, void *unused)
{
    (void)self;
    (void)unused;
    bool guarded = hs_guard_enter();
    hs_pysetup_at_exit();
    hs_guard_leave(guarded);
    return hs_py_none();
}

static struct hs_py_method_def py_at_exit_def = { "heapsnap_at_exit", py_at_exit, HS_METH_NOARGS, NULL };

/* atexit.register(heapsnap_at_exit). Registered early, it runs after the
 * program's own atexit callbacks (last in, first out), after non-daemon
 * threads were joined, and before the interpreter finalizes.
 * A pending call runs at any bytecode boundary; importing atexit while
 * importlib's own code runs (site's imports at startup) would break the
 * import under way (its per-thread lock bookkeeping), so then it leaves it
 * for a later call. Context: the main thread, a pending call, GIL held. */
static int py_register_at_exit(void *arg)
{
    (void)arg;
    static int failures;                /* the main thread's only */
    if (hs_py_in_importlib()) {
        __atomic_store_n(&state.at_exit, PY_EXIT_TODO, __ATOMIC_RELEASE);
        __atomic_store_n(&hs_py_wanted, 1, __ATOMIC_RELAXED);
        return 0;
    }
    bool guarded = hs_guard_enter();    /* our own objects are not sampled */
    void *fn = hs_py_api.cfunction_new(&py_at_exit_def, NULL, NULL);
    void *mod = fn ? hs_py_api.import_module("atexit", NULL, NULL, NULL, 0) : NULL;
    void *r = mod ? hs_py_api.call_method(mod, "register", "O", fn) : NULL;
    int next = PY_EXIT_DONE;
    if (r) {
        hs_py_api.decref(r);
    } else {
        hs_py_api.err_clear();          /* nothing of ours may reach the program */
        if (++failures < 20)
            next = PY_EXIT_TODO;        /* the writer queues it again */
        else
            hs_say("cannot register the Python at-exit snapshot; it is written after finalization", NULL, NULL, NULL);
    }
    if (mod)
        hs_py_api.decref(mod);
    if (fn)
        hs_py_api.decref(fn);
    __atomic_store_n(&state.at_exit, next, __ATOMIC_RELEASE);
    hs_guard_leave(guarded);
    return 0;
}

/* Free lists off while sampling, on again after (pyreuse.h). Leaves it for a
 * later call while importlib's own code runs (it imports gc).
 * Context: the main thread, a pending call, GIL held. */
static int py_sync_free_lists(void *arg)
{
    (void)arg;
    if (!hs_py_in_importlib())
        hs_pyreuse_sync();
    else
        __atomic_store_n(&hs_py_wanted, 1, __ATOMIC_RELAXED);     /* again, from the next Python sample */
    __atomic_store_n(&state.free_lists_queued, 0, __ATOMIC_RELEASE);
    return 0;
}

/* Queues py_sync_free_lists when the free lists are not as sampling wants
 * them and no call is queued yet; true while one is queued (then the
 * caller wakes the main interpreter). Context: ctl_lock held. */
static bool queue_free_lists_sync(void)
{
    if (!hs_py_api.add_pending_call || hs_py_status() != HS_PY_FRAMES)
        return false;
    if (!__atomic_load_n(&state.free_lists_queued, __ATOMIC_ACQUIRE) && !hs_pyreuse_in_sync()) {
        __atomic_store_n(&state.free_lists_queued, 1, __ATOMIC_RELEASE);
        if (hs_py_api.add_pending_call(py_sync_free_lists, NULL) != 0)
            __atomic_store_n(&state.free_lists_queued, 0, __ATOMIC_RELEASE);
    }
    return __atomic_load_n(&state.free_lists_queued, __ATOMIC_ACQUIRE);
}

/* Where the Python set-up of a session stands (python_setup). */
enum py_setup {
    PY_SETUP_DONE,      /* nothing left to do */
    PY_SETUP_WAITING,   /* everything queued; waiting for the main thread to run it */
    PY_SETUP_TODO,      /* something still to install or queue */
};

/* The Python set-up of a sampling session that needs no GIL: the pymalloc
 * wrappers once the interpreter's allocators exist, and the pending calls
 * (free lists off, the at-exit hook) once it is initialized, each woken on
 * the main interpreter while queued.
 * Context: ctl_lock held, sampling; the writer, or a thread running Python
 * inside malloc (hs_pysetup_on_thread): nothing here allocates. */
static enum py_setup python_setup(void)
{
    bool initialized = hs_py_api.is_initialized && hs_py_api.is_initialized();
    enum py_setup at = initialized ? PY_SETUP_DONE : PY_SETUP_TODO;
    if (initialized || hs_py_seen())
        hs_pyalloc_install();
    if (initialized && queue_free_lists_sync()) {
        hs_py_wake_main();
        at = PY_SETUP_WAITING;
    } else if (initialized && !hs_pyreuse_in_sync()) {
        at = PY_SETUP_TODO;             /* the call could not be queued: again */
    }
    int at_exit = __atomic_load_n(&state.at_exit, __ATOMIC_ACQUIRE);
    if (hs_opt.at_exit && at_exit != PY_EXIT_DONE && hs_py_api.add_pending_call && hs_py_api.cfunction_new &&
        hs_py_api.import_module && hs_py_api.call_method && hs_py_api.none && hs_py_api.incref) {
        if (at_exit == PY_EXIT_TODO && initialized) {
            __atomic_store_n(&state.at_exit, PY_EXIT_QUEUED, __ATOMIC_RELEASE);
            if (hs_py_api.add_pending_call(py_register_at_exit, NULL) != 0)
                __atomic_store_n(&state.at_exit, PY_EXIT_TODO, __ATOMIC_RELEASE);
        }
        if (__atomic_load_n(&state.at_exit, __ATOMIC_ACQUIRE) == PY_EXIT_QUEUED) {
            hs_py_wake_main();
            if (at == PY_SETUP_DONE)
                at = PY_SETUP_WAITING;
        } else {
            at = PY_SETUP_TODO;
        }
    }
    return at;
}

/* While sampling a Python process: the set-up above, from the writer too;
 * until it is done, asks the writer to come back in 10 ms (*timeout_ms),
 * for at most 30 s after start: a program that links libpython but never
 * initializes it must not keep the writer polling. Once a sample has met
 * Python frames the interpreter is starting and is initialized within
 * milliseconds: then 1 ms, for the first second after start, so that a
 * script that runs for a few milliseconds still gets its at-exit snapshot
 * before finalization. Until the queued hook has run, each tick wakes the
 * main interpreter (hs_py_wake_main): a program that never releases the
 * GIL would not run it otherwise. Context: ctl_lock held. */
void hs_pysetup_tick(int *timeout_ms)
{
    if (!hs_opt.python || __atomic_load_n(&hs_active, __ATOMIC_RELAXED) != 1)
        return;
    hs_py_detect();
    if (hs_py_status() == HS_PY_NONE)
        return;
    bool todo = python_setup() != PY_SETUP_DONE;
    uint64_t now = hs_now_ns(CLOCK_MONOTONIC);
    int soon = hs_py_seen() && now < state.fast_until_ns ? 1 : 10;
    if (todo && timeout_ms && *timeout_ms > soon && now < state.poll_until_ns)
        *timeout_ms = soon;
}

void hs_pysetup_start(void)
{
    state.poll_until_ns = hs_now_ns(CLOCK_MONOTONIC) + 30 * 1000000000ull;
    state.fast_until_ns = hs_now_ns(CLOCK_MONOTONIC) + 1000000000ull;
    hs_pyreuse_session();
    __atomic_store_n(&hs_py_wanted, 1, __ATOMIC_RELAXED);
    hs_pysetup_tick(NULL);
}

void hs_pysetup_on_thread(void)
{
    if (!hs_opt.python || __atomic_load_n(&hs_active, __ATOMIC_RELAXED) != 1 || python_setup() != PY_SETUP_TODO)
        __atomic_store_n(&hs_py_wanted, 0, __ATOMIC_RELAXED);
}

void hs_pysetup_stop(void)
{
    __atomic_store_n(&hs_py_wanted, 0, __ATOMIC_RELAXED);
}

void hs_pysetup_undo(void)
{
    hs_pyalloc_remove();
    if (queue_free_lists_sync())    /* free lists on again, at the main thread's next chance */
        hs_py_wake_main();
}
