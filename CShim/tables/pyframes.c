/*
 * pyframes.c - Python frames for sampled stacks (pyframes.h says what and why).
 *
 * Finding the thread's frames. CPython keeps each thread's PyThreadState in
 * a pthread key (the "autoTSSkey" of _PyRuntime, which PyGILState uses); we
 * read that key's number from _PyRuntime and call pthread_getspecific, which
 * reads TLS and allocates nothing. A thread state is only trusted when its
 * `interp` is the runtime's main interpreter. From it, the chain of
 * _PyInterpreterFrame structures runs through `previous` links:
 *   3.11: tstate->cframe->current_frame; a frame with `is_entry` set is the
 *         first (outermost) frame of one C-level _PyEval_EvalFrameDefault call;
 *   3.12: the same chain, and each C-level call pushes an extra frame owned
 *         by FRAME_OWNED_BY_CSTACK between its frames and its caller's;
 *   3.13: tstate->current_frame; offsets come from the interpreter's own
 *         _Py_DebugOffsets (cookie "xdebugpy", version, free-threading flag).
 * The layouts of 3.11 and 3.12 are the ones of CPython's internal headers
 * (pycore_frame.h, pycore_code.h, pycore_runtime.h, cpython/unicodeobject.h);
 * ShimTests compares every number here with offsetof() compiled against the
 * headers of each installed interpreter.
 *
 * Safety. Only the allocating thread's own chain is read, while that thread
 * is inside malloc: nothing else changes it meanwhile, its frames are alive,
 * they hold references to their code objects, and the code objects to their
 * names and line tables. The interpreter is never called and the GIL never
 * taken. Every object is type-checked (PyCode_Type, PyUnicode_Type,
 * PyBytes_Type) before its fields are trusted, and walks are bounded.
 * Unknown versions, debug and free-threaded builds get native stacks only.
 *
 * Lines. The line of a frame comes from the code object's location table
 * (Objects/locations.md in CPython: PEP 626/657 format, the same in 3.11-3.13)
 * and the index of the instruction the frame is executing.
 *
 * Lock order: the function table's lock, then the arena lock. It is never
 * taken together with a live or stack stripe lock.
 */
#define _GNU_SOURCE
#include "tables/pyframes.h"
#include "base/options.h"
#include "base/mem.h"
#include "include/heapsnap.h"
#include "tables/python_layouts.h"
#include "base/lock.h"
#include "base/session_gate.h"

#include <dlfcn.h>
#include <link.h>
#include <pthread.h>
#include <string.h>

struct hs_py_api hs_py_api;
static void watch_code_deaths(void);

/* Written once by hs_py_detect (control), before `status` is published with
 * a release store; the sampled path reads status with acquire, then these. */
static struct {
    struct hs_py_layout l;
    const char *runtime;
    const void *code_type, *unicode_type, *bytes_type;
    uintptr_t eval_lo, eval_hi;         /* _PyEval_EvalFrameDefault */
    uint32_t version;
    bool detected;
    char note[160];
} py;
static int py_status;                   /* enum hs_py_status; release/acquire */
static int py_seen;                     /* a sample found Python in this session */
void (*hs_py_first_seen)(void);         /* set by control: wake the writer */
void (*hs_py_on_thread)(void);          /* set by control: its Python set-up from a Python thread */
int hs_py_wanted;                       /* control wants hs_py_on_thread called (relaxed) */

enum hs_py_status hs_py_status(void) { return (enum hs_py_status)__atomic_load_n(&py_status, __ATOMIC_ACQUIRE); }
const char *hs_py_note(void) { return py.note; }
uint32_t hs_py_version(void) { return py.version; }
bool hs_py_seen(void) { return __atomic_load_n(&py_seen, __ATOMIC_RELAXED); }

/* ------------------------------------------------------------- detection */

static void note(const char *a, const char *b)
{
    size_t n = 0;
    for (const char *s = a; s && *s && n < sizeof py.note - 1; s++)
        py.note[n++] = *s;
    for (const char *s = b; s && *s && n < sizeof py.note - 1; s++)
        py.note[n++] = *s;
    py.note[n] = 0;
}

static char *put_u(char *d, unsigned v)
{
    char t[12];
    int n = 0;
    do t[n++] = (char)('0' + v % 10); while (v /= 10);
    while (n)
        *d++ = t[--n];
    return d;
}

static bool from_debug_offsets(const struct hs_py_debug_offsets_313 *d, struct hs_py_layout *l)
{
    if (memcmp(d->cookie, "xdebugpy", 8) != 0 || (d->version >> 16) != 0x030D || d->free_threaded)
        return false;
    l->rt_finalizing = (uint32_t)d->runtime_state.finalizing;
    l->ts_interp = (uint32_t)d->thread_state.interp;
    l->ts_frame = (uint32_t)d->thread_state.current_frame;
    l->fr_code = (uint32_t)d->interpreter_frame.executable;
    l->fr_previous = (uint32_t)d->interpreter_frame.previous;
    l->fr_instr = (uint32_t)d->interpreter_frame.instr_ptr;
    l->fr_owner = (uint32_t)d->interpreter_frame.owner;
    l->co_filename = (uint32_t)d->code_object.filename;
    l->co_qualname = (uint32_t)d->code_object.qualname;
    l->co_linetable = (uint32_t)d->code_object.linetable;
    l->co_firstlineno = (uint32_t)d->code_object.firstlineno;
    l->co_code = (uint32_t)d->code_object.co_code_adaptive;
    l->ob_type = (uint32_t)d->pyobject.ob_type;
    l->str_state = (uint32_t)d->unicode_object.state;
    l->str_length = (uint32_t)d->unicode_object.length;
    l->str_ascii_size = (uint32_t)d->unicode_object.asciiobject_size;
    l->bytes_size = (uint32_t)d->bytes_object.ob_size;
    l->bytes_data = (uint32_t)d->bytes_object.ob_sval;
    /* Sanity: every offset lies inside its structure. */
    return l->ts_frame < d->thread_state.size && l->fr_owner < d->interpreter_frame.size &&
           l->co_code <= d->code_object.size && l->str_ascii_size <= 64;
}

static const char *sym_note(const char *what, uint32_t v)
{
    static char buf[64];
    char *d = buf;
    for (const char *s = what; *s; s++)
        *d++ = *s;
    d = put_u(d, v >> 24);
    *d++ = '.';
    d = put_u(d, (v >> 16) & 0xFF);
    *d++ = '.';
    d = put_u(d, (v >> 8) & 0xFF);
    *d = 0;
    return buf;
}

/* How many modules the loader has loaded since the process began (the
 * first entry's dlpi_adds; 0 if the loader does not count). */
static int count_loads(struct dl_phdr_info *info, size_t size, void *arg)
{
    if (size >= offsetof(struct dl_phdr_info, dlpi_adds) + sizeof info->dlpi_adds)
        *(unsigned long long *)arg = info->dlpi_adds;
    return 1;
}

void hs_py_detect(void)
{
    if (py.detected)
        return;
    /* A failed dlsym searches every module and builds an error message
     * with malloc: look again only when a module came since the last look
     * (libpython may come by dlopen). Control only, so no lock. */
    static unsigned long long looked_at = ~0ull;
    unsigned long long loads = 0;
    dl_iterate_phdr(count_loads, &loads);
    if (loads && loads == looked_at)
        return;
    looked_at = loads;
    const char *runtime = dlsym(RTLD_DEFAULT, "_PyRuntime");
    if (!runtime)
        return;                         /* not Python (yet) */
    const unsigned long *version = dlsym(RTLD_DEFAULT, "Py_Version");
    py.detected = true;
    /* The API that control and pyalloc.c use (never the sampled path): public
     * and stable since 3.5, so older versions get pymalloc and the at-exit
     * snapshot too, with native frames. */
    hs_py_api.mem_get = dlsym(RTLD_DEFAULT, "PyMem_GetAllocator");
    hs_py_api.mem_set = dlsym(RTLD_DEFAULT, "PyMem_SetAllocator");
    hs_py_api.is_initialized = dlsym(RTLD_DEFAULT, "Py_IsInitialized");
    hs_py_api.add_pending_call = dlsym(RTLD_DEFAULT, "Py_AddPendingCall");
    hs_py_api.cfunction_new = dlsym(RTLD_DEFAULT, "PyCFunction_NewEx");
    hs_py_api.import_module = dlsym(RTLD_DEFAULT, "PyImport_ImportModuleLevel");
    hs_py_api.call_method = dlsym(RTLD_DEFAULT, "PyObject_CallMethod");
    hs_py_api.decref = dlsym(RTLD_DEFAULT, "Py_DecRef");
    hs_py_api.err_clear = dlsym(RTLD_DEFAULT, "PyErr_Clear");
    hs_py_api.incref = dlsym(RTLD_DEFAULT, "Py_IncRef");
    hs_py_api.allocator_name = dlsym(RTLD_DEFAULT, "_PyMem_GetCurrentAllocatorName");
    hs_py_api.none = dlsym(RTLD_DEFAULT, "_Py_NoneStruct");
    hs_py_api.get_attr = dlsym(RTLD_DEFAULT, "PyObject_GetAttrString");
    hs_py_api.gc_del = dlsym(RTLD_DEFAULT, "PyObject_GC_Del");
    hs_py_api.gc_untrack = dlsym(RTLD_DEFAULT, "PyObject_GC_UnTrack");
    hs_py_api.object_free = dlsym(RTLD_DEFAULT, "PyObject_Free");
    hs_py_api.tstate_get = dlsym(RTLD_DEFAULT, "_PyThreadState_UncheckedGet");     /* 3.11, 3.12 */
    if (!hs_py_api.tstate_get)
        hs_py_api.tstate_get = dlsym(RTLD_DEFAULT, "PyThreadState_GetUnchecked");  /* 3.13 */
    hs_py_api.trash_begin = dlsym(RTLD_DEFAULT, "_PyTrash_begin");    /* 3.11, 3.12 (which need them) */
    hs_py_api.trash_end = dlsym(RTLD_DEFAULT, "_PyTrash_end");
    hs_py_api.list_type = dlsym(RTLD_DEFAULT, "PyList_Type");
    hs_py_api.dict_type = dlsym(RTLD_DEFAULT, "PyDict_Type");

    if (!version) {
        note("CPython before 3.11 (no Py_Version): native frames only", NULL);
        __atomic_store_n(&py_status, HS_PY_UNSUPPORTED, __ATOMIC_RELEASE);
        return;
    }
    py.version = (uint32_t)*version;
    unsigned minor = (py.version >> 16) & 0xFF;
    const char *why = NULL;
    void *eval = dlsym(RTLD_DEFAULT, "_PyEval_EvalFrameDefault");
    const ElfW(Sym) *sym = NULL;
    Dl_info info;
    if ((py.version >> 24) != 3 || minor < 11 || minor > 13)
        why = ": frames of this version are not known, native frames only";
    else if (dlsym(RTLD_DEFAULT, "_Py_NegativeRefcount"))
        why = " debug build (Py_DEBUG): native frames only";
    else if (!eval || !dladdr1(eval, &info, (void **)&sym, RTLD_DL_SYMENT) || !sym || !sym->st_size)
        why = ": _PyEval_EvalFrameDefault not found, native frames only";
    py.code_type = dlsym(RTLD_DEFAULT, "PyCode_Type");
    py.unicode_type = dlsym(RTLD_DEFAULT, "PyUnicode_Type");
    py.bytes_type = dlsym(RTLD_DEFAULT, "PyBytes_Type");
    if (!why && (!py.code_type || !py.unicode_type || !py.bytes_type))
        why = ": type objects not found, native frames only";
    if (!why) {
        py.l = minor == 11 ? hs_py_layout_311 : minor == 12 ? hs_py_layout_312 : hs_py_layout_313;
        if (minor == 13 && !from_debug_offsets((const struct hs_py_debug_offsets_313 *)runtime, &py.l))
            why = ": _Py_DebugOffsets not recognised (free-threaded build?), native frames only";
    }

    if (why) {
        note(sym_note("CPython ", py.version), why);
        __atomic_store_n(&py_status, HS_PY_UNSUPPORTED, __ATOMIC_RELEASE);
        return;
    }
    py.runtime = runtime;
    py.eval_lo = (uintptr_t)eval;
    py.eval_hi = (uintptr_t)eval + sym->st_size;
    note(sym_note("CPython ", py.version), ": Python frames");
    watch_code_deaths();
    __atomic_store_n(&py_status, HS_PY_FRAMES, __ATOMIC_RELEASE);
}

/* -------------------------------------------------------- reading objects */

#define AT(base, off, type) (*(type const *)((const char *)(base) + (off)))

/* Whether obj is an object of the given type (not NULL, its ob_type that
 * type's address): what every object read here is checked for first. */
static inline bool is_a(const char *obj, const void *type)
{
    return obj && AT(obj, py.l.ob_type, const void *) == type;
}

/* The main interpreter's state lives inside _PyRuntime in 3.11 and 3.12
 * (_main_interpreter): the store never lands in freed memory. */
void hs_py_wake_main(void)
{
    const struct hs_py_layout *l = &py.l;
    if (hs_py_status() != HS_PY_FRAMES || l->interp_eval_breaker == HS_NO_FIELD)
        return;
    if (__atomic_load_n((void *const *)(py.runtime + l->rt_finalizing), __ATOMIC_ACQUIRE))
        return;
    char *main = (char *)AT(py.runtime, l->rt_main, const char *);
    if (main)
        __atomic_store_n((int *)(main + l->interp_eval_breaker), 1, __ATOMIC_RELAXED);
}

const char *hs_py_runtime(void) { return hs_py_status() == HS_PY_FRAMES ? py.runtime : NULL; }
const struct hs_py_layout *hs_py_layout(void) { return hs_py_status() == HS_PY_FRAMES ? &py.l : NULL; }

/* The runtime is not initialised yet, or finalization has begun: from its
 * start, finalization deletes other threads' states while daemon threads may
 * still run C code, so no thread's state is trusted. Status is FRAMES. */
static bool runtime_closed(void)
{
    const int *tss = (const int *)(py.runtime + py.l.rt_tss);
    return !__atomic_load_n(&tss[0], __ATOMIC_ACQUIRE) ||
           __atomic_load_n((void *const *)(py.runtime + py.l.rt_finalizing), __ATOMIC_ACQUIRE);
}

bool hs_py_finalizing(void)
{
    return hs_py_status() != HS_PY_FRAMES || runtime_closed();
}

/* The calling thread's PyThreadState of the main interpreter, or NULL. */
static const char *current_tstate(void)
{
    const struct hs_py_layout *l = &py.l;
    if (runtime_closed())
        return NULL;
    const int *tss = (const int *)(py.runtime + l->rt_tss);
    const char *ts = pthread_getspecific((pthread_key_t)tss[1]);
    if (!ts)
        return NULL;
    const void *main = AT(py.runtime, l->rt_main, const void *);
    return main && AT(ts, l->ts_interp, const void *) == main ? ts : NULL;
}

/* The innermost _PyInterpreterFrame of a thread state. */
static const char *innermost_frame(const char *ts)
{
    const struct hs_py_layout *l = &py.l;
    return l->ts_cframe != HS_NO_FIELD ? AT(AT(ts, l->ts_cframe, const char *), l->cf_frame, const char *)
                                       : AT(ts, l->ts_frame, const char *);
}

/* UTF-8 of a str object into out (at most cap bytes, cut at a character
 * boundary); returns the length, 0 if it is not a compact str. */
static size_t read_str(const char *obj, char *out, size_t cap)
{
    const struct hs_py_layout *l = &py.l;
    if (!is_a(obj, py.unicode_type))
        return 0;
    uint32_t state = AT(obj, l->str_state, uint32_t);
    int64_t len = AT(obj, l->str_length, int64_t);
    if (!(state & 32) || len < 0)       /* not compact */
        return 0;
    unsigned kind = (state >> 2) & 7;
    const uint8_t *data = (const uint8_t *)obj + ((state & 64) ? l->str_ascii_size : l->str_compact_size);
    if (state & 64) {                   /* ASCII: the bytes are the UTF-8 */
        size_t n = (uint64_t)len < cap ? (size_t)len : cap;
        memcpy(out, data, n);
        return n;
    }
    size_t n = 0;
    for (int64_t i = 0; i < len; i++) {
        uint32_t c = kind == 1 ? data[i] : kind == 2 ? ((const uint16_t *)data)[i] : ((const uint32_t *)data)[i];
        uint8_t u[4];
        size_t k;
        if (c < 0x80) {
            u[0] = (uint8_t)c;
            k = 1;
        } else if (c < 0x800) {
            u[0] = (uint8_t)(0xC0 | c >> 6);
            u[1] = (uint8_t)(0x80 | (c & 63));
            k = 2;
        } else if (c < 0x10000) {
            u[0] = (uint8_t)(0xE0 | c >> 12);
            u[1] = (uint8_t)(0x80 | ((c >> 6) & 63));
            u[2] = (uint8_t)(0x80 | (c & 63));
            k = 3;
        } else {
            u[0] = (uint8_t)(0xF0 | (c >> 18 & 7));
            u[1] = (uint8_t)(0x80 | ((c >> 12) & 63));
            u[2] = (uint8_t)(0x80 | ((c >> 6) & 63));
            u[3] = (uint8_t)(0x80 | (c & 63));
            k = 4;
        }
        if (n + k > cap)
            break;
        memcpy(out + n, u, k);
        n += k;
    }
    return n;
}

static uint32_t varint(const uint8_t **p, const uint8_t *end)
{
    uint32_t v = 0;
    unsigned shift = 0;
    while (*p < end) {
        uint8_t b = *(*p)++;
        if (shift < 32)
            v |= (uint32_t)(b & 63) << shift;
        shift += 6;
        if (!(b & 64))
            break;
    }
    return v;
}

static int32_t svarint(const uint8_t **p, const uint8_t *end)
{
    uint32_t u = varint(p, end);
    return (u & 1) ? -(int32_t)(u >> 1) : (int32_t)(u >> 1);
}

/* Where the thread's last line lookup stopped: the entry holding its
 * index, in which code object. A module's code runs from top to bottom
 * while it is imported, and each new line of it is a memo miss: decoding
 * from this entry rather than the table's start makes those lookups cost
 * the entries in between. Trusted while the count of code deaths is the
 * one it was stored with (the code object at `code` is then the same one:
 * see code_deaths). Context: the calling thread only. */
static __thread struct {
    const char *code;
    uint64_t deaths;
    int64_t addr;                       /* the entry's first code unit */
    int32_t line;                       /* the line before the entry */
    uint32_t at;                        /* the entry's offset in the table's bytes */
} cursor __attribute__((tls_model("initial-exec")));

/* The line of code unit `index` (Objects/locations.md): entries of a first
 * byte (bit 7 set, code in bits 3-6, length-1 in bits 0-2) and a body.
 * Returns firstlineno for an index before the code, 0 when the entry has
 * no line. deaths: the count of code deaths the walk read (0: no cursor). */
static uint32_t line_of(const char *code, int64_t index, uint64_t deaths)
{
    const struct hs_py_layout *l = &py.l;
    int32_t first = AT(code, l->co_firstlineno, int32_t);
    if (index < 0)
        return first > 0 ? (uint32_t)first : 0;
    const char *table = AT(code, l->co_linetable, const char *);
    if (!table || AT(table, l->ob_type, const void *) != py.bytes_type)
        return 0;
    int64_t size = AT(table, l->bytes_size, int64_t);
    const uint8_t *start = (const uint8_t *)table + l->bytes_data, *end = start + (size > 0 ? size : 0), *p = start;
    int64_t addr = 0;
    int32_t line = first;
    if (deaths && cursor.code == code && cursor.deaths == deaths && cursor.addr <= index && cursor.at < end - start) {
        p = start + cursor.at;
        addr = cursor.addr;
        line = cursor.line;
    }
    while (p < end) {
        const uint8_t *entry = p;
        int32_t before = line;
        uint8_t b = *p++;
        unsigned what = (b >> 3) & 15, len = (b & 7) + 1;
        bool none = false;
        switch (what) {
        case 15: none = true; break;                            /* no location */
        case 14:                                                /* long form */
            line += svarint(&p, end);
            varint(&p, end);
            varint(&p, end);
            varint(&p, end);
            break;
        case 13: line += svarint(&p, end); break;               /* no column */
        case 12: case 11: case 10:                              /* one line, two column bytes */
            line += (int32_t)what - 10;
            p += 2;
            break;
        default: p += 1; break;                                 /* short form: same line */
        }
        if (index < addr + len) {
            if (deaths) {
                cursor.code = code;
                cursor.deaths = deaths;
                cursor.addr = addr;
                cursor.line = before;
                cursor.at = (uint32_t)(entry - start);
            }
            return none || line < 0 ? 0 : (uint32_t)line;
        }
        addr += len;
    }
    return 0;
}

/* ------------------------------------------------------- function table */

struct slot {
    uint64_t hash;
    struct hs_py_function *f;
    uint32_t id;
};

static hs_lock_t fn_lock = HS_LOCK_INIT;
static struct slot *fn_slots;           /* protected by fn_lock */
static size_t fn_cap, fn_count;         /* protected by fn_lock */
static struct hs_py_function **fn_dir;  /* id -> entry; protected by fn_lock */
static size_t fn_dir_cap;
static uint64_t memo_epoch = 1;         /* the session of the frame memo's ids (below); bumped by release */

static uint64_t hash_bytes(uint64_t h, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        h ^= (uint8_t)s[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

/* Context: fn_lock held. 0 or -ENOMEM. */
static int fn_grow(void)
{
    if (fn_count + 1 > fn_dir_cap) {
        size_t ncap = fn_dir_cap ? fn_dir_cap * 2 : 512;
        struct hs_py_function **nd = hs_map(ncap * sizeof *nd, true);
        if (!nd)
            return -12;
        if (fn_dir_cap)
            memcpy(nd, fn_dir, fn_count * sizeof *nd);
        hs_unmap(fn_dir, fn_dir_cap * sizeof *nd, true);
        fn_dir = nd;
        fn_dir_cap = ncap;
    }
    if ((fn_count + 1) * 4 > fn_cap * 3) {
        size_t ncap = fn_cap ? fn_cap * 2 : 1024;
        struct slot *ns = hs_map(ncap * sizeof *ns, true);
        if (!ns)
            return -12;
        for (size_t i = 0; i < fn_cap; i++) {
            if (!fn_slots[i].f)
                continue;
            size_t j = fn_slots[i].hash & (ncap - 1);
            while (ns[j].f)
                j = (j + 1) & (ncap - 1);
            ns[j] = fn_slots[i];
        }
        hs_unmap(fn_slots, fn_cap * sizeof *ns, true);
        fn_slots = ns;
        fn_cap = ncap;
    }
    return 0;
}

#define NO_ID UINT32_MAX

/* The id of (name, file, firstlineno), added if new; NO_ID when over budget. */
static uint32_t fn_intern(const char *name, size_t nlen, const char *file, size_t flen, uint32_t firstlineno)
{
    uint64_t h = hash_bytes(hash_bytes(0xcbf29ce484222325ull ^ firstlineno, name, nlen), file, flen);
    h ^= (uint64_t)nlen << 48 ^ (uint64_t)flen << 32;
    uint32_t id = NO_ID;
    hs_lock(&fn_lock);
    if (!hs_gate_open() || fn_grow() != 0)     /* sampling stopped meanwhile, or over budget */
        goto out;
    size_t j = h & (fn_cap - 1);
    for (; fn_slots[j].f; j = (j + 1) & (fn_cap - 1)) {
        const struct hs_py_function *f = fn_slots[j].f;
        if (fn_slots[j].hash == h && f->firstlineno == firstlineno && f->name_len == nlen && f->file_len == flen &&
            memcmp(f->text, name, nlen) == 0 && memcmp(f->text + nlen, file, flen) == 0) {
            id = fn_slots[j].id;
            goto out;
        }
    }
    struct hs_py_function *f = hs_arena_alloc(sizeof *f + nlen + flen);
    if (!f)
        goto out;
    f->firstlineno = firstlineno;
    f->name_len = (uint16_t)nlen;
    f->file_len = (uint16_t)flen;
    memcpy(f->text, name, nlen);
    memcpy(f->text + nlen, file, flen);
    id = (uint32_t)fn_count;
    fn_dir[fn_count++] = f;
    fn_slots[j] = (struct slot){ h, f, id };
out:
    hs_unlock(&fn_lock);
    return id;
}

uint32_t hs_py_foreach_function(void (*fn)(void *arg, const struct hs_py_function *f), void *arg)
{
    hs_lock(&fn_lock);
    uint32_t n = (uint32_t)fn_count;
    for (uint32_t i = 0; i < n; i++)
        fn(arg, fn_dir[i]);
    hs_unlock(&fn_lock);
    return n;
}

void hs_py_release(void)
{
    hs_lock(&fn_lock);
    hs_unmap(fn_slots, fn_cap * sizeof *fn_slots, true);
    hs_unmap(fn_dir, fn_dir_cap * sizeof *fn_dir, true);
    fn_slots = NULL;
    fn_dir = NULL;
    fn_cap = fn_dir_cap = fn_count = 0;
    __atomic_add_fetch(&memo_epoch, 1, __ATOMIC_RELEASE);     /* every memo slot goes stale */
    __atomic_store_n(&py_seen, 0, __ATOMIC_RELAXED);
    hs_unlock(&fn_lock);
}

void hs_py_lock(void) { hs_lock(&fn_lock); }
void hs_py_unlock(void) { hs_unlock(&fn_lock); }

/* Context: fork child, single-threaded. */
static void recents_reset_child(void);

void hs_py_reset_child(void)
{
    hs_lock_init(&fn_lock);
    recents_reset_child();
    hs_py_release();
}

/* ------------------------------------------------------------ frame memo */

/* What a frame resolves to, its function id and line, depends only on its
 * code object and the instruction it executes; resolving it reads two
 * strings, hashes them, takes the function table's lock and decodes the
 * line table from the start. Exact mode resolves every frame of every
 * allocation, so the answers are kept in one table shared by all threads,
 * a slot per instruction address.
 *
 * An address may be reused by another code object once the first is freed
 * (code made by exec, lambdas), and so may its strings. A slot is trusted
 * only when the code object, its name, file and line-table objects and its
 * first line are the same, and so are hashes of the two strings' characters
 * (exec in a loop frees and remakes code and names of the same sizes at
 * the same addresses, "f_1" then "f_2"). A reallocated code object that
 * matches all of these is the same function at the same line.
 *
 * Hashing the two strings on every frame of every allocation was a quarter
 * of exact mode's time on a JSON benchmark, so a slot also carries a stamp:
 * the count of code objects that had died when its key was last checked
 * with the hashes (code_deaths, below). While that count has not moved,
 * the code object at the slot's address is still the one that was checked
 * (a code object in a walked frame is alive: the frame holds a reference;
 * one that died since would have moved the count before its memory could
 * be reused), so the pointers alone are compared. Any death sends every
 * slot back through the hashes once, which then stamps it again.
 *
 * Concurrency: each slot is a seqlock (seq odd while written; a writer that
 * finds it odd, or loses the compare-and-swap, leaves the slot alone; a slot
 * a fork caught mid-write stays odd, and unused, in the child).
 * Readers hold no lock: the walk runs before record takes one, so quiesce
 * does not hold it off. The table is therefore never unmapped; function ids
 * belong to a session, and each slot carries the epoch of the session whose
 * ids it holds (memo_epoch, bumped by hs_py_release). A walk reads the epoch
 * before it resolves anything: an id it interns was valid in that epoch's
 * session, and a walk that read a newer epoch interns nothing (its gate no
 * longer matches, fn_intern returns NO_ID). */
#define MEMO_BITS 11
#define MEMO_SLOTS (1 << MEMO_BITS)

struct frame_key {
    const char *instr, *code, *qualname, *filename, *linetable;
    int64_t qualname_hash, filename_hash;
    int32_t first;
};

struct frame_memo {
    uint32_t seq;
    uint32_t fn, line;
    uint64_t epoch;
    uint64_t stamp;                     /* code_deaths when the key was hashed; 0: never trusted alone */
    struct frame_key key;
};

static void *memo;                      /* struct frame_memo[MEMO_SLOTS]: mapped once (map_once) */
static bool memo_refused;               /* the budget said no: resolve without it */

#define LOAD(x) __atomic_load_n(&(x), __ATOMIC_RELAXED)
#define STORE(x, v) __atomic_store_n(&(x), (v), __ATOMIC_RELAXED)

static struct frame_memo *memo_slot(struct frame_memo *m, const char *instr)
{
    return &m[((uintptr_t)instr * 0x9E3779B97F4A7C15ull) >> (64 - MEMO_BITS)];
}

/* The objects' addresses and the first line; with `hashed`, the strings' hashes too. */
static bool key_same(const struct frame_key *a, const struct frame_key *b, bool hashed)
{
    return LOAD(a->instr) == b->instr && LOAD(a->code) == b->code && LOAD(a->qualname) == b->qualname &&
           LOAD(a->filename) == b->filename && LOAD(a->linetable) == b->linetable && LOAD(a->first) == b->first &&
           (!hashed || (LOAD(a->qualname_hash) == b->qualname_hash && LOAD(a->filename_hash) == b->filename_hash));
}

/* A hit: the same key in this epoch, checked by the hashes in k (stamp 0)
 * or, when stamp is the slot's and not 0, by the addresses alone. */
static bool memo_get(struct frame_memo *e, const struct frame_key *k, uint64_t epoch, uint64_t stamp, uint32_t *fn,
                     uint32_t *line)
{
    uint32_t seq = __atomic_load_n(&e->seq, __ATOMIC_ACQUIRE);
    if (seq & 1)
        return false;
    bool hit = LOAD(e->epoch) == epoch && (stamp ? LOAD(e->stamp) == stamp && key_same(&e->key, k, false)
                                                 : key_same(&e->key, k, true));
    *fn = LOAD(e->fn);
    *line = LOAD(e->line);
    __atomic_thread_fence(__ATOMIC_ACQUIRE);
    return hit && LOAD(e->seq) == seq;
}

static void memo_put(struct frame_memo *e, const struct frame_key *k, uint64_t epoch, uint64_t stamp, uint32_t fn,
                     uint32_t line)
{
    uint32_t seq = LOAD(e->seq);
    if ((seq & 1) || !__atomic_compare_exchange_n(&e->seq, &seq, seq + 1, false, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED))
        return;
    __atomic_thread_fence(__ATOMIC_RELEASE);
    STORE(e->epoch, epoch);
    STORE(e->stamp, stamp);
    STORE(e->fn, fn);
    STORE(e->line, line);
    STORE(e->key.instr, k->instr);
    STORE(e->key.code, k->code);
    STORE(e->key.qualname, k->qualname);
    STORE(e->key.filename, k->filename);
    STORE(e->key.linetable, k->linetable);
    STORE(e->key.qualname_hash, k->qualname_hash);
    STORE(e->key.filename_hash, k->filename_hash);
    STORE(e->key.first, k->first);
    __atomic_store_n(&e->seq, seq + 2, __ATOMIC_RELEASE);
}

/* A table mapped by its first caller (under fn_lock) and never unmapped;
 * NULL once the budget refused it. */
static void *map_once(void **table, bool *refused, size_t size)
{
    void *t = __atomic_load_n(table, __ATOMIC_ACQUIRE);
    if (t || __atomic_load_n(refused, __ATOMIC_RELAXED))
        return t;
    hs_lock(&fn_lock);
    if (!(t = *table) && !*refused) {
        t = hs_map(size, true);
        __atomic_store_n(table, t, __ATOMIC_RELEASE);
        __atomic_store_n(refused, t == NULL, __ATOMIC_RELAXED);
    }
    hs_unlock(&fn_lock);
    return t;
}

/* The memo; NULL when the budget refused it. */
static struct frame_memo *memo_table(void)
{
    return map_once(&memo, &memo_refused, MEMO_SLOTS * sizeof(struct frame_memo));
}

/* Code objects' deaths, counted by a wrapper in PyCode_Type's tp_dealloc
 * (code objects are not subclassable and have no other way to die); 0
 * until the wrapper is in place. Placed by control when the interpreter is
 * found (hs_py_detect), never removed: the slot is stored whole, so a
 * deallocation that reads it meanwhile calls either function. Every walk
 * that could meet a code object born after the wrapper went in reads a
 * count of 1 or more: its frames were made after that code object, which
 * was made after the store (the GIL orders them), and the count's store
 * comes after the slot's. A death adds one before the memory is freed, so
 * a walk that meets a new code object at a dead one's address reads a
 * count past the dead one's stamp. */
typedef void (*code_destructor)(void *);
static code_destructor code_dealloc_orig;
static uint64_t code_deaths;

/* Context: a code object's deallocation, GIL held. */
static void code_dealloc(void *co)
{
    __atomic_add_fetch(&code_deaths, 1, __ATOMIC_RELEASE);
    code_dealloc_orig(co);
}

/* Context: control (hs_py_detect), once; the type object is static. */
static void watch_code_deaths(void)
{
    code_destructor *slot = (code_destructor *)((char *)py.code_type + HS_PY_TP_DEALLOC);
    code_destructor orig = __atomic_load_n(slot, __ATOMIC_RELAXED);
    if (!orig || orig == code_dealloc)
        return;
    code_dealloc_orig = orig;
    __atomic_store_n(slot, code_dealloc, __ATOMIC_RELEASE);
    __atomic_store_n(&code_deaths, 1, __ATOMIC_RELEASE);
}

/* A hash of a str's characters (its kind and bytes, a word at a time), for
 * the memo's check; -1 when it is not a compact str. CPython's own cached
 * hash is no use here: a code object's file and name are seldom hashed. */
static int64_t str_hash(const char *s)
{
    const struct hs_py_layout *l = &py.l;
    if (!is_a(s, py.unicode_type))
        return -1;
    uint32_t state = AT(s, l->str_state, uint32_t);
    int64_t len = AT(s, l->str_length, int64_t);
    if (!(state & 32) || len < 0 || len > 4096)
        return -1;
    unsigned kind = (state >> 2) & 7;
    const uint8_t *p = (const uint8_t *)s + ((state & 64) ? l->str_ascii_size : l->str_compact_size);
    size_t n = (size_t)len * (kind ? kind : 1);
    uint64_t h = 0x9E3779B97F4A7C15ull ^ n ^ (uint64_t)kind << 56, w;
    for (; n >= 8; n -= 8, p += 8) {
        __builtin_memcpy(&w, p, 8);     /* -fno-builtin: a call otherwise */
        h = (h ^ w) * 0xff51afd7ed558ccdull;
        h ^= h >> 32;
    }
    w = 0;
    for (unsigned i = 0; i < n; i++)    /* the tail, never past the string */
        w |= (uint64_t)p[i] << 8 * i;
    h = (h ^ w) * 0xc4ceb9fe1a85ec53ull;
    h ^= h >> 29;
    return (int64_t)(h & INT64_MAX);
}

/* ------------------------------------------------------------ the walk */

#define MAX_PY_FRAMES 256
#define MAX_LINKS 4096                  /* links of a frame chain followed, at most: a cycle ends there */
#define NAME_MAX_BYTES 256
#define FILE_MAX_BYTES 1024

struct pyframe {
    uint32_t fn, line;
    bool last;                          /* outermost frame of one eval activation */
};

/* A frame as a stack holds it. */
static inline uintptr_t encode(const struct pyframe *f) { return HEAPSNAP_PYFRAME(f->fn, f->line); }

static bool ends_with(const char *s, size_t n, const char *suffix)
{
    size_t k = strlen(suffix);
    return n >= k && memcmp(s + n - k, suffix, k) == 0;
}

/* importlib's own code: frozen (the default), or its source files
 * (-X frozen_modules=off, debug builds). Only the innermost frame counts:
 * a module's own code, run by importlib (exec_module), may import. */
bool hs_py_in_importlib(void)
{
    const struct hs_py_layout *l = &py.l;
    if (hs_py_status() != HS_PY_FRAMES)
        return false;
    const char *ts = current_tstate();
    if (!ts)
        return false;
    const char *frame = innermost_frame(ts);
    for (int steps = 0; frame && steps < MAX_LINKS; steps++, frame = AT(frame, l->fr_previous, const char *)) {
        const char *code = AT(frame, l->fr_code, const char *);
        if ((l->owner_cstack >= 0 && AT(frame, l->fr_owner, int8_t) == l->owner_cstack) || !is_a(code, py.code_type))
            continue;                   /* no code of its own: an entry frame */
        char file[FILE_MAX_BYTES];
        size_t n = read_str(AT(code, l->co_filename, const char *), file, sizeof file);
        return (n >= 18 && memcmp(file, "<frozen importlib.", 18) == 0) || ends_with(file, n, "/importlib/_bootstrap.py") ||
               ends_with(file, n, "/importlib/_bootstrap_external.py");
    }
    return false;
}

/* The function id and line of a frame, read from its code object. */
static uint32_t resolve(const struct frame_key *k, uint64_t deaths, uint32_t *line)
{
    char name[NAME_MAX_BYTES], file[FILE_MAX_BYTES];
    size_t nlen = read_str(k->qualname, name, sizeof name);
    size_t flen = read_str(k->filename, file, sizeof file);
    if (!nlen)
        name[nlen++] = '?';             /* not a compact str: never seen for code objects */
    *line = line_of(k->code, (k->instr - (k->code + py.l.co_code)) / 2, deaths);
    return fn_intern(name, nlen, file, flen, k->first > 0 ? (uint32_t)k->first : 0);
}

/* --------------------------------------------------- the recent frames */

/* Consecutive allocations of a thread mostly share their outer Python
 * frames: only the innermost one or two run another line. So each thread
 * keeps the frames it resolved last, in a table indexed by the
 * instruction's address: a frame whose entry holds the same code object
 * and instruction gets the entry's function and line, without reading the
 * code object's fields or the shared memo's slot. 512 entries: a service's
 * request runs through a few hundred frames at ~45 deep (128 entries left
 * resolve_frames 12% more instructions on a Flask request cycle).
 * Like the memo's stamp, this trusts a code object's address only while no
 * code object has died and within one epoch of function ids; either moving
 * empties the table.
 *
 * Which thread owns which table matters only to how often it hits: an
 * entry's answer does not depend on the thread or the frame's address.
 * Tables are chosen by the thread state's address and taken with a
 * try-lock (a thread that finds its table busy walks without it), so two
 * threads never write one entry at the same time. A fork child's tables
 * are cleared with the rest (one caught busy would stay busy). */
#define RECENT_TABLES 64
#define RECENT_BITS 9

/* The thread's last stack (below): what a walk compares its frames with. */
#define LAST_PY 128                     /* Python frames of a kept stack, at most */
#define LAST_NATIVE 128                 /* native and merged frames of a kept stack, at most */

/* A frame as read from the chain: its code object and instruction, and
 * in the instruction's bit 0 (code units are two bytes, aligned) whether
 * it is the outermost of its activation. Two words, compared with memcmp;
 * the function and line are a function of the two while no code object
 * dies, whichever frame runs them. */
struct raw_frame {
    const char *code;
    uintptr_t at;
};
#define RAW_LAST 1u
static inline const char *raw_instr(const struct raw_frame *f) { return (const char *)(f->at & ~(uintptr_t)RAW_LAST); }

struct last_stack {
    const char *owner;                  /* the thread state whose stack it is */
    const char *inner;                  /* its innermost frame's address (read_chain's `compare`) */
    uint32_t np;                        /* its Python frames; 0: none kept */
    uint32_t span;                      /* its natives from the innermost activation on; 0: no merge kept */
    uint32_t enc;                       /* HEAPSNAP_NATIVE=none: its Python frames encoded at out's end */
    uint64_t gen;                       /* HEAPSNAP_NATIVE=none: counts changes of those frames; never reset */
    bool cut_in;                        /* the merge was entered cut: no frames after the natives */
    /* Each aligned on its outer end, where consecutive stacks agree: the
     * x-th from the end is at [LAST_PY - x] or [LAST_NATIVE - x]. */
    struct raw_frame raw[LAST_PY + 1];  /* raw[LAST_PY]: the end mark, which no frame read matches (forget) */
    struct pyframe pf[LAST_PY];
    uintptr_t native[LAST_NATIVE], out[LAST_NATIVE];
    /* At the native d from the end: the Python frames and merged frames the merge had left. */
    uint16_t p_left[LAST_NATIVE + 1], k_left[LAST_NATIVE + 1];
};

/* Nothing kept: no frames, no merge, no encodings to compare with. Every
 * stack is kept after a forget (a table is new to its thread first), so it
 * also sets the end mark: an instruction word of all ones, which no frame
 * has (an instruction is an even address of user space). */
static inline void forget(struct last_stack *last)
{
    last->np = last->span = last->enc = 0;
    last->raw[LAST_PY] = (struct raw_frame){ NULL, UINTPTR_MAX };
}

struct recent {
    uint32_t busy;                      /* try-lock: 0 free, 1 taken */
    uint64_t epoch, deaths;             /* what the entries were checked in */
    struct {
        const char *code, *instr;
        uint32_t fn, line;
    } f[1 << RECENT_BITS];
    struct last_stack last;             /* checked in the same epoch and count of deaths */
};

static void *recents;                   /* struct recent[RECENT_TABLES]: mapped once (map_once) */
static bool recents_refused;

/* The calling thread's table, taken; NULL when it is busy or unmapped. */
static inline __attribute__((always_inline)) struct recent *recent_take(const char *ts, uint64_t epoch, uint64_t deaths)
{
    struct recent *all = map_once(&recents, &recents_refused, RECENT_TABLES * sizeof(struct recent));
    if (!all)
        return NULL;
    struct recent *r = &all[((uintptr_t)ts * 0x9E3779B97F4A7C15ull) >> (64 - 6)];
    uint32_t free_ = 0;
    if (__atomic_load_n(&r->busy, __ATOMIC_RELAXED) ||
        !__atomic_compare_exchange_n(&r->busy, &free_, 1, false, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED))
        return NULL;
    if (r->epoch != epoch || r->deaths != deaths) {
        memset(r->f, 0, sizeof r->f);
        forget(&r->last);
        r->epoch = epoch;
        r->deaths = deaths;
    }
    return r;
}

static void recent_give(struct recent *r) { __atomic_store_n(&r->busy, 0, __ATOMIC_RELEASE); }

static inline unsigned recent_slot(const char *instr)
{
    return (unsigned)(((uintptr_t)instr * 0x9E3779B97F4A7C15ull) >> (64 - RECENT_BITS));
}

/* Context: fork child, single-threaded. */
static void recents_reset_child(void)
{
    if (recents)
        memset(recents, 0, RECENT_TABLES * sizeof(struct recent));
}

/* One frame's function and line through the shared memo, resolved and put
 * there on a miss. NO_ID when the function table's budget is full. */
static uint32_t frame_via_memo(struct frame_memo *m, const char *code, const char *instr, uint64_t epoch,
                               uint64_t deaths, uint32_t *line)
{
    const struct hs_py_layout *l = &py.l;
    struct frame_key k = {
        .instr = instr,
        .code = code,
        .qualname = AT(code, l->co_qualname, const char *),
        .filename = AT(code, l->co_filename, const char *),
        .linetable = AT(code, l->co_linetable, const char *),
        .first = AT(code, l->co_firstlineno, int32_t),
    };
    struct frame_memo *e = m ? memo_slot(m, k.instr) : NULL;
    uint32_t id;
    if (e && deaths && memo_get(e, &k, epoch, deaths, &id, line))
        return id;
    k.qualname_hash = str_hash(k.qualname);
    k.filename_hash = str_hash(k.filename);
    if (k.qualname_hash == -1 || k.filename_hash == -1)
        e = NULL;
    bool hit = e && memo_get(e, &k, epoch, 0, &id, line);
    if (!hit) {
        id = resolve(&k, deaths, line);
        if (id == NO_ID)
            return NO_ID;
    }
    if (e && (!hit || deaths))
        memo_put(e, &k, epoch, deaths, id, *line);  /* checked now: stamped with the count read before */
    return id;
}

/* A frame's function and line: from the recent table when it holds the
 * same instruction of the same code object, else through the memo (and
 * put in the table). NO_ID when the function table's budget is full. */
static inline uint32_t frame_fn(struct recent *r, struct frame_memo *m, const char *code, const char *instr,
                                uint64_t epoch, uint64_t deaths, uint32_t *line)
{
    unsigned s = recent_slot(instr);
    if (r && r->f[s].code == code && r->f[s].instr == instr) {
        *line = r->f[s].line;           /* a code object checked alive, none died since: the same one */
        return r->f[s].fn;
    }
    uint32_t id = frame_via_memo(m, code, instr, epoch, deaths, line);
    if (id != NO_ID && r) {
        r->f[s].code = code;
        r->f[s].instr = instr;
        r->f[s].fn = id;
        r->f[s].line = *line;
    }
    return id;
}

/* --------------------------------------------------- the thread's last stack */

/* A loop that allocates makes stack after stack that differ only at their
 * inner end, and the recent table still costs a lookup a frame and the
 * merge a step a frame for the outer ones. So the table also keeps the
 * last stack merged through it: its Python frames (code object,
 * instruction, outermost of its activation or not) with their functions
 * and lines, its natives from the innermost activation on, and its merged
 * frames, all aligned on their outer end.
 *
 * The walk compares the chain's frames with the last stack's as it reads
 * them (from the inner end: the same place when the two are as deep, the
 * most frequent case), or after reading them (from the outer end, when the
 * depths differ): the frames at the outer end that both share take the
 * last stack's functions and lines, under the rule of the table's entries
 * (the same instruction of the same code object, no code object died
 * since, the same epoch). The merge runs from the inner end until every
 * Python frame it has left is shared; if there the natives it has left are
 * the last stack's last ones and the last merge had as many Python frames
 * left at that native, the rest of the merge is a function of the same
 * inputs, and its frames are the last merged stack's, copied.
 * Only the inner part of each array is written for the next stack.
 * Context: the table taken (recent_take), so one thread at a time. */

/* A compare of words, the few inline: the shim is built with -fno-builtin,
 * so memcmp is always a call into libc (~20 instructions before the first
 * byte), and under HEAPSNAP_NATIVE=inner the natives a join compares are
 * one or two. */
static inline bool same_words(const uintptr_t *a, const uintptr_t *b, uint32_t n)
{
    if (n > 4)
        return memcmp(a, b, n * sizeof *a) == 0;    /* every native below (HEAPSNAP_NATIVE=all): AVX's */
    for (uint32_t i = 0; i < n; i++)
        if (a[i] != b[i])
            return false;
    return true;
}

/* How many frames at the outer ends of a (n) and b (m) are the same, for
 * stacks of two depths (read_chain compares stacks as deep). Most often
 * all but the innermost one or two: a compare of all but the innermost
 * first, in one memcmp. */
static uint32_t shared_frames(const struct raw_frame *a, uint32_t n, const struct raw_frame *b, uint32_t m)
{
    uint32_t c = n < m ? n : m, s = c > 1 ? c - 1 : c;
    a += n - c;
    b += m - c;
    if (memcmp(a + c - s, b + c - s, s * sizeof *a) != 0)
        s = 0;
    for (const struct raw_frame *x = a + c - 1 - s, *y = b + c - 1 - s; s < c; s++, x--, y--)
        if (x->code != y->code || x->at != y->at)
            break;
    return s;
}

/* Reads the chain from *at into raw, at most max frames of code and MAX_LINKS
 * links in all (*steps counts them), leaving *at where it stopped. A frame
 * is the outermost of its activation when it says so itself (3.11) or when
 * its previous link is an entry frame of the C stack (3.12+).
 *
 * With `compare`, each frame is compared, as it is read, with expect[i],
 * the frame at the same place from the inner end of the thread's last stack
 * (ne of them), and *differ is one past the last place where they differed
 * (0: none did). A stack as deep as the last one shares with it the frames
 * from there on, and only raw[0, *differ) is written; a stack of another
 * depth, or one read in parts (deeper than max), is written whole. So a
 * stack all of whose frames are the last one's writes nothing. Only the
 * frames' instruction words are compared (the code object is not read):
 * an instruction lies inside its code object (its bytecode is inline in
 * it), and while no code object dies (the recent table and the last stack
 * are dropped when one does) an address lies inside one code object at
 * most; the last stack's code object is alive, so a frame at the same
 * instruction runs it. So a frame that matches needs no check of its code
 * object's type either: that one was checked when the last stack was read.
 *
 * The compare pays only when the two stacks are as deep: for one of
 * another depth every frame differs, and costs more than a plain read and
 * the walk's compare from the outer end. The walk asks for it when the
 * innermost frame is where the last stack's was (the frames below it take
 * the same room on the thread's frame stack: most often the same callers);
 * and three frames in a row that differ stop it. Without it, or once
 * stopped, every frame is written and *differ is READ_STORED. Either way the
 * result is a function of the chain and the last stack alone. Its own
 * function, each version's loops without the other's tests, the offsets
 * in registers. */
#define READ_STORED UINT32_MAX          /* *differ: not compared, all stored */
static inline __attribute__((always_inline)) uint32_t read_chain_as(const char **at, int *steps, struct raw_frame *raw,
                                                                    uint32_t max, const struct raw_frame *expect,
                                                                    uint32_t ne, bool compare, uint32_t *differ,
                                                                    const bool entry)
{
    const struct hs_py_layout *l = &py.l;
    const uint32_t previous = l->fr_previous, code_at = l->fr_code, instr_at = l->fr_instr;
    const char *frame = *at;
    /* One count for both bounds: k links, each a frame unless skipped, and
     * `spare` links more that only skipped links (3.12+'s entry frames)
     * may take. */
    const int left = MAX_LINKS - *steps;
    int k = (int)max < left ? (int)max : left, spare = left - k;
    uint32_t i = 0, d = 0;              /* frames read; one past the last that differed */
    int missed = compare ? 0 : 3;       /* frames kept that differed, in a row */
#define SKIPPED()                                                                                                      \
    do {                                                                                                               \
        if (spare > 0) {                                                                                               \
            spare--;                                                                                                   \
            k++;                                                                                                       \
        }                                                                                                              \
    } while (0)
    /* A frame that differs (or lies past the last stack's depth) is kept
     * unless its code is not a code object (3.13: an entry frame's
     * f_executable is None), after the matching ones since the last that
     * differed, and counted in `missed`: so when three in a row stop the
     * compare, every frame read is written. */
#define KEEP(code, a)                                                                                                  \
    do {                                                                                                               \
        if (!is_a((code), py.code_type)) {                                                                             \
            SKIPPED();                                                                                                 \
        } else {                                                                                                       \
            for (; d < i; d++)                                                                                         \
                raw[d] = expect[d];                                                                                    \
            raw[i++] = (struct raw_frame){ (code), (a) };                                                              \
            d = i;                                                                                                     \
            missed++;                                                                                                  \
        }                                                                                                              \
    } while (0)
    /* Each turn: the frames that match, only counted, as many as k and the
     * last stack allow (none past its depth); then one that does not. Three
     * in a row that differ say the stacks are of two depths (in a stack as
     * deep, the frames that differ are the innermost one or two): the rest
     * is read without a compare (`stored`), and the walk compares from the
     * outer end. */
#define RUN(e)                                                                                                         \
    const uint32_t room = i < ne ? ne - i : 0;                                                                         \
    const struct raw_frame *const from = expect + (i < ne ? i : ne), *const stop = from + ((uint32_t)k < room ? (uint32_t)k : room); \
    const struct raw_frame *e = from
#define RAN(e)                                                                                                         \
    do {                                                                                                               \
        uint32_t m = (uint32_t)(e - from);                                                                             \
        i += m;                                                                                                        \
        k -= (int)m;                                                                                                   \
        missed = m ? 0 : missed;                                                                                       \
    } while (0)
/* The run of frames that match, each version's loop MATCH(bound): to the
 * last stack's outer end, where its end mark stops it (forget), when the
 * run may reach it; else to `stop`, checked each frame. */
#define MATCHES()                                                                                                      \
    do {                                                                                                               \
        if (stop == expect + ne) {                                                                                     \
            MATCH(true)                                                                                                \
        } else {                                                                                                       \
            MATCH(e < stop)                                                                                            \
        }                                                                                                              \
    } while (0)
#define PUT(code, a)                                                                                                    \
    do {                                                                                                               \
        if (__builtin_expect(!is_a((code), py.code_type), 0))                                                          \
            SKIPPED();                                                                                                 \
        else                                                                                                           \
            raw[i++] = (struct raw_frame){ (code), (a) };                                                              \
    } while (0)
    if (l->owner_cstack < 0) {          /* 3.11 */
        const uint32_t entry_at = l->fr_entry;
#define READ(f, code, a)                                                                                               \
    const char *code = AT(f, code_at, const char *);                                                                   \
    uintptr_t a = AT(f, instr_at, uintptr_t) | (entry && AT(f, entry_at, bool))
        while (frame && k > 0 && missed < 3) {
            RUN(e);
#define MATCH(bound)                                                                                                   \
    while (bound && (AT(frame, instr_at, uintptr_t) | (entry && AT(frame, entry_at, bool))) == e->at) {                \
        e++;                                                                                                           \
        if (!(frame = AT(frame, previous, const char *)))                                                              \
            break;                                                                                                     \
    }
            MATCHES();
#undef MATCH
            RAN(e);
            if (!frame || k <= 0)
                break;
            k--;
            READ(frame, code, a);
            KEEP(code, a);
            frame = AT(frame, previous, const char *);
        }
        for (; frame && k > 0; frame = AT(frame, previous, const char *)) {    /* stored */
            k--;
            READ(frame, code, a);
            PUT(code, a);
        }
#undef READ
    } else {                            /* 3.12+ */
        const uint32_t owner_at = l->fr_owner;
        const int8_t cstack = (int8_t)l->owner_cstack;
#define READ(f, next, code, a)                                                                                         \
    const char *code = AT(f, code_at, const char *);                                                                   \
    uintptr_t a = AT(f, instr_at, uintptr_t) | (entry && next && AT(next, owner_at, int8_t) == cstack)
        while (frame && k > 0 && missed < 3) {
            RUN(e);
#define MATCH(bound)                                                                                                   \
    while (bound) {                                                                                                    \
        const char *next = AT(frame, previous, const char *);                                                          \
        if (AT(frame, owner_at, int8_t) == cstack)                                                                     \
            break;                                                                                                     \
        if ((AT(frame, instr_at, uintptr_t) | (entry && next && AT(next, owner_at, int8_t) == cstack)) != e->at)       \
            break;                                                                                                     \
        e++;                                                                                                           \
        if (!(frame = next))                                                                                           \
            break;                                                                                                     \
    }
            MATCHES();
#undef MATCH
            RAN(e);
            if (!frame || k <= 0)
                break;
            k--;
            const char *next = AT(frame, previous, const char *);
            if (AT(frame, owner_at, int8_t) == cstack) {
                SKIPPED();
            } else {
                READ(frame, next, code, a);
                KEEP(code, a);
            }
            frame = next;
        }
        for (const char *next; frame && k > 0; frame = next) {                /* stored */
            k--;
            next = AT(frame, previous, const char *);
            if (AT(frame, owner_at, int8_t) == cstack) {
                SKIPPED();
                continue;
            }
            READ(frame, next, code, a);
            PUT(code, a);
        }
#undef READ
    }
#undef PUT
#undef MATCHES
#undef RAN
#undef RUN
#undef KEEP
#undef SKIPPED
    bool stored = missed >= 3;          /* then all of it is written already (KEEP) */
    if (!stored && (i != ne || frame))  /* another depth, or more to read: all of it (past ne, every frame differed) */
        for (; d < i; d++)
            raw[d] = expect[d];
    *at = frame;
    *steps = MAX_LINKS - (k + spare);
    *differ = stored ? READ_STORED : d;
    return i;
}

/* read_chain_as with each frame's outermost-of-its-activation flag, which
 * the merge with the native frames needs, and without it (`plain`, for
 * hs_py_frames_only, HEAPSNAP_NATIVE=none, whose encoded frames do not
 * carry it): one load and two instructions less a frame, and under 3.12+
 * no look at the next frame's owner. */
static __attribute__((noinline)) uint32_t read_chain(const char **at, int *steps, struct raw_frame *raw, uint32_t max,
                                                     const struct raw_frame *expect, uint32_t ne, bool compare,
                                                     uint32_t *differ)
{
    return read_chain_as(at, steps, raw, max, expect, ne, compare, differ, true);
}

static __attribute__((noinline)) uint32_t read_chain_plain(const char **at, int *steps, struct raw_frame *raw,
                                                           uint32_t max, const struct raw_frame *expect, uint32_t ne,
                                                           bool compare, uint32_t *differ)
{
    return read_chain_as(at, steps, raw, max, expect, ne, compare, differ, false);
}

/* The functions and lines of n frames read by read_chain, into out; false
 * when the function table's budget is full. */
static bool resolve_frames(struct pyframe *out, const struct raw_frame *raw, uint32_t n, struct recent *r,
                           struct frame_memo *m, uint64_t epoch, uint64_t deaths)
{
    for (uint32_t i = 0; i < n; i++) {
        uint32_t line, id = frame_fn(r, m, raw[i].code, raw_instr(&raw[i]), epoch, deaths, &line);
        if (id == NO_ID)
            return false;
        out[i] = (struct pyframe){ id, line > HEAPSNAP_PYFRAME_MAX_LINE ? HEAPSNAP_PYFRAME_MAX_LINE : line,
                                   (raw[i].at & RAW_LAST) != 0 };
    }
    return true;
}

/* The calling thread's Python frames, innermost first; *more is set when
 * frames were left out (more than max). *taken is the thread's recent
 * table, still taken (the merge gives it back), *shared how many of the
 * outermost frames the table's last stack has too; with `inner_only`,
 * out holds only the others (the caller has the shared ones). */
static inline __attribute__((always_inline)) uint32_t walk(struct pyframe *out, uint32_t max, bool *more,
                                                            struct recent **taken, uint32_t *shared, bool inner_only)
{
    *taken = NULL;
    *shared = 0;
    const char *ts = current_tstate();
    if (!ts)
        return 0;
    if (!__atomic_load_n(&py_seen, __ATOMIC_RELAXED)) {
        __atomic_store_n(&py_seen, 1, __ATOMIC_RELAXED);
        if (hs_py_first_seen)
            hs_py_first_seen();
    }
    if (__builtin_expect(__atomic_load_n(&hs_py_wanted, __ATOMIC_RELAXED), 0) && hs_py_on_thread)
        hs_py_on_thread();
    uint64_t epoch = __atomic_load_n(&memo_epoch, __ATOMIC_ACQUIRE);    /* before anything is interned */
    uint64_t deaths = __atomic_load_n(&code_deaths, __ATOMIC_ACQUIRE);  /* before any key is hashed */
    /* With no count of deaths (the wrapper not in place) an address proves
     * nothing: only the memo, which checks the strings, is used. */
    struct recent *r = deaths ? recent_take(ts, epoch, deaths) : NULL;
    struct frame_memo *m = memo_table();
    const char *frame = innermost_frame(ts);
    struct last_stack *last = r ? &r->last : NULL;
    if (last && last->owner != ts) {
        last->owner = ts;
        forget(last);
    }
    /* The chain LAST_PY frames at a time: the first part is compared with
     * the last stack and kept; a chain longer than that is neither. */
    struct raw_frame raw[LAST_PY];
    int steps = 0;
    const struct raw_frame *expect = last ? last->raw + LAST_PY - last->np : raw;
    uint32_t ne = last ? last->np : 0, differ;
    const char *inner = frame;
    /* hs_py_frames_only (inner_only) encodes no flags: its reads leave
     * them out. A frame matches the last stack's only when both have the
     * same flag, so stacks read either way may follow each other. */
#define READ_CHAIN(...) (inner_only ? read_chain_plain(__VA_ARGS__) : read_chain(__VA_ARGS__))
    uint32_t n = READ_CHAIN(&frame, &steps, raw, max < LAST_PY ? max : LAST_PY, expect, ne, ne && last->inner == inner,
                            &differ);
    bool deep = frame && steps < MAX_LINKS;
    uint32_t s = !last || deep ? 0 : n == ne && differ != READ_STORED ? n - differ : shared_frames(raw, n, expect, ne);
    if (n > s && !resolve_frames(out, raw, n - s, r, m, epoch, deaths))    /* most often all are shared */
        goto full;
    if (s && !inner_only)
        memcpy(out + n - s, last->pf + LAST_PY - s, s * sizeof *out);
    if (last && !deep) {
        for (uint32_t i = 0; i < n - s; i++) {      /* most often one or two */
            last->raw[LAST_PY - n + i] = raw[i];
            last->pf[LAST_PY - n + i] = out[i];
        }
        last->np = n;
        last->inner = inner;
        if (!inner_only)
            last->enc = 0;              /* a merge writes `out`: no encodings kept there */
    } else if (last) {
        forget(last);
    }
    while (deep && n < max) {
        uint32_t got = READ_CHAIN(&frame, &steps, raw, max - n < LAST_PY ? max - n : LAST_PY, raw, 0, false, &differ);
        if (!resolve_frames(out + n, raw, got, r, m, epoch, deaths))
            goto full;
        n += got;
        deep = frame && steps < MAX_LINKS;
    }
#undef READ_CHAIN
    *more = frame != NULL && n == max;
    *taken = r;
    *shared = s;
    return n;
full:                                   /* the budget is full: keep the native stack */
    if (last)
        forget(last);
    if (r)
        recent_give(r);                 /* its entries were checked: they stay */
    return 0;
}

/* HEAPSNAP_NATIVE=none. Consecutive stacks of a thread share their outer
 * frames (the walk says how many): those are copied from the last stack's
 * encoded frames, kept at the end of its `out`; only the others are
 * encoded. A stack whose encoded frames are all the last one's (as many,
 * all encoded, the ones read anew at the same lines) keeps the last one's
 * token; any other gets a new one, so a token stands for one run of equal
 * stacks of one thread. */
uint32_t hs_py_frames_only(uintptr_t *frames, uint32_t room, bool *cut, struct hs_py_token *token,
                           const struct hs_py_token *known)
{
    token->gen = 0;
    if (hs_py_status() != HS_PY_FRAMES)
        return 0;
    struct pyframe pf[MAX_PY_FRAMES];
    bool more = false;
    struct recent *r;
    uint32_t shared;
    uint32_t np = walk(pf, room < MAX_PY_FRAMES ? room : MAX_PY_FRAMES, &more, &r, &shared, true);
    struct last_stack *last = r ? &r->last : NULL;
    if (last && last->np == np && np) {  /* kept by the walk: np <= LAST_PY <= LAST_NATIVE */
        uintptr_t *enc = last->out + LAST_NATIVE - np;
        const struct pyframe *kept = last->pf + LAST_PY - np;     /* the walk's frames, all of them */
        uint32_t fresh = np - (shared < last->enc ? shared : last->enc);
        /* A frame read anew (another instruction) most often encodes as
         * before (the same line): the token changes only when an encoding
         * does, or the depth, or none were kept at these places. */
        bool changed = last->enc != np;
        for (uint32_t i = 0; i < fresh; i++) {
            uintptr_t v = encode(&kept[i]);
            changed |= enc[i] != v;
            enc[i] = v;
        }
        if (changed)
            last->gen++;
        last->enc = np;
        *token = (struct hs_py_token){ last, last->gen };
        if (!(known && hs_py_same_token(known, token) && !more))
            for (uint32_t i = 0; i < np; i++)
                frames[i] = enc[i];
    } else {
        for (uint32_t i = 0; i < np; i++)   /* not kept: walk gave them all */
            frames[i] = encode(&pf[i]);
    }
    if (r)
        recent_give(r);
    *cut = more;
    return np;
}

/* In the eval loop: a return address is after its call. */
void hs_py_eval_returns(uintptr_t *lo, uintptr_t *size)
{
    bool on = hs_py_status() == HS_PY_FRAMES;
    *lo = on ? py.eval_lo + 1 : 0;
    *size = on ? py.eval_hi - py.eval_lo : 0;
}

/* The natives as they are: no Python frames to merge. */
static uint32_t natives_only(const uintptr_t *native, uint32_t depth, uintptr_t *frames)
{
    memcpy(frames, native, depth * sizeof *frames);
    return depth;
}

static __attribute__((noinline)) uint32_t merge(const uintptr_t *native, uint32_t depth, uintptr_t *frames,
                                                uint32_t room, bool *cut);

/* The check, apart from the merge: a process without Python frames pays no
 * prologue of the merge's (its saved registers and arrays, ~11 instructions
 * a stack on the C sites storm). */
uint32_t hs_py_merge(const uintptr_t *native, uint32_t depth, uintptr_t *frames, uint32_t room, bool *cut)
{
    if (hs_py_status() != HS_PY_FRAMES || !depth)
        return natives_only(native, depth, frames);
    return merge(native, depth, frames, room, cut);
}

static uint32_t merge(const uintptr_t *native, uint32_t depth, uintptr_t *frames, uint32_t room, bool *cut)
{
    /* In locals: the stores to frames could alias py's fields. */
    uintptr_t eval, eval_size;
    hs_py_eval_returns(&eval, &eval_size);
#define IN_EVAL(ret) ((ret) - eval < eval_size)
    uint32_t first = 0;                 /* the innermost activation: the frames before it are copied as they are */
    if (hs_opt.native == HS_NATIVE_INNER && IN_EVAL(native[depth - 1]))
        first = depth - 1;              /* HEAPSNAP_NATIVE=inner: where every walk stops (hs_unwind_to) */
    else
        while (first < depth && !IN_EVAL(native[first]))
            first++;
    if (first == depth)
        return natives_only(native, depth, frames);     /* no interpreter on this stack */
    struct pyframe pf[MAX_PY_FRAMES];
    bool more = false;
    struct recent *r;
    uint32_t shared;
    uint32_t np = walk(pf, MAX_PY_FRAMES, &more, &r, &shared, false);
    if (!np) {
        if (r)
            recent_give(r);
        return natives_only(native, depth, frames);
    }
    if (more)
        *cut = true;                    /* deeper than MAX_PY_FRAMES Python frames */
    const bool cut_in = *cut;
    struct last_stack *last = r ? &r->last : NULL;
    /* At each native merged here, and after the last (i == depth): the
     * Python frames left, and the frames made. */
    uint16_t p_left[depth + 1], k_at[depth + 1];
    memcpy(frames, native, first * sizeof *frames);
    uint32_t k = first, p = 0, i, copied = 0, end;
    bool full = false;
    /* Where the Python frames left are all the last stack's, its merge may
     * be joined (two tries: each is a compare of the natives left), at a
     * native or after the last one (the Python frames of activations the
     * walk did not reach: all of them under HEAPSNAP_NATIVE=inner). */
    const uint32_t p_shared = np - shared;
    int tries = last && last->span && last->cut_in == cut_in && shared ? 2 : 0;
    for (i = first;; i++) {
        if (full) {
            end = i;
            break;
        }
        if (tries && p >= p_shared) {
            uint32_t d = depth - i;
            if (d <= last->span && last->p_left[d] == np - p) {
                tries--;
                if (same_words(native + i, last->native + LAST_NATIVE - d, d)) {
                    uint32_t tail = last->k_left[d];
                    copied = tail < room - k ? tail : room - k;
                    full = tail > room - k;
                    memcpy(frames + k, last->out + LAST_NATIVE - tail, copied * sizeof *frames);
                    k += copied;
                    p = np;
                    end = i;
                    break;
                }
            }
        }
        p_left[i] = (uint16_t)(np - p);
        k_at[i] = (uint16_t)k;
        if (i == depth) {
            end = depth + 1;
            break;
        }
        uintptr_t ret = native[i];
        if (!IN_EVAL(ret) || p == np) {
            if (k == room)
                full = true;
            else
                frames[k++] = ret;
            continue;
        }
        do {                            /* this activation's frames */
            if (k == room) {
                full = true;
                break;
            }
            frames[k++] = encode(&pf[p]);
        } while (!pf[p++].last && p < np);
    }
#undef IN_EVAL
    /* Frames of activations the native walk did not reach (it stopped
     * early): outermost, after everything else, unless the stack was cut. */
    for (; !*cut && !full && p < np; p++) {
        if (k == room)
            full = true;
        else
            frames[k++] = encode(&pf[p]);
    }
    if (full)
        *cut = true;
    if (last) {
        /* Kept for the next stack when all of its merge is here (not cut
         * by room: a stack cut short is most often cut before its shared
         * part, and keeping it costs more than its next stack gains) and
         * fits; only what was merged here is written. */
        if (!full && depth <= LAST_NATIVE && room <= LAST_NATIVE && np <= LAST_PY && last->np == np) {
            for (uint32_t j = first; j < end; j++) {
                last->p_left[depth - j] = p_left[j];
                last->k_left[depth - j] = (uint16_t)(k - k_at[j]);
            }
            uint32_t merged = end < depth ? end : depth;    /* the natives merged here */
            memcpy(last->native + LAST_NATIVE - (depth - first), native + first, (merged - first) * sizeof *native);
            memcpy(last->out + LAST_NATIVE - k, frames, (k - copied) * sizeof *frames);
            last->span = depth - first;
            last->cut_in = cut_in;
        } else {
            last->span = 0;
        }
        recent_give(r);
    }
    return k;
}
