/*
 * pyframes.h - Python frames in sampled stacks, read from the interpreter's memory.
 *
 * When the profiled process runs CPython 3.11, 3.12 or 3.13 (a static
 * python3, or a program linked with libpython), each sampled stack gets the
 * Python frames its thread was running: every native activation of
 * _PyEval_EvalFrameDefault is replaced by the Python frames it ran (qualified
 * name, file, line), innermost first. Frames are read on the sampled path
 * only, from the allocating thread's own frame chain, without calling into
 * the interpreter, without the GIL and without allocating.
 *
 * A Python frame in a stack is not an address but a tagged value
 * (HEAPSNAP_PYFRAME_* in heapsnap.h): a function id and a line. Function ids
 * index a deduplicated table of (qualified name, file, first line) copied at
 * sample time, because code objects can be freed before the snapshot is
 * written; the table lives in the arena, under HEAPSNAP_MAX_MEMORY.
 */
#ifndef HS_PYFRAMES_H
#define HS_PYFRAMES_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

/* What the shim knows about the process's interpreter (PYTH.status). */
enum hs_py_status {
    HS_PY_NONE = 0,         /* no CPython in the process */
    HS_PY_FRAMES = 1,       /* a known CPython: Python frames are read */
    HS_PY_UNSUPPORTED = 2,  /* a CPython we do not know: native frames only */
};

/* Looks for CPython in the process (dlsym of _PyRuntime and friends), checks
 * its version and build, and picks the struct offsets. Idempotent; cheap
 * after the first call that found an interpreter.
 * Context: control (writer or a host thread running a command), reentrancy
 * guard held (dlsym may allocate). */
void hs_py_detect(void);

/* The result of hs_py_detect, its one-line explanation (never NULL) and the
 * running version as PY_VERSION_HEX (0 when unknown). */
enum hs_py_status hs_py_status(void);
const char *hs_py_note(void);
uint32_t hs_py_version(void);

/* Writes the merged stack of `depth` captured native frames into `frames`
 * (room for `room`, at least `depth`): each frame inside
 * _PyEval_EvalFrameDefault is replaced by the Python frames of that
 * activation. Returns the merged depth and sets *cut when frames had to be
 * left out. On threads that run no Python, frames gets the natives as they
 * are. `native` and `frames` do not overlap.
 * Context: inside malloc, reentrancy guard held, no shim lock held; takes
 * the function table's lock, then the arena lock. */
uint32_t hs_py_merge(const uintptr_t *native, uint32_t depth, uintptr_t *frames, uint32_t room, bool *cut);

/* What a stack of hs_py_frames_only is the same as: two equal tokens
 * (gen != 0) were given for equal frames. */
struct hs_py_token {
    const void *table;
    uint64_t gen;                       /* 0: no token */
};

static inline bool hs_py_same_token(const struct hs_py_token *a, const struct hs_py_token *b)
{
    return a->gen == b->gen && a->table == b->table;
}

/* HEAPSNAP_NATIVE=none: the calling thread's Python frames, innermost
 * first, into `frames` (room for `room`); *cut is set when frames were left
 * out, *token says which earlier stacks had the same frames. When that
 * token is *known (may be NULL) and nothing was left out, the caller has
 * the frames already and they are not written. 0 when the thread runs no
 * Python frame (its stack is then walked as natives).
 * Context: as hs_py_merge. */
uint32_t hs_py_frames_only(uintptr_t *frames, uint32_t room, bool *cut, struct hs_py_token *token,
                           const struct hs_py_token *known);

/* The return addresses into the interpreter's eval loop, [*lo, *lo + *size):
 * where a native walk may stop under HEAPSNAP_NATIVE=inner, the merge then
 * adding every Python frame of the thread after it. Size 0 when Python
 * frames are not read. Context: any. */
void hs_py_eval_returns(uintptr_t *lo, uintptr_t *size);

/* PYTH.flags bit 3: the stacks were taken under HEAPSNAP_NATIVE=inner;
 * bit 4: under HEAPSNAP_NATIVE=none. */
#define HS_PY_NATIVE_INNER 8u
#define HS_PY_NATIVE_NONE 16u

/* One entry of the function table, immutable once published. */
struct hs_py_function {
    uint32_t firstlineno;
    uint16_t name_len, file_len;
    char text[];            /* name, then file; no terminators */
};

/* Calls fn for every function id in order, holding the table's lock.
 * Returns the number of entries. Context: writer, no other shim lock held. */
uint32_t hs_py_foreach_function(void (*fn)(void *arg, const struct hs_py_function *f), void *arg);

/* True once a sample of this session found a thread running Python (so the
 * interpreter's allocators are set up). The first time, hs_py_first_seen is
 * called, if set: control registers it at load to wake its writer thread
 * (a lower layer never calls up). Context of the call: inside malloc, guard
 * held; it may only do async-signal-safe work. */
bool hs_py_seen(void);
extern void (*hs_py_first_seen)(void);

/* While control sets hs_py_wanted, each sample that finds the thread
 * running Python calls hs_py_on_thread (registered by control at load): it
 * does the Python set-up of a session (the pymalloc wrappers, queueing the
 * free-list call) from the allocating thread, so that it does not wait for
 * the writer thread to be scheduled on a loaded machine. Context of the
 * call: inside malloc, on the sampled path, guard held, no shim lock held;
 * it must not allocate, and may only try locks. */
extern int hs_py_wanted;
extern void (*hs_py_on_thread)(void);

/* Makes the main interpreter look at its pending calls at its next
 * bytecode boundary. In 3.11 and 3.12, Py_AddPendingCall made by a thread
 * other than the main one records the call but does not set the main
 * interpreter's eval_breaker (CPython gh-95820), so a main thread that
 * never releases the GIL never runs it; this sets that int to 1, as the
 * main thread itself would have. A spurious 1 costs the interpreter one
 * look: it handles what is pending and computes the flag again. Does
 * nothing on 3.13 (each thread has its own flag and the call sets it), on
 * versions without Python frames, and once finalization has started.
 * Context: control (writer thread). */
void hs_py_wake_main(void);

/* Is the calling thread running importlib's own code (its innermost Python
 * frame is in importlib._bootstrap or _bootstrap_external)? Context: a
 * thread that holds the GIL (a pending call). */
bool hs_py_in_importlib(void);

/* The running interpreter's _PyRuntime and layout, for control-side code
 * that reads or changes interpreter state with the GIL held (pyreuse.c);
 * NULL unless hs_py_status() is HS_PY_FRAMES. */
struct hs_py_layout;
const char *hs_py_runtime(void);
const struct hs_py_layout *hs_py_layout(void);

/* Has the interpreter begun to finalize (or not started)? Then no thread
 * state or interpreter structure is to be touched. */
bool hs_py_finalizing(void);

/* Forget every function (the memory goes with the arena). Quiesced. */
void hs_py_release(void);
void hs_py_lock(void);
void hs_py_unlock(void);
void hs_py_reset_child(void);

/* PyMethodDef (Include/methodobject.h, the same since 3.0), for the builtins
 * control makes with hs_py_api.cfunction_new. */
struct hs_py_method_def {
    const char *name;
    void *(*meth)(void *self, void *args);
    int flags;
    const char *doc;
};
#define HS_METH_VARARGS 0x0001
#define HS_METH_NOARGS 0x0004

/* The interpreter's API, resolved by hs_py_detect (NULL when absent). Only
 * control and pyalloc.c call them, never the sampled path. */
struct hs_py_api {
    void (*mem_get)(int domain, void *allocator);
    void (*mem_set)(int domain, void *allocator);
    int (*is_initialized)(void);
    int (*add_pending_call)(int (*fn)(void *), void *arg);
    void *(*cfunction_new)(void *def, void *self, void *module);
    /* PyImport_ImportModuleLevel: unlike PyImport_ImportModule it does not
     * look for __import__ in the running frame's builtins, which code run
     * by eval with {'__builtins__': {}} (namedtuple's) does not have. */
    void *(*import_module)(const char *name, void *globals, void *locals, void *fromlist, int level);
    void *(*call_method)(void *obj, const char *name, const char *format, ...);
    void (*decref)(void *obj);
    void (*err_clear)(void);
    void (*incref)(void *obj);
    const char *(*allocator_name)(void);   /* _PyMem_GetCurrentAllocatorName */
    void *none;             /* Py_None */
    /* For pyreuse.c (free lists), all exported by 3.11-3.13. */
    void *(*get_attr)(void *obj, const char *name);         /* PyObject_GetAttrString */
    void (*gc_del)(void *op);                               /* PyObject_GC_Del */
    void (*gc_untrack)(void *op);                           /* PyObject_GC_UnTrack */
    void (*object_free)(void *p);                           /* PyObject_Free */
    void *(*tstate_get)(void);                              /* _PyThreadState_UncheckedGet (3.13: PyThreadState_GetUnchecked) */
    int (*trash_begin)(void *tstate, void *op);             /* _PyTrash_begin (3.11, 3.12) */
    void (*trash_end)(void *tstate);                        /* _PyTrash_end (3.11, 3.12) */
    char *list_type, *dict_type;                            /* PyList_Type, PyDict_Type */
};
extern struct hs_py_api hs_py_api;

/* Py_None with a new reference: what a builtin returns for nothing. */
static inline void *hs_py_none(void)
{
    hs_py_api.incref(hs_py_api.none);
    return hs_py_api.none;
}

#endif
