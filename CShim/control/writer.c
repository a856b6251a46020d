/*
 * writer.c - our three signals, the control channel, and the writer thread.
 *
 * A signal handler (on_signal) checks that it runs in the process the
 * channel belongs to (getpid: a fork child before its atfork handler still
 * holds the parent's pipe), checks with fstat that the pipe is still ours
 * (hosts close and reuse descriptors) and writes the command byte into the
 * non-blocking pipe. Only if that write fails does it send the signal on to
 * the writer thread (tgkill, read back from the writer's signalfd) or, with
 * no writer, make one atomic store (pending[cmd] = 1). Under
 * HEAPSNAP_WRITER=on-demand (the default), whose process has no writer
 * until it is needed, the handler then has one made (see "The writer made
 * on demand" below): at once if it interrupted the process's only thread
 * waiting in a system call, else by the next allocation or, failing that,
 * by the handler again when a retry timer finds the thread waiting.
 * Nothing else: no unwinding; errno preserved.
 *
 * The writer thread runs in a descriptor table of its own, takes each burst
 * of commands, sorts it (start, snapshot, stop) and runs it under ctl_lock.
 * Stacks are never unwound here: only allocating threads unwind, inside
 * malloc.
 *
 * ctl_lock serialises commands, snapshots, exit and fork. Lock order:
 * ctl_lock -> live stripes -> stack stripes -> arena.
 *
 * Hosts that install their own handler for our signals (sigaction/signal are
 * interposed, interpose.c): we keep ours, remember theirs (returned as the
 * old action), and warn once on stderr how to move our signals with
 * HEAPSNAP_SIGNAL_BASE. Both names are needed: glibc's signal() calls its
 * internal __sigaction, not the PLT sigaction (sysdeps/posix/signal.c).
 *
 * When the writer starts and stops (load, fork child, setxid, exit) is
 * lifecycle.c's business; this file only provides the means.
 *
 * References: signal-safety(7) for what a handler may call, signalfd(2) for
 * process-directed signals blocked in every thread, unshare(2) CLONE_FILES,
 * close_range(2), setrlimit(2) for SIGXFSZ.
 */
#define _GNU_SOURCE
#include "control/writer.h"
#include "base/stderr.h"
#include "base/options.h"
#include "base/forward.h"
#include "base/got.h"
#include "sampling/sampler.h"
#include "snapshot/snapshot_writer.h"
#include "snapshot/retention.h"
#include "tables/pyframes.h"
#include "python/pysetup.h"
#include "python/pyalloc.h"
#include "snapshot/timeline.h"
#include "tables/unwind.h"
#include "base/clock.h"
#include "include/heapsnap.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/single_threaded.h>
#include <sys/syscall.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

static pthread_mutex_t ctl_lock = PTHREAD_MUTEX_INITIALIZER;

/* Control state. Fields are written under ctl_lock unless noted. */
static struct {
    bool ready;                 /* constructor finished (written once) */
    bool inert;                 /* AT_SECURE or setup failed (written at load or in a fork child's setup) */
    int sig0;                   /* SIGRTMIN + base (written at load) */
    int rfd, wfd;               /* request pipe; replaced in a fork child (wfd read by handlers) */
    int wfd_parent;             /* the pipe's write end as created, for closing */
    int sfd;                    /* signalfd for our signals; replaced in a fork child */
    struct hs_fdid pipe_id, sfd_id;     /* what rfd/wfd and sfd must be */
    pid_t pid;                  /* getpid() of the process these belong to */
    uint32_t seq;               /* next snapshot sequence number */
    uint64_t start_ns;          /* when the current session started */
    uint64_t next_periodic_ns;  /* CLOCK_MONOTONIC deadline, 0 = none */
    pthread_t writer;           /* the writer thread, valid while writer_alive */
    pid_t writer_tid;           /* its thread id, 0 = none (written by the writer, read by handlers) */
    bool writer_alive;          /* a writer thread runs in this process */
    bool writer_exit;           /* asked to exit (setxid, see hs_writer_leave) */
    bool at_exit_done;          /* this session's AT_EXIT snapshot was written (Python's atexit) */
    bool exiting;               /* the process is exiting (its at-exit ran): no new session */
} ctl = { .rfd = -1, .wfd = -1, .wfd_parent = -1, .sfd = -1 };

/* Requests that could not be passed on: set (atomic store) by a signal
 * handler or a host thread when the pipe write failed and there is no
 * writer to tgkill (a fork child not set up yet, between setxid stop and
 * restart), or by a signal handler in a fork child before its atfork
 * handler ran. Taken (atomic exchange) by the writer at each wake-up. */
static int pending[HS_CMD_COUNT];

/* The host's wishes for our signals: protected by ctl_lock except that
 * signal handlers never touch them. */
static struct sigaction host_act[HS_CMD_COUNT];
static int host_warned;

void hs_ctl_lock(void) { pthread_mutex_lock(&ctl_lock); }
void hs_ctl_unlock(void) { pthread_mutex_unlock(&ctl_lock); }
bool hs_ctl_ready(void) { return ctl.ready && !ctl.inert; }
bool hs_ctl_inert(void) { return ctl.inert; }
void hs_ctl_set_ready(void) { ctl.ready = true; }
void hs_ctl_set_inert(void) { ctl.inert = true; }

/* --------------------------------------------------------------- signals */

static int cmd_of(int sig)
{
    int i = sig - ctl.sig0;
    return ctl.ready && !ctl.inert && i >= 0 && i < HS_CMD_COUNT ? i : -1;
}

/* The retry timer's signals carry this value (see "The writer made on
 * demand"). */
#define HS_RETRY_COOKIE 0x68736e64

static void on_demand(const ucontext_t *uc);

/* The request pipe's write end lives in the host's descriptor table, where
 * the host may close it: then the signal itself goes to the writer thread,
 * which blocks it and reads it from its signalfd (in its own table, see
 * private_fd_table). Without a writer (none yet, or between setxid stop and
 * restart) the request waits in pending[]. `uc` is the interrupted
 * context when called from our handler, else NULL. Context: signal handler
 * or any host thread: async-signal-safe. */
static void notify_writer(pid_t pid, int sig, int cmd, const ucontext_t *uc)
{
    pid_t tid = __atomic_load_n(&ctl.writer_tid, __ATOMIC_ACQUIRE);
    if (!tid || syscall(SYS_tgkill, pid, tid, sig) != 0) {
        __atomic_store_n(&pending[cmd], 1, __ATOMIC_RELEASE);
        if (hs_opt.writer_on_demand && !tid)
            on_demand(uc);
    }
}

static void on_retry(const ucontext_t *uc);

/* Passes our signal to the writer: one write(2) of the command byte; only
 * if that cannot be done, notify_writer (tgkill or one atomic store), or one
 * atomic store in a fork child not set up yet. Also getpid and fstat.
 * The retry timer's signals (si_code SI_TIMER, our cookie) carry no
 * command. Context: signal handler: async-signal-safe only. errno is
 * preserved for the interrupted code. */
static void on_signal(int sig, siginfo_t *si, void *uc)
{
    int saved = errno;
    int i = sig - ctl.sig0;
    if (si && si->si_code == SI_TIMER && si->si_value.sival_int == HS_RETRY_COOKIE) {
        on_retry(uc);
    } else if (i >= 0 && i < HS_CMD_COUNT) {
        unsigned char b = (unsigned char)i;
        int fd = __atomic_load_n(&ctl.wfd, __ATOMIC_RELAXED);
        /* getpid(): between fork(2) and our atfork child handler a child
         * still holds its parent's pipe; its byte would run in the parent. */
        pid_t pid = getpid();
        if (pid != __atomic_load_n(&ctl.pid, __ATOMIC_RELAXED))
            __atomic_store_n(&pending[i], 1, __ATOMIC_RELEASE);     /* a fork child, not set up yet */
        else if (!hs_fd_is(fd, ctl.pipe_id) || write(fd, &b, 1) != 1)
            notify_writer(pid, sig, i, uc);     /* no writer yet, pipe closed by the host, or full */
    }
    errno = saved;
}

/* One line, once per process: the host wants one of our signals. */
static void warn_taken(int sig)
{
    if (__atomic_exchange_n(&host_warned, 1, __ATOMIC_RELAXED))
        return;
    char s[16], k[16], b[16];
    hs_u64s(s, (uint64_t)sig);
    hs_u64s(k, (uint64_t)(sig - SIGRTMIN));
    hs_u64s(b, (uint64_t)hs_opt.signal_base + 3);
    char line[400] = "the program sets its own action for signal ";
    strcat(line, s);
    strcat(line, " (SIGRTMIN+");
    strcat(line, k);
    strcat(line, "), which heapsnap uses: heapsnap keeps it, the program's action will not run; "
                 "if the program needs it, restart with HEAPSNAP_SIGNAL_BASE=");
    strcat(line, b);
    hs_say(line, " (or another free offset) to move heapsnap's three signals", NULL, NULL);
}

static int install_handlers(void)
{
    for (int i = 0; i < HS_CMD_COUNT; i++) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_sigaction = on_signal;
        sa.sa_flags = SA_RESTART | SA_SIGINFO;
        sigemptyset(&sa.sa_mask);
        if (hs_real.sigaction_fn(ctl.sig0 + i, &sa, &host_act[i]) != 0)
            return -errno;
        /* A library constructor that ran before ours already took it (an
         * inherited SIG_IGN is not a handler: no warning for that). */
        if (host_act[i].sa_handler != SIG_DFL && host_act[i].sa_handler != SIG_IGN)
            warn_taken(ctl.sig0 + i);
    }
    return 0;
}

int hs_sigaction(int sig, const struct sigaction *act, struct sigaction *old)
{
    int i = cmd_of(sig);
    if (i < 0)
        return hs_real.sigaction_fn(sig, act, old);
    /* One of ours: keep our handler, remember the host's wish. */
    struct sigaction prev = host_act[i];
    if (act) {
        host_act[i] = *act;
        /* A handler, SIG_IGN or SIG_DFL (whose action terminates): the
         * program wants the signal for itself, or resets every signal; either
         * way it does not get what it asked for, so say so (once). */
        warn_taken(sig);
    }
    if (old)
        *old = prev;
    return 0;
}

sighandler_t hs_signal(int sig, sighandler_t handler)
{
    struct sigaction sa, old;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = handler;
    sa.sa_flags = SA_RESTART;       /* BSD semantics, as glibc's signal() */
    sigemptyset(&sa.sa_mask);
    sigaddset(&sa.sa_mask, sig);
    if (hs_sigaction(sig, &sa, &old) != 0)
        return SIG_ERR;
    return old.sa_handler;
}

/* ---------------------------------------------------------------- writer */

/* Writes a snapshot with the next sequence number. Context: ctl_lock held. */
static void snapshot(uint32_t flags)
{
    struct hs_snap_info info = {
        .seq = ctl.seq++, .flags = flags | (hs_opt.rate <= 1 ? HEAPSNAP_FLAG_EXACT : 0),
        .session = __atomic_load_n(&hs_session, __ATOMIC_RELAXED), .start_ns = ctl.start_ns,
    };
    bool guarded = hs_guard_enter();
    (void)hs_snapshot_write(&info);
    ctl.seq = info.seq + 1;
    hs_guard_leave(guarded);
}

/* snapshot() on a host thread (the exiting one). Past RLIMIT_FSIZE, write(2)
 * raises SIGXFSZ, whose default action kills the host; the writer thread
 * blocks every signal, a host thread may not. Block it here so that write
 * fails with EFBIG (one line, temporary removed), and take back a SIGXFSZ
 * that we caused, leaving one the host already had pending (setrlimit(2),
 * write(2)). Context: ctl_lock held, a host thread. */
static int thread_mask(int how, const sigset_t *set, sigset_t *old);

static void snapshot_blocking_sigxfsz(uint32_t flags)
{
    sigset_t xfsz, old, before;
    sigemptyset(&xfsz);
    sigaddset(&xfsz, SIGXFSZ);
    thread_mask(SIG_BLOCK, &xfsz, &old);
    sigpending(&before);
    snapshot(flags);
    if (!sigismember(&before, SIGXFSZ)) {
        struct timespec now = { 0, 0 };
        while (sigtimedwait(&xfsz, NULL, &now) == SIGXFSZ)
            ;
    }
    thread_mask(SIG_SETMASK, &old, NULL);
}

/* ---------------------------------------------------------------- Python */

/* Registered with pyframes.c at load: the first time a sample finds a thread
 * running Python, wake the writer so that its Python tick runs soon.
 * Context: inside malloc: one write(2). */
static void py_first_seen(void)
{
    unsigned char wake = 0xFF;
    int fd = __atomic_load_n(&ctl.wfd, __ATOMIC_RELAXED);
    if (hs_fd_is(fd, ctl.pipe_id))
        (void)!write(fd, &wake, 1);
}

/* fn under ctl_lock and the reentrancy guard, errno as it was; with `try`
 * (a thread inside an allocation, or a signal handler), only if the lock
 * is free: busy, the writer is at work, or the caller asks again later.
 * False if fn did not run. */
static bool under_ctl_lock(void (*fn)(void), bool try)
{
    if ((try ? pthread_mutex_trylock(&ctl_lock) : pthread_mutex_lock(&ctl_lock)) != 0)
        return false;
    int saved = errno;
    bool guarded = hs_guard_enter();
    fn();
    hs_guard_leave(guarded);
    errno = saved;
    pthread_mutex_unlock(&ctl_lock);
    return true;
}

/* Registered with pyframes.c at load, called by samples that find Python
 * while hs_py_wanted is set (pyframes.h): the session's Python set-up from
 * the allocating thread, which is running now, rather than from the writer,
 * which a loaded machine may not schedule for tens of milliseconds (a short
 * script's first objects would go unseen, or be charged where their block
 * was first allocated). Only what needs no lock of the host's: trylock of
 * ctl_lock (busy: the writer is at work and does it itself), the wrappers,
 * Py_AddPendingCall (its lock is never held around an allocation). Once
 * everything is queued, the samples stop calling.
 * Context: inside malloc, sampled path, guard held, no shim lock held. */
static void py_on_thread(void) { (void)under_ctl_lock(hs_pysetup_on_thread, true); }

/* Registered with pyalloc.c at load: its block cache's switch, from the
 * allocating thread (busy: the next sample asks again). Context: inside a
 * Python allocator wrapper's sampled path, GIL held (ctl_lock may be this
 * thread's own: the trylock then fails). */
static void pyalloc_switch(void) { (void)under_ctl_lock(hs_pyalloc_switch, true); }

/* Attached (got.h): the process's calls reach the shim only through the
 * slots routed here, at each start, and again when objects were loaded
 * since (the writer's tick) for those dlopen'ed without our dlopen route
 * (glibc's own, for NSS or iconv). Preloaded: nothing to do.
 * Context: ctl_lock held. */
static void route_objects(bool start)
{
    if (!hs_got_enabled())
        return;
    int n = hs_got_route(start);
    if (n < 0)
        hs_say_errno("cannot route every allocation function of the process to heapsnap", -n);
}

/* Context: ctl_lock held. */
static void run(int cmd)
{
    switch (cmd) {
    case HS_CMD_START:
        if (ctl.exiting) {
            /* A start after the at-exit snapshot would sample, and write
             * snapshots, in a process that is going away: a file the exit
             * cuts off mid-write would stay behind under its temporary name. */
            hs_say("start ignored: the process is exiting", NULL, NULL, NULL);
            break;
        }
        route_objects(true);
        hs_sampler_start();
        hs_timeline_start();
        ctl.start_ns = hs_now_ns(CLOCK_REALTIME);
        ctl.next_periodic_ns = hs_opt.interval_ns ? hs_now_ns(CLOCK_MONOTONIC) + hs_opt.interval_ns : 0;
        ctl.at_exit_done = false;
        hs_pysetup_start();
        break;
    case HS_CMD_STOP:
        if (__atomic_load_n(&hs_active, __ATOMIC_RELAXED) != 1) {
            hs_say("stop ignored: not sampling", NULL, NULL, NULL);
            break;
        }
        hs_pysetup_stop();
        hs_quiesce();                   /* exact final view, then free it all */
        /* Attached: every slot back as it was found, before the final
         * snapshot appears (what `heapsnap detach` waits for); the view
         * does not change after the quiesce. */
        hs_got_restore();
        snapshot(HEAPSNAP_FLAG_FINAL);
        hs_pysetup_undo();
        hs_sampler_release();
        hs_timeline_release();
        ctl.next_periodic_ns = 0;
        break;
    case HS_CMD_SNAPSHOT:
        if (__atomic_load_n(&hs_active, __ATOMIC_RELAXED) != 1) {
            hs_say("snapshot ignored: not sampling", NULL, NULL, NULL);
            break;
        }
        snapshot(0);
        break;
    }
}

static void open_signalfd(void);

/* fd while it is still the descriptor opened as `id` (the host did not
 * close it, nor reuse its number), else -1. */
static int ours(int fd, struct hs_fdid id) { return hs_fd_is(fd, id) ? fd : -1; }

/* Gives the writer thread a descriptor table of its own (unshare(2)
 * CLONE_FILES) holding only the channel and the stderr dup. Descriptors it
 * opens for a snapshot then never take numbers in the host's table, so a
 * host that closes numbers it does not own (bash closes some twice; daemons
 * close them all) can neither close the snapshot file under us nor get its
 * number back and receive our bytes; and the host's own files are not held
 * open by our copy of its table. If unshare fails, the writer shares the
 * host's table as before.
 *
 * The thread that made the writer does not wait for this: the host may
 * close the channel's numbers (daemons close every descriptor as main
 * begins) and reuse them before the copy is made. So a number is kept only
 * if it is still ours (the identity taken when it was opened): the host's
 * files are never held open by the copy, and a channel the host closed
 * falls back as it does later on (the handler's tgkill to the writer, the
 * signalfd reopened here, see writer_main). Context: writer thread, at its
 * start. */
static void private_fd_table(void)
{
    if (unshare(CLONE_FILES) != 0)
        return;
    int keep[4] = { ours(ctl.rfd, ctl.pipe_id), ours(ctl.wfd_parent, ctl.pipe_id), ours(ctl.sfd, ctl.sfd_id), hs_say_fd() };
    for (int i = 0; i < 4; i++)             /* sort, -1 first */
        for (int j = i + 1; j < 4; j++)
            if (keep[j] < keep[i]) {
                int t = keep[i];
                keep[i] = keep[j];
                keep[j] = t;
            }
    unsigned lo = 0;
    for (int i = 0; i <= 4; i++) {
        unsigned hi = i < 4 ? (unsigned)keep[i] : ~0u;     /* close [lo, hi) */
        if (i < 4 && keep[i] < 0)
            continue;
        if (hi > lo && syscall(SYS_close_range, lo, hi - 1, 0) != 0)
            for (unsigned fd = lo; fd < hi && fd < 65536; fd++)
                close((int)fd);
        if (i < 4)
            lo = (unsigned)keep[i] + 1;
    }
}

/* How long the writer waits for the rest of a burst of signals (below). */
#define HS_GRACE_NS (20 * 1000 * 1000ull)

/* libunwind (unwind.c) is loaded on the first request, so that a process
 * that is never sampled does not map it: by the writer before it takes
 * ctl_lock to run a request, since dlopen takes the loader's lock and a
 * host thread in dlopen may fork (whose prepare handler takes ctl_lock)
 * from a library's constructor; by HEAPSNAP_START's synchronous start
 * before anything else. Context: writer thread, no lock held. */
static bool request_waiting(void)
{
    for (int c = 0; c < HS_CMD_COUNT; c++)
        if (__atomic_load_n(&pending[c], __ATOMIC_ACQUIRE))
            return true;
    return false;
}

/* The writer thread. It also wakes every 2 s to run requests that could not
 * be passed on (pending[]), and while sampling every 100 ms for the series
 * (hs_timeline_tick).
 * Context: writer thread, all signals blocked, its own descriptor table. */
static void *writer_main(void *arg)
{
    (void)arg;
    hs_guard_enter();                   /* for good: nothing this thread allocates is sampled */
    /* Named by itself: pthread_setname_np from the creating thread opens
     * /proc/self/task/TID/comm, a path walk on the loading thread that was
     * a third of what the thread cost a short process. */
    prctl(PR_SET_NAME, "heapsnap", 0, 0, 0);
    private_fd_table();
    __atomic_store_n(&ctl.writer_tid, (pid_t)syscall(SYS_gettid), __ATOMIC_RELEASE);
    for (;;) {
        int timeout = 2000;
        if (request_waiting())
            hs_unwind_load();           /* see request_waiting */
        pthread_mutex_lock(&ctl_lock);
        if (ctl.writer_exit) {
            ctl.writer_exit = false;
            __atomic_store_n(&ctl.writer_tid, 0, __ATOMIC_RELEASE);
            pthread_mutex_unlock(&ctl_lock);
            return NULL;
        }
        /* Our signals sent on by handlers (notify_writer) arrive here, so
         * the signalfd must work even if the host closed it before we had
         * a table of our own. */
        if (!hs_fd_is(ctl.sfd, ctl.sfd_id))
            open_signalfd();
        /* Requests made before this thread existed (a fork child's first
         * signals) or whose byte could not be written. */
        for (int c = 0; c < HS_CMD_COUNT; c++)
            if (__atomic_exchange_n(&pending[c], 0, __ATOMIC_ACQ_REL))
                run(c);
        if (ctl.next_periodic_ns && __atomic_load_n(&hs_active, __ATOMIC_RELAXED) == 1) {
            uint64_t now = hs_now_ns(CLOCK_MONOTONIC);
            if (now >= ctl.next_periodic_ns) {
                snapshot(HEAPSNAP_FLAG_PERIODIC);
                ctl.next_periodic_ns = now + hs_opt.interval_ns;
            }
            uint64_t wait_ms = (ctl.next_periodic_ns - now + 999999) / 1000000;
            if (wait_ms < (uint64_t)timeout)
                timeout = (int)wait_ms;
        }
        if (__atomic_load_n(&hs_active, __ATOMIC_RELAXED) == 1 && hs_got_enabled() && hs_got_objects_added())
            route_objects(false);
        hs_pysetup_tick(&timeout);
        if (__atomic_load_n(&hs_active, __ATOMIC_RELAXED) == 1)
            hs_timeline_tick(&timeout);
        /* poll() skips negative descriptors: one the host closed (only
         * possible if unshare failed) is not polled, so it cannot spin us. */
        int rfd = ours(ctl.rfd, ctl.pipe_id), sfd = ctl.sfd;
        pthread_mutex_unlock(&ctl_lock);

        struct pollfd pfd[2] = { { .fd = rfd, .events = POLLIN }, { .fd = sfd, .events = POLLIN } };
        int r = poll(pfd, sfd >= 0 ? 2 : 1, timeout);
        if (r <= 0)
            continue;                   /* timeout or EINTR: the checks above run again */
        /* Requests that arrive together carry no order: two signals sent
         * back to back can be taken by two host threads whose handlers run
         * in either order, and the signalfd (signals every host thread
         * blocks) is readable while the kernel is still waking the thread
         * that will run the handler. So wait a moment for every handler of
         * a burst to run, take the whole burst, and run it in the order a
         * user means when sending several at once: start, snapshot, stop
         * (a stable sort: repeats keep their places). */
        unsigned char cmds[64];
        ssize_t n = 0;
        /* Wake-up bytes alone (Python seen) carry no command:
         * no grace for them, so the Python set-up of hs_pysetup_tick is not
         * held back 20 ms by every wake-up while a program starts. */
        if (!(sfd >= 0 && (pfd[1].revents & POLLIN)) && rfd >= 0 && (pfd[0].revents & POLLIN)) {
            pthread_mutex_lock(&ctl_lock);
            if (hs_fd_is(rfd, ctl.pipe_id))
                n = read(rfd, cmds, sizeof cmds);
            pthread_mutex_unlock(&ctl_lock);
            if (n < 0)
                n = 0;
            if (!memchr(cmds, HS_CMD_START, (size_t)n) && !memchr(cmds, HS_CMD_SNAPSHOT, (size_t)n) &&
                !memchr(cmds, HS_CMD_STOP, (size_t)n))
                continue;
        }
        /* A command: libunwind before the lock (see request_waiting), within
         * the grace, so that the first request's burst is not longer. */
        uint64_t woke = hs_now_ns(CLOCK_MONOTONIC);
        hs_unwind_load();
        uint64_t spent = hs_now_ns(CLOCK_MONOTONIC) - woke;
        if (spent < HS_GRACE_NS) {
            struct timespec grace = { 0, (long)(HS_GRACE_NS - spent) };
            nanosleep(&grace, NULL);
        }
        pthread_mutex_lock(&ctl_lock);
        if (rfd >= 0 && hs_fd_is(rfd, ctl.pipe_id)) {
            ssize_t more = read(rfd, cmds + n, sizeof cmds - (size_t)n);
            if (more > 0)
                n += more;
        }
        if (sfd >= 0 && hs_fd_is(sfd, ctl.sfd_id)) {
            struct signalfd_siginfo si[8];
            ssize_t got = read(sfd, si, sizeof si);
            for (ssize_t i = 0; got > 0 && i < got / (ssize_t)sizeof si[0] && n < (ssize_t)sizeof cmds; i++) {
                int c = (int)si[i].ssi_signo - ctl.sig0;
                if (c >= 0 && c < HS_CMD_COUNT && si[i].ssi_code != SI_TIMER)
                    cmds[n++] = (unsigned char)c;
            }
        }
        static const int rank[HS_CMD_COUNT] = { [HS_CMD_START] = 0, [HS_CMD_SNAPSHOT] = 1, [HS_CMD_STOP] = 2 };
        ssize_t m = 0;
        for (ssize_t i = 0; i < n; i++)         /* drop wake bytes, insertion-sort by rank */
            if (cmds[i] < HS_CMD_COUNT) {
                unsigned char c = cmds[i];
                ssize_t j = m++;
                for (; j > 0 && rank[cmds[j - 1]] > rank[c]; j--)
                    cmds[j] = cmds[j - 1];
                cmds[j] = c;
            }
        for (ssize_t i = 0; i < m; i++)
            run(cmds[i]);
        pthread_mutex_unlock(&ctl_lock);
    }
}

/* (Re)opens the signalfd for our three signals; -1 if it cannot. */
static void open_signalfd(void)
{
    sigset_t ours;
    sigemptyset(&ours);
    for (int i = 0; i < HS_CMD_COUNT; i++)
        sigaddset(&ours, ctl.sig0 + i);
    ctl.sfd = hs_fd_high(signalfd(-1, &ours, SFD_CLOEXEC | SFD_NONBLOCK));
    ctl.sfd_id = hs_fd_id(ctl.sfd);
}

/* Opens the request pipe and the signalfd. 0 or -errno. */
static int open_channel(void)
{
    int fds[2];
    if (pipe2(fds, O_CLOEXEC | O_NONBLOCK) != 0)
        return -errno;
    ctl.rfd = hs_fd_high(fds[0]);
    ctl.wfd_parent = hs_fd_high(fds[1]);
    ctl.pipe_id = hs_fd_id(ctl.rfd);
    __atomic_store_n(&ctl.wfd, ctl.wfd_parent, __ATOMIC_RELEASE);
    open_signalfd();
    return 0;
}

/* Closes the channel's descriptors that are still ours (numbers the host
 * closed and reused are forgotten, not closed) and forgets them all.
 * Context: ctl_lock held, or single-threaded (a fork child). */
static void forget_channel(void)
{
    __atomic_store_n(&ctl.wfd, -1, __ATOMIC_RELEASE);
    if (hs_fd_is(ctl.rfd, ctl.pipe_id))
        close(ctl.rfd);
    if (hs_fd_is(ctl.wfd_parent, ctl.pipe_id))
        close(ctl.wfd_parent);
    if (hs_fd_is(ctl.sfd, ctl.sfd_id))
        close(ctl.sfd);
    ctl.rfd = ctl.wfd_parent = ctl.sfd = -1;
}

/* Makes sure the channel is open in the calling thread's (the host's) table
 * before a writer is started from it: the host may have closed it (or
 * reused the numbers) since it was opened. Stale numbers are forgotten, not
 * closed, unless they are still ours. 0 or -errno. Context: ctl_lock held,
 * or the constructor. */
static int ensure_channel(void)
{
    if (hs_fd_is(ctl.rfd, ctl.pipe_id) && hs_fd_is(ctl.wfd_parent, ctl.pipe_id) &&
        (ctl.sfd < 0 || hs_fd_is(ctl.sfd, ctl.sfd_id)))
        return 0;
    forget_channel();
    return open_channel();
}

typedef int (*create_fn)(pthread_t *, const pthread_attr_t *, void *(*)(void *), void *);
typedef int (*mask_fn)(int, const sigset_t *, sigset_t *);

/* The definitions after ours of the names interpose.c exports for the
 * writer's sake. Found at load (find_next), since a signal handler must not
 * call dlsym, nor should the shim's own calls (libunwind's sigprocmask
 * inside a sample among them); on first use only if the host calls one
 * before our constructor ran. */
static struct {
    create_fn create;
    mask_fn mask[2];            /* pthread_sigmask, sigprocmask */
} next;

static void *find(void **slot, const char *name)
{
    void *fn = __atomic_load_n(slot, __ATOMIC_ACQUIRE);
    if (!fn) {
        fn = hs_next_symbol(name);
        __atomic_store_n(slot, fn, __ATOMIC_RELEASE);
    }
    return fn;
}

static create_fn find_create(void) { return (create_fn)find((void **)&next.create, "pthread_create"); }

static mask_fn find_mask(bool process)
{
    return (mask_fn)find((void **)&next.mask[process], process ? "sigprocmask" : "pthread_sigmask");
}

/* pthread_sigmask for the shim's own use: the next one's, not ours. */
static int thread_mask(int how, const sigset_t *set, sigset_t *old)
{
    mask_fn fn = find_mask(false);
    return fn ? fn(how, set, old) : ENOSYS;
}

static void find_next(void)
{
    (void)find_create();
    (void)find_mask(false);
    (void)find_mask(true);
}

static void disarm_retry(void);

/* Starts the writer thread with every signal blocked. 0 or -errno.
 * Context: ctl_lock held, or the constructor. */
static int spawn_writer(void)
{
    create_fn create = find_create();
    if (!create)
        return -ENOSYS;
    sigset_t all;
    sigfillset(&all);
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 256 << 10);
    pthread_attr_setsigmask_np(&attr, &all);       /* from its first instruction */
    int err = create(&ctl.writer, &attr, writer_main, NULL);
    pthread_attr_destroy(&attr);
    if (err)
        return -err;
    __atomic_store_n(&ctl.writer_alive, true, __ATOMIC_RELEASE);
    disarm_retry();
    /* Not waited for: it makes its own table when it first runs (see
     * private_fd_table). Waiting here made every preloaded process spin in
     * sched_yield until the new thread was scheduled: milliseconds of CPU
     * on a loaded machine, for each of the short processes a service starts. */
    return 0;
}

/* Opens the channel (if needed) and starts the writer thread unless one
 * runs. 0 or -errno. Context: constructor, or ctl_lock held (a fork child's
 * first allocation, after setxid). */
int hs_writer_start(void)
{
    if (ctl.writer_alive)
        return 0;
    int err = ensure_channel();
    return err ? err : spawn_writer();
}

void hs_writer_setup(void)
{
    int err = hs_writer_start();
    if (err) {
        hs_say_errno("cannot start the writer thread; signals are ignored", -err);
        hs_ctl_set_inert();
    }
    if (hs_child_setup_pending())
        hs_sampler_setup_done();
}

/* ------------------------------------------------ the writer made on demand
 *
 * Under HEAPSNAP_WRITER=on-demand (the default) a process runs no thread of
 * ours until it needs one (DESIGN.md, "What loading costs"). The writer is
 * made:
 *
 * 1. with the host's first thread (pthread_create, interposed): a
 *    multi-threaded host has already given up glibc's single-threaded fast
 *    paths, so the writer then costs it only its creation;
 * 2. by the handler of the first command, at once, if it interrupted the
 *    process's only thread (glibc's __libc_single_threaded, and this thread
 *    is the main one) outside the shim, waiting in a system call: a
 *    pre-fork master on its pipe, an idle worker in accept or epoll_wait, a
 *    program blocked on read. A thread that waits is not inside malloc
 *    (which makes no waiting call) nor holds any of the locks
 *    pthread_create takes (the loader's stack and TLS locks are held only
 *    across calls that do not wait), and, as the only thread, nobody else
 *    does. The context shows it: the kernel either backed the instruction
 *    pointer up to the syscall instruction to run it again after the
 *    handler, with its number back in the register (only the calls in
 *    waits() are accepted: not fork or clone, which are restarted too), or
 *    returned -EINTR from it, the instruction pointer just past it;
 * 3. otherwise by the next allocation of any thread (the routes are moved
 *    to the child-setup state, hs_sampler_ask_setup), as a fork child's
 *    first allocation makes its own;
 * 4. and, in case no allocation comes (a worker running Python code whose
 *    objects come from pymalloc's arenas, then waiting), by the handler of
 *    a timer (timer_create(2), SIGEV_THREAD_ID: this thread) that sends our
 *    start signal with a cookie every HS_RETRY_NS and tries 2 again. It is
 *    deleted as soon as the writer exists. A timer signal that finds the
 *    thread in a call that returns EINTR on any handled signal
 *    (epoll_wait, select, nanosleep) makes it return EINTR once more, as
 *    our signal itself did; the writer is made then.
 *
 * In the handler everything is a system call or an atomic, except
 * pthread_create in case 2, made only in the state described. */

#define HS_RETRY_NS (20 * 1000 * 1000L)

static struct {
    int armed;          /* 1 from the first arm until disarmed */
    int id;             /* the kernel's timer id, -1 = none */
} retry = { 0, -1 };

/* System calls a thread waits in, that are restarted after a handler
 * (SA_RESTART) and that no glibc function calls with a lock held that
 * pthread_create needs. */
static bool waits(long nr)
{
    switch (nr) {
    case SYS_read: case SYS_readv: case SYS_write: case SYS_writev:
    case SYS_recvfrom: case SYS_recvmsg: case SYS_sendto: case SYS_sendmsg:
    case SYS_accept: case SYS_accept4: case SYS_connect:
    case SYS_wait4: case SYS_waitid:
        return true;
    default:
        return false;
    }
}

/* Whether the interrupted thread waits in a system call (see above). The
 * bytes next to the instruction pointer are read only within its page. */
static bool waiting(const ucontext_t *uc)
{
#if defined(__x86_64__)
    uintptr_t ip = (uintptr_t)uc->uc_mcontext.gregs[REG_RIP];
    long ret = (long)uc->uc_mcontext.gregs[REG_RAX];
    const unsigned char *at = (const unsigned char *)ip;
    if (ret == -EINTR)
        return (ip & 4095) >= 2 && at[-2] == 0x0f && at[-1] == 0x05;       /* syscall */
    return (ip & 4095) <= 4094 && at[0] == 0x0f && at[1] == 0x05 && waits(ret);
#elif defined(__aarch64__)
    uintptr_t pc = (uintptr_t)uc->uc_mcontext.pc;
    const uint32_t *at = (const uint32_t *)pc;
    if (pc & 3)
        return false;
    if ((long)uc->uc_mcontext.regs[0] == -EINTR)
        return (pc & 4095) >= 4 && at[-1] == 0xd4000001;                    /* svc #0 */
    return at[0] == 0xd4000001 && waits((long)uc->uc_mcontext.regs[8]);
#else
    (void)uc;
    return false;
#endif
}

/* Under HEAPSNAP_WRITER=on-demand, signal control set up, none running,
 * and the caller not inside the shim (whose own calls never ask). */
static bool writer_missing(void)
{
    return hs_opt.writer_on_demand && hs_ctl_ready() && !hs_guard_held() &&
           !__atomic_load_n(&ctl.writer_alive, __ATOMIC_ACQUIRE);
}

/* Case 2: makes the writer from the handler if the interrupted thread
 * allows it. True if the writer runs now. */
static bool make_here(const ucontext_t *uc)
{
    return uc && writer_missing() && __libc_single_threaded && waiting(uc) &&
           syscall(SYS_gettid) == __atomic_load_n(&ctl.pid, __ATOMIC_RELAXED) &&
           __atomic_load_n(&next.create, __ATOMIC_ACQUIRE) && under_ctl_lock(hs_writer_setup, true);
}

static void disarm_retry(void)
{
    if (!__atomic_load_n(&retry.armed, __ATOMIC_ACQUIRE))
        return;
    int id = __atomic_exchange_n(&retry.id, -1, __ATOMIC_ACQ_REL);
    if (id >= 0)
        syscall(SYS_timer_delete, id);
}

/* Case 4: once per process (until the writer exists). */
static void arm_retry(void)
{
    if (__atomic_exchange_n(&retry.armed, 1, __ATOMIC_ACQ_REL))
        return;
    struct sigevent ev;
    memset(&ev, 0, sizeof ev);
    ev.sigev_notify = SIGEV_THREAD_ID;
    ev.sigev_signo = ctl.sig0 + HS_CMD_START;
    ev.sigev_value.sival_int = HS_RETRY_COOKIE;
    ev._sigev_un._tid = (pid_t)syscall(SYS_gettid);
    int id;
    if (syscall(SYS_timer_create, CLOCK_MONOTONIC, &ev, &id) != 0)
        return;
    __atomic_store_n(&retry.id, id, __ATOMIC_RELEASE);
    struct itimerspec every = { { 0, HS_RETRY_NS }, { 0, HS_RETRY_NS } };
    syscall(SYS_timer_settime, id, 0, &every, NULL);
    if (__atomic_load_n(&ctl.writer_alive, __ATOMIC_ACQUIRE))
        disarm_retry();             /* made meanwhile by an allocation */
}

/* A command found no writer. Context: our handler (uc set) or a host
 * thread (uc NULL: the control API makes the writer itself). */
static void on_demand(const ucontext_t *uc)
{
    hs_sampler_ask_setup();         /* case 3 */
    if (uc && !make_here(uc))
        arm_retry();
}

/* The retry timer fired. Context: our handler. */
static void on_retry(const ucontext_t *uc)
{
    if (__atomic_load_n(&ctl.writer_alive, __ATOMIC_ACQUIRE) || make_here(uc))
        disarm_retry();
}

/* Whether `set` holds one of our signals. */
static bool holds_ours(const sigset_t *set)
{
    for (int i = 0; i < HS_CMD_COUNT; i++)
        if (sigismember(set, ctl.sig0 + i) == 1)
            return true;
    return false;
}

int hs_sigmask(int how, const sigset_t *set, sigset_t *old, bool process)
{
    mask_fn fn = find_mask(process);
    if (!fn)
        return process ? (errno = ENOSYS, -1) : ENOSYS;
    /* Blocking one of our signals with no writer to read it from the
     * signalfd: the next allocation makes one (case 3; this may be a
     * handler of the host's, where no thread can be made). */
    if (set && how != SIG_UNBLOCK && writer_missing() && holds_ours(set))
        hs_sampler_ask_setup();
    return fn(how, set, old);
}

int hs_pthread_create(pthread_t *t, const pthread_attr_t *attr, void *(*fn)(void *), void *arg)
{
    create_fn create = find_create();
    if (!create)
        return EAGAIN;
    int err = create(t, attr, fn, arg);
    if (!err && writer_missing() && getpid() == __atomic_load_n(&ctl.pid, __ATOMIC_RELAXED))
        (void)under_ctl_lock(hs_writer_setup, false);
    return err;
}

static void python_at_exit(void);

/* Whether this thread blocks one of our signals: inherited (a test
 * runner's, a service manager's mask), they would reach no handler, and
 * without a writer nothing reads them from the signalfd; then the writer is
 * made at load. */
static bool mask_holds_ours(void)
{
    sigset_t now;
    sigemptyset(&now);
    return syscall(SYS_rt_sigprocmask, SIG_BLOCK, NULL, &now, _NSIG / 8) == 0 && holds_ours(&now);
}

int hs_writer_init(void)
{
    ctl.sig0 = SIGRTMIN + hs_opt.signal_base;
    ctl.pid = getpid();
    hs_py_first_seen = py_first_seen;
    hs_py_on_thread = py_on_thread;
    hs_pyalloc_switch_request = pyalloc_switch;
    hs_pysetup_at_exit = python_at_exit;
    /* HEAPSNAP_WRITER=on-demand: no thread (and no channel) until one is
     * needed (see "The writer made on demand"). */
    find_next();
    int err = 0;
    if (!hs_opt.writer_on_demand || hs_opt.start || mask_holds_ours())
        err = hs_writer_start();
    return err ? err : install_handlers();
}

void hs_writer_start_now(void)
{
    /* Synchronously, so nothing allocated after load is missed; then a
     * no-op byte wakes the writer to arm the HEAPSNAP_INTERVAL timer. */
    hs_unwind_load();
    pthread_mutex_lock(&ctl_lock);
    run(HS_CMD_START);
    pthread_mutex_unlock(&ctl_lock);
    unsigned char wake = 0xFF;
    (void)!write(ctl.wfd, &wake, 1);
}

/* The writer steps out of a credentials change (lifecycle.c, hs_setxid_begin):
 * it is told to exit, woken, and joined; a new one is started afterwards
 * with hs_writer_start. */
bool hs_writer_leave(void)
{
    pthread_mutex_lock(&ctl_lock);
    if (!ctl.writer_alive || pthread_equal(ctl.writer, pthread_self()) ||
        getpid() != __atomic_load_n(&ctl.pid, __ATOMIC_RELAXED)) {
        pthread_mutex_unlock(&ctl_lock);
        return false;
    }
    ctl.writer_exit = true;
    ctl.writer_alive = false;
    pthread_t t = ctl.writer;
    unsigned char wake = 0xFF;          /* not a command: the writer wakes, sees writer_exit */
    if (hs_fd_is(ctl.wfd, ctl.pipe_id))
        (void)!write(ctl.wfd, &wake, 1);
    pthread_mutex_unlock(&ctl_lock);
    pthread_join(t, NULL);              /* at most the 2 s poll if the byte was lost */
    return true;
}

/* The AT_EXIT snapshot; process_exit: the process is going away (not
 * Python's atexit stage, after which an embedding host may go on and start
 * again), so no session starts after it. */
static void writer_at_exit(bool process_exit)
{
    pthread_mutex_lock(&ctl_lock);
    if (__atomic_load_n(&hs_active, __ATOMIC_RELAXED) == 1 && !ctl.at_exit_done) {
        hs_quiesce();
        if (hs_opt.at_exit)
            snapshot_blocking_sigxfsz(HEAPSNAP_FLAG_AT_EXIT);
        ctl.at_exit_done = true;
    }
    ctl.exiting |= process_exit;
    pthread_mutex_unlock(&ctl_lock);
}

void hs_writer_at_exit(void) { writer_at_exit(true); }

static void python_at_exit(void) { writer_at_exit(false); }

void hs_writer_send(enum hs_cmd cmd)
{
    unsigned char b = (unsigned char)cmd;
    int fd = __atomic_load_n(&ctl.wfd, __ATOMIC_RELAXED);
    if (!hs_fd_is(fd, ctl.pipe_id) || write(fd, &b, 1) != 1)
        notify_writer(getpid(), ctl.sig0 + (int)cmd, (int)cmd, NULL);
}

/* ------------------------------------------------------------------ fork */

void hs_writer_fork_prepare(void) { pthread_mutex_lock(&ctl_lock); }
void hs_writer_fork_parent(void) { pthread_mutex_unlock(&ctl_lock); }

/* Context: fork child, single-threaded; the parent's lock was copied held.
 * The child's channel and writer are made later (lifecycle.c, child setup);
 * signals that arrive before that wait in pending[], and so does the start
 * of a child forked while its parent sampled: a pre-fork server's workers,
 * recycled ones too, sample while their master does, each in a fresh session
 * of its own (its tables start empty: what the parent sampled stays the
 * parent's). */
void hs_writer_fork_child(bool sampling)
{
    pthread_mutex_init(&ctl_lock, NULL);
    forget_channel();                   /* the parent's */
    ctl.writer_alive = ctl.writer_exit = ctl.exiting = false;
    ctl.writer_tid = 0;
    retry.armed = 0;                    /* timers are not inherited */
    retry.id = -1;
    __atomic_store_n(&ctl.pid, getpid(), __ATOMIC_RELAXED);
    ctl.seq = 0;
    ctl.start_ns = 0;
    ctl.next_periodic_ns = 0;
    hs_timeline_reset_child();
    hs_retain_reset_child();
    if (sampling)
        __atomic_store_n(&pending[HS_CMD_START], 1, __ATOMIC_RELEASE);
}
