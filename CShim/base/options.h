/*
 * options.h - the shim's settings, read once from the environment.
 *
 * The bottom layer, with stderr.h: mem, stacks, the sampler and the writers read
 * hs_opt; nothing here knows about them. hs_options_parse() runs once in the
 * constructor, before any thread of ours exists and before sampling can
 * start; after it hs_opt never changes.
 */
#ifndef HS_OPTIONS_H
#define HS_OPTIONS_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

/* HEAPSNAP_UNWIND: how stacks are walked (unwind.c). */
enum hs_unwind_mode {
    HS_UNWIND_FAST,         /* cached .eh_frame rules, unw_backtrace where they do not apply */
    HS_UNWIND_LIBUNWIND,    /* unw_backtrace only */
    HS_UNWIND_CHECK,        /* both on every capture, compared; a report at exit */
};

/* HEAPSNAP_NATIVE: which native frames a thread running Python records. */
enum hs_native_mode {
    HS_NATIVE_ALL,          /* every native, each activation of the eval loop replaced by its Python frames */
    HS_NATIVE_INNER,        /* the natives below the innermost Python frame, then every Python frame */
    HS_NATIVE_NONE,         /* the Python frames only (no native walk) */
};

/* HEAPSNAP_MAX_MEMORY's defaults: 64 MiB when sampling, more in exact mode
 * (HEAPSNAP_RATE=1), which keeps an entry for every live block: 64 MiB held
 * ~1.1 million live blocks of a Python program, 512 MiB holds ~7.5 million
 * (CShim/DESIGN.md, "Memory budget"). */
#define HS_MAX_MEMORY ((size_t)64 << 20)
#define HS_EXACT_MAX_MEMORY ((size_t)512 << 20)
#define HS_EXACT_MAX_MEMORY_TEXT "512M"

/* HEAPSNAP_KEEP: its default and its largest value. */
#define HS_KEEP_DEFAULT 100
#define HS_KEEP_MAX 10000

struct hs_options {
    uint64_t rate;          /* HEAPSNAP_RATE: mean bytes between samples; 1 = exact */
    uint32_t max_depth;     /* HEAPSNAP_MAX_DEPTH: frames kept per stack (1..1024) */
    size_t max_memory;      /* HEAPSNAP_MAX_MEMORY: budget for the shim's tables */
    int signal_base;        /* HEAPSNAP_SIGNAL_BASE: start = SIGRTMIN + base */
    bool start;             /* HEAPSNAP_START=1: sample from load */
    bool at_exit;           /* HEAPSNAP_AT_EXIT=1: snapshot at normal exit */
    bool python;            /* HEAPSNAP_PYTHON (default 1): Python frames, pymalloc, Python's atexit */
    bool py_free_lists;     /* HEAPSNAP_PYTHON_FREE_LISTS=keep: leave CPython's free lists on while sampling (pyreuse.c) */
    enum hs_unwind_mode unwind; /* HEAPSNAP_UNWIND: fast (default), libunwind, check */
    enum hs_native_mode native; /* HEAPSNAP_NATIVE: all (default), inner, none */
    bool writer_on_demand;  /* HEAPSNAP_WRITER=on-demand (the default): the writer thread made when first needed (writer.c) */
    uint64_t interval_ns;   /* HEAPSNAP_INTERVAL: periodic snapshots; 0 = off */
    uint32_t keep;          /* HEAPSNAP_KEEP: periodic snapshots kept on disk per process (retention.c); 0 = all */
    char dir[4096];         /* HEAPSNAP_DIR: absolute, no trailing slash */
};

/* Defaults until parsed. Written once by hs_options_parse (constructor,
 * before any sampling); read-only after. */
extern struct hs_options hs_opt;

/* Reads every HEAPSNAP_* variable into hs_opt. A bad value gets one line on
 * stderr and its default; an unknown HEAPSNAP_* name gets one line too.
 * Context: constructor. */
/* The same options from an attach's settings instead of the environment:
 * "HEAPSNAP_RATE=64K\nHEAPSNAP_DIR=/tmp\n..." (heapsnap attach writes
 * them); unnamed options keep their defaults. Context: hs_attach. */
void hs_options_parse_spec(const char *spec);
void hs_options_parse(void);

#endif
