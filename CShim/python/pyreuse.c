/*
 * pyreuse.c - CPython's free lists kept empty while sampling (pyreuse.h).
 *
 * Why empty free lists give tracemalloc's answer. tracemalloc charges a
 * block to the traceback of the last _Py_NewReference on it: the line that
 * allocated it, or the line that took it from a free list. With the four
 * free lists of objects (list, dict, tuple, float) empty and kept empty,
 * every object of those types is a fresh allocation through the OBJ domain
 * (which pyalloc.c wraps) and every dead one goes back through PyObject_Free,
 * so the line that allocates a block is the line that creates the object.
 * Dict keys also have a free list, but keys are not objects and tracemalloc
 * does not re-charge them either: it is left alone, and both tools agree.
 * Only sampled blocks needed re-charging; emptying the lists re-charges all
 * of them, but what it costs is an allocation and a free per object of
 * those types (pymalloc's, a few dozen instructions), not a stack walk.
 *
 * Why not a hook at object creation. 3.13 has one (PyRefTracer_SetTracer),
 * but it is called for every creation and destruction of every object, one
 * tracer per runtime; 3.11 and 3.12 have none: their only dispatch inside
 * _Py_NewReference is tracemalloc's own, behind its `tracing` flag and its
 * static tables (stripped from Debian's static python3), and setting that
 * flag would also silence a program's own tracemalloc.start(). The free
 * lists are plain interpreter state, the same in every build of a version
 * (python_layouts.h, checked against each version's headers by ShimTests).
 *
 * How each list is kept empty (the conditions are CPython's own, read from
 * the objects' code of each version; "push" is the dealloc putting a dead
 * object on the list, "pop" the constructor taking one):
 *  - floats and tuples (linked lists, all versions): push only while
 *    numfree < MAX, pop only while the head is not NULL. Emptied (the
 *    objects freed as the interpreter's own clear does), the head NULL and
 *    numfree = MAX: neither ever happens.
 *  - lists and dicts in 3.13 (arrays): pop only while numfree > 0, push only
 *    while (unsigned)numfree < 80. numfree = -1 (what finalization sets)
 *    stops both.
 *  - lists and dicts in 3.11 and 3.12 (arrays): pop while numfree != 0, push
 *    while numfree < 80 (signed): no value stops both. So the type's
 *    tp_dealloc slot gets a wrapper that calls the original and then frees
 *    whatever it pushed (numfree stays 0, so nothing is ever popped). The
 *    wrapper must do the original's trashcan (the depth limit that keeps
 *    the deallocation of a deeply nested list from overflowing the C stack):
 *    list_dealloc enters it only when the object's type's tp_dealloc is
 *    list_dealloc itself (_PyTrash_cond), which is no longer true; so the
 *    wrapper enters it on exactly the objects the original would have
 *    (those whose type's slot holds the wrapper) and the original skips its
 *    own. The wrapper's other cost is one load and compare per dealloc.
 *
 * A full garbage collection clears every free list and sets numfree back to
 * 0 (gcmodule's clear_freelists), which turns floats and tuples (and 3.13's
 * lists and dicts) on again; a callback in gc.callbacks turns them off
 * again at the end of each collection.
 *
 * Context: everything here runs with the GIL held (a pending call on the
 * main thread, the gc callback, the dealloc wrappers), which is what guards
 * the free lists in CPython; only the main interpreter's lists are touched.
 * Stopping puts the lists back in use, empty; the dealloc wrappers leave the
 * type slots when they are still ours (a static C subtype readied while
 * they were in place keeps a copy: it keeps calling a wrapper, which then
 * only does the trashcan and calls the original).
 */
#define _GNU_SOURCE
#include "python/pyreuse.h"
#include "python/pyalloc.h"
#include "tables/pyframes.h"
#include "tables/python_layouts.h"
#include "sampling/sampler.h"
#include "base/options.h"

#include <stdbool.h>
#include <stddef.h>

typedef void (*destructor)(void *);

enum { LIST, DICT };

/* All written with the GIL held and read with it (or, `flags`, atomically). */
static destructor orig_dealloc[2];      /* the slot's value before our wrapper */
static bool wrapped[2];                 /* our wrapper is in the type's slot */
static bool off;                        /* the lists are off (wrappers free what is pushed) */
static void *gc_callback;               /* our PyCFunction in gc.callbacks, once made */
/* What the wrappers read, set before they are placed (never changes after:
 * the main interpreter of 3.11 and 3.12 is a static inside _PyRuntime). */
static char *wrapped_interp;
static uint32_t ob_type_off, ts_interp_off;
static int *numfree[2];
static void **items[2];
static uint32_t flags;

#define AT(base, off, type) (*(type *)((char *)(base) + (off)))

/* Off while sampling, unless HEAPSNAP_PYTHON_FREE_LISTS=keep. */
static bool want_off(void)
{
    return !hs_opt.py_free_lists && __atomic_load_n(&hs_active, __ATOMIC_RELAXED) == 1;
}

static destructor *slot_of(const char *type) { return (destructor *)(type + HS_PY_TP_DEALLOC); }

static char *main_interp(void)
{
    const struct hs_py_layout *l = hs_py_layout();
    return l ? AT(hs_py_runtime(), l->rt_main, char *) : NULL;
}

static bool minor_13(void) { return ((hs_py_version() >> 16) & 0xFF) == 13; }

/* Frees every object on a list or dict free list (an array and its count). */
static void drain(int *n, void **slots)
{
    while (*n > 0)
        hs_py_api.gc_del(slots[--*n]);
}

static void drain_array(char *interp, uint32_t items_off, uint32_t numfree_off)
{
    drain(&AT(interp, numfree_off, int), &AT(interp, items_off, void *));
}

/* Empties the float and tuple lists and sets them off (or just on). */
static void set_linked(char *interp, const struct hs_py_layout *l, bool to_off)
{
    char **head = &AT(interp, l->fl_float_items, char *);
    for (char *f = *head; f;) {
        char *next = AT(f, l->ob_type, char *);    /* the link is ob_type */
        hs_py_api.object_free(f);
        f = next;
    }
    *head = NULL;
    AT(interp, l->fl_float_numfree, int) = to_off ? HS_PY_FLOAT_MAXFREELIST : 0;
    for (int i = 0; i < HS_PY_TUPLE_NFREELISTS; i++) {
        char **t = &AT(interp, l->fl_tuple_items + 8 * i, char *);
        for (char *p = *t; p;) {
            char *next = AT(p, HS_PY_TUPLE_OB_ITEM, char *);   /* the link is ob_item[0] */
            hs_py_api.gc_del(p);
            p = next;
        }
        *t = NULL;
        AT(interp, l->fl_tuple_numfree + 4 * i, int) = to_off ? HS_PY_TUPLE_MAXFREELIST : 0;
    }
}

/* The tp_dealloc wrappers of 3.11 and 3.12 (see the top of the file).
 * Context: the interpreter's deallocation of a list or dict, GIL held. */
static void dealloc_wrapped(int k, void *op, destructor self)
{
    bool trash = *slot_of(AT(op, ob_type_off, char *)) == self;
    void *ts = hs_py_api.tstate_get();
    if (trash) {
        hs_py_api.gc_untrack(op);       /* as the original does before its trashcan */
        if (hs_py_api.trash_begin(ts, op))
            return;                     /* deferred: destroyed later through the slot */
    }
    orig_dealloc[k](op);
    /* Not `off`: a fork child inherits it but does not sample. */
    if (want_off() && ts && AT(ts, ts_interp_off, char *) == wrapped_interp)
        drain(numfree[k], items[k]);
    if (trash)
        hs_py_api.trash_end(ts);
}

static void list_dealloc(void *op) { dealloc_wrapped(LIST, op, list_dealloc); }
static void dict_dealloc(void *op) { dealloc_wrapped(DICT, op, dict_dealloc); }

static void wrap(int k, char *type, destructor ours)
{
    destructor *slot = slot_of(type);
    if (wrapped[k] || *slot == ours)
        return;
    const struct hs_py_layout *l = hs_py_layout();
    wrapped_interp = main_interp();
    ob_type_off = l->ob_type;
    ts_interp_off = l->ts_interp;
    numfree[k] = &AT(wrapped_interp, k == LIST ? l->fl_list_numfree : l->fl_dict_numfree, int);
    items[k] = &AT(wrapped_interp, k == LIST ? l->fl_list_items : l->fl_dict_items, void *);
    orig_dealloc[k] = *slot;
    *slot = ours;
    wrapped[k] = true;
}

static void unwrap(int k, char *type, destructor ours)
{
    destructor *slot = slot_of(type);
    if (!wrapped[k])
        return;
    if (*slot == ours)
        *slot = orig_dealloc[k];
    wrapped[k] = false;                 /* orig_dealloc stays: a copied slot still calls us */
}

static void apply(bool may_register);

/* gc.callbacks entry: a full collection cleared the lists and set them on.
 * Context: the collecting thread, GIL held. */
static void *gc_called(void *self, void *args)
{
    (void)self;
    (void)args;
    if (want_off() || __atomic_load_n(&off, __ATOMIC_RELAXED))
        apply(false);           /* the collector is walking gc.callbacks: leave the list alone */
    return hs_py_none();
}

static struct hs_py_method_def gc_def = { "heapsnap_free_lists", gc_called, HS_METH_VARARGS, NULL };

/* Puts our callback in gc.callbacks (again, if the program emptied it). */
static void register_gc_callback(void)
{
    if (!gc_callback)
        gc_callback = hs_py_api.cfunction_new(&gc_def, NULL, NULL);
    void *gc = gc_callback ? hs_py_api.import_module("gc", NULL, NULL, NULL, 0) : NULL;
    void *list = gc ? hs_py_api.get_attr(gc, "callbacks") : NULL;
    if (list) {
        void *r = hs_py_api.call_method(list, "remove", "O", gc_callback);
        if (r)
            hs_py_api.decref(r);
        hs_py_api.err_clear();          /* ValueError: it was not there */
        r = hs_py_api.call_method(list, "append", "O", gc_callback);
        if (r)
            hs_py_api.decref(r);
        hs_py_api.decref(list);
    }
    if (gc)
        hs_py_api.decref(gc);
    hs_py_api.err_clear();              /* nothing of ours may reach the program */
}

static bool usable(void)
{
    return hs_py_layout() && hs_py_api.gc_del && hs_py_api.object_free && hs_py_api.tstate_get &&
           (minor_13() || (hs_py_api.gc_untrack && hs_py_api.trash_begin && hs_py_api.trash_end)) && hs_py_api.list_type &&
           hs_py_api.dict_type && hs_py_api.get_attr && hs_py_api.cfunction_new && hs_py_api.import_module &&
           hs_py_api.call_method && main_interp();
}

int hs_pyreuse_in_sync(void)
{
    return !usable() || __atomic_load_n(&off, __ATOMIC_RELAXED) == want_off();    /* unusable: nothing to sync */
}

/* Context: GIL held. may_register: not from inside the collector's walk of gc.callbacks. */
static void apply(bool may_register)
{
    if (!usable() || hs_py_finalizing())
        return;
    const struct hs_py_layout *l = hs_py_layout();
    char *interp = main_interp();
    char *ts = hs_py_api.tstate_get();
    if (!ts || AT(ts, l->ts_interp, char *) != interp)
        return;                         /* a subinterpreter's thread: the main one's lists are not ours to touch */
    bool to_off = want_off();
    if (to_off && !off && may_register) {
        bool guarded = hs_guard_enter();    /* our own objects are not sampled */
        register_gc_callback();
        hs_guard_leave(guarded);
    }
    /* The objects drained are freed without the guard: a free under it is
     * not looked up, and a sampled object that died onto a list before it
     * went off would stay in the live table, charged to its line, after its
     * block went back to pymalloc (and on to the next object made there). */
    if (minor_13()) {
        drain_array(interp, l->fl_list_items, l->fl_list_numfree);
        drain_array(interp, l->fl_dict_items, l->fl_dict_numfree);
        AT(interp, l->fl_list_numfree, int) = to_off ? -1 : 0;
        AT(interp, l->fl_dict_numfree, int) = to_off ? -1 : 0;
    } else if (to_off) {
        wrap(LIST, hs_py_api.list_type, list_dealloc);
        wrap(DICT, hs_py_api.dict_type, dict_dealloc);
        drain_array(interp, l->fl_list_items, l->fl_list_numfree);
        drain_array(interp, l->fl_dict_items, l->fl_dict_numfree);
    } else {
        unwrap(LIST, hs_py_api.list_type, list_dealloc);
        unwrap(DICT, hs_py_api.dict_type, dict_dealloc);
    }
    set_linked(interp, l, to_off);
    if (!to_off)
        hs_pyalloc_drain();             /* the block cache's too */
    __atomic_store_n(&off, to_off, __ATOMIC_RELAXED);
    if (to_off)
        __atomic_store_n(&flags, HS_PYREUSE_OFF, __ATOMIC_RELAXED);
}

void hs_pyreuse_sync(void)
{
    apply(true);
}

void hs_pyreuse_session(void)
{
    __atomic_store_n(&flags, __atomic_load_n(&off, __ATOMIC_RELAXED) ? HS_PYREUSE_OFF : 0, __ATOMIC_RELAXED);
}

uint32_t hs_pyreuse_flags(void)
{
    return __atomic_load_n(&flags, __ATOMIC_RELAXED);
}
