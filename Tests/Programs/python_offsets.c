/*
 * Checks CShim/tables/python_layouts.h against the internal headers of the CPython
 * it is compiled with: cc -I CShim -I PREFIX/include/python3.X python_offsets.c.
 * Prints one line per field, "ok" or "MISMATCH", and exits 1 on any mismatch.
 */
#define Py_BUILD_CORE 1
#include <Python.h>
#include <internal/pycore_runtime.h>
#include <internal/pycore_frame.h>
#include <internal/pycore_code.h>
#include <internal/pycore_interp.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "tables/python_layouts.h"

static int bad;

static void check(const char *what, size_t ours, size_t theirs)
{
    printf("%-28s %6zu %6zu %s\n", what, ours, theirs, ours == theirs ? "ok" : "MISMATCH");
    bad |= ours != theirs;
}

#define CHECK(field, expr) check(#field, L->field, (size_t)(expr))

int main(void)
{
    printf("CPython %s\n", PY_VERSION);
#if PY_VERSION_HEX >= 0x030B0000 && PY_VERSION_HEX < 0x030C0000
    const struct hs_py_layout *L = &hs_py_layout_311;
    CHECK(rt_tss, offsetof(_PyRuntimeState, gilstate.autoTSSkey));
    CHECK(ts_cframe, offsetof(PyThreadState, cframe));
    CHECK(cf_frame, offsetof(_PyCFrame, current_frame));
    CHECK(fr_code, offsetof(_PyInterpreterFrame, f_code));
    CHECK(fr_instr, offsetof(_PyInterpreterFrame, prev_instr));
    CHECK(fr_entry, offsetof(_PyInterpreterFrame, is_entry));
#elif PY_VERSION_HEX >= 0x030C0000 && PY_VERSION_HEX < 0x030D0000
    const struct hs_py_layout *L = &hs_py_layout_312;
    CHECK(rt_tss, offsetof(_PyRuntimeState, autoTSSkey));
    CHECK(ts_cframe, offsetof(PyThreadState, cframe));
    CHECK(cf_frame, offsetof(_PyCFrame, current_frame));
    CHECK(fr_code, offsetof(_PyInterpreterFrame, f_code));
    CHECK(fr_instr, offsetof(_PyInterpreterFrame, prev_instr));
    CHECK(owner_cstack, FRAME_OWNED_BY_CSTACK);
#elif PY_VERSION_HEX >= 0x030D0000 && PY_VERSION_HEX < 0x030E0000
    /* What 3.13 does not publish, and the layout of what it does. */
    const struct hs_py_layout *L = &hs_py_layout_313;
    CHECK(rt_tss, offsetof(_PyRuntimeState, autoTSSkey));
    CHECK(rt_main, offsetof(_PyRuntimeState, interpreters.main));
    CHECK(owner_cstack, FRAME_OWNED_BY_CSTACK);
    CHECK(str_hash, offsetof(PyASCIIObject, hash));
    CHECK(str_compact_size, sizeof(PyCompactUnicodeObject));
    check("debug offsets at 0", 0, offsetof(_PyRuntimeState, debug_offsets));
    check("sizeof debug offsets", sizeof(struct hs_py_debug_offsets_313), sizeof(_Py_DebugOffsets));
    check("debug unicode_object", offsetof(struct hs_py_debug_offsets_313, unicode_object),
          offsetof(_Py_DebugOffsets, unicode_object));
    check("debug code_object", offsetof(struct hs_py_debug_offsets_313, code_object),
          offsetof(_Py_DebugOffsets, code_object));
    check("debug interpreter_frame", offsetof(struct hs_py_debug_offsets_313, interpreter_frame),
          offsetof(_Py_DebugOffsets, interpreter_frame));
    check("debug thread_state", offsetof(struct hs_py_debug_offsets_313, thread_state),
          offsetof(_Py_DebugOffsets, thread_state));
    check("debug bytes_object", offsetof(struct hs_py_debug_offsets_313, bytes_object),
          offsetof(_Py_DebugOffsets, bytes_object));
#else
#error "python_layouts.h knows CPython 3.11 to 3.13"
#endif
#if PY_VERSION_HEX < 0x030D0000
#define FL(f) offsetof(PyInterpreterState, f)
    CHECK(fl_float_numfree, FL(float_state.numfree));
    CHECK(fl_float_items, FL(float_state.free_list));
    CHECK(fl_tuple_items, FL(tuple.free_list));
    CHECK(fl_tuple_numfree, FL(tuple.numfree));
    CHECK(fl_list_items, FL(list.free_list));
    CHECK(fl_list_numfree, FL(list.numfree));
    CHECK(fl_dict_items, FL(dict_state.free_list));
    CHECK(fl_dict_numfree, FL(dict_state.numfree));
#else
#define FL(f) offsetof(PyInterpreterState, object_state.freelists.f)
    CHECK(fl_float_numfree, FL(floats.numfree));
    CHECK(fl_float_items, FL(floats.items));
    CHECK(fl_tuple_items, FL(tuples.items));
    CHECK(fl_tuple_numfree, FL(tuples.numfree));
    CHECK(fl_list_items, FL(lists.items));
    CHECK(fl_list_numfree, FL(lists.numfree));
    CHECK(fl_dict_items, FL(dicts.items));
    CHECK(fl_dict_numfree, FL(dicts.numfree));
#endif
    check("tuple free lists", HS_PY_TUPLE_NFREELISTS, PyTuple_NFREELISTS);
    check("tuple free list length", HS_PY_TUPLE_MAXFREELIST, PyTuple_MAXFREELIST);
    check("float free list length", HS_PY_FLOAT_MAXFREELIST, PyFloat_MAXFREELIST);
    check("list free list length", 80, PyList_MAXFREELIST);
    check("dict free list length", 80, PyDict_MAXFREELIST);
    check("tuple ob_item", HS_PY_TUPLE_OB_ITEM, offsetof(PyTupleObject, ob_item));
    check("tp_dealloc", HS_PY_TP_DEALLOC, offsetof(PyTypeObject, tp_dealloc));
#if PY_VERSION_HEX < 0x030D0000
    CHECK(rt_main, offsetof(_PyRuntimeState, interpreters.main));
    CHECK(rt_finalizing, offsetof(_PyRuntimeState, _finalizing));
    CHECK(ts_interp, offsetof(PyThreadState, interp));
    CHECK(interp_eval_breaker, offsetof(PyInterpreterState, ceval.eval_breaker));
    check("sizeof eval_breaker", sizeof(int), sizeof(((PyInterpreterState *)0)->ceval.eval_breaker));
    CHECK(fr_previous, offsetof(_PyInterpreterFrame, previous));
    CHECK(fr_owner, offsetof(_PyInterpreterFrame, owner));
    CHECK(co_filename, offsetof(PyCodeObject, co_filename));
    CHECK(co_qualname, offsetof(PyCodeObject, co_qualname));
    CHECK(co_linetable, offsetof(PyCodeObject, co_linetable));
    CHECK(co_firstlineno, offsetof(PyCodeObject, co_firstlineno));
    CHECK(co_code, offsetof(PyCodeObject, co_code_adaptive));
    CHECK(ob_type, offsetof(PyObject, ob_type));
    CHECK(str_state, offsetof(PyASCIIObject, state));
    CHECK(str_length, offsetof(PyASCIIObject, length));
    CHECK(str_hash, offsetof(PyASCIIObject, hash));
    CHECK(str_ascii_size, sizeof(PyASCIIObject));
    CHECK(str_compact_size, sizeof(PyCompactUnicodeObject));
    CHECK(bytes_size, offsetof(PyVarObject, ob_size));
    CHECK(bytes_data, offsetof(PyBytesObject, ob_sval));
#endif
    /* The bits of PyASCIIObject.state that pyframes.c tests. */
    PyASCIIObject a;
    unsigned state;
    memset(&a, 0, sizeof a);
    a.state.compact = 1;
    memcpy(&state, &a.state, sizeof state);
    check("state compact bit", 32, state);
    memset(&a, 0, sizeof a);
    a.state.ascii = 1;
    memcpy(&state, &a.state, sizeof state);
    check("state ascii bit", 64, state);
    memset(&a, 0, sizeof a);
    a.state.kind = 7;
    memcpy(&state, &a.state, sizeof state);
    check("state kind bits", 7u << 2, state);
    return bad;
}
