/*
 * python_layouts.h - where CPython keeps what pyframes.c reads, per version.
 *
 * Offsets in bytes of the fields of CPython's internal structures that the
 * frame walk reads (Include/internal/pycore_frame.h, pycore_code.h,
 * pycore_runtime.h, cpython/unicodeobject.h of each version). 3.13 publishes
 * most of them itself in _Py_DebugOffsets at the start of _PyRuntime; for it
 * this file holds only what that structure lacks. ShimTests compiles
 * Tests/Programs/python_offsets.c, which includes this header and each
 * installed interpreter's internal headers, and checks every number here
 * against offsetof().
 */
#ifndef HS_PYTHON_LAYOUTS_H
#define HS_PYTHON_LAYOUTS_H

#include <stdint.h>

#define HS_NO_FIELD ((uint32_t)-1)      /* a field this version does not have */

/* Offsets of the fields we read, in bytes. HS_NO_FIELD = not in this version. */
struct hs_py_layout {
    uint32_t rt_tss;            /* _PyRuntime: Py_tss_t autoTSSkey {int initialized; pthread_key_t key} */
    uint32_t rt_main;           /* _PyRuntime.interpreters.main */
    uint32_t rt_finalizing;     /* _PyRuntime._finalizing: set when finalization starts */
    uint32_t ts_interp;         /* PyThreadState.interp */
    uint32_t interp_eval_breaker;   /* PyInterpreterState.ceval.eval_breaker, an int (3.11, 3.12) */
    uint32_t ts_cframe;         /* PyThreadState.cframe (3.11, 3.12) */
    uint32_t cf_frame;          /* _PyCFrame.current_frame (3.11, 3.12) */
    uint32_t ts_frame;          /* PyThreadState.current_frame (3.13) */
    uint32_t fr_code;           /* f_code / f_executable */
    uint32_t fr_previous;
    uint32_t fr_instr;          /* prev_instr (3.11, 3.12) / instr_ptr (3.13) */
    uint32_t fr_owner;
    uint32_t fr_entry;          /* is_entry (3.11) */
    int owner_cstack;           /* FRAME_OWNED_BY_CSTACK (3.12+), -1 */
    uint32_t co_filename, co_qualname, co_linetable, co_firstlineno, co_code;
    uint32_t ob_type;
    uint32_t str_state, str_length, str_hash, str_ascii_size, str_compact_size;
    uint32_t bytes_size, bytes_data;
    /* The interpreter's free lists (pycore_interp.h; 3.13: pycore_freelist.h,
     * in PyInterpreterState.object_state.freelists), for pyreuse.c. */
    uint32_t fl_float_numfree, fl_float_items;      /* int numfree; PyFloatObject *items (linked by ob_type) */
    uint32_t fl_tuple_items, fl_tuple_numfree;      /* PyTupleObject *items[20] (linked by ob_item[0]); int numfree[20] */
    uint32_t fl_list_items, fl_list_numfree;        /* PyListObject *items[80]; int numfree */
    uint32_t fl_dict_items, fl_dict_numfree;        /* PyDictObject *items[80]; int numfree */
};

/* The free lists' capacities (the same in 3.11-3.13). */
#define HS_PY_TUPLE_NFREELISTS 20
#define HS_PY_TUPLE_MAXFREELIST 2000
#define HS_PY_FLOAT_MAXFREELIST 100
#define HS_PY_TUPLE_OB_ITEM 24          /* offsetof(PyTupleObject, ob_item) */
#define HS_PY_TP_DEALLOC 48             /* offsetof(PyTypeObject, tp_dealloc) */

/* CPython 3.11 (pyenv 3.11.7 and Debian's 3.11.2 agree). */
static const struct hs_py_layout hs_py_layout_311 = {
    .rt_tss = 592, .rt_main = 48, .rt_finalizing = 24, .ts_interp = 16, .interp_eval_breaker = 100, .ts_cframe = 56, .cf_frame = 8, .ts_frame = HS_NO_FIELD,
    .fr_code = 32, .fr_previous = 48, .fr_instr = 56, .fr_owner = 69, .fr_entry = 68, .owner_cstack = -1,
    .co_filename = 112, .co_qualname = 128, .co_linetable = 136, .co_firstlineno = 72, .co_code = 184,
    .ob_type = 8, .str_state = 32, .str_length = 16, .str_hash = 24, .str_ascii_size = 48, .str_compact_size = 72,
    .bytes_size = 16, .bytes_data = 32,
    .fl_float_numfree = 3608, .fl_float_items = 3616, .fl_tuple_items = 3632, .fl_tuple_numfree = 3792,
    .fl_list_items = 3872, .fl_list_numfree = 4512, .fl_dict_items = 4520, .fl_dict_numfree = 5160,
};

/* CPython 3.12. */
static const struct hs_py_layout hs_py_layout_312 = {
    .rt_tss = 1544, .rt_main = 48, .rt_finalizing = 24, .ts_interp = 16, .interp_eval_breaker = 368, .ts_cframe = 56, .cf_frame = 0, .ts_frame = HS_NO_FIELD,
    .fr_code = 0, .fr_previous = 8, .fr_instr = 56, .fr_owner = 70, .fr_entry = HS_NO_FIELD, .owner_cstack = 3,
    .co_filename = 112, .co_qualname = 128, .co_linetable = 136, .co_firstlineno = 68, .co_code = 192,
    .ob_type = 8, .str_state = 32, .str_length = 16, .str_hash = 24, .str_ascii_size = 40, .str_compact_size = 56,
    .bytes_size = 16, .bytes_data = 32,
    .fl_float_numfree = 267408, .fl_float_items = 267416, .fl_tuple_items = 269832, .fl_tuple_numfree = 269992,
    .fl_list_items = 270072, .fl_list_numfree = 270712, .fl_dict_items = 270736, .fl_dict_numfree = 272016,
};

/* CPython 3.13: what _Py_DebugOffsets does not give (the pthread key, the
 * main interpreter, a str's cached hash, the compact-string header size);
 * the rest is read from the running interpreter. */
static const struct hs_py_layout hs_py_layout_313 = {
    .rt_tss = 2160, .rt_main = 640, .interp_eval_breaker = HS_NO_FIELD, .ts_cframe = HS_NO_FIELD, .cf_frame = HS_NO_FIELD, .fr_entry = HS_NO_FIELD, .owner_cstack = 3,
    .str_hash = 24, .str_compact_size = 56,
    .fl_float_numfree = 10952, .fl_float_items = 10960, .fl_tuple_items = 10968, .fl_tuple_numfree = 11128,
    .fl_list_items = 11208, .fl_list_numfree = 11848, .fl_dict_items = 11856, .fl_dict_numfree = 12496,
};

/* _Py_DebugOffsets of 3.13 as far as we read it (Include/internal/pycore_runtime.h). */
struct hs_py_debug_offsets_313 {
    char cookie[8];
    uint64_t version, free_threaded;
    struct { uint64_t size, finalizing, interpreters_head; } runtime_state;
    struct { uint64_t size, id, next, threads_head, gc, imports_modules, sysdict, builtins, ceval_gil,
             gil_runtime_state, gil_runtime_state_enabled, gil_runtime_state_locked,
             gil_runtime_state_holder; } interpreter_state;
    struct { uint64_t size, prev, next, interp, current_frame, thread_id, native_thread_id,
             datastack_chunk, status; } thread_state;
    struct { uint64_t size, previous, executable, instr_ptr, localsplus, owner; } interpreter_frame;
    struct { uint64_t size, filename, name, qualname, linetable, firstlineno, argcount, localsplusnames,
             localspluskinds, co_code_adaptive; } code_object;
    struct { uint64_t size, ob_type; } pyobject;
    struct { uint64_t size, tp_name, tp_repr, tp_flags; } type_object;
    struct { uint64_t size, ob_item, ob_size; } tuple_object;
    struct { uint64_t size, ob_item, ob_size; } list_object;
    struct { uint64_t size, ma_keys, ma_values; } dict_object;
    struct { uint64_t size, ob_fval; } float_object;
    struct { uint64_t size, lv_tag, ob_digit; } long_object;
    struct { uint64_t size, ob_size, ob_sval; } bytes_object;
    struct { uint64_t size, state, length, asciiobject_size; } unicode_object;
    struct { uint64_t size, collecting; } gc;
};

#endif
