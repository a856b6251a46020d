/*
 * snapshot_writer.c - serialises the tables into docs/FORMAT.md, version 1.4.
 *
 * Order of work: modules and process info first (dl_iterate_phdr takes the
 * loader lock, so no shim lock may be held then); then the live table, one
 * stripe at a time, summed per stack into `inuse`; then each stack's `alloc`
 * group under its stripe lock. Because a sampled allocation is added to
 * `alloc` before it becomes visible in the live table (both under its live
 * stripe lock, see sampler.c), every live record seen here is also counted
 * in the alloc read afterwards: inuse <= alloc holds per stack. Floating sums
 * in a different order could still differ in the last bit, so inuse is
 * clamped to alloc field by field.
 *
 * PEAK is the last peak copy (peak.c, copied out under its lock) or, when
 * the state written here is higher, this snapshot's own in-use values;
 * HIGH is the running maximum of the estimate (peak.c), raised by this
 * snapshot's own total and never below PEAK's; SERS is the timeline's
 * points plus one taken with this snapshot (its totals are those of SMPL,
 * so the last point and the records agree).
 *
 * THIN says what retention (retention.c) has thinned so far; a periodic
 * snapshot first makes room for itself under HEAPSNAP_KEEP, so the record
 * counts the directory as it is once this file is renamed into it.
 *
 * The first snapshot a process writes with dropped samples (the budget was
 * full) says so in one line on stderr, naming the budget; the snapshot says
 * it too (PROC's dropped), and every heapsnap output reading it warns.
 *
 * Memory: all buffers are mmap'd here and unmapped before returning (not
 * counted in the budget: they exist only while a snapshot is written).
 * The file is written through a 64 KiB buffer that also computes the CRC-32.
 */
#define _GNU_SOURCE
#include "snapshot/snapshot_writer.h"
#include "base/options.h"
#include "base/stderr.h"
#include "include/heapsnap.h"
#include "tables/live.h"
#include "base/mem.h"
#include "sampling/sampler.h"
#include "tables/stacks.h"
#include "tables/pyframes.h"
#include "python/pyalloc.h"
#include "python/pyreuse.h"
#include "snapshot/timeline.h"
#include "sampling/peak.h"
#include "snapshot/retention.h"
#include "base/clock.h"

#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <link.h>
#include <stdio.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------------------------------------ byte buffer */

/* A growable mmap'd byte buffer; `oom` sticks once a grow fails. */
struct buffer {
    uint8_t *p;
    size_t len, cap;
    bool oom;
};

static void buffer_reserve(struct buffer *b, size_t more)
{
    if (b->oom || b->len + more <= b->cap)
        return;
    size_t ncap = b->cap ? b->cap : 65536;
    while (ncap < b->len + more)
        ncap *= 2;
    void *np = b->p ? mremap(b->p, b->cap, ncap, MREMAP_MAYMOVE)
                    : mmap(NULL, ncap, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (np == MAP_FAILED) {
        b->oom = true;
        return;
    }
    b->p = np;
    b->cap = ncap;
}

static void buffer_put(struct buffer *b, const void *src, size_t n)
{
    buffer_reserve(b, n);
    if (b->oom)
        return;
    memcpy(b->p + b->len, src, n);
    b->len += n;
}

static void buffer_u16(struct buffer *b, uint16_t v) { buffer_put(b, &v, 2); }   /* x86-64/arm64: LE */
static void buffer_u32(struct buffer *b, uint32_t v) { buffer_put(b, &v, 4); }
static void buffer_u64(struct buffer *b, uint64_t v) { buffer_put(b, &v, 8); }
static void buffer_str(struct buffer *b, const char *s, size_t n)
{
    if (n > (1u << 20))
        n = 1u << 20;
    buffer_u32(b, (uint32_t)n);
    buffer_put(b, s, n);
}

static void buffer_free(struct buffer *b)
{
    if (b->p)
        munmap(b->p, b->cap);
    b->p = NULL;
    b->len = b->cap = 0;
}

#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the snapshot writer assumes a little-endian host"
#endif

/* ------------------------------------------------------------- the file */

static uint32_t crc_table[256];

static void crc_init(void)
{
    if (crc_table[1])
        return;
    for (uint32_t n = 0; n < 256; n++) {
        uint32_t c = n;
        for (int k = 0; k < 8; k++)
            c = c & 1 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        crc_table[n] = c;
    }
}

struct out {
    int fd;
    int err;                /* first errno, 0 if fine */
    uint32_t crc;           /* running, pre-inverted */
    uint8_t *buf;
    size_t len;
};

#define OUT_BUF ((size_t)64 << 10)

static void out_flush(struct out *o)
{
    size_t off = 0;
    while (!o->err && off < o->len) {
        ssize_t w = write(o->fd, o->buf + off, o->len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            o->err = w < 0 ? errno : EIO;
        else
            off += (size_t)w;
    }
    o->len = 0;
}

static void out_put(struct out *o, const void *src, size_t n)
{
    const uint8_t *s = src;
    for (size_t i = 0; i < n; i++)
        o->crc = crc_table[(o->crc ^ s[i]) & 0xFF] ^ (o->crc >> 8);
    while (n && !o->err) {
        size_t k = OUT_BUF - o->len < n ? OUT_BUF - o->len : n;
        memcpy(o->buf + o->len, s, k);
        o->len += k;
        s += k;
        n -= k;
        if (o->len == OUT_BUF)
            out_flush(o);
    }
}

static void out_u32(struct out *o, uint32_t v) { out_put(o, &v, 4); }
static void out_u64(struct out *o, uint64_t v) { out_put(o, &v, 8); }
static void out_f64(struct out *o, double v) { out_put(o, &v, 8); }

static void out_record(struct out *o, uint32_t tag, uint64_t len)
{
    out_u32(o, tag);
    out_u32(o, 0);
    out_u64(o, len);
}

/* --------------------------------------------------------------- modules */

/* The executable's path and the MODS entries (mmap'd: the path alone is 4 KiB). */
struct modules {
    struct buffer bytes;    /* MODS entries, already in file layout */
    uint32_t count;
    uintptr_t vdso;
    char exe[4096];
};

static size_t build_id(const struct dl_phdr_info *info, const uint8_t **out)
{
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_NOTE)
            continue;
        const uint8_t *p = (const uint8_t *)(info->dlpi_addr + ph->p_vaddr), *end = p + ph->p_memsz;
        while (p + sizeof(ElfW(Nhdr)) <= end) {
            const ElfW(Nhdr) *nh = (const ElfW(Nhdr) *)p;
            const uint8_t *name = p + sizeof *nh;
            const uint8_t *desc = name + ((nh->n_namesz + 3) & ~3u);
            const uint8_t *next = desc + ((nh->n_descsz + 3) & ~3u);
            if (next > end)
                break;
            if (nh->n_type == NT_GNU_BUILD_ID && nh->n_namesz == 4 && memcmp(name, "GNU", 4) == 0 &&
                nh->n_descsz > 0 && nh->n_descsz <= 64) {
                *out = desc;
                return nh->n_descsz;
            }
            p = next;
        }
    }
    return 0;
}

static int collect_module(struct dl_phdr_info *info, size_t size, void *arg)
{
    (void)size;
    struct modules *modules = arg;
    const char *path = info->dlpi_name;
    if ((uintptr_t)info->dlpi_addr == modules->vdso && modules->vdso)
        path = "[vdso]";
    else if (!path || !*path) {
        if (modules->count > 0 || modules->bytes.len > 0)
            return 0;               /* unnamed object other than the executable */
        path = modules->exe;
    }
    const uint8_t *bid = NULL;
    size_t bidlen = build_id(info, &bid);
    size_t plen = strlen(path);
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_LOAD || !(ph->p_flags & PF_X) || ph->p_memsz == 0)
            continue;
        buffer_u64(&modules->bytes, info->dlpi_addr + ph->p_vaddr);
        buffer_u64(&modules->bytes, info->dlpi_addr + ph->p_vaddr + ph->p_memsz);
        buffer_u64(&modules->bytes, ph->p_offset);
        buffer_u64(&modules->bytes, ph->p_vaddr);
        buffer_u16(&modules->bytes, (uint16_t)bidlen);
        buffer_u16(&modules->bytes, 0);
        buffer_u32(&modules->bytes, (uint32_t)plen);
        buffer_put(&modules->bytes, bid, bidlen);
        buffer_put(&modules->bytes, path, plen);
        modules->count++;
    }
    return 0;
}

/* ----------------------------------------------------------- aggregation */

/* What one stack holds (inuse) and allocated (alloc) in this snapshot. */
struct stack_sums {
    struct hs_group inuse, alloc;
    const struct hs_stack *stack;   /* NULL: id not published, not written */
    uint32_t index;                 /* position in STKS */
};

/* The per-stack sums, indexed by stack id, as add_live fills them. */
struct sums_walk {
    struct stack_sums *sums;
    uint32_t count;
};

/* Context: writer, inside hs_live_foreach (a live stripe lock held). */
static void add_live(void *arg, uint64_t size, uint32_t stack)
{
    struct sums_walk *walk = arg;
    if (stack >= walk->count)
        return;                     /* stack created after we counted: not in this file */
    struct hs_weights w;
    hs_weights(size, &w);
    hs_group_add(&walk->sums[stack].inuse, &w);
}

static void clamp(struct hs_group *in, const struct hs_group *al)
{
    if (in->samples > al->samples)
        in->samples = al->samples;
    if (in->bytes > al->bytes)
        in->bytes = al->bytes;
    if (in->objects > al->objects)
        in->objects = al->objects;
    if (in->bytes_var > al->bytes_var)
        in->bytes_var = al->bytes_var;
    if (in->objects_var > al->objects_var)
        in->objects_var = al->objects_var;
}

static void out_group(struct out *o, const struct hs_group *g)
{
    out_u64(o, g->samples);
    out_f64(o, g->bytes);
    out_f64(o, g->objects);
    out_f64(o, g->bytes_var);
    out_f64(o, g->objects_var);
}

/* Context: writer, inside hs_py_foreach_function (its lock held). */
static void add_function(void *arg, const struct hs_py_function *f)
{
    struct buffer *b = arg;
    buffer_u32(b, f->firstlineno);
    buffer_str(b, f->text, f->name_len);
    buffer_str(b, f->text + f->name_len, f->file_len);
}

/* PYTH: the interpreter's status and the Python functions the stacks name.
 * Built after the stack count was read, so every function id a written
 * stack holds is in it. Empty (not written) in processes without Python. */
static void build_python_record(struct buffer *b)
{
    enum hs_py_status status = hs_py_status();
    if (status == HS_PY_NONE)
        return;
    const char *note = hs_py_note();
    buffer_u32(b, (uint32_t)status);
    buffer_u32(b, hs_py_version());
    buffer_u32(b, hs_pyalloc_flags() | hs_pyreuse_flags() | (hs_opt.native == HS_NATIVE_INNER ? HS_PY_NATIVE_INNER : 0) |
               (hs_opt.native == HS_NATIVE_NONE ? HS_PY_NATIVE_NONE : 0));
    buffer_u32(b, 0);
    buffer_str(b, note, strlen(note));
    size_t at = b->len;
    buffer_u32(b, 0);
    buffer_u32(b, 0);
    uint32_t count = hs_py_foreach_function(add_function, b);
    if (!b->oom)
        memcpy(b->p + at, &count, 4);
}

/* ------------------------------------------------------------ file names */

static char *append(char *d, const char *end, const char *s)
{
    while (*s && d < end - 1)
        *d++ = *s++;
    *d = 0;
    return d;
}

static char *append_u64(char *d, const char *end, uint64_t v)
{
    char tmp[24];
    int n = 0;
    do tmp[n++] = (char)('0' + v % 10); while (v /= 10);
    while (n && d < end - 1)
        *d++ = tmp[--n];
    *d = 0;
    return d;
}

static void fail(const char *dir, const char *name, const char *what, int err)
{
    char path[4600];
    char *e = path + sizeof path, *d = append(path, e, dir);
    d = append(d, e, "/");
    append(d, e, name);
    hs_say("cannot write snapshot ", path, what, strerror(err));
}

/* ------------------------------------------------------------ the writer */

/* One snapshot on its way to disk: what each step below reads and leaves
 * for the next. Everything mapped here is unmapped by release(). */
struct snapshot {
    struct hs_snap_info info;       /* info.seq moves past names already taken */
    uint32_t pid;
    bool periodic;
    uint64_t time_ns, mono_ns;      /* when: CLOCK_REALTIME, CLOCK_MONOTONIC */
    int dirfd;
    struct stat dir_st, file_st;

    /* The process: read from /proc and the loader. */
    struct modules *modules;
    struct buffer cmdline;
    char host[256];

    /* The tables, summed per stack id. */
    struct stack_sums *sums;
    size_t sums_size;
    uint32_t stack_count;           /* stack ids counted (sums' length) */
    uint32_t kept;                  /* stacks written (published ids) */
    uint64_t stacks_len;            /* STKS payload length */
    uint64_t samples, dropped, truncated;
    struct buffer python;           /* PYTH payload; empty without Python */

    /* Memory over time. */
    struct hs_point here;           /* this snapshot's totals, the series' last point */
    struct hs_peak peak;            /* the last peak copy */
    bool peak_is_now;               /* PEAK is this snapshot's own in-use state */
    uint32_t peak_count;            /* PEAK entries */
    double high_bytes, high_var;
    uint64_t high_ns;
    const struct hs_point *points;
    uint32_t series_count;
    uint64_t series_interval;
    struct hs_retention retention;
    bool thin;                      /* write THIN */

    /* The file. */
    struct buffer proc;             /* PROC payload */
    struct out out;
    char tmpname[128], name[96];    /* "" until chosen (tmpname: again once renamed) */
    const char *stage;              /* what failed, for the one line: ": " unless said */
};

static void *map_anonymous(size_t size)
{
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

/* The clocks, the directory and, for a periodic snapshot, room in it under
 * HEAPSNAP_KEEP (the oldest thinned first). 0 or an errno. */
static int open_directory(struct snapshot *s)
{
    s->time_ns = hs_now_ns(CLOCK_REALTIME);
    s->mono_ns = hs_now_ns(CLOCK_MONOTONIC);
    s->dirfd = hs_fd_high(open(hs_opt.dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (s->dirfd < 0) {
        int err = errno;
        hs_snapshot_name(s->name, sizeof s->name, s->pid, s->info.seq);
        s->stage = ": the directory cannot be opened: ";
        return err;
    }
    if (fstat(s->dirfd, &s->dir_st) != 0)
        return errno;
    if (s->periodic)
        hs_retain_make_room(s->dirfd, &s->dir_st, s->mono_ns);
    return 0;
}

/* Up to 1 MiB of /proc/self/cmdline, as it is (NUL-separated). */
static void read_cmdline(struct buffer *cmdline)
{
    int fd = hs_fd_high(open("/proc/self/cmdline", O_RDONLY | O_CLOEXEC));
    if (fd < 0)
        return;
    for (;;) {
        buffer_reserve(cmdline, 4096);
        if (cmdline->oom || cmdline->len >= (1u << 20))
            break;
        ssize_t r = read(fd, cmdline->p + cmdline->len, cmdline->cap - cmdline->len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        cmdline->len += (size_t)r;
    }
    close(fd);
}

/* Process identity and modules. Context: no shim lock held (dl_iterate_phdr
 * takes the loader lock). 0 or an errno. */
static int read_process(struct snapshot *s)
{
    struct modules *modules = map_anonymous(sizeof *modules);
    if (!modules)
        return ENOMEM;
    memset(modules, 0, sizeof *modules);
    s->modules = modules;
    ssize_t len = readlink("/proc/self/exe", modules->exe, sizeof modules->exe - 1);
    modules->exe[len > 0 ? len : 0] = 0;
    modules->vdso = (uintptr_t)getauxval(AT_SYSINFO_EHDR);
    dl_iterate_phdr(collect_module, modules);

    read_cmdline(&s->cmdline);
    gethostname(s->host, sizeof s->host - 1);
    return 0;
}

/* The tables: in-use sums from the live table, then each stack's alloc
 * group (see the top of this file for why in that order), and the
 * counters PROC carries. 0 or an errno. */
static int sum_stacks(struct snapshot *s)
{
    uint32_t n = hs_stack_count();
    s->stack_count = n;
    s->sums_size = (size_t)n * sizeof *s->sums;
    if (n && !(s->sums = map_anonymous(s->sums_size)))
        return ENOMEM;
    struct sums_walk walk = { s->sums, n };
    hs_live_foreach(add_live, &walk);
    hs_live_flush_alloc();      /* after the live walk: a block seen live has its sample in alloc */
    s->stacks_len = 8;
    s->dropped = __atomic_load_n(&hs_count.dropped, __ATOMIC_RELAXED);
    s->samples = s->dropped;
    for (uint32_t i = 0; i < n; i++) {
        struct stack_sums *sum = &s->sums[i];
        sum->stack = hs_stack_get(i);
        if (!sum->stack)
            continue;
        hs_stack_read_alloc(sum->stack, &sum->alloc);
        clamp(&sum->inuse, &sum->alloc);
        sum->index = s->kept++;
        s->stacks_len += 8 + 8ull * sum->stack->depth;
        s->samples += sum->alloc.samples;
        if (sum->stack->flags & HEAPSNAP_STACK_TRUNCATED)
            s->truncated += sum->alloc.samples;
    }
    return 0;
}

/* This snapshot's totals (the series' last point) and the peak: the last
 * peak copy, or this snapshot's own in-use state when that is higher. */
static void pick_peak(struct snapshot *s)
{
    s->here = (struct hs_point){ .time_ns = s->time_ns, .rss_bytes = hs_timeline_rss() };
    for (uint32_t i = 0; i < s->stack_count; i++) {
        if (!s->sums[i].stack)
            continue;
        s->here.inuse_bytes += s->sums[i].inuse.bytes;
        s->here.inuse_bytes_var += s->sums[i].inuse.bytes_var;
        s->here.alloc_bytes += s->sums[i].alloc.bytes;
    }
    hs_peak_read(&s->peak);
    s->peak_is_now = !s->peak.count || s->here.inuse_bytes > s->peak.bytes;
    s->peak_count = 0;
    if (s->peak_is_now) {
        for (uint32_t i = 0; i < s->stack_count; i++)
            s->peak_count += s->sums[i].stack && s->sums[i].inuse.samples;
    } else {
        for (uint32_t i = 0; i < s->peak.count; i++)
            s->peak_count += s->peak.entries[i].stack < s->stack_count && s->sums[s->peak.entries[i].stack].stack;
    }
}

/* The high: this snapshot's own total may be above it (the estimate moves
 * between the publishes that raise it), and so may PEAK's sum of weights,
 * by their rounding to units; never below PEAK. */
static void pick_high(struct snapshot *s)
{
    hs_peak_note((int64_t)(s->here.inuse_bytes + 0.5), s->here.inuse_bytes_var, s->time_ns);
    struct hs_high high;
    hs_peak_high(&high);
    double peak_bytes = s->peak_is_now ? s->here.inuse_bytes : s->peak.bytes;
    s->high_bytes = (double)high.units;
    s->high_var = high.var;
    s->high_ns = high.time_ns;
    if (!(s->high_bytes > peak_bytes)) {
        s->high_bytes = peak_bytes;
        s->high_var = s->peak_is_now ? s->here.inuse_bytes_var : s->peak.bytes_var;
        s->high_ns = s->peak_is_now ? s->time_ns : s->peak.time_ns;
    }
}

/* Memory over time: the peak, the high and the series' points. */
static void measure_memory(struct snapshot *s)
{
    pick_peak(s);
    pick_high(s);
    s->points = hs_timeline_points(&s->series_count, &s->series_interval);
}

/* The PROC payload (its seq is patched once the name is chosen), and
 * whether every buffer so far could grow. 0 or ENOMEM. */
static int encode_proc(struct snapshot *s)
{
    struct buffer *proc = &s->proc;
    buffer_u32(proc, s->pid);
    buffer_u32(proc, (uint32_t)getppid());
    buffer_u32(proc, s->info.seq);
    buffer_u32(proc, s->info.flags);
    buffer_u64(proc, s->info.start_ns);
    buffer_u64(proc, s->time_ns);
    buffer_u64(proc, hs_opt.rate);
    buffer_u32(proc, hs_opt.max_depth);
    buffer_u32(proc, s->info.session);
    buffer_u64(proc, s->samples);
    buffer_u64(proc, s->dropped);
    buffer_u64(proc, s->truncated);
    buffer_u64(proc, __atomic_load_n(&hs_mem_used, __ATOMIC_RELAXED));
    buffer_u64(proc, hs_opt.max_memory);
    buffer_str(proc, s->modules->exe, strlen(s->modules->exe));
    buffer_str(proc, s->host, strlen(s->host));
    buffer_str(proc, s->cmdline.p ? (const char *)s->cmdline.p : "", s->cmdline.len);
    bool oom = proc->oom || s->modules->bytes.oom || s->cmdline.oom || s->python.oom;
    return oom ? ENOMEM : 0;
}

/* A name nobody has (an earlier process with our pid may have left files),
 * its seq in PROC, and what retention says about the directory then. */
static void choose_name(struct snapshot *s)
{
    for (int tries = 0;; tries++) {
        struct stat st;
        hs_snapshot_name(s->name, sizeof s->name, s->pid, s->info.seq);
        if (fstatat(s->dirfd, s->name, &st, AT_SYMLINK_NOFOLLOW) != 0 || tries > 1000)
            break;
        s->info.seq++;
    }
    memcpy(s->proc.p + 8, &s->info.seq, 4);
    s->thin = hs_retain_read(&s->retention, s->periodic, s->info.seq, s->mono_ns, s->time_ns);
}

/* .heapsnap.<pid>.<seq>.tmp.<6 random characters> */
static void temporary_name(struct snapshot *s, int tries)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    uint64_t r = ((uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 30)) * 0x9E3779B97F4A7C15ull + (uint64_t)tries;
    char *e = s->tmpname + sizeof s->tmpname, *d = append(s->tmpname, e, ".heapsnap.");
    d = append_u64(d, e, s->pid);
    d = append(d, e, ".");
    d = append_u64(d, e, s->info.seq);
    d = append(d, e, ".tmp.");
    for (int k = 0; k < 6; k++, r >>= 5)
        *d++ = "abcdefghijklmnopqrstuvwxyz012345"[r & 31];
    *d = 0;
}

/* The hidden temporary file (O_EXCL|O_NOFOLLOW, 0600 whatever the umask)
 * and the output buffer. 0 or an errno. */
static int create_temporary(struct snapshot *s)
{
    if (!(s->out.buf = map_anonymous(OUT_BUF)))
        return ENOMEM;
    for (int tries = 0; tries < 100; tries++) {
        temporary_name(s, tries);
        s->out.fd = hs_fd_high(openat(s->dirfd, s->tmpname, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
        if (s->out.fd >= 0 || errno != EEXIST)
            break;
    }
    if (s->out.fd < 0) {
        s->tmpname[0] = 0;
        return errno;
    }
    fchmod(s->out.fd, 0600);
    return 0;
}

/* ------------------------------------------------------------ the records */

static void write_header(struct out *o)
{
    out_put(o, HEAPSNAP_MAGIC, 8);
    uint16_t ver[2] = { HEAPSNAP_MAJOR, HEAPSNAP_MINOR };
    out_put(o, ver, 4);
    out_u32(o, 0);
}

static void write_proc(struct out *o, const struct snapshot *s)
{
    out_record(o, HEAPSNAP_TAG_PROC, s->proc.len);
    out_put(o, s->proc.p, s->proc.len);
}

static void write_modules(struct out *o, const struct modules *modules)
{
    out_record(o, HEAPSNAP_TAG_MODS, 8 + modules->bytes.len);
    out_u32(o, modules->count);
    out_u32(o, 0);
    if (modules->bytes.len)
        out_put(o, modules->bytes.p, modules->bytes.len);
}

static void write_stacks(struct out *o, const struct snapshot *s)
{
    out_record(o, HEAPSNAP_TAG_STKS, s->stacks_len);
    out_u32(o, s->kept);
    out_u32(o, 0);
    for (uint32_t i = 0; i < s->stack_count; i++) {
        const struct hs_stack *stack = s->sums[i].stack;
        if (!stack)
            continue;
        out_u32(o, stack->depth);
        out_u32(o, stack->flags);
        out_put(o, stack->frames, 8ull * stack->depth);
    }
}

/* One SMPL or PEAK entry. */
static void write_entry(struct out *o, uint32_t index, const struct hs_group *inuse, const struct hs_group *alloc)
{
    out_u32(o, index);
    out_u32(o, 0);
    out_group(o, inuse);
    out_group(o, alloc);
}

static void write_samples(struct out *o, const struct snapshot *s)
{
    out_record(o, HEAPSNAP_TAG_SMPL, 8 + (uint64_t)s->kept * HEAPSNAP_SMPL_ENTRY);
    out_u32(o, s->kept);
    out_u32(o, 0);
    for (uint32_t i = 0; i < s->stack_count; i++)
        if (s->sums[i].stack)
            write_entry(o, s->sums[i].index, &s->sums[i].inuse, &s->sums[i].alloc);
}

static void write_python(struct out *o, const struct snapshot *s)
{
    if (!s->python.len)
        return;
    out_record(o, HEAPSNAP_TAG_PYTH, s->python.len);
    out_put(o, s->python.p, s->python.len);
}

static void write_peak(struct out *o, const struct snapshot *s)
{
    const struct hs_peak *peak = &s->peak;
    out_record(o, HEAPSNAP_TAG_PEAK, 32 + (uint64_t)s->peak_count * HEAPSNAP_SMPL_ENTRY);
    out_u64(o, s->peak_is_now ? s->time_ns : peak->time_ns);
    out_f64(o, s->peak_is_now ? s->here.inuse_bytes : peak->bytes);
    out_f64(o, s->peak_is_now ? s->here.inuse_bytes_var : peak->bytes_var);
    out_u32(o, s->peak_count);
    out_u32(o, 0);
    if (s->peak_is_now) {
        for (uint32_t i = 0; i < s->stack_count; i++)
            if (s->sums[i].stack && s->sums[i].inuse.samples)
                write_entry(o, s->sums[i].index, &s->sums[i].inuse, &s->sums[i].alloc);
        return;
    }
    for (uint32_t i = 0; i < peak->count; i++) {
        const struct hs_peak_entry *e = &peak->entries[i];
        if (e->stack >= s->stack_count || !s->sums[e->stack].stack)
            continue;
        struct hs_group inuse = e->inuse;
        clamp(&inuse, &e->alloc);
        write_entry(o, s->sums[e->stack].index, &inuse, &e->alloc);
    }
}

static void write_high(struct out *o, const struct snapshot *s)
{
    out_record(o, HEAPSNAP_TAG_HIGH, 24);
    out_u64(o, s->high_ns);
    out_f64(o, s->high_bytes);
    out_f64(o, s->high_var);
}

static void write_series(struct out *o, const struct snapshot *s)
{
    out_record(o, HEAPSNAP_TAG_SERS, 16 + (uint64_t)(s->series_count + 1) * 40);
    out_u64(o, s->series_interval);
    out_u32(o, s->series_count + 1);
    out_u32(o, 0);
    for (uint32_t i = 0; i <= s->series_count; i++) {
        const struct hs_point *pt = i < s->series_count ? &s->points[i] : &s->here;
        out_u64(o, pt->time_ns);
        out_f64(o, pt->inuse_bytes);
        out_f64(o, pt->inuse_bytes_var);
        out_f64(o, pt->alloc_bytes);
        out_u64(o, pt->rss_bytes);
    }
}

static void write_thinning(struct out *o, const struct snapshot *s)
{
    if (!s->thin)
        return;
    const struct hs_retention *r = &s->retention;
    out_record(o, HEAPSNAP_TAG_THIN, 56);
    out_u32(o, r->keep);
    out_u32(o, r->kept);
    out_u64(o, r->written);
    out_u64(o, r->thinned);
    out_u64(o, r->lost);
    out_u32(o, r->oldest_seq);
    out_u32(o, 0);
    out_u64(o, r->oldest_ns);
    out_u64(o, r->widest_gap_ns);
}

/* END: the CRC-32 of every byte before its tag. */
static void write_end(struct out *o)
{
    uint32_t crc = o->crc ^ 0xFFFFFFFFu;
    out_u32(o, HEAPSNAP_TAG_END);
    out_u32(o, 0);
    out_u64(o, 8);
    out_u32(o, crc);
    out_u32(o, 0);
}

/* The header and every record, in the order of docs/FORMAT.md, then the
 * last of the buffer. 0 or the first write error. */
static int write_records(struct snapshot *s)
{
    struct out *o = &s->out;
    write_header(o);
    write_proc(o, s);
    write_modules(o, s->modules);
    write_stacks(o, s);
    write_samples(o, s);
    write_python(o, s);
    write_peak(o, s);
    write_high(o, s);
    write_series(o, s);
    write_thinning(o, s);
    write_end(o);
    out_flush(o);
    return o->err;
}

/* ---------------------------------------------------------- the commit */

/* fsync, close, and rename to the chosen name, never over an existing
 * file; a periodic snapshot is then counted by retention. 0 or an errno. */
static int commit_file(struct snapshot *s)
{
    if (fsync(s->out.fd) != 0 || fstat(s->out.fd, &s->file_st) != 0)
        return errno;
    int fd = s->out.fd;
    s->out.fd = -1;
    if (close(fd) != 0)
        return errno;
    if (renameat2(s->dirfd, s->tmpname, s->dirfd, s->name, RENAME_NOREPLACE) != 0) {
        /* Filesystems without RENAME_NOREPLACE return EINVAL (renameat2(2));
         * the name was checked above. */
        if ((errno != EINVAL && errno != ENOSYS) || renameat(s->dirfd, s->tmpname, s->dirfd, s->name) != 0)
            return errno;
    }
    s->tmpname[0] = 0;
    if (s->periodic)
        hs_retain_add(s->info.seq, s->mono_ns, s->time_ns, &s->file_st, &s->dir_st);
    return 0;
}

/* HEAPSNAP_MAX_MEMORY as it is spelled: 64M, 1G, 1536K or bytes. */
static char *append_budget(char *d, const char *end, uint64_t v)
{
    static const char suffix[] = { 'G', 'M', 'K' };
    for (int i = 0; i < 3; i++) {
        unsigned shift = 30 - 10 * (unsigned)i;
        if (v && !(v & ((1ull << shift) - 1))) {
            d = append_u64(d, end, v >> shift);
            char unit[2] = { suffix[i], 0 };
            return append(d, end, unit);
        }
    }
    return append_u64(d, end, v);
}

/* Pid of the process that said its samples were dropped: one line per
 * process (a fork child has a pid of its own, and counters of its own). */
static uint32_t dropped_said;

/* After a snapshot is committed: the one line, the first time a snapshot
 * of this process counts dropped samples. Context: the writer (or the
 * thread writing the at-exit snapshot); no allocation. */
static void report_dropped(const struct snapshot *s)
{
    if (!s->dropped || __atomic_exchange_n(&dropped_said, s->pid, __ATOMIC_RELAXED) == s->pid)
        return;
    char line[512];
    char *e = line + sizeof line, *d = append_u64(line, e, s->dropped);
    d = append(d, e, " of ");
    d = append_u64(d, e, s->samples);
    d = append(d, e, " samples were dropped because HEAPSNAP_MAX_MEMORY=");
    d = append_budget(d, e, hs_opt.max_memory);
    d = append(d, e, " was full; ");
    d = append(d, e, s->name);
    append(d, e, "'s figures are low, as are those of later snapshots this session (raise HEAPSNAP_MAX_MEMORY, or HEAPSNAP_RATE to sample less)");
    hs_say(line, NULL, NULL, NULL);
}

/* The one line on stderr: the file's name and what failed. */
static void report_failure(struct snapshot *s, int err)
{
    if (!s->name[0])
        hs_snapshot_name(s->name, sizeof s->name, s->pid, s->info.seq);
    fail(hs_opt.dir, s->name, s->stage, err);
}

/* Closes and unmaps everything, and removes a temporary file left behind. */
static void release(struct snapshot *s)
{
    if (s->out.fd >= 0)
        close(s->out.fd);
    if (s->tmpname[0] && s->dirfd >= 0)
        unlinkat(s->dirfd, s->tmpname, 0);
    if (s->dirfd >= 0)
        close(s->dirfd);
    if (s->out.buf)
        munmap(s->out.buf, OUT_BUF);
    if (s->sums)
        munmap(s->sums, s->sums_size);
    hs_peak_read_done(&s->peak);
    if (s->modules) {
        buffer_free(&s->modules->bytes);
        munmap(s->modules, sizeof *s->modules);
    }
    buffer_free(&s->proc);
    buffer_free(&s->cmdline);
    buffer_free(&s->python);
}

int hs_snapshot_write(struct hs_snap_info *info)
{
    struct snapshot s = {
        .info = *info, .pid = (uint32_t)getpid(), .periodic = info->flags & HEAPSNAP_FLAG_PERIODIC,
        .dirfd = -1, .out = { .fd = -1, .crc = 0xFFFFFFFFu }, .stage = ": ",
    };
    crc_init();
    int err = open_directory(&s);
    if (!err)
        err = read_process(&s);
    if (!err)
        err = sum_stacks(&s);
    if (!err) {
        build_python_record(&s.python);     /* after the stack count: every id a stack names is in it */
        measure_memory(&s);
        err = encode_proc(&s);
    }
    if (!err) {
        choose_name(&s);
        err = create_temporary(&s);
    }
    if (!err)
        err = write_records(&s);
    if (!err)
        err = commit_file(&s);
    if (err)
        report_failure(&s, err);
    else
        report_dropped(&s);
    release(&s);
    info->seq = s.info.seq;
    return err ? -err : 0;
}
