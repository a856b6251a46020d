/*
 * inject.c - `heapsnap attach`'s injector: loads libheapsnap_preload.so into
 * a running process with ptrace, at a safe point, and leaves every thread
 * as it found it. x86-64 only.
 *
 * The steps (CShim/DESIGN.md, "Attaching to a running process", says why):
 * 1. Find libc in /proc/PID/maps and the addresses of malloc, free, calloc,
 *    realloc, dlopen, dlerror and dlsym from its file (seen through
 *    /proc/PID/root, so a process in another mount namespace works too).
 * 2. PTRACE_SEIZE every thread (re-reading /proc/PID/task until no new one
 *    appears; PTRACE_O_TRACECLONE catches threads made meanwhile), then
 *    PTRACE_INTERRUPT each and wait for its stop. No PTRACE_O_EXITKILL: if
 *    heapsnap dies the kernel detaches and the process lives.
 * 3. Breakpoints (int3) at the entry of the four allocation functions; every
 *    thread resumed. The first thread to hit one is at a safe point: it
 *    holds no allocator lock and no loader lock (memray PR 612: a random
 *    stop point deadlocks in dlopen). A hit whose caller is the dynamic
 *    loader is stepped over (the loader may hold its lock around malloc).
 *    Signals that stop a thread meanwhile are handed back to it.
 * 4. Every other thread interrupted again; breakpoints removed; a thread
 *    that hit one meanwhile gets its instruction pointer moved back onto it.
 *    The chosen thread's registers (general and XSAVE), and its signal mask
 *    are saved. The others run on during the calls (one of them may hold a
 *    lock dlopen needs).
 * 5. Remote calls on the chosen thread, with every signal but the
 *    synchronous faults blocked (pending signals stay pending), the stack
 *    pointer below the red zone, and a return address of 0: the call's
 *    return faults at address 0, which ptrace sees before any handler, and
 *    the fault is discarded. dlopen(library, RTLD_NOW), dlsym(handle,
 *    "heapsnap_attach"), heapsnap_attach(spec) (dlerror for a message).
 * 6. Registers, XSAVE state and signal mask restored; the chosen thread
 *    resumes at the allocation function's entry and makes the call it was
 *    about to make. Every thread detached with the signal it was stopped
 *    with, if any; a process that was stopped stays stopped (the kernel
 *    re-enters the group stop on detach).
 * On a timeout at step 3 the breakpoints are removed and every thread is
 * let go unchanged. The calls of step 5 are waited for however long they
 * take (a line on stderr after 10 s), never abandoned: their thread would
 * be left inside dlopen. From the seize to the detach, SIGINT, SIGTERM,
 * SIGHUP and SIGQUIT are ignored by heapsnap itself: a tracer that dies
 * mid-call detaches its tracees, and the call's return to address 0 would
 * then kill the process.
 */
#define _GNU_SOURCE
#include "inject.h"

#include <dirent.h>
#include <dlfcn.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/ptrace.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef NT_X86_XSTATE
#define NT_X86_XSTATE 0x202
#endif

#define MAX_THREADS 4096
#define N_BPS 8         /* libc's four, and malloc/free of up to two other allocators */

struct thread {
    pid_t tid;
    int sig;            /* signal to hand back when resumed or detached */
    bool gone;
    bool running;
    bool asked;         /* PTRACE_INTERRUPT sent since it last ran */
};

static struct thread th[MAX_THREADS];
static int n_th;
static pid_t target;

struct bp { uintptr_t addr; long saved; bool set; };
static struct bp bps[N_BPS];
static uintptr_t ld_lo, ld_hi;          /* the dynamic loader's mapping */

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void say(struct hs_inject_result *r, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->message, sizeof r->message, fmt, ap);
    va_end(ap);
}

static struct thread *find(pid_t tid)
{
    for (int i = 0; i < n_th; i++)
        if (th[i].tid == tid)
            return &th[i];
    return NULL;
}

static struct thread *add(pid_t tid)
{
    struct thread *t = find(tid);
    if (t || n_th == MAX_THREADS)
        return t;
    th[n_th] = (struct thread){ .tid = tid };
    return &th[n_th++];
}

/* ------------------------------------------------------------ ELF files */

/* Offsets of `n` dynamic symbols from the file's load base; -1 when absent. */
static int elf_offsets(const char *path, const char *const *names, long *out, int n, char *why, size_t whylen)
{
    for (int i = 0; i < n; i++)
        out[i] = -1;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(why, whylen, "cannot open %s: %s", path, strerror(errno));
        return -1;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || st.st_size < (off_t)sizeof(Elf64_Ehdr)) {
        close(fd);
        snprintf(why, whylen, "%s is not an ELF file", path);
        return -1;
    }
    const unsigned char *f = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (f == MAP_FAILED) {
        snprintf(why, whylen, "cannot read %s: %s", path, strerror(errno));
        return -1;
    }
    size_t size = (size_t)st.st_size;
    const Elf64_Ehdr *eh = (const Elf64_Ehdr *)f;
    int ret = -1;
    if (memcmp(eh->e_ident, ELFMAG, SELFMAG) != 0 || eh->e_ident[EI_CLASS] != ELFCLASS64) {
        snprintf(why, whylen, "%s is not a 64-bit ELF file", path);
        goto out;
    }
    if (eh->e_machine != EM_X86_64) {
        snprintf(why, whylen, "%s is not x86-64: heapsnap attach supports x86-64 only", path);
        goto out;
    }
    if (eh->e_shoff == 0 || eh->e_shoff + (size_t)eh->e_shnum * sizeof(Elf64_Shdr) > size) {
        snprintf(why, whylen, "%s has no section headers", path);
        goto out;
    }
    uint64_t first_load = UINT64_MAX;
    const Elf64_Phdr *ph = (const Elf64_Phdr *)(f + eh->e_phoff);
    for (int i = 0; i < eh->e_phnum; i++)
        if (ph[i].p_type == PT_LOAD && (ph[i].p_vaddr & ~0xfffull) < first_load)
            first_load = ph[i].p_vaddr & ~0xfffull;
    const Elf64_Shdr *sh = (const Elf64_Shdr *)(f + eh->e_shoff);
    for (int s = 0; s < eh->e_shnum; s++) {
        if (sh[s].sh_type != SHT_DYNSYM || sh[s].sh_link >= eh->e_shnum)
            continue;
        const Elf64_Sym *sym = (const Elf64_Sym *)(f + sh[s].sh_offset);
        const char *str = (const char *)(f + sh[sh[s].sh_link].sh_offset);
        size_t count = sh[s].sh_size / sizeof *sym;
        for (size_t k = 0; k < count; k++) {
            if (sym[k].st_shndx == SHN_UNDEF || sym[k].st_value == 0)
                continue;
            const char *nm = str + sym[k].st_name;
            for (int i = 0; i < n; i++)
                if (out[i] < 0 && strcmp(nm, names[i]) == 0)
                    out[i] = (long)(sym[k].st_value - first_load);
        }
        ret = 0;
    }
    if (ret)
        snprintf(why, whylen, "%s has no dynamic symbol table", path);
out:
    munmap((void *)f, size);
    return ret;
}

long hs_elf_symbol_offset(const char *path, const char *name)
{
    long off;
    char why[256];
    if (elf_offsets(path, &name, &off, 1, why, sizeof why) != 0)
        return -1;
    return off;
}

/* ------------------------------------------------------------ /proc */

static char *read_file(const char *path, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    for (;;) {
        if (n + 4096 > cap) {
            cap *= 2;
            buf = realloc(buf, cap);
        }
        ssize_t r = read(fd, buf + n, cap - n - 1);
        if (r <= 0)
            break;
        n += (size_t)r;
    }
    close(fd);
    buf[n] = 0;
    if (len)
        *len = n;
    return buf;
}

/* /proc/PID/maps, read whole (free it), or NULL. */
static char *read_maps(pid_t pid)
{
    char fn[64];
    snprintf(fn, sizeof fn, "/proc/%d/maps", pid);
    return read_file(fn, NULL);
}

/* One line of /proc/PID/maps: its range, permissions and file offset; the
 * rest of the line (the mapped file's path, or "" for an anonymous
 * mapping), or NULL for a line that does not parse. */
static const char *maps_line(char *line, unsigned long *lo, unsigned long *hi, char perms[8], unsigned long *off)
{
    int pos = 0;
    if (sscanf(line, "%lx-%lx %7s %lx %*s %*s %n", lo, hi, perms, off, &pos) < 4 || !pos)
        return NULL;
    return line + pos;
}

/* libc's path and load base, and the loader's range, from /proc/PID/maps. */
static bool find_libc(pid_t pid, char *path, size_t plen, uintptr_t *base)
{
    char *maps = read_maps(pid);
    if (!maps)
        return false;
    bool found = false;
    ld_lo = UINTPTR_MAX;
    ld_hi = 0;
    for (char *line = strtok(maps, "\n"); line; line = strtok(NULL, "\n")) {
        unsigned long lo, hi, off;
        char perms[8];
        const char *p = maps_line(line, &lo, &hi, perms, &off);
        if (!p || *p != '/')
            continue;
        const char *b = strrchr(p, '/') + 1;
        if (strncmp(b, "ld-linux", 8) == 0) {
            if (lo < ld_lo)
                ld_lo = lo;
            if (hi > ld_hi)
                ld_hi = hi;
        }
        if (!found && off == 0 && (strncmp(b, "libc.so", 7) == 0 || strncmp(b, "libc-2.", 7) == 0)) {
            snprintf(path, plen, "%s", p);
            *base = lo;
            found = true;
        }
    }
    free(maps);
    return found;
}

static long status_field(pid_t pid, const char *field)
{
    char fn[64];
    snprintf(fn, sizeof fn, "/proc/%d/status", pid);
    char *s = read_file(fn, NULL);
    if (!s)
        return -1;
    long v = -1;
    char *p = strstr(s, field);
    if (p)
        v = strtol(p + strlen(field), NULL, 10);
    free(s);
    return v;
}

static char proc_state(pid_t pid)
{
    char fn[64];
    snprintf(fn, sizeof fn, "/proc/%d/stat", pid);
    char *s = read_file(fn, NULL);
    if (!s)
        return 0;
    char *p = strrchr(s, ')');
    char c = p && p[1] ? p[2] : 0;
    free(s);
    return c;
}

/* Breakpoints from `first` on at malloc and free of other objects that
 * define them (an allocator linked into the program, or preloaded, such as
 * jemalloc): its threads may never enter libc's. */
static void other_allocators(pid_t pid, const char *libc, int first)
{
    char *maps = read_maps(pid);
    if (!maps)
        return;
    int next = first;
    for (char *line = strtok(maps, "\n"); line && next + 1 < N_BPS; line = strtok(NULL, "\n")) {
        unsigned long lo, hi, off;
        char perms[8];
        const char *p = maps_line(line, &lo, &hi, perms, &off);
        if (!p || off != 0 || *p != '/')
            continue;
        const char *b = strrchr(p, '/');
        if (strcmp(p, libc) == 0 || strncmp(b + 1, "ld-linux", 8) == 0 ||
            strstr(b, "libheapsnap_preload"))
            continue;
        char file[PATH_MAX + 64];
        snprintf(file, sizeof file, "/proc/%d/root%s", pid, p);
        static const char *const names[] = { "malloc", "free" };
        long o[2];
        char why[300];
        if (elf_offsets(file, names, o, 2, why, sizeof why) != 0 || o[0] < 0 || o[1] < 0)
            continue;
        bps[next++].addr = lo + (uintptr_t)o[0];
        bps[next++].addr = lo + (uintptr_t)o[1];
    }
    free(maps);
}

/* ------------------------------------------------------------ ptrace */

static long peek(pid_t tid, uintptr_t a, bool *ok)
{
    errno = 0;
    long v = ptrace(PTRACE_PEEKDATA, tid, (void *)a, NULL);
    *ok = errno == 0;
    return v;
}

static bool poke(pid_t tid, uintptr_t a, long v)
{
    return ptrace(PTRACE_POKEDATA, tid, (void *)a, (void *)v) == 0;
}

static bool write_mem(pid_t tid, uintptr_t a, const void *src, size_t n)
{
    const unsigned char *s = src;
    for (size_t i = 0; i < n; i += sizeof(long)) {
        long w = 0;
        size_t k = n - i < sizeof w ? n - i : sizeof w;
        if (k < sizeof w) {
            bool ok;
            w = peek(tid, a + i, &ok);
            if (!ok)
                return false;
        }
        memcpy(&w, s + i, k);
        if (!poke(tid, a + i, w))
            return false;
    }
    return true;
}

static void read_str(pid_t tid, uintptr_t a, char *out, size_t n)
{
    size_t i = 0;
    while (a && i + 1 < n) {
        bool ok;
        long w = peek(tid, a + i, &ok);
        if (!ok)
            break;
        for (size_t k = 0; k < sizeof w && i + 1 < n; k++, i++) {
            out[i] = ((char *)&w)[k];
            if (!out[i])
                return;
        }
    }
    out[i] = 0;
}

/* One of our breakpoint addresses (set now, or set earlier in this attach:
 * a thread that trapped on one before it was removed still has its
 * instruction pointer one byte past it). */
static bool is_bp(uintptr_t a)
{
    for (int i = 0; i < N_BPS; i++)
        if (bps[i].addr && bps[i].addr == a)
            return true;
    return false;
}

static bool set_bps(pid_t tid)
{
    for (int i = 0; i < N_BPS; i++) {
        if (!bps[i].addr || bps[i].set)
            continue;
        bool ok;
        long w = peek(tid, bps[i].addr, &ok);
        if (!ok || (w & 0xff) == 0xcc)
            return false;           /* unreadable, or someone's breakpoint already there */
        bps[i].saved = w;
        if (!poke(tid, bps[i].addr, (w & ~0xffL) | 0xcc))
            return false;
        bps[i].set = true;
    }
    return true;
}

static void clear_bps(pid_t tid)
{
    for (int i = 0; i < N_BPS; i++)
        if (bps[i].set && poke(tid, bps[i].addr, bps[i].saved))
            bps[i].set = false;
}

/* Seizes every thread of `pid`. 0, or -errno of the first failure on a
 * thread that still exists. */
static int seize_all(pid_t pid)
{
    char dir[64];
    snprintf(dir, sizeof dir, "/proc/%d/task", pid);
    for (int pass = 0; pass < 100; pass++) {
        DIR *d = opendir(dir);
        if (!d)
            return -errno;
        int added = 0;
        struct dirent *e;
        while ((e = readdir(d))) {
            pid_t tid = (pid_t)atoi(e->d_name);
            if (tid <= 0 || find(tid))
                continue;
            if (ptrace(PTRACE_SEIZE, tid, NULL, (void *)(long)PTRACE_O_TRACECLONE) != 0) {
                if (errno == ESRCH)
                    continue;
                int err = errno;
                closedir(d);
                return -err;
            }
            if (!add(tid)) {
                closedir(d);
                return -E2BIG;
            }
            th[n_th - 1].running = true;
            added++;
        }
        closedir(d);
        if (!added)
            return 0;
    }
    return 0;
}

enum stop_kind { K_NONE, K_GONE, K_STOPPED, K_BP, K_SIGNAL, K_CLONE };

/* Classifies one wait status of `t`; K_SIGNAL leaves the signal in t->sig. */
static enum stop_kind classify(struct thread *t, int status)
{
    if (WIFEXITED(status) || WIFSIGNALED(status)) {
        t->gone = true;
        t->running = false;
        return K_GONE;
    }
    if (!WIFSTOPPED(status))
        return K_NONE;
    t->running = false;
    int sig = WSTOPSIG(status), event = status >> 16;
    if (event == PTRACE_EVENT_CLONE) {
        unsigned long child = 0;
        ptrace(PTRACE_GETEVENTMSG, t->tid, NULL, &child);
        struct thread *c = add((pid_t)child);
        if (c)
            c->running = true;      /* reports its own stop */
        return K_CLONE;
    }
    if (event == PTRACE_EVENT_STOP || event)
        return K_STOPPED;           /* interrupt, group stop, or another event */
    if (sig == SIGTRAP) {
        struct user_regs_struct r;
        if (ptrace(PTRACE_GETREGS, t->tid, NULL, &r) == 0 && is_bp(r.rip - 1))
            return K_BP;
    }
    t->sig = sig;
    return K_SIGNAL;
}

/* Waits for any traced thread until `deadline`: its thread and kind, or
 * K_NONE at the deadline. Threads we do not know yet (new ones reporting
 * before their parent's clone event) are added. */
static enum stop_kind wait_any(double deadline, struct thread **who)
{
    for (;;) {
        int status;
        pid_t tid = waitpid(-1, &status, __WALL | WNOHANG);
        if (tid > 0) {
            struct thread *t = find(tid);
            if (!t)
                t = add(tid);
            if (!t)
                continue;
            *who = t;
            return classify(t, status);
        }
        if (tid < 0 && errno == ECHILD)
            return K_GONE;
        if (now_s() > deadline)
            return K_NONE;
        struct timespec ts = { 0, 50000 };
        nanosleep(&ts, NULL);
    }
}

static void resume(struct thread *t)
{
    if (t->gone || t->running)
        return;
    int sig = t->sig;
    t->sig = 0;
    if (ptrace(PTRACE_CONT, t->tid, NULL, (void *)(long)sig) == 0) {
        t->running = true;
        t->asked = false;
    }
    else if (errno == ESRCH)
        t->gone = true;
}

/* A thread that stopped on one of our breakpoints (rip just past it) is
 * moved back onto the instruction, and its SIGTRAP is dropped. Only for a
 * thread known to have trapped (K_BP): past a one-byte first instruction,
 * rip = address + 1 is also where a thread that ran it stands. */
static void rewind_bp(struct thread *t)
{
    struct user_regs_struct r;
    if (ptrace(PTRACE_GETREGS, t->tid, NULL, &r) == 0 && is_bp(r.rip - 1)) {
        r.rip -= 1;
        ptrace(PTRACE_SETREGS, t->tid, NULL, &r);
    }
    t->sig = 0;
}

/* Interrupts every running thread except `keep` and waits until all are
 * stopped; breakpoint hits are rewound, other signals kept for later (they
 * are handed back when the thread is resumed or detached). */
static void stop_all(struct thread *keep, double deadline)
{
    for (;;) {
        bool all = true;
        for (int i = 0; i < n_th; i++)
            if (&th[i] != keep && !th[i].gone && th[i].running) {
                all = false;
                if (!th[i].asked && ptrace(PTRACE_INTERRUPT, th[i].tid, NULL, NULL) == 0)
                    th[i].asked = true;
            }
        if (all)
            return;
        struct thread *t = NULL;
        enum stop_kind k = wait_any(deadline, &t);
        if (k == K_NONE || !t)
            return;
        t->asked = false;
        if (k == K_BP)
            rewind_bp(t);
    }
}

static void detach_all(void)
{
    for (int i = 0; i < n_th; i++)
        if (!th[i].gone)
            ptrace(PTRACE_DETACH, th[i].tid, NULL, (void *)(long)th[i].sig);
}

/* ------------------------------------------------------- remote calls */

struct saved {
    struct user_regs_struct regs;
    unsigned char xstate[16384];
    struct iovec xiov;
    bool have_x;
    struct user_fpregs_struct fp;
    uint64_t mask;
};

/* Calls fn(a0, a1) on thread `t` (stopped), strings already written to
 * its stack by the caller below `sp`. Other threads keep running and are
 * serviced. 0 with the return value in *ret, or -1 (message in r). */
static int remote_call(struct thread *t, const struct saved *sv, uintptr_t sp, uintptr_t fn, uint64_t a0, uint64_t a1,
                       double deadline, uint64_t *ret, struct hs_inject_result *res)
{
    struct user_regs_struct r = sv->regs;
    sp &= ~(uintptr_t)15;
    sp -= 8;
    if (!poke(t->tid, sp, 0)) {
        say(res, "cannot write to the stack of thread %d", t->tid);
        return -1;
    }
    r.rsp = sp;
    r.rip = fn;
    r.rdi = a0;
    r.rsi = a1;
    r.rax = 0;
    r.orig_rax = (unsigned long)-1;     /* no system call restart */
    if (ptrace(PTRACE_SETREGS, t->tid, NULL, &r) != 0) {
        say(res, "cannot set the registers of thread %d: %s", t->tid, strerror(errno));
        return -1;
    }
    t->sig = 0;
    resume(t);
    bool noted = false;
    for (;;) {
        struct thread *w = NULL;
        enum stop_kind k = wait_any(deadline, &w);
        if (k == K_NONE) {
            /* Never given up: putting the registers back while the call runs
             * would leave the process inside dlopen, holding the loader's
             * lock. The other threads run meanwhile, so a lock dlopen waits
             * for is released; a process that never lets it go was stuck
             * before we came. */
            if (!noted)
                fprintf(stderr, "heapsnap: process %d: still waiting for the library to load in thread %d\n", target,
                        t->tid);
            noted = true;
            deadline = now_s() + 86400;
            continue;
        }
        if (!w) {
            say(res, "the process exited during the attach");
            return -1;
        }
        if (w != t) {
            if (k != K_GONE)
                resume(w);          /* signals are handed back as they come */
            continue;
        }
        if (k == K_GONE) {
            say(res, "the thread exited during the call");
            return -1;
        }
        if (k == K_SIGNAL && w->sig == SIGSEGV) {
            struct user_regs_struct out;
            ptrace(PTRACE_GETREGS, t->tid, NULL, &out);
            w->sig = 0;
            if (out.rip == 0) {
                *ret = out.rax;
                return 0;
            }
            say(res, "the call into the process faulted at %#llx", (unsigned long long)out.rip);
            return -1;
        }
        /* Anything else on our thread (a group stop): run on; signals are
         * blocked, so none is lost. */
        if (k == K_SIGNAL)
            w->sig = w->sig == SIGSEGV ? 0 : w->sig;
        resume(w);
    }
}

/* ------------------------------------------------------------ hs_inject */

static int inject(int pid, const char *library, const char *spec, double timeout, struct hs_inject_result *res);

int hs_inject(int pid, const char *library, const char *spec, double timeout, struct hs_inject_result *res)
{
    static const int held[] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT };
    struct sigaction ignore = { .sa_handler = SIG_IGN }, old[4];
    for (int i = 0; i < 4; i++)
        sigaction(held[i], &ignore, &old[i]);
    int rc = inject(pid, library, spec, timeout, res);
    for (int i = 0; i < 4; i++)
        sigaction(held[i], &old[i], NULL);
    return rc;
}

static int inject(int pid, const char *library, const char *spec, double timeout, struct hs_inject_result *res)
{
    memset(res, 0, sizeof *res);
    double t0 = now_s();
    n_th = 0;
    target = pid;
    memset(bps, 0, sizeof bps);

    char libc[PATH_MAX], libc_file[PATH_MAX + 64];
    uintptr_t libc_base;
    if (!find_libc(pid, libc, sizeof libc, &libc_base)) {
        res->status = HS_INJECT_REFUSED;
        if (kill(pid, 0) != 0 && errno == ESRCH)
            say(res, "process %d: no such process", pid);
        else
            say(res, "process %d maps no libc.so.6: a statically linked program cannot load a library", pid);
        return res->status;
    }
    long seccomp = status_field(pid, "Seccomp:");
    if (seccomp > 0) {
        res->status = HS_INJECT_REFUSED;
        say(res, "process %d runs under seccomp (mode %ld): its filter may kill it for the calls attaching makes", pid,
            seccomp);
        return res->status;
    }
    long tracer = status_field(pid, "TracerPid:");
    if (tracer > 0) {
        res->status = HS_INJECT_REFUSED;
        say(res, "process %d is already traced by process %ld (a debugger?)", pid, tracer);
        return res->status;
    }
    snprintf(libc_file, sizeof libc_file, "/proc/%d/root%s", pid, libc);
    static const char *const names[] = { "malloc", "free", "calloc", "realloc", "dlopen", "dlsym", "dlerror" };
    long off[7];
    char why[300];
    if (elf_offsets(libc_file, names, off, 7, why, sizeof why) != 0) {
        res->status = HS_INJECT_REFUSED;
        say(res, "process %d: %s", pid, why);
        return res->status;
    }
    for (int i = 0; i < 7; i++)
        if (off[i] < 0) {
            res->status = HS_INJECT_REFUSED;
            say(res, "process %d: %s has no %s", pid, libc, names[i]);
            return res->status;
        }
    for (int i = 0; i < 4; i++)
        bps[i].addr = libc_base + (uintptr_t)off[i];
    other_allocators(pid, libc, 4);
    uintptr_t f_dlopen = libc_base + (uintptr_t)off[4], f_dlsym = libc_base + (uintptr_t)off[5],
              f_dlerror = libc_base + (uintptr_t)off[6];
    res->was_stopped = proc_state(pid) == 'T';

    int err = seize_all(pid);
    if (err) {
        detach_all();
        res->status = HS_INJECT_REFUSED;
        if (err == -EPERM)
            say(res, "process %d: ptrace not permitted (%s): attach as its user or as root, and check "
                     "/proc/sys/kernel/yama/ptrace_scope", pid, strerror(-err));
        else
            say(res, "process %d: cannot trace it: %s", pid, strerror(-err));
        return res->status;
    }
    res->threads = n_th;
    double deadline = t0 + timeout;
    stop_all(NULL, now_s() + 5);
    if (!set_bps(th[0].tid)) {
        clear_bps(th[0].tid);
        detach_all();
        res->status = HS_INJECT_REFUSED;
        say(res, "process %d: cannot set breakpoints at libc's allocation functions (one is there already?)", pid);
        return res->status;
    }
    for (int i = 0; i < n_th; i++)
        resume(&th[i]);

    /* Step 3: the first breakpoint hit outside the loader. */
    struct thread *chosen = NULL;
    while (!chosen) {
        struct thread *t = NULL;
        enum stop_kind k = wait_any(deadline, &t);
        if (k == K_NONE)
            break;
        if (!t) {
            res->status = HS_INJECT_FAILED;
            say(res, "process %d exited during the attach", pid);
            return res->status;
        }
        if (k == K_GONE)
            continue;
        if (k == K_BP) {
            struct user_regs_struct r;
            ptrace(PTRACE_GETREGS, t->tid, NULL, &r);
            bool ok;
            uintptr_t caller = (uintptr_t)peek(t->tid, r.rsp, &ok);
            if (ok && !(caller >= ld_lo && caller < ld_hi)) {
                chosen = t;
                break;
            }
            /* Called by the loader, which may hold its lock: step over. */
            for (int i = 0; i < N_BPS; i++)
                if (bps[i].set && bps[i].addr == r.rip - 1) {
                    r.rip -= 1;
                    ptrace(PTRACE_SETREGS, t->tid, NULL, &r);
                    poke(t->tid, bps[i].addr, bps[i].saved);
                    int st = 0;
                    t->sig = 0;
                    ptrace(PTRACE_SINGLESTEP, t->tid, NULL, NULL);
                    if (waitpid(t->tid, &st, __WALL) == t->tid && WIFSTOPPED(st) && WSTOPSIG(st) != SIGTRAP &&
                        !(st >> 16))
                        t->sig = WSTOPSIG(st);  /* a signal came instead of the step: handed back below */
                    poke(t->tid, bps[i].addr, (bps[i].saved & ~0xffL) | 0xcc);
                }
            t->running = false;
            resume(t);
            continue;
        }
        resume(t);                  /* hand back signals, run new threads */
    }
    if (!chosen) {
        stop_all(NULL, now_s() + 5);        /* a thread that trapped meanwhile is rewound there */
        for (int i = 0; i < n_th; i++)
            if (!th[i].gone) {
                clear_bps(th[i].tid);
                break;
            }
        detach_all();
        res->status = HS_INJECT_NO_SAFE_POINT;
        res->seconds = now_s() - t0;
        say(res, "process %d did not call malloc, free, calloc or realloc within %.1f s; it was left as it was "
                 "(try again while it works, or with a longer --timeout)", pid, timeout);
        return res->status;
    }
    res->seconds_to_safe_point = now_s() - t0;

    /* Step 4. */
    stop_all(chosen, now_s() + 5);
    rewind_bp(chosen);
    clear_bps(chosen->tid);
    struct saved *sv = calloc(1, sizeof *sv);
    ptrace(PTRACE_GETREGS, chosen->tid, NULL, &sv->regs);
    sv->xiov = (struct iovec){ sv->xstate, sizeof sv->xstate };
    sv->have_x = ptrace(PTRACE_GETREGSET, chosen->tid, (void *)NT_X86_XSTATE, &sv->xiov) == 0;
    if (!sv->have_x)
        ptrace(PTRACE_GETFPREGS, chosen->tid, NULL, &sv->fp);
    ptrace(PTRACE_GETSIGMASK, chosen->tid, (void *)sizeof sv->mask, &sv->mask);
    uint64_t block = ~0ull;
    int faults[] = { SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGTRAP };
    for (unsigned i = 0; i < sizeof faults / sizeof faults[0]; i++)
        block &= ~(1ull << (faults[i] - 1));
    ptrace(PTRACE_SETSIGMASK, chosen->tid, (void *)sizeof block, &block);
    for (int i = 0; i < n_th; i++)
        if (&th[i] != chosen)
            resume(&th[i]);

    /* Step 5: strings below the red zone, then the calls. */
    uintptr_t area = ((uintptr_t)sv->regs.rsp - 512) & ~(uintptr_t)15;
    size_t llen = strlen(library) + 1, slen = strlen(spec) + 1;
    uintptr_t s_lib = area - llen - 8, s_spec = s_lib - slen - 8, s_name = s_spec - 32;
    s_lib &= ~(uintptr_t)7;
    s_spec &= ~(uintptr_t)7;
    s_name &= ~(uintptr_t)7;
    uintptr_t sp = s_name - 256;
    int rc = HS_INJECT_FAILED;
    uint64_t handle = 0, fn = 0, ret = 0;
    double call_deadline = now_s() + 10;
    if (!write_mem(chosen->tid, s_lib, library, llen) || !write_mem(chosen->tid, s_spec, spec, slen) ||
        !write_mem(chosen->tid, s_name, "heapsnap_attach", 16)) {
        say(res, "cannot write to the stack of thread %d", chosen->tid);
    } else if (remote_call(chosen, sv, sp, f_dlopen, s_lib, RTLD_NOW, call_deadline, &handle, res) == 0) {
        if (!handle) {
            uint64_t msg = 0;
            char text[300] = "";
            if (remote_call(chosen, sv, sp, f_dlerror, 0, 0, call_deadline, &msg, res) == 0)
                read_str(chosen->tid, msg, text, sizeof text);
            say(res, "dlopen in process %d failed: %s", pid, text[0] ? text : "(no message)");
        } else if (remote_call(chosen, sv, sp, f_dlsym, handle, s_name, call_deadline, &fn, res) == 0) {
            if (!fn) {
                say(res, "%s has no heapsnap_attach: not heapsnap's library?", library);
            } else if (remote_call(chosen, sv, sp, fn, s_spec, 0, call_deadline, &ret, res) == 0) {
                res->attach_return = (long)(int)(uint32_t)ret;
                if (res->attach_return == 0)
                    rc = HS_INJECT_DONE;
                else if (res->attach_return == -EALREADY)
                    rc = HS_INJECT_ALREADY;
                else
                    say(res, "heapsnap_attach in process %d failed: %s", pid, strerror((int)-res->attach_return));
            }
        }
    }

    /* Step 6. */
    stop_all(chosen, now_s() + 5);
    ptrace(PTRACE_SETREGS, chosen->tid, NULL, &sv->regs);
    if (sv->have_x)
        ptrace(PTRACE_SETREGSET, chosen->tid, (void *)NT_X86_XSTATE, &sv->xiov);
    else
        ptrace(PTRACE_SETFPREGS, chosen->tid, NULL, &sv->fp);
    ptrace(PTRACE_SETSIGMASK, chosen->tid, (void *)sizeof sv->mask, &sv->mask);
    chosen->sig = 0;
    free(sv);
    detach_all();
    res->status = rc;
    res->seconds = now_s() - t0;
    return rc;
}

/* ------------------------------------------------- the published state */

int hs_read_attach_info(int pid, int *signal_base, char *dir, unsigned long dir_size)
{
    char *maps = read_maps(pid);
    if (!maps)
        return -1;
    char path[PATH_MAX] = "";
    unsigned long base = 0;
    for (char *line = strtok(maps, "\n"); line; line = strtok(NULL, "\n")) {
        unsigned long lo, hi, off;
        char perms[8];
        const char *p = maps_line(line, &lo, &hi, perms, &off);
        if (!p)
            continue;
        size_t n = strlen(p);
        if (off == 0 && n >= 23 && strcmp(p + n - 23, "/libheapsnap_preload.so") == 0) {
            snprintf(path, sizeof path, "%s", p);
            base = lo;
            break;
        }
    }
    free(maps);
    if (!path[0])
        return 0;
    char file[PATH_MAX + 64];
    snprintf(file, sizeof file, "/proc/%d/root%s", pid, path);
    long off = hs_elf_symbol_offset(file, "heapsnap_attach_info");
    if (off < 0)
        return 0;                   /* an older library: nothing published */
    struct { uint64_t magic; int32_t base; uint32_t reserved; char dir[4096]; } info;
    struct iovec local = { &info, sizeof info }, remote = { (void *)(base + (unsigned long)off), sizeof info };
    if (process_vm_readv(pid, &local, 1, &remote, 1, 0) != (ssize_t)sizeof info)
        return -1;
    if (info.magic != 0x6865617061747431ull)
        return 0;
    info.dir[sizeof info.dir - 1] = 0;
    *signal_base = info.base;
    snprintf(dir, dir_size, "%s", info.dir);
    return 1;
}
