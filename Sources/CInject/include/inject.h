/*
 * inject.h - loading libheapsnap_preload.so into a running process with
 * ptrace (no gdb), for `heapsnap attach`. See inject.c and CShim/DESIGN.md,
 * "Attaching to a running process".
 */
#ifndef HS_INJECT_H
#define HS_INJECT_H

/* What hs_inject did. */
enum hs_inject_status {
    HS_INJECT_DONE = 0,             /* loaded and heapsnap_attach returned 0 */
    HS_INJECT_ALREADY = 1,          /* the library was set up before: use the signals */
    HS_INJECT_REFUSED = 2,          /* nothing was touched: `message` says why */
    HS_INJECT_NO_SAFE_POINT = 3,    /* no thread reached an allocation function in time; left as it was */
    HS_INJECT_FAILED = 4,           /* dlopen or heapsnap_attach failed in the process; registers restored */
};

struct hs_inject_result {
    int status;                     /* enum hs_inject_status */
    long attach_return;             /* heapsnap_attach's return value (0 or -errno) */
    double seconds_to_safe_point;   /* from the first ptrace call to the safe point */
    double seconds;                 /* the whole injection, until every thread was let go */
    int threads;                    /* threads traced */
    int was_stopped;                /* the process was stopped (SIGSTOP) and was left stopped */
    char message[512];              /* one line, for REFUSED, NO_SAFE_POINT and FAILED */
};

/* Loads `library` (a path as the target sees it) into process `pid` at a
 * safe point, calls heapsnap_attach(`spec`) there, and resumes every thread
 * exactly as it was. Waits at most `timeout` seconds for the safe point.
 * Returns result->status. Context: one thread of the caller does all the
 * ptrace calls (the tracer is a thread, not a process). */
int hs_inject(int pid, const char *library, const char *spec, double timeout, struct hs_inject_result *result);

/* The offset of dynamic symbol `name` from the load base of the ELF file
 * `path` (for reading the shim's published state); -1 when absent. */
long hs_elf_symbol_offset(const char *path, const char *name);

/* Reads heapsnap_attach_info (include/heapsnap.h) from process `pid`:
 * 1 when the library there was attached (signal base and directory, as the
 * process sees it, filled in), 0 when it was not (preloaded, or never set
 * up), -1 when it cannot be read. */
int hs_read_attach_info(int pid, int *signal_base, char *dir, unsigned long dir_size);

#endif
