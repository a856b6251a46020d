/*
 * control.c - options, signals, the writer thread, fork and exit.
 *
 * Load (constructor): resolve the next allocator, go inert if AT_SECURE,
 * dup stderr, parse the environment once into hs_opt, install the three
 * signal handlers, open the request pipe and start the writer thread with
 * every signal blocked.
 *
 * A signal handler checks with fstat that the pipe is still ours (hosts close
 * and reuse descriptors) and does one write(2) of the command byte into the
 * non-blocking pipe; only if that fails, it sends the signal on to the
 * writer thread (tgkill, read back from the writer's signalfd) or, with no
 * writer, one atomic store (pending[cmd] = 1); nothing else. The writer
 * thread runs in a descriptor table of its own, reads the bytes in order and
 * runs each command under ctl_lock. Stacks are never unwound here: only
 * allocating threads unwind, inside malloc.
 *
 * ctl_lock serialises commands, snapshots, exit and fork. Lock order:
 * ctl_lock -> live stripes -> stack stripes -> arena.
 *
 * fork (pthread_atfork): prepare takes ctl_lock, quiesces sampling (so no
 * thread is inside libunwind or holds a stripe lock on our behalf) and takes
 * every shim lock; the parent releases them and resumes; the child gets fresh
 * locks, no tables, sampling off, seq 0, its own pipe and writer thread.
 * Children made without fork handlers (vfork, clone) exec or exit at once.
 *
 * Hosts that install their own handler for our signals (sigaction/signal are
 * interposed): we keep ours, remember theirs (returned as the old action),
 * and warn once on stderr how to move our signals with HEAPSNAP_SIGNAL_BASE.
 * Both names are needed: glibc's signal() calls its internal __sigaction,
 * not the PLT sigaction (sysdeps/posix/signal.c).
 *
 * References: signal-safety(7) for what a handler may call, signalfd(2) for
 * process-directed signals blocked in every thread, pthread_atfork(3),
 * fcntl(2) F_DUPFD_CLOEXEC, unshare(2) CLONE_FILES, close_range(2).
 */
#define _GNU_SOURCE
#include "control.h"
#include "forward.h"
#include "sampler.h"
#include "stacks.h"
#include "live.h"
#include "mem.h"
#include "snapshot_writer.h"
#include "python.h"
#include "pyalloc.h"
#include "heapsnap.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

struct hs_options hs_opt = {
    .rate = 524288, .max_depth = 64, .max_memory = (size_t)64 << 20,
    .signal_base = 1, .python = true, .dir = "/tmp",
};

extern char **environ;

static pthread_mutex_t ctl_lock = PTHREAD_MUTEX_INITIALIZER;

/* Which open file a descriptor number should refer to. Hosts close fds they
 * did not open (daemons, closefrom) and may get the same numbers back for
 * their own files: before using one of ours, check it is still ours, so a
 * signal never writes a byte into the host's file. */
struct fdid {
    dev_t dev;
    ino_t ino;
};

static struct fdid fd_id(int fd)
{
    struct stat st;
    struct fdid id = { 0, 0 };
    if (fd >= 0 && fstat(fd, &st) == 0) {
        id.dev = st.st_dev;
        id.ino = st.st_ino;
    }
    return id;
}

/* Context: async-signal-safe (fstat). */
static bool fd_is(int fd, struct fdid id)
{
    struct stat st;
    return fd >= 0 && id.ino != 0 && fstat(fd, &st) == 0 && st.st_dev == id.dev && st.st_ino == id.ino;
}

/* Control state. Fields are written under ctl_lock unless noted. */
static struct {
    bool ready;                 /* constructor finished (written once) */
    bool inert;                 /* AT_SECURE or setup failed (written once) */
    int errfd;                  /* dup of stderr, -1 if none (written at load) */
    int sig0;                   /* SIGRTMIN + base (written at load) */
    int rfd, wfd;               /* request pipe; replaced in a fork child (wfd read by handlers) */
    int wfd_parent;             /* the pipe's write end as created, for closing */
    int sfd;                    /* signalfd for our signals; replaced in a fork child */
    struct fdid pipe_id, sfd_id, err_id;    /* what rfd/wfd, sfd and errfd must be */
    pid_t pid;                  /* getpid() of the process these belong to */
    uint32_t seq;               /* next snapshot sequence number */
    uint64_t start_ns;          /* when the current session started */
    uint64_t next_periodic_ns;  /* CLOCK_MONOTONIC deadline, 0 = none */
    int was_active;             /* hs_active saved across fork prepare/parent */
    pthread_t writer;           /* the writer thread, valid while writer_alive */
    pid_t writer_tid;           /* its thread id, 0 = none (written by the writer, read by handlers) */
    bool writer_alive;          /* a writer thread runs in this process */
    bool writer_exit;           /* asked to exit (setxid, see hs_setxid_begin) */
    bool py_exit_asked;         /* the Python at-exit hook was queued (Py_AddPendingCall) */
    uint64_t py_poll_until_ns;  /* CLOCK_MONOTONIC: python_tick may ask for 10 ms polls until then */
    bool at_exit_done;          /* the AT_EXIT snapshot was written (Python's atexit) */
} ctl = { .errfd = -1, .rfd = -1, .wfd = -1, .wfd_parent = -1, .sfd = -1 };

/* Set by a signal handler (atomic store) only when its write(2) failed: the
 * pipe was full, or a fork child has no pipe yet. Cleared by the writer. */
static int pending[HS_CMD_COUNT];

/* The host's wishes for our signals: protected by ctl_lock except that
 * signal handlers never touch them. */
static struct sigaction host_act[HS_CMD_COUNT];
static int host_warned;

/* ---------------------------------------------------------------- output */

void hs_say(const char *a, const char *b, const char *c, const char *d)
{
    int fd = ctl.errfd;
    if (!fd_is(fd, ctl.err_id))
        return;                     /* closed by the host, maybe reused: stay quiet */
    char buf[1024];
    size_t n = 0;
    const char *parts[] = { "heapsnap: ", a, b, c, d, "\n" };
    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) {
        const char *s = parts[i];
        if (i == 5 && n >= sizeof buf - 1)
            n = sizeof buf - 2;
        for (; s && *s && n < sizeof buf - 1; s++)
            buf[n++] = *s;
    }
    int saved = errno;
    (void)!write(fd, buf, n);
    errno = saved;
}

static const char *u64s(char *buf, uint64_t v)
{
    char tmp[24];
    int n = 0;
    do tmp[n++] = (char)('0' + v % 10); while (v /= 10);
    for (int i = 0; i < n; i++)
        buf[i] = tmp[n - 1 - i];
    buf[n] = 0;
    return buf;
}

/* Moves a descriptor up out of the range hosts expect to get from open()
 * (some count on the next open() returning 3) and out of the range they
 * close by number (bash closes some descriptors twice: harmless for a
 * single-threaded host, but the second close would hit the writer's
 * snapshot file if it had taken the number meanwhile). Returns the new fd. */
int hs_fd_high(int fd)
{
    if (fd < 0)
        return fd;
    struct rlimit rl;
    int floor = 100;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur <= 128)
        floor = 3;
    int nfd = fcntl(fd, F_DUPFD_CLOEXEC, floor);
    if (nfd < 0)
        return fd;
    close(fd);
    return nfd;
}

static uint64_t now_ns(clockid_t clk)
{
    struct timespec ts;
    clock_gettime(clk, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* --------------------------------------------------------------- options */

static void bad(const char *name, const char *value, const char *expect, const char *dflt)
{
    char line[512];
    size_t n = 0;
    const char *parts[] = { name, "=\"", value, "\" is not valid (expected ", expect, "); using ", dflt };
    for (size_t i = 0; i < 7; i++)
        for (const char *s = parts[i]; *s && n < sizeof line - 1; s++)
            line[n++] = *s;
    line[n] = 0;
    hs_say(line, NULL, NULL, NULL);
}

/* Parses a decimal integer with an optional K/M/G suffix (powers of 1024).
 * 0 or -EINVAL/-ERANGE. */
static int parse_size(const char *s, bool suffix, uint64_t *out)
{
    uint64_t v = 0;
    const char *p = s;
    if (*p < '0' || *p > '9')
        return -EINVAL;
    for (; *p >= '0' && *p <= '9'; p++) {
        if (__builtin_mul_overflow(v, 10, &v) || __builtin_add_overflow(v, (uint64_t)(*p - '0'), &v))
            return -ERANGE;
    }
    if (*p && suffix) {
        int shift = 0;
        switch (*p | 0x20) {
        case 'k': shift = 10; break;
        case 'm': shift = 20; break;
        case 'g': shift = 30; break;
        default: return -EINVAL;
        }
        p++;
        if ((*p | 0x20) == 'i' && ((p[1] | 0x20) == 'b'))
            p += 2;
        else if ((*p | 0x20) == 'b')
            p++;
        if (v > (UINT64_MAX >> shift))
            return -ERANGE;
        v <<= shift;
    }
    if (*p)
        return -EINVAL;
    *out = v;
    return 0;
}

static int parse_bool(const char *s, bool *out)
{
    static const char *yes[] = { "1", "yes", "true", "on" }, *no[] = { "0", "no", "false", "off", "" };
    for (size_t i = 0; i < 4; i++)
        if (strcasecmp(s, yes[i]) == 0)
            return *out = true, 0;
    for (size_t i = 0; i < 5; i++)
        if (strcasecmp(s, no[i]) == 0)
            return *out = false, 0;
    return -EINVAL;
}

/* "10", "0.5", "2.25": seconds as nanoseconds. */
static int parse_seconds(const char *s, uint64_t *ns)
{
    uint64_t whole = 0, frac = 0, scale = 1000000000ull;
    const char *p = s;
    if (!*p)
        return -EINVAL;
    for (; *p >= '0' && *p <= '9'; p++)
        if (__builtin_mul_overflow(whole, 10, &whole) || __builtin_add_overflow(whole, (uint64_t)(*p - '0'), &whole))
            return -ERANGE;
    if (*p == '.') {
        p++;
        for (; *p >= '0' && *p <= '9'; p++)
            if (scale > 1) {
                scale /= 10;
                frac += (uint64_t)(*p - '0') * scale;
            }
    }
    if (*p || p == s || whole > 1000000000ull)
        return -EINVAL;
    *ns = whole * 1000000000ull + frac;
    return 0;
}

static void parse_options(void)
{
    char num[24];
    const char *v;
    uint64_t u;

    if ((v = getenv("HEAPSNAP_RATE"))) {
        if (parse_size(v, true, &u) == 0 && u >= 1)
            hs_opt.rate = u;
        else
            bad("HEAPSNAP_RATE", v, "mean bytes between samples, >= 1, e.g. 524288 or 512K; 1 records everything", u64s(num, hs_opt.rate));
    }
    if ((v = getenv("HEAPSNAP_MAX_DEPTH"))) {
        if (parse_size(v, false, &u) == 0 && u >= 1 && u <= HEAPSNAP_MAX_FRAMES)
            hs_opt.max_depth = (uint32_t)u;
        else
            bad("HEAPSNAP_MAX_DEPTH", v, "frames per stack, 1 to 1024", u64s(num, hs_opt.max_depth));
    }
    if ((v = getenv("HEAPSNAP_MAX_MEMORY"))) {
        if (parse_size(v, true, &u) == 0 && u >= (1u << 20) && u <= ((uint64_t)1 << 40))
            hs_opt.max_memory = (size_t)u;
        else
            bad("HEAPSNAP_MAX_MEMORY", v, "bytes for the shim's tables, 1M to 1T, e.g. 64M", "64M");
    }
    if ((v = getenv("HEAPSNAP_SIGNAL_BASE"))) {
        int span = SIGRTMAX - SIGRTMIN - 2;
        if (parse_size(v, false, &u) == 0 && u <= (uint64_t)span)
            hs_opt.signal_base = (int)u;
        else {
            char lim[64] = "0 to ";
            u64s(lim + 5, (uint64_t)span);
            strcat(lim, ", signals SIGRTMIN+base .. +base+2");
            bad("HEAPSNAP_SIGNAL_BASE", v, lim, "1");
        }
    }
    if ((v = getenv("HEAPSNAP_START"))) {
        if (parse_bool(v, &hs_opt.start) != 0)
            bad("HEAPSNAP_START", v, "1 or 0", "0");
    }
    if ((v = getenv("HEAPSNAP_AT_EXIT"))) {
        if (parse_bool(v, &hs_opt.at_exit) != 0)
            bad("HEAPSNAP_AT_EXIT", v, "1 or 0", "0");
    }
    if ((v = getenv("HEAPSNAP_PYTHON"))) {
        if (parse_bool(v, &hs_opt.python) != 0)
            bad("HEAPSNAP_PYTHON", v, "1 or 0", "1");
    }
    if ((v = getenv("HEAPSNAP_INTERVAL"))) {
        if (parse_seconds(v, &u) == 0 && (u == 0 || u >= 1000000ull))
            hs_opt.interval_ns = u;
        else
            bad("HEAPSNAP_INTERVAL", v, "seconds between snapshots, e.g. 60 or 0.5; 0 = off", "off");
    }
    if ((v = getenv("HEAPSNAP_DIR"))) {
        char d[sizeof hs_opt.dir];
        size_t n = strlen(v);
        bool ok = n > 0 && n < sizeof d - 1;
        if (ok && v[0] != '/') {
            /* Relative: resolve now, the host may chdir later. */
            if (!getcwd(d, sizeof d) || strlen(d) + 1 + n >= sizeof d)
                ok = false;
            else {
                strcat(d, "/");
                strcat(d, v);
            }
        } else if (ok) {
            strcpy(d, v);
        }
        if (ok) {
            n = strlen(d);
            while (n > 1 && d[n - 1] == '/')
                d[--n] = 0;
            strcpy(hs_opt.dir, d);
        } else {
            bad("HEAPSNAP_DIR", v, "a directory path", "/tmp");
        }
    }
    /* The shim's variables, then the tool's and scripts' (not typos either):
     * keep in sync when the tool grows a HEAPSNAP_* variable. */
    static const char *known[] = { "RATE", "MAX_DEPTH", "MAX_MEMORY", "SIGNAL_BASE", "START", "PYTHON",
                                   "AT_EXIT", "INTERVAL", "DIR",
                                   "BIN", "LIB", "SYMBOLIZER", "BLESS", "FUZZ_ROUNDS", "NEEDS" };
    for (char **e = environ; e && *e; e++) {
        if (strncmp(*e, "HEAPSNAP_", 9) != 0)
            continue;
        const char *name = *e + 9, *eq = strchr(name, '=');
        size_t len = eq ? (size_t)(eq - name) : strlen(name);
        bool found = false;
        for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
            if (strlen(known[i]) == len && strncmp(known[i], name, len) == 0)
                found = true;
        if (!found) {
            char nm[64] = { 0 };
            memcpy(nm, *e, len + 9 < sizeof nm - 1 ? len + 9 : sizeof nm - 1);
            hs_say("unknown variable ", nm, " ignored (see README, \"Capturing\")", NULL);
        }
    }
}

/* --------------------------------------------------------------- signals */

static int cmd_of(int sig)
{
    int i = sig - ctl.sig0;
    return ctl.ready && !ctl.inert && i >= 0 && i < HS_CMD_COUNT ? i : -1;
}

/* The request pipe's write end lives in the host's descriptor table, where
 * the host may close it: then the signal itself goes to the writer thread,
 * which blocks it and reads it from its signalfd (in its own table, see
 * private_fd_table). Without a writer (none yet, or between setxid stop and
 * restart) the request waits in pending[]. Context: signal handler or any
 * host thread: async-signal-safe. */
static void notify_writer(pid_t pid, int sig, int cmd)
{
    pid_t tid = __atomic_load_n(&ctl.writer_tid, __ATOMIC_ACQUIRE);
    if (!tid || syscall(SYS_tgkill, pid, tid, sig) != 0)
        __atomic_store_n(&pending[cmd], 1, __ATOMIC_RELEASE);
}

/* Context: signal handler: async-signal-safe only. One atomic store, one
 * write(2). errno is preserved for the interrupted code. */
static void on_signal(int sig)
{
    int saved = errno;
    int i = sig - ctl.sig0;
    if (i >= 0 && i < HS_CMD_COUNT) {
        unsigned char b = (unsigned char)i;
        int fd = __atomic_load_n(&ctl.wfd, __ATOMIC_RELAXED);
        /* getpid(): between fork(2) and our atfork child handler a child
         * still holds its parent's pipe; its byte would run in the parent. */
        pid_t pid = getpid();
        if (pid != __atomic_load_n(&ctl.pid, __ATOMIC_RELAXED))
            __atomic_store_n(&pending[i], 1, __ATOMIC_RELEASE);     /* a fork child, not set up yet */
        else if (!fd_is(fd, ctl.pipe_id) || write(fd, &b, 1) != 1)
            notify_writer(pid, sig, i);     /* pipe closed by the host, or full */
    }
    errno = saved;
}

/* One line, once per process: the host wants one of our signals. */
static void warn_taken(int sig)
{
    if (__atomic_exchange_n(&host_warned, 1, __ATOMIC_RELAXED))
        return;
    char s[16], k[16], b[16];
    u64s(s, (uint64_t)sig);
    u64s(k, (uint64_t)(sig - SIGRTMIN));
    u64s(b, (uint64_t)hs_opt.signal_base + 3);
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
        sa.sa_handler = on_signal;
        sa.sa_flags = SA_RESTART;
        sigemptyset(&sa.sa_mask);
        if (hs_real.sigaction(ctl.sig0 + i, &sa, &host_act[i]) != 0)
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
        return hs_real.sigaction(sig, act, old);
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

static void say_errno(const char *what, int err)
{
    hs_say(what, ": ", strerror(err), NULL);
}

/* Writes a snapshot with the next sequence number. Context: ctl_lock held. */
static void snapshot(uint32_t flags)
{
    struct hs_snap_info info = {
        .seq = ctl.seq++, .flags = flags | (hs_opt.rate <= 1 ? HEAPSNAP_FLAG_EXACT : 0),
        .session = __atomic_load_n(&hs_session, __ATOMIC_RELAXED), .start_ns = ctl.start_ns,
    };
    int saved = hs_reentry;
    hs_reentry = 1;
    (void)hs_snapshot_write(&info);
    ctl.seq = info.seq + 1;
    hs_reentry = saved;
}

/* snapshot() on a host thread (the exiting one). Past RLIMIT_FSIZE, write(2)
 * raises SIGXFSZ, whose default action kills the host; the writer thread
 * blocks every signal, a host thread may not. Block it here so that write
 * fails with EFBIG (one line, temporary removed), and take back a SIGXFSZ
 * that we caused, leaving one the host already had pending (setrlimit(2),
 * write(2)). Context: ctl_lock held, a host thread. */
static void snapshot_blocking_sigxfsz(uint32_t flags)
{
    sigset_t xfsz, old, before;
    sigemptyset(&xfsz);
    sigaddset(&xfsz, SIGXFSZ);
    pthread_sigmask(SIG_BLOCK, &xfsz, &old);
    sigpending(&before);
    snapshot(flags);
    if (!sigismember(&before, SIGXFSZ)) {
        struct timespec now = { 0, 0 };
        while (sigtimedwait(&xfsz, NULL, &now) == SIGXFSZ)
            ;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
}

/* ---------------------------------------------------------------- Python */

/* The AT_EXIT snapshot from Python's atexit stage: the interpreter is about
 * to finalize (free nearly everything), so write it now, as tracemalloc
 * users would, and stop; hs_fini then has nothing left to do.
 * Context: the main thread, in Python's atexit callbacks, GIL held. */
static void *py_at_exit(void *self, void *unused)
{
    (void)self;
    (void)unused;
    int saved = hs_reentry;
    hs_reentry = 1;
    pthread_mutex_lock(&ctl_lock);
    if (__atomic_load_n(&hs_active, __ATOMIC_RELAXED) == 1 && !ctl.at_exit_done) {
        hs_quiesce();
        snapshot_blocking_sigxfsz(HEAPSNAP_FLAG_AT_EXIT);
        ctl.at_exit_done = true;
    }
    pthread_mutex_unlock(&ctl_lock);
    hs_reentry = saved;
    void *none = hs_py_api.none;
    hs_py_api.incref(none);
    return none;
}

/* PyMethodDef (Include/methodobject.h). */
static struct {
    const char *name;
    void *(*meth)(void *, void *);
    int flags;
    const char *doc;
} py_at_exit_def = { "heapsnap_at_exit", py_at_exit, 0x0004 /* METH_NOARGS */, NULL };

/* atexit.register(heapsnap_at_exit). Registered early, it runs after the
 * program's own atexit callbacks (last in, first out) and before the
 * interpreter finalizes. Context: the main thread, a pending call, GIL held. */
static int py_register_at_exit(void *arg)
{
    (void)arg;
    int saved = hs_reentry;
    hs_reentry = 1;                     /* our own objects are not sampled */
    void *fn = hs_py_api.cfunction_new(&py_at_exit_def, NULL, NULL);
    void *mod = fn ? hs_py_api.import_module("atexit") : NULL;
    void *r = mod ? hs_py_api.call_method(mod, "register", "O", fn) : NULL;
    if (!r) {
        hs_py_api.err_clear();
        hs_say("cannot register the Python at-exit snapshot; it is written after finalization", NULL, NULL, NULL);
    }
    if (r)
        hs_py_api.decref(r);
    if (mod)
        hs_py_api.decref(mod);
    if (fn)
        hs_py_api.decref(fn);
    hs_reentry = saved;
    return 0;
}

/* Called by python.c the first time a sample finds a thread running Python:
 * wake the writer so that python_tick runs soon. Context: inside malloc. */
static void py_first_seen(void)
{
    unsigned char wake = 0xFF;
    int fd = __atomic_load_n(&ctl.wfd, __ATOMIC_RELAXED);
    if (fd_is(fd, ctl.pipe_id))
        (void)!write(fd, &wake, 1);
}

/* While sampling a Python process: wrap pymalloc's domains once the
 * interpreter has set its allocators up (a thread state exists), and queue
 * the at-exit hook once it is initialized. Until both are done, asks the
 * writer to come back in 10 ms (*timeout_ms). Context: ctl_lock held. */
static void python_tick(int *timeout_ms)
{
    if (!hs_opt.python || __atomic_load_n(&hs_active, __ATOMIC_RELAXED) != 1)
        return;
    hs_py_detect();
    if (hs_py_status() == HS_PY_NONE)
        return;
    bool initialized = hs_py_api.is_initialized && hs_py_api.is_initialized();
    bool todo = false;
    if (initialized || hs_py_seen())
        hs_pyalloc_install();
    else
        todo = true;
    if (hs_opt.at_exit && !ctl.py_exit_asked && hs_py_api.add_pending_call && hs_py_api.cfunction_new &&
        hs_py_api.import_module && hs_py_api.call_method && hs_py_api.none && hs_py_api.incref) {
        if (initialized && hs_py_api.add_pending_call(py_register_at_exit, NULL) == 0)
            ctl.py_exit_asked = true;
        else
            todo = true;
    }
    /* A program that links libpython but never initializes it must not keep
     * the writer polling: 30 s after start, the 2 s wake-ups take over. */
    if (todo && timeout_ms && *timeout_ms > 10 && now_ns(CLOCK_MONOTONIC) < ctl.py_poll_until_ns)
        *timeout_ms = 10;
}

/* Context: ctl_lock held. */
static void run(int cmd)
{
    switch (cmd) {
    case HS_CMD_START:
        hs_sampler_start();
        ctl.start_ns = now_ns(CLOCK_REALTIME);
        ctl.next_periodic_ns = hs_opt.interval_ns ? now_ns(CLOCK_MONOTONIC) + hs_opt.interval_ns : 0;
        ctl.at_exit_done = false;
        ctl.py_poll_until_ns = now_ns(CLOCK_MONOTONIC) + 30 * 1000000000ull;
        python_tick(NULL);
        break;
    case HS_CMD_STOP:
        if (__atomic_load_n(&hs_active, __ATOMIC_RELAXED) != 1) {
            hs_say("stop ignored: not sampling", NULL, NULL, NULL);
            break;
        }
        hs_quiesce();                   /* exact final view, then free it all */
        snapshot(HEAPSNAP_FLAG_FINAL);
        hs_pyalloc_remove();
        hs_sampler_release();
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

/* Gives the writer thread a descriptor table of its own (unshare(2)
 * CLONE_FILES) holding only the channel and the stderr dup. Descriptors it
 * opens for a snapshot then never take numbers in the host's table, so a
 * host that closes numbers it does not own (bash closes some twice; daemons
 * close them all) can neither close the snapshot file under us nor get its
 * number back and receive our bytes; and the host's own files are not held
 * open by our copy of its table. If unshare fails, the writer shares the
 * host's table as before. Context: writer thread, at its start. */
static void private_fd_table(void)
{
    if (unshare(CLONE_FILES) != 0)
        return;
    int keep[4] = { ctl.rfd, ctl.wfd_parent, ctl.sfd, ctl.errfd };
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

/* The writer thread. It also wakes every 2 s to run requests that could not
 * be passed on (pending[]). Context: writer thread, all signals blocked,
 * its own descriptor table. */
static void *writer_main(void *arg)
{
    (void)arg;
    hs_reentry = 1;                     /* nothing this thread allocates is sampled */
    private_fd_table();
    __atomic_store_n(&ctl.writer_tid, (pid_t)syscall(SYS_gettid), __ATOMIC_RELEASE);
    for (;;) {
        int timeout = 2000;
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
        if (!fd_is(ctl.sfd, ctl.sfd_id))
            open_signalfd();
        /* Requests made before this thread existed (a fork child's first
         * signals) or whose byte could not be written. */
        for (int c = 0; c < HS_CMD_COUNT; c++)
            if (__atomic_exchange_n(&pending[c], 0, __ATOMIC_ACQ_REL))
                run(c);
        if (ctl.next_periodic_ns && __atomic_load_n(&hs_active, __ATOMIC_RELAXED) == 1) {
            uint64_t now = now_ns(CLOCK_MONOTONIC);
            if (now >= ctl.next_periodic_ns) {
                snapshot(HEAPSNAP_FLAG_PERIODIC);
                ctl.next_periodic_ns = now + hs_opt.interval_ns;
            }
            uint64_t wait_ms = (ctl.next_periodic_ns - now + 999999) / 1000000;
            if (wait_ms < (uint64_t)timeout)
                timeout = (int)wait_ms;
        }
        python_tick(&timeout);
        /* poll() skips negative descriptors: one the host closed (only
         * possible if unshare failed) is not polled, so it cannot spin us. */
        int rfd = fd_is(ctl.rfd, ctl.pipe_id) ? ctl.rfd : -1, sfd = ctl.sfd;
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
        struct timespec grace = { 0, 20 * 1000 * 1000 };
        nanosleep(&grace, NULL);
        pthread_mutex_lock(&ctl_lock);
        unsigned char cmds[64];
        ssize_t n = 0;
        if (rfd >= 0 && fd_is(rfd, ctl.pipe_id)) {
            n = read(rfd, cmds, sizeof cmds);
            if (n < 0)
                n = 0;
        }
        if (sfd >= 0 && fd_is(sfd, ctl.sfd_id)) {
            struct signalfd_siginfo si[8];
            ssize_t got = read(sfd, si, sizeof si);
            for (ssize_t i = 0; got > 0 && i < got / (ssize_t)sizeof si[0] && n < (ssize_t)sizeof cmds; i++) {
                int c = (int)si[i].ssi_signo - ctl.sig0;
                if (c >= 0 && c < HS_CMD_COUNT)
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
    ctl.sfd_id = fd_id(ctl.sfd);
}

/* Opens the request pipe and the signalfd. 0 or -errno. */
static int open_channel(void)
{
    int fds[2];
    if (pipe2(fds, O_CLOEXEC | O_NONBLOCK) != 0)
        return -errno;
    ctl.rfd = hs_fd_high(fds[0]);
    ctl.wfd_parent = hs_fd_high(fds[1]);
    ctl.pipe_id = fd_id(ctl.rfd);
    __atomic_store_n(&ctl.wfd, ctl.wfd_parent, __ATOMIC_RELEASE);
    open_signalfd();
    return 0;
}

/* Makes sure the channel is open in the calling thread's (the host's) table
 * before a writer is started from it: the host may have closed it (or
 * reused the numbers) since it was opened. Stale numbers are forgotten, not
 * closed, unless they are still ours. 0 or -errno. Context: ctl_lock held,
 * or the constructor. */
static int ensure_channel(void)
{
    if (fd_is(ctl.rfd, ctl.pipe_id) && fd_is(ctl.wfd_parent, ctl.pipe_id) &&
        (ctl.sfd < 0 || fd_is(ctl.sfd, ctl.sfd_id)))
        return 0;
    if (fd_is(ctl.rfd, ctl.pipe_id))
        close(ctl.rfd);
    if (fd_is(ctl.wfd_parent, ctl.pipe_id))
        close(ctl.wfd_parent);
    if (fd_is(ctl.sfd, ctl.sfd_id))
        close(ctl.sfd);
    __atomic_store_n(&ctl.wfd, -1, __ATOMIC_RELEASE);
    ctl.rfd = ctl.wfd_parent = ctl.sfd = -1;
    return open_channel();
}

/* Starts the writer thread with every signal blocked. 0 or -errno.
 * Context: ctl_lock held, or the constructor. */
static int spawn_writer(void)
{
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 256 << 10);
    int err = pthread_create(&ctl.writer, &attr, writer_main, NULL);
    pthread_attr_destroy(&attr);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (err)
        return -err;
    ctl.writer_alive = true;
    pthread_setname_np(ctl.writer, "heapsnap");
    /* Until the writer has its own table, a host that closes descriptors
     * would close its copies too; it takes microseconds (no lock needed). */
    for (int i = 0; i < 100000 && !__atomic_load_n(&ctl.writer_tid, __ATOMIC_ACQUIRE); i++)
        sched_yield();
    return 0;
}

/* Opens the channel (if needed) and starts the writer thread. 0 or -errno.
 * Context: constructor, a fork child's first allocation, after setxid. */
static int start_writer(void)
{
    int err = ensure_channel();
    return err ? err : spawn_writer();
}

/* Credentials: glibc's setuid() family changes every thread's credentials
 * by signalling each thread to make the same system call, and aborts the
 * process if any thread's call fails where the caller's succeeded (nptl
 * setxid). Hosts that first change per-thread state (setpriv and libcap-ng:
 * PR_SET_KEEPCAPS, capset() on the calling thread only) would then abort
 * because of our writer thread. So the interposed setxid functions
 * (hooks.c) take the writer out for the duration of the call and start a
 * new one afterwards, from the calling thread, with its new credentials.
 * Returns true when it stopped the writer (pass that to hs_setxid_end).
 * Context: the host thread calling setuid() & co., no shim lock held. */
bool hs_setxid_begin(void)
{
    if (!ctl.ready || ctl.inert || hs_reentry)
        return false;
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
    if (fd_is(ctl.wfd, ctl.pipe_id))
        (void)!write(ctl.wfd, &wake, 1);
    pthread_mutex_unlock(&ctl_lock);
    pthread_join(t, NULL);              /* at most the 2 s poll if the byte was lost */
    return true;
}

void hs_setxid_end(bool stopped)
{
    if (!stopped)
        return;
    int saved = errno;                  /* the caller reads errno of its setxid call */
    hs_reentry = 1;
    pthread_mutex_lock(&ctl_lock);
    int err = ctl.writer_alive ? 0 : start_writer();
    pthread_mutex_unlock(&ctl_lock);
    hs_reentry = 0;
    if (err)
        say_errno("cannot restart the writer thread after a credentials change; signals are ignored", -err);
    errno = saved;
}

int hs_request(enum hs_cmd cmd)
{
    if (!ctl.ready || ctl.inert)
        return -ENODEV;
    if (__atomic_load_n(&hs_active, __ATOMIC_SEQ_CST) == HS_CHILD_SETUP)
        hs_child_setup();
    unsigned char b = (unsigned char)cmd;
    int fd = __atomic_load_n(&ctl.wfd, __ATOMIC_RELAXED);
    if (!fd_is(fd, ctl.pipe_id) || write(fd, &b, 1) != 1)
        notify_writer(getpid(), ctl.sig0 + (int)cmd, (int)cmd);
    return 0;
}

__attribute__((visibility("default"))) int heapsnap_start(void) { return hs_request(HS_CMD_START); }
__attribute__((visibility("default"))) int heapsnap_stop(void) { return hs_request(HS_CMD_STOP); }
__attribute__((visibility("default"))) int heapsnap_snapshot(void) { return hs_request(HS_CMD_SNAPSHOT); }
__attribute__((visibility("default"))) int heapsnap_sampling(void) { return __atomic_load_n(&hs_active, __ATOMIC_ACQUIRE) == 1; }

/* ------------------------------------------------------------------ fork */

/* Context: the forking thread, before fork. */
static void fork_prepare(void)
{
    pthread_mutex_lock(&ctl_lock);
    ctl.was_active = __atomic_load_n(&hs_active, __ATOMIC_RELAXED);
    hs_quiesce();
    hs_live_lock_all();
    hs_stacks_lock_all();
    hs_py_lock();
    hs_arena_lock();
}

static void fork_parent(void)
{
    hs_arena_unlock();
    hs_py_unlock();
    hs_stacks_unlock_all();
    hs_live_unlock_all();
    if (ctl.was_active)
        __atomic_store_n(&hs_active, ctl.was_active, __ATOMIC_SEQ_CST);
    pthread_mutex_unlock(&ctl_lock);
}

/* Context: fork child, single-threaded; the parent's locks were copied held.
 * The child gets its own channel and writer thread, but lazily: most fork
 * children exec or exit at once, and a thread per child would cost every
 * fork(2) in the host ~0.1 ms. hs_active = HS_CHILD_SETUP sends the child's
 * first allocation to hs_child_setup(), which creates them. Signals that
 * arrive before that are remembered in pending[] and run then. */
static void fork_child(void)
{
    hs_sampler_fork_child();
    pthread_mutex_init(&ctl_lock, NULL);
    __atomic_store_n(&ctl.wfd, -1, __ATOMIC_RELAXED);
    if (fd_is(ctl.rfd, ctl.pipe_id))
        close(ctl.rfd);
    if (fd_is(ctl.wfd_parent, ctl.pipe_id))
        close(ctl.wfd_parent);
    if (fd_is(ctl.sfd, ctl.sfd_id))
        close(ctl.sfd);
    ctl.rfd = ctl.sfd = ctl.wfd_parent = -1;
    ctl.writer_alive = ctl.writer_exit = false;
    ctl.writer_tid = 0;
    __atomic_store_n(&ctl.pid, getpid(), __ATOMIC_RELAXED);
    ctl.seq = 0;
    ctl.start_ns = 0;
    ctl.next_periodic_ns = 0;
    if (!ctl.inert)
        __atomic_store_n(&hs_active, HS_CHILD_SETUP, __ATOMIC_SEQ_CST);
}

void hs_child_setup(void)
{
    if (hs_reentry)
        return;                         /* pthread_create's own allocations */
    hs_reentry = 1;
    pthread_mutex_lock(&ctl_lock);
    if (__atomic_load_n(&hs_active, __ATOMIC_SEQ_CST) == HS_CHILD_SETUP) {
        int err = start_writer();
        if (err) {
            say_errno("cannot start the writer thread in a fork child; signals are ignored", -err);
            ctl.inert = true;
        }
        __atomic_store_n(&hs_active, 0, __ATOMIC_SEQ_CST);
    }
    pthread_mutex_unlock(&ctl_lock);
    hs_reentry = 0;
}

/* ------------------------------------------------------------- load/exit */

__attribute__((constructor(101))) static void hs_init(void)
{
    hs_forward_init();
    if (getauxval(AT_SECURE))
        return;                         /* setuid/setgid: stay inert, forward only */
    ctl.errfd = fcntl(2, F_DUPFD_CLOEXEC, 3);
    if (ctl.errfd >= 0)
        ctl.errfd = hs_fd_high(ctl.errfd);
    ctl.err_id = fd_id(ctl.errfd);
    hs_reentry = 1;
    parse_options();
    hs_stacks_init();
    ctl.sig0 = SIGRTMIN + hs_opt.signal_base;
    ctl.pid = getpid();
    int err = start_writer();
    if (!err)
        err = install_handlers();
    if (err) {
        say_errno("cannot set up signal control; heapsnap stays inactive", -err);
        ctl.inert = true;
        hs_reentry = 0;
        return;
    }
    pthread_atfork(fork_prepare, fork_parent, fork_child);
    hs_py_first_seen = py_first_seen;
    ctl.ready = true;
    if (hs_opt.start) {
        /* Synchronously, so nothing allocated after load is missed; then a
         * no-op byte wakes the writer to arm the HEAPSNAP_INTERVAL timer. */
        pthread_mutex_lock(&ctl_lock);
        run(HS_CMD_START);
        pthread_mutex_unlock(&ctl_lock);
        unsigned char wake = 0xFF;
        (void)!write(ctl.wfd, &wake, 1);
    }
    hs_reentry = 0;
}

/* Normal exit (exit() or return from main): runs after the program's own
 * destructors. Writes the AT_EXIT snapshot, then stops sampling for good. */
__attribute__((destructor(101))) static void hs_fini(void)
{
    if (!ctl.ready || ctl.inert)
        return;
    if (hs_reentry) {
        /* exit() from a signal handler that interrupted this thread inside
         * the shim (it may hold a stripe lock and count as in flight):
         * waiting for quiesce would wait for ourselves. Just stop. */
        __atomic_store_n(&hs_active, 0, __ATOMIC_SEQ_CST);
        return;
    }
    hs_reentry = 1;
    pthread_mutex_lock(&ctl_lock);
    if (__atomic_load_n(&hs_active, __ATOMIC_RELAXED) == 1 && !ctl.at_exit_done) {
        hs_quiesce();
        if (hs_opt.at_exit)
            snapshot_blocking_sigxfsz(HEAPSNAP_FLAG_AT_EXIT);
    }
    pthread_mutex_unlock(&ctl_lock);
}
