/*
 * heapsnap.h - the only public header of libheapsnap_preload.so.
 *
 * Two things live here: the constants of the snapshot format (docs/FORMAT.md
 * is the spec; these names mirror it) and a tiny control API for programs
 * that prefer calling the profiler to signalling it. The API functions only
 * queue a request for the shim's writer thread, exactly like the signals do,
 * so they are safe to call from any thread (not from a signal handler; use
 * the signals there). Look them up with dlsym(RTLD_DEFAULT, "heapsnap_start")
 * so the program still runs without the shim.
 */
#ifndef HEAPSNAP_H
#define HEAPSNAP_H

#include <stdint.h>

#define HEAPSNAP_MAGIC          "HEAPSNAP"
#define HEAPSNAP_MAJOR          1
#define HEAPSNAP_MINOR          4

/* Record tags: four ASCII bytes as they appear in the file, read as a u32 LE. */
#define HEAPSNAP_TAG(a, b, c, d) \
    ((uint32_t)(a) | (uint32_t)(b) << 8 | (uint32_t)(c) << 16 | (uint32_t)(d) << 24)
#define HEAPSNAP_TAG_PROC       HEAPSNAP_TAG('P', 'R', 'O', 'C')
#define HEAPSNAP_TAG_MODS       HEAPSNAP_TAG('M', 'O', 'D', 'S')
#define HEAPSNAP_TAG_STKS       HEAPSNAP_TAG('S', 'T', 'K', 'S')
#define HEAPSNAP_TAG_SMPL       HEAPSNAP_TAG('S', 'M', 'P', 'L')
#define HEAPSNAP_TAG_PYTH       HEAPSNAP_TAG('P', 'Y', 'T', 'H')
#define HEAPSNAP_TAG_PEAK       HEAPSNAP_TAG('P', 'E', 'A', 'K')
#define HEAPSNAP_TAG_SERS       HEAPSNAP_TAG('S', 'E', 'R', 'S')
#define HEAPSNAP_TAG_HIGH       HEAPSNAP_TAG('H', 'I', 'G', 'H')
#define HEAPSNAP_TAG_THIN       HEAPSNAP_TAG('T', 'H', 'I', 'N')
#define HEAPSNAP_TAG_END        HEAPSNAP_TAG('E', 'N', 'D', ' ')

/* PROC.flags */
#define HEAPSNAP_FLAG_EXACT     (1u << 0)
#define HEAPSNAP_FLAG_FINAL     (1u << 1)
#define HEAPSNAP_FLAG_AT_EXIT   (1u << 2)
#define HEAPSNAP_FLAG_PERIODIC  (1u << 3)
#define HEAPSNAP_FLAG_MERGED    (1u << 4)

/* STKS flags */
#define HEAPSNAP_STACK_TRUNCATED (1u << 0)

/* A Python frame in a stack (FORMAT.md, PYTH): top byte 0xF1, then a
 * function id (index into PYTH's functions) and a line. User-space return
 * addresses never have their top byte set. */
#define HEAPSNAP_PYFRAME_TAG    0xF1ull
#define HEAPSNAP_PYFRAME(fn, line) \
    (HEAPSNAP_PYFRAME_TAG << 56 | (uint64_t)(uint32_t)(fn) << 24 | ((uint64_t)(line) & 0xFFFFFFu))
#define HEAPSNAP_PYFRAME_MAX_LINE 0xFFFFFFu

#define HEAPSNAP_MAX_FRAMES     1024   /* format limit on a stack's depth */
#define HEAPSNAP_SMPL_ENTRY     88     /* bytes per SMPL entry */

/* Control API: 0 on success (request queued), -errno otherwise
 * (-ENODEV when the shim is inert, e.g. in a setuid process). */
#ifdef __cplusplus
extern "C" {
#endif
int heapsnap_start(void);     /* like SIGRTMIN+1: start sampling with fresh state */
int heapsnap_stop(void);      /* like SIGRTMIN+2: final snapshot, stop, release memory */
int heapsnap_snapshot(void);  /* like SIGRTMIN+3: write a snapshot, keep sampling */
int heapsnap_sampling(void);  /* 1 while sampling, 0 otherwise (requests are asynchronous) */

/* heapsnap attach: the injector calls heapsnap_attach("NAME=value\n...")
 * once the library is loaded (0, -EALREADY, or -errno). What an attached
 * library uses is then published in heapsnap_attach_info, which the tool
 * reads from the process's memory (its environment does not say): magic is
 * HEAPSNAP_ATTACH_MAGIC once set; written once, before magic. */
#define HEAPSNAP_ATTACH_MAGIC 0x6865617061747431ull   /* "heapatt1" */
struct heapsnap_attach_info {
    uint64_t magic;
    int32_t signal_base;
    uint32_t reserved;
    char dir[4096];
};
int heapsnap_attach(const char *spec);
#ifdef __cplusplus
}
#endif

#endif
