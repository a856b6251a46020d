/*
 * writer.h - the control channel, our three signals, and the writer thread.
 *
 * Everything that decides *when* a command runs: signals and control API
 * requests arrive on a pipe or the signalfd, and the writer thread runs them
 * (start, stop, snapshot, periodic snapshots) under the control lock. Load,
 * fork, exit and credentials (lifecycle.c) drive this file from above; the
 * exported sigaction/signal (interpose.c) and the control API (control_api.c) come in
 * through hs_sigaction, hs_signal and hs_writer_send.
 */
#ifndef HS_WRITER_H
#define HS_WRITER_H

#include <stdbool.h>
#include <signal.h>

/* Commands, in the order of their signals (base+0, +1, +2). */
enum hs_cmd { HS_CMD_START = 0, HS_CMD_STOP = 1, HS_CMD_SNAPSHOT = 2, HS_CMD_COUNT = 3 };

/* The control lock: serialises commands, snapshots, exit and fork.
 * Lock order: control lock -> live stripes -> stack stripes -> arena. */
void hs_ctl_lock(void);
void hs_ctl_unlock(void);

/* Whether signal control works: set up (hs_ctl_set_ready, written once at
 * load) and not inert (AT_SECURE, or setup failed: hs_ctl_set_inert, written
 * at load or in a fork child's setup). Read without the lock. */
bool hs_ctl_ready(void);
bool hs_ctl_inert(void);
void hs_ctl_set_ready(void);
void hs_ctl_set_inert(void);

/* Load: our signals (SIGRTMIN + hs_opt.signal_base ...), the channel, the
 * writer thread, the handlers. 0 or -errno. Context: constructor, guard set. */
int hs_writer_init(void);

/* Opens the channel in the host's table if the host closed it, and starts a
 * writer thread unless one runs. 0 or -errno.
 * Context: control lock held (a fork child's setup, after setxid). */
int hs_writer_start(void);

/* hs_writer_start for a process that had none (a fork child's first
 * allocation, HEAPSNAP_WRITER=on-demand): on failure one line on stderr and
 * signal control goes inert; a fork child's pending set-up is done.
 * Context: control lock held, guard set. */
void hs_writer_setup(void);

/* The interposed pthread_create (interpose.c): the next one's, then, under
 * HEAPSNAP_WRITER=on-demand, the writer made with the host's first thread
 * (writer.c, "The writer made on demand"). Context: any host thread. */
int hs_pthread_create(pthread_t *t, const pthread_attr_t *attr, void *(*fn)(void *), void *arg);

/* The interposed pthread_sigmask (process false) and sigprocmask (true):
 * the next one's, after asking for the writer (at the next allocation)
 * when one of our signals is blocked with none to read it. Context: any,
 * async-signal-safe once resolved. */
int hs_sigmask(int how, const sigset_t *set, sigset_t *old, bool process);

/* Asks the writer thread to exit and joins it: false if none runs here (or
 * the caller is the writer). Context: a host thread, no shim lock held. */
bool hs_writer_leave(void);

/* HEAPSNAP_START: runs start now, on the calling thread, then wakes the
 * writer to arm the periodic timer. Context: constructor. */
void hs_writer_start_now(void);

/* Normal exit: quiesce and, with HEAPSNAP_AT_EXIT, write the AT_EXIT
 * snapshot; a start that comes after it is ignored (the process is going
 * away). Context: the exiting thread, guard set, no shim lock held. */
void hs_writer_at_exit(void);

/* Fork: prepare/parent take and release the control lock; child gives the
 * child fresh control state (lock, no channel, no writer, seq 0, none of the
 * parent's files to thin) and, when the parent was sampling (`sampling`),
 * a start request that its writer runs as soon as it exists.
 * Context: the forking thread / the fork child, single-threaded. */
void hs_writer_fork_prepare(void);
void hs_writer_fork_parent(void);
void hs_writer_fork_child(bool sampling);

/* Queues a command as if its signal arrived. Context: any host thread. */
void hs_writer_send(enum hs_cmd cmd);

/* The sigaction/signal interposers (interpose.c exports the names). */
int hs_sigaction(int sig, const struct sigaction *act, struct sigaction *old);
sighandler_t hs_signal(int sig, sighandler_t handler);

#endif
