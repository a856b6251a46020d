/*
 * lifecycle.h - the shim's load, fork, exit and credential changes.
 *
 * When the writer thread (writer.c) starts and stops, and what happens to the
 * sampler's tables around fork. Above writer.c; below the exported names
 * (interpose.c wraps the setuid family with hs_setxid_begin/end, control_api.c sets a
 * fork child up before its first request).
 */
#ifndef HS_LIFECYCLE_H
#define HS_LIFECYCLE_H

#include <stdbool.h>

/* A fork child's first allocation or control request: creates its channel
 * and writer thread. Registered with the sampler at load, which calls it
 * when hs_active == HS_CHILD_SETUP. Context: inside malloc, no shim lock
 * held; returns at once under the reentrancy guard (pthread_create's own
 * allocations). */
void hs_child_setup(void);

/* Around the host's setuid() family (interpose.c): the writer thread steps
 * out of glibc's all-threads credential change and is restarted after it.
 * Context: the host thread calling setuid() & co., no shim lock held. */
bool hs_setxid_begin(void);
void hs_setxid_end(bool stopped);

/* Process start (interpose.c exports __libc_start_main): runs the
 * program's main through a wrapper that puts the AT_EXIT snapshot before
 * the program's own teardown (lifecycle.c, at_exit). `next` is the real
 * __libc_start_main; the other arguments are passed on unchanged.
 * Context: the main thread, before main, after every constructor. */
typedef int (*hs_main_fn)(int, char **, char **);
typedef int (*hs_start_main_fn)(hs_main_fn main, int argc, char **argv, void *init, void *fini,
                                void *rtld_fini, void *stack_end);
int hs_start_main(hs_start_main_fn next, hs_main_fn main, int argc, char **argv,
                  void *init, void *fini, void *rtld_fini, void *stack_end);

/* The program calls exit() (interpose.c): with main wrapped, the AT_EXIT
 * snapshot now, before any atexit handler runs. Context: the exiting
 * thread, possibly a signal handler (see at_exit in lifecycle.c). */
void hs_exit_called(void);

/* heapsnap attach: the library was just dlopen'ed into a running process
 * (its constructor did nothing, see hs_init) and the injector calls this,
 * on the thread it stopped at a safe point (the entry of an allocation
 * function: no allocator or loader lock held). Parses `spec` (options.h,
 * hs_options_parse_spec), prepares the routes (got.h), starts the writer
 * thread and installs the handlers; with HEAPSNAP_START=1 in `spec`, routes
 * every loaded object to the shim and starts sampling before it returns.
 * `dlopen_route` is what dlopen's slots get. 0, -EALREADY when the library
 * was set up before (preloaded, or attached earlier: the signals drive it
 * then), or -errno with nothing changed but the writer thread.
 * Context: the stopped thread, called by the injector; nothing of ours
 * held. */
int hs_attach(const char *spec, void *dlopen_route);

#endif
