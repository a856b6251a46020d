/*
 * control.h - options, signals, the writer thread, fork and exit handling.
 *
 * Everything that decides *when* the shim samples and writes lives here; the
 * hooks only read hs_active (sampler.h). Options are parsed once, at load,
 * into hs_opt and never change afterwards.
 */
#ifndef HS_CONTROL_H
#define HS_CONTROL_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>
#include <signal.h>

struct hs_options {
    uint64_t rate;          /* HEAPSNAP_RATE: mean bytes between samples; 1 = exact */
    uint32_t max_depth;     /* HEAPSNAP_MAX_DEPTH: frames kept per stack (1..1024) */
    size_t max_memory;      /* HEAPSNAP_MAX_MEMORY: budget for the shim's tables */
    int signal_base;        /* HEAPSNAP_SIGNAL_BASE: start = SIGRTMIN + base */
    bool start;             /* HEAPSNAP_START=1: sample from load */
    bool at_exit;           /* HEAPSNAP_AT_EXIT=1: snapshot at normal exit */
    bool python;            /* HEAPSNAP_PYTHON (default 1): Python frames, pymalloc, Python's atexit */
    uint64_t interval_ns;   /* HEAPSNAP_INTERVAL: periodic snapshots; 0 = off */
    char dir[4096];         /* HEAPSNAP_DIR: absolute, no trailing slash */
};

/* Written once by the constructor before any sampling; read-only after. */
extern struct hs_options hs_opt;

/* Commands, in the order of their signals (base+0, +1, +2). */
enum hs_cmd { HS_CMD_START = 0, HS_CMD_STOP = 1, HS_CMD_SNAPSHOT = 2, HS_CMD_COUNT = 3 };

/* One line on the shim's own stderr (a dup of fd 2 taken at load).
 * Context: any thread except signal handlers; no allocation. */
void hs_say(const char *a, const char *b, const char *c, const char *d);

/* Moves a descriptor the shim opens up out of the range hosts use (see
 * control.c); returns the new number, or fd itself if that fails. */
int hs_fd_high(int fd);

/* The sigaction/signal interposers (hooks.c exports the names). */
int hs_sigaction(int sig, const struct sigaction *act, struct sigaction *old);
sighandler_t hs_signal(int sig, sighandler_t handler);

/* A fork child's first allocation: creates its channel and writer thread
 * (see fork_child in control.c). Context: inside malloc, no shim lock held. */
void hs_child_setup(void);

/* Around the host's setuid() family (hooks.c): the writer thread steps out of
 * glibc's all-threads credential change and is restarted after it. */
bool hs_setxid_begin(void);
void hs_setxid_end(bool stopped);

/* Queues a command as if its signal arrived; 0 or -errno. Context: any thread. */
int hs_request(enum hs_cmd cmd);

#endif
