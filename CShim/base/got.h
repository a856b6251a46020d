/*
 * got.h - routing a running process's calls to the shim without LD_PRELOAD:
 * its GOT/PLT slots rewritten, and symbols looked up as the loader would.
 *
 * Only used when the library was loaded into a running process by
 * `heapsnap attach` (control/lifecycle.c, hs_attach). A preloaded library
 * needs none of this: the loader binds every reference to the shim's
 * definitions itself.
 *
 * The routes are "every function the shim exports" (read from the shim's own
 * dynamic symbol table, less the control API) plus extra ones the caller
 * names (dlopen, which the shim routes to a function it does not export, so
 * that preloaded processes keep the loader's own dlopen).
 *
 * Lock order: the route lock -> the loader's list lock (dl_iterate_phdr);
 * nothing here is ever called from inside a dl_iterate_phdr callback.
 */
#ifndef HS_GOT_H
#define HS_GOT_H

#include <stdbool.h>
#include <stddef.h>

/* Was this library loaded after libc (dlopen into a running process) rather
 * than preloaded? `self` is any address inside the shim.
 * Context: the library constructor. */
bool hs_got_loaded_late(const void *self);

/* The first definition of `name` in load order (the global lookup order),
 * in any object but the shim itself and the vDSO; never a canonical PLT
 * entry of a non-PIE executable (an undefined symbol with a value), never a
 * hidden symbol version. NULL when none. An STT_GNU_IFUNC definition is
 * resolved with dlsym(RTLD_DEFAULT). Context: any thread; takes the loader's
 * list lock; allocates nothing. */
void *hs_got_lookup(const char *name);

/* Attach mode on: the routes are the shim's exports (less names starting
 * with one of `skip_prefixes`, NULL-terminated) plus `extra` routes.
 * 0 or -errno. Context: hs_attach, once. */
struct hs_got_extra { const char *name; void *to; };
int hs_got_init(const void *self, const char *const *skip_prefixes, const struct hs_got_extra *extra, size_t n_extra);

/* Attach mode is on (hs_got_init succeeded). */
bool hs_got_enabled(void);

/* Fresh route lock in a fork child. Context: fork child, single-threaded. */
void hs_got_fork_child(void);

/* Routes every loaded object but the loader, the vDSO and the shim: each
 * relocation (REL, RELA, JMPREL) naming a route gets the route's address;
 * the value found is kept for hs_got_restore. Idempotent (slots already
 * routed are left as they are), so it also routes objects loaded since.
 * `start`: a session starts (the writer); otherwise (a dlopen, the
 * writer's tick) it routes only between a start and the next restore, so
 * that a dlopen racing a stop does not leave slots routed after it.
 * Returns the number of slots changed, or -errno. Context: no shim lock
 * but the caller's; takes the route lock, then the loader's list lock. */
int hs_got_route(bool start);

/* Writes back every slot hs_got_route changed (those that still hold our
 * route), newest first; forgets them. Context: as hs_got_route. */
void hs_got_restore(void);

/* Forgets kept slots of objects no longer loaded (after dlclose: their
 * addresses may be reused by another object). Context: as hs_got_route. */
void hs_got_forget_unloaded(void);

/* Were objects loaded since the last hs_got_route? (dlpi_adds.) Cheap: one
 * dl_iterate_phdr callback. Context: writer thread. */
bool hs_got_objects_added(void);

/* For a dlopen of `file` (no slash) by code at `caller`: the full path the
 * caller's DT_RPATH/DT_RUNPATH would find, written to `out`; false when
 * the caller has none or none matches (then dlopen the plain name).
 * Context: a host thread in the routed dlopen. */
bool hs_got_caller_path(const void *caller, const char *file, char *out, size_t size);

#endif
