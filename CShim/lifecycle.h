/*
 * lifecycle.h - the shim's load, fork, exit and credential changes.
 *
 * When the writer thread (writer.c) starts and stops, and what happens to the
 * sampler's tables around fork. Above writer.c; below the exported names
 * (interpose.c wraps the setuid family with hs_setxid_begin/end, api.c sets a
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

#endif
