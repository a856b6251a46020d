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
 * Memory: all buffers are mmap'd here and unmapped before returning (not
 * counted in the budget: they exist only while a snapshot is written).
 * The file is written through a 64 KiB buffer that also computes the CRC-32.
 */
#define _GNU_SOURCE
#include "snapshot_writer.h"
#include "options.h"
#include "say.h"
#include "heapsnap.h"
#include "live.h"
#include "mem.h"
#include "sampler.h"
#include "stacks.h"
#include "python.h"
#include "pyalloc.h"
#include "pyreuse.h"
#include "timeline.h"
#include "peak.h"
#include "retention.h"

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
struct gbuf {
    uint8_t *p;
    size_t len, cap;
    bool oom;
};

static void gb_reserve(struct gbuf *b, size_t more)
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

static void gb_put(struct gbuf *b, const void *src, size_t n)
{
    gb_reserve(b, n);
    if (b->oom)
        return;
    memcpy(b->p + b->len, src, n);
    b->len += n;
}

static void gb_u16(struct gbuf *b, uint16_t v) { gb_put(b, &v, 2); }   /* x86-64/arm64: LE */
static void gb_u32(struct gbuf *b, uint32_t v) { gb_put(b, &v, 4); }
static void gb_u64(struct gbuf *b, uint64_t v) { gb_put(b, &v, 8); }
static void gb_str(struct gbuf *b, const char *s, size_t n)
{
    if (n > (1u << 20))
        n = 1u << 20;
    gb_u32(b, (uint32_t)n);
    gb_put(b, s, n);
}

static void gb_free(struct gbuf *b)
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

struct mods {
    struct gbuf bytes;      /* MODS entries, already in file layout */
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
    struct mods *m = arg;
    const char *path = info->dlpi_name;
    if ((uintptr_t)info->dlpi_addr == m->vdso && m->vdso)
        path = "[vdso]";
    else if (!path || !*path) {
        if (m->count > 0 || m->bytes.len > 0)
            return 0;               /* unnamed object other than the executable */
        path = m->exe;
    }
    const uint8_t *bid = NULL;
    size_t bidlen = build_id(info, &bid);
    size_t plen = strlen(path);
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_LOAD || !(ph->p_flags & PF_X) || ph->p_memsz == 0)
            continue;
        gb_u64(&m->bytes, info->dlpi_addr + ph->p_vaddr);
        gb_u64(&m->bytes, info->dlpi_addr + ph->p_vaddr + ph->p_memsz);
        gb_u64(&m->bytes, ph->p_offset);
        gb_u64(&m->bytes, ph->p_vaddr);
        gb_u16(&m->bytes, (uint16_t)bidlen);
        gb_u16(&m->bytes, 0);
        gb_u32(&m->bytes, (uint32_t)plen);
        gb_put(&m->bytes, bid, bidlen);
        gb_put(&m->bytes, path, plen);
        m->count++;
    }
    return 0;
}

/* ----------------------------------------------------------- aggregation */

struct agg {
    struct hs_group inuse, alloc;
    const struct hs_stack *stack;   /* NULL: id not published, not written */
    uint32_t index;                 /* position in STKS */
};

struct agg_ctx {
    struct agg *a;
    uint32_t n;
};

/* Context: writer, inside hs_live_foreach (a live stripe lock held). */
static void add_live(void *arg, uint64_t size, uint32_t stack)
{
    struct agg_ctx *c = arg;
    if (stack >= c->n)
        return;                     /* stack created after we counted: not in this file */
    struct hs_weights w;
    hs_weights(size, &w);
    hs_group_add(&c->a[stack].inuse, &w);
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
    struct gbuf *b = arg;
    gb_u32(b, f->firstlineno);
    gb_str(b, f->text, f->name_len);
    gb_str(b, f->text + f->name_len, f->file_len);
}

/* PYTH: the interpreter's status and the Python functions the stacks name.
 * Built after the stack count was read, so every function id a written
 * stack holds is in it. Empty (not written) in processes without Python. */
static void build_pyth(struct gbuf *b)
{
    enum hs_py_status status = hs_py_status();
    if (status == HS_PY_NONE)
        return;
    const char *note = hs_py_note();
    gb_u32(b, (uint32_t)status);
    gb_u32(b, hs_py_version());
    gb_u32(b, hs_pyalloc_flags() | hs_pyreuse_flags());
    gb_u32(b, 0);
    gb_str(b, note, strlen(note));
    size_t at = b->len;
    gb_u32(b, 0);
    gb_u32(b, 0);
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

int hs_snapshot_write(struct hs_snap_info *info_in)
{
    struct hs_snap_info info = *info_in;
    struct mods *m = NULL;
    struct gbuf proc = { 0 }, cmdline = { 0 }, pyth = { 0 };
    struct agg *agg = NULL;
    size_t agg_size = 0;
    struct hs_peak pk = { 0 };
    struct out o = { .fd = -1, .crc = 0xFFFFFFFFu };
    int dirfd = -1, err = 0;
    char tmpname[128] = "", name[96] = "";
    const char *stage = ": ";
    crc_init();

    uint32_t pid = (uint32_t)getpid();
    bool periodic = info.flags & HEAPSNAP_FLAG_PERIODIC;
    uint64_t time_ns, mono_ns;
    {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        time_ns = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        mono_ns = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
    }

    dirfd = hs_fd_high(open(hs_opt.dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (dirfd < 0) {
        err = errno;
        hs_snapshot_name(name, sizeof name, pid, info.seq);
        stage = ": the directory cannot be opened: ";
        goto fail;
    }
    struct stat dir_st, file_st;
    if (fstat(dirfd, &dir_st) != 0) {
        err = errno;
        goto fail_named;
    }
    if (periodic)
        hs_retain_make_room(dirfd, &dir_st, mono_ns);     /* HEAPSNAP_KEEP: thin the oldest first */

    /* Process identity and modules (no shim lock held: loader lock inside). */
    m = mmap(NULL, sizeof *m, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) {
        m = NULL;
        err = ENOMEM;
        goto fail_named;
    }
    memset(m, 0, sizeof *m);
    ssize_t el = readlink("/proc/self/exe", m->exe, sizeof m->exe - 1);
    m->exe[el > 0 ? el : 0] = 0;
    m->vdso = (uintptr_t)getauxval(AT_SYSINFO_EHDR);
    dl_iterate_phdr(collect_module, m);

    int cfd = hs_fd_high(open("/proc/self/cmdline", O_RDONLY | O_CLOEXEC));
    if (cfd >= 0) {
        for (;;) {
            gb_reserve(&cmdline, 4096);
            if (cmdline.oom || cmdline.len >= (1u << 20))
                break;
            ssize_t r = read(cfd, cmdline.p + cmdline.len, cmdline.cap - cmdline.len);
            if (r < 0 && errno == EINTR)
                continue;
            if (r <= 0)
                break;
            cmdline.len += (size_t)r;
        }
        close(cfd);
    }
    char host[256] = "";
    gethostname(host, sizeof host - 1);

    /* Tables: inuse from the live table, then alloc per stack. */
    uint32_t n = hs_stack_count();
    agg_size = (size_t)n * sizeof *agg;
    if (n) {
        agg = mmap(NULL, agg_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (agg == MAP_FAILED) {
            agg = NULL;
            err = ENOMEM;
            goto fail_named;
        }
    }
    struct agg_ctx ctx = { agg, n };
    hs_live_foreach(add_live, &ctx);
    hs_live_flush_alloc();      /* after the live walk: a block seen live has its sample in alloc */
    uint32_t kept = 0;
    uint64_t stks_len = 8;
    uint64_t dropped = __atomic_load_n(&hs_count.dropped, __ATOMIC_RELAXED);
    uint64_t samples = dropped, truncated = 0;
    for (uint32_t i = 0; i < n; i++) {
        agg[i].stack = hs_stack_get(i);
        if (!agg[i].stack)
            continue;
        hs_stack_read_alloc(agg[i].stack, &agg[i].alloc);
        clamp(&agg[i].inuse, &agg[i].alloc);
        agg[i].index = kept++;
        stks_len += 8 + 8ull * agg[i].stack->depth;
        samples += agg[i].alloc.samples;
        if (agg[i].stack->flags & HEAPSNAP_STACK_TRUNCATED)
            truncated += agg[i].alloc.samples;
    }

    build_pyth(&pyth);

    /* Memory over time: this snapshot's totals, the peak, the points. */
    struct hs_point here = { .time_ns = time_ns, .rss_bytes = hs_timeline_rss() };
    for (uint32_t i = 0; i < n; i++) {
        if (!agg[i].stack)
            continue;
        here.inuse_bytes += agg[i].inuse.bytes;
        here.inuse_bytes_var += agg[i].inuse.bytes_var;
        here.alloc_bytes += agg[i].alloc.bytes;
    }
    hs_peak_read(&pk);
    bool peak_is_now = !pk.count || here.inuse_bytes > pk.bytes;
    /* The high: this snapshot's own total may be above it (the estimate
     * moves between the publishes that raise it), and so may PEAK's sum of
     * weights, by their rounding to units. */
    hs_peak_note((int64_t)(here.inuse_bytes + 0.5), here.inuse_bytes_var, time_ns);
    struct hs_high high;
    hs_peak_high(&high);
    double peak_bytes = peak_is_now ? here.inuse_bytes : pk.bytes;
    double high_bytes = (double)high.units, high_var = high.var;
    uint64_t high_ns = high.time_ns;
    if (!(high_bytes > peak_bytes)) {
        high_bytes = peak_bytes;
        high_var = peak_is_now ? here.inuse_bytes_var : pk.bytes_var;
        high_ns = peak_is_now ? time_ns : pk.time_ns;
    }
    uint32_t peak_count = 0;
    if (peak_is_now) {
        for (uint32_t i = 0; i < n; i++)
            peak_count += agg[i].stack && agg[i].inuse.samples;
    } else {
        for (uint32_t i = 0; i < pk.count; i++)
            peak_count += pk.entries[i].stack < n && agg[pk.entries[i].stack].stack;
    }
    uint32_t series_count = 0;
    uint64_t series_interval = 0;
    const struct hs_point *points = hs_timeline_points(&series_count, &series_interval);

    /* PROC payload. */
    gb_u32(&proc, pid);
    gb_u32(&proc, (uint32_t)getppid());
    gb_u32(&proc, info.seq);        /* patched below if the name is taken */
    gb_u32(&proc, info.flags);
    gb_u64(&proc, info.start_ns);
    gb_u64(&proc, time_ns);
    gb_u64(&proc, hs_opt.rate);
    gb_u32(&proc, hs_opt.max_depth);
    gb_u32(&proc, info.session);
    gb_u64(&proc, samples);
    gb_u64(&proc, dropped);
    gb_u64(&proc, truncated);
    gb_u64(&proc, __atomic_load_n(&hs_mem_used, __ATOMIC_RELAXED));
    gb_u64(&proc, hs_opt.max_memory);
    gb_str(&proc, m->exe, strlen(m->exe));
    gb_str(&proc, host, strlen(host));
    gb_str(&proc, cmdline.p ? (const char *)cmdline.p : "", cmdline.len);
    if (proc.oom || m->bytes.oom || cmdline.oom || pyth.oom) {
        err = ENOMEM;
        goto fail_named;
    }

    /* A name nobody has: an earlier process with our pid may have left files. */
    for (int tries = 0;; tries++) {
        struct stat st;
        hs_snapshot_name(name, sizeof name, pid, info.seq);
        if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0 || tries > 1000)
            break;
        info.seq++;
    }
    memcpy(proc.p + 8, &info.seq, 4);
    struct hs_retention retention;
    bool thin = hs_retain_read(&retention, periodic, info.seq, mono_ns, time_ns);

    /* The temporary file. */
    o.buf = mmap(NULL, OUT_BUF, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (o.buf == MAP_FAILED) {
        o.buf = NULL;
        err = ENOMEM;
        goto fail_named;
    }
    for (int tries = 0; tries < 100; tries++) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        uint64_t r = ((uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 30)) * 0x9E3779B97F4A7C15ull + (uint64_t)tries;
        char *e = tmpname + sizeof tmpname, *d = append(tmpname, e, ".heapsnap.");
        d = append_u64(d, e, pid);
        d = append(d, e, ".");
        d = append_u64(d, e, info.seq);
        d = append(d, e, ".tmp.");
        for (int k = 0; k < 6; k++, r >>= 5)
            *d++ = "abcdefghijklmnopqrstuvwxyz012345"[r & 31];
        *d = 0;
        o.fd = hs_fd_high(openat(dirfd, tmpname, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
        if (o.fd >= 0 || errno != EEXIST)
            break;
    }
    if (o.fd < 0) {
        err = errno;
        tmpname[0] = 0;
        goto fail_named;
    }
    fchmod(o.fd, 0600);             /* whatever the umask */

    /* Header and records. */
    out_put(&o, HEAPSNAP_MAGIC, 8);
    uint16_t ver[2] = { HEAPSNAP_MAJOR, HEAPSNAP_MINOR };
    out_put(&o, ver, 4);
    out_u32(&o, 0);

    out_record(&o, HEAPSNAP_TAG_PROC, proc.len);
    out_put(&o, proc.p, proc.len);

    out_record(&o, HEAPSNAP_TAG_MODS, 8 + m->bytes.len);
    out_u32(&o, m->count);
    out_u32(&o, 0);
    if (m->bytes.len)
        out_put(&o, m->bytes.p, m->bytes.len);

    out_record(&o, HEAPSNAP_TAG_STKS, stks_len);
    out_u32(&o, kept);
    out_u32(&o, 0);
    for (uint32_t i = 0; i < n; i++) {
        const struct hs_stack *s = agg[i].stack;
        if (!s)
            continue;
        out_u32(&o, s->depth);
        out_u32(&o, s->flags);
        out_put(&o, s->frames, 8ull * s->depth);
    }

    out_record(&o, HEAPSNAP_TAG_SMPL, 8 + (uint64_t)kept * HEAPSNAP_SMPL_ENTRY);
    out_u32(&o, kept);
    out_u32(&o, 0);
    for (uint32_t i = 0; i < n; i++) {
        if (!agg[i].stack)
            continue;
        out_u32(&o, agg[i].index);
        out_u32(&o, 0);
        out_group(&o, &agg[i].inuse);
        out_group(&o, &agg[i].alloc);
    }

    if (pyth.len) {
        out_record(&o, HEAPSNAP_TAG_PYTH, pyth.len);
        out_put(&o, pyth.p, pyth.len);
    }

    out_record(&o, HEAPSNAP_TAG_PEAK, 32 + (uint64_t)peak_count * HEAPSNAP_SMPL_ENTRY);
    out_u64(&o, peak_is_now ? time_ns : pk.time_ns);
    out_f64(&o, peak_is_now ? here.inuse_bytes : pk.bytes);
    out_f64(&o, peak_is_now ? here.inuse_bytes_var : pk.bytes_var);
    out_u32(&o, peak_count);
    out_u32(&o, 0);
    if (peak_is_now) {
        for (uint32_t i = 0; i < n; i++) {
            if (!agg[i].stack || !agg[i].inuse.samples)
                continue;
            out_u32(&o, agg[i].index);
            out_u32(&o, 0);
            out_group(&o, &agg[i].inuse);
            out_group(&o, &agg[i].alloc);
        }
    } else {
        for (uint32_t i = 0; i < pk.count; i++) {
            const struct hs_peak_entry *e = &pk.entries[i];
            if (e->stack >= n || !agg[e->stack].stack)
                continue;
            struct hs_group in = e->inuse;
            clamp(&in, &e->alloc);
            out_u32(&o, agg[e->stack].index);
            out_u32(&o, 0);
            out_group(&o, &in);
            out_group(&o, &e->alloc);
        }
    }

    out_record(&o, HEAPSNAP_TAG_HIGH, 24);
    out_u64(&o, high_ns);
    out_f64(&o, high_bytes);
    out_f64(&o, high_var);

    out_record(&o, HEAPSNAP_TAG_SERS, 16 + (uint64_t)(series_count + 1) * 40);
    out_u64(&o, series_interval);
    out_u32(&o, series_count + 1);
    out_u32(&o, 0);
    for (uint32_t i = 0; i <= series_count; i++) {
        const struct hs_point *pt = i < series_count ? &points[i] : &here;
        out_u64(&o, pt->time_ns);
        out_f64(&o, pt->inuse_bytes);
        out_f64(&o, pt->inuse_bytes_var);
        out_f64(&o, pt->alloc_bytes);
        out_u64(&o, pt->rss_bytes);
    }

    if (thin) {
        out_record(&o, HEAPSNAP_TAG_THIN, 56);
        out_u32(&o, retention.keep);
        out_u32(&o, retention.kept);
        out_u64(&o, retention.written);
        out_u64(&o, retention.thinned);
        out_u64(&o, retention.lost);
        out_u32(&o, retention.oldest_seq);
        out_u32(&o, 0);
        out_u64(&o, retention.oldest_ns);
        out_u64(&o, retention.widest_gap_ns);
    }

    uint32_t crc = o.crc ^ 0xFFFFFFFFu;     /* over every byte before END's tag */
    out_u32(&o, HEAPSNAP_TAG_END);
    out_u32(&o, 0);
    out_u64(&o, 8);
    out_u32(&o, crc);
    out_u32(&o, 0);
    out_flush(&o);

    if (o.err) {
        err = o.err;
        goto fail_named;
    }
    if (fsync(o.fd) != 0 || fstat(o.fd, &file_st) != 0) {
        err = errno;
        goto fail_named;
    }
    if (close(o.fd) != 0) {
        o.fd = -1;
        err = errno;
        goto fail_named;
    }
    o.fd = -1;
    if (renameat2(dirfd, tmpname, dirfd, name, RENAME_NOREPLACE) != 0) {
        /* Filesystems without RENAME_NOREPLACE return EINVAL (renameat2(2));
         * the name was checked above. */
        if ((errno != EINVAL && errno != ENOSYS) || renameat(dirfd, tmpname, dirfd, name) != 0) {
            err = errno;
            goto fail_named;
        }
    }
    tmpname[0] = 0;
    if (periodic)
        hs_retain_add(info.seq, mono_ns, time_ns, &file_st, &dir_st);
    goto done;

fail_named:
    stage = ": ";
fail:
    if (!name[0] || err == 0)
        hs_snapshot_name(name, sizeof name, pid, info.seq);
    fail(hs_opt.dir, name, stage, err ? err : EIO);
done:
    if (o.fd >= 0)
        close(o.fd);
    if (tmpname[0] && dirfd >= 0)
        unlinkat(dirfd, tmpname, 0);
    if (dirfd >= 0)
        close(dirfd);
    if (o.buf)
        munmap(o.buf, OUT_BUF);
    if (agg)
        munmap(agg, agg_size);
    hs_peak_read_done(&pk);
    if (m) {
        gb_free(&m->bytes);
        munmap(m, sizeof *m);
    }
    gb_free(&proc);
    gb_free(&cmdline);
    gb_free(&pyth);
    info_in->seq = info.seq;
    return err ? -err : 0;
}
