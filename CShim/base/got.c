/*
 * got.c - GOT/PLT rewriting and loader-order symbol lookup, for a library
 * loaded into a running process (`heapsnap attach`); see got.h.
 *
 * Routing: for every loaded object except the dynamic loader (its own
 * allocator pointer is internal), the vDSO (no relocations to us) and the
 * shim (it must reach the real functions), read PT_DYNAMIC and walk DT_RELA,
 * DT_REL and DT_JMPREL (DT_PLTREL says which form). A JUMP_SLOT, GLOB_DAT or
 * 64-bit absolute relocation whose symbol is one of the routes gets the
 * route's address at base + r_offset; the value found there is kept, with
 * the slot, in an mmap'ed table, and written back by hs_got_restore if the
 * slot still holds our address then. Slots inside PT_GNU_RELRO were made
 * read-only by the loader (the range rounded as glibc's _dl_protect_relro
 * rounds it, with the real page size): they are made writable only for the
 * write. The loader relocates most d_ptr values of PT_DYNAMIC in place
 * (glibc's elf_get_dynamic_info), not all objects' alike: a value below the
 * object's base is taken as relative.
 *
 * Checks, and why each exists:
 * - weak undefined references that nothing defines stay as they are: a
 *   weak `operator new(size_t, align_val_t)` reference in a program without
 *   libstdc++ tests for NULL; making it non-NULL sends it into code with
 *   nothing behind it (ddprof #348).
 * - the real function is the first *definition* in load order: a non-PIE
 *   executable that takes malloc's address defines `malloc` as an undefined
 *   symbol with a value (its canonical PLT entry); dlsym answers with that
 *   stub, which jumps through the executable's own GOT slot, which we
 *   route to the shim: endless recursion (memray's non-PIE crash).
 * - hidden symbol versions are skipped (an old dlopen@GLIBC_2.2.5 is not
 *   the one a new reference binds to).
 * - the routes are taken from the shim's own symbol table: the shim's code
 *   cannot take the address of its own exported `malloc` (a reference to a
 *   default-visibility name from inside a dlopen'ed library binds to libc's).
 *
 * Locks: route_lock serialises routing, restoring and forgetting; it is
 * taken before dl_iterate_phdr (the loader's list lock), never inside a
 * callback (heaptrack 88e66a6: an AB/BA deadlock with the loader's lock).
 * Nothing here allocates: the table is mmap'ed.
 *
 * References: the System V ABI's gABI chapters "Dynamic Section" and
 * "Relocation", glibc elf/dl-lookup.c (GNU hash), elf/dl-reloc.c
 * (_dl_protect_relro), dl_iterate_phdr(3), dladdr1(3).
 */
#define _GNU_SOURCE
#include "base/got.h"

#include <dlfcn.h>
#include <elf.h>
#include <errno.h>
#include <limits.h>
#include <link.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#if defined(__x86_64__)
#define R_SLOT R_X86_64_JUMP_SLOT
#define R_GLOB R_X86_64_GLOB_DAT
#define R_ABS R_X86_64_64
#elif defined(__aarch64__)
#define R_SLOT R_AARCH64_JUMP_SLOT
#define R_GLOB R_AARCH64_GLOB_DAT
#define R_ABS R_AARCH64_ABS64
#else
#error "heapsnap attach: GOT relocation types unknown for this architecture"
#endif

#define MAX_ROUTES 64
#define MAX_SLOTS 16384

struct route { const char *name; void *to; uint32_t gnu_hash; };
struct slot { void **at; void *old; void *to; bool relro; };

/* Written once by hs_got_init (single-threaded, at attach), read after. */
static struct route routes[MAX_ROUTES];
static size_t n_routes;
static uintptr_t self_lo, self_hi;      /* the shim's mapped range */
static bool enabled;

/* Protected by route_lock. */
static pthread_mutex_t route_lock = PTHREAD_MUTEX_INITIALIZER;
static struct slot *slots;              /* mmap'ed, MAX_SLOTS */
static size_t n_slots;
static bool full_said;
static bool routing;                    /* between a start's hs_got_route(true) and hs_got_restore */
static unsigned long long last_adds;    /* dlpi_adds at the last routing */

bool hs_got_enabled(void) { return __atomic_load_n(&enabled, __ATOMIC_ACQUIRE); }

/* A fork child: another thread of the parent may have held the route lock
 * (a routed dlopen) when it forked; the child has no such thread. */
void hs_got_fork_child(void) { pthread_mutex_init(&route_lock, NULL); }

/* ------------------------------------------------------------ one object */

/* What PT_DYNAMIC says about one loaded object. */
struct dyn {
    uintptr_t base;
    const ElfW(Sym) *symtab;
    const char *strtab;
    const uint32_t *gnu_hash, *sysv_hash;
    const ElfW(Half) *versym;
    const ElfW(Rela) *rela; size_t relasz;
    const ElfW(Rel) *rel; size_t relsz;
    const void *jmprel; size_t pltrelsz; bool jmprel_is_rela;
    const char *runpath, *rpath;        /* offsets resolved to strings, or NULL */
    uintptr_t relro_lo, relro_hi;       /* page-rounded as the loader protected it, or 0 */
};

static uintptr_t dptr(uintptr_t base, ElfW(Addr) v)
{
    return v < base ? base + v : v;
}

static bool read_dyn(const struct dl_phdr_info *info, struct dyn *d)
{
    memset(d, 0, sizeof *d);
    d->base = info->dlpi_addr;
    const ElfW(Dyn) *dyn = NULL;
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type == PT_DYNAMIC)
            dyn = (const ElfW(Dyn) *)(info->dlpi_addr + ph->p_vaddr);
        else if (ph->p_type == PT_GNU_RELRO) {
            uintptr_t lo = info->dlpi_addr + ph->p_vaddr;
            d->relro_lo = lo & ~(page - 1);
            d->relro_hi = (lo + ph->p_memsz) & ~(page - 1);
        }
    }
    if (!dyn)
        return false;
    size_t runpath = 0, rpath = 0;
    bool has_runpath = false, has_rpath = false;
    for (; dyn->d_tag != DT_NULL; dyn++) {
        uintptr_t p = dptr(d->base, dyn->d_un.d_ptr);
        switch (dyn->d_tag) {
        case DT_SYMTAB: d->symtab = (const ElfW(Sym) *)p; break;
        case DT_STRTAB: d->strtab = (const char *)p; break;
        case DT_GNU_HASH: d->gnu_hash = (const uint32_t *)p; break;
        case DT_HASH: d->sysv_hash = (const uint32_t *)p; break;
        case DT_VERSYM: d->versym = (const ElfW(Half) *)p; break;
        case DT_RELA: d->rela = (const ElfW(Rela) *)p; break;
        case DT_RELASZ: d->relasz = dyn->d_un.d_val; break;
        case DT_REL: d->rel = (const ElfW(Rel) *)p; break;
        case DT_RELSZ: d->relsz = dyn->d_un.d_val; break;
        case DT_JMPREL: d->jmprel = (const void *)p; break;
        case DT_PLTRELSZ: d->pltrelsz = dyn->d_un.d_val; break;
        case DT_PLTREL: d->jmprel_is_rela = dyn->d_un.d_val == DT_RELA; break;
        case DT_RUNPATH: runpath = dyn->d_un.d_val; has_runpath = true; break;
        case DT_RPATH: rpath = dyn->d_un.d_val; has_rpath = true; break;
        }
    }
    if (!d->symtab || !d->strtab)
        return false;
    d->runpath = has_runpath ? d->strtab + runpath : NULL;
    d->rpath = has_rpath ? d->strtab + rpath : NULL;
    return true;
}

static uint32_t gnu_hash_of(const char *s)
{
    uint32_t h = 5381;
    for (; *s; s++)
        h = h * 33 + (unsigned char)*s;
    return h;
}

static uint32_t sysv_hash_of(const char *s)
{
    uint32_t h = 0;
    for (; *s; s++) {
        h = (h << 4) + (unsigned char)*s;
        uint32_t g = h & 0xf0000000u;
        if (g)
            h ^= g >> 24;
        h &= ~g;
    }
    return h;
}

/* A definition the loader would bind a reference to. */
static bool defines(const struct dyn *d, uint32_t i)
{
    const ElfW(Sym) *s = &d->symtab[i];
    int type = ELF64_ST_TYPE(s->st_info), bind = ELF64_ST_BIND(s->st_info);
    if (s->st_shndx == SHN_UNDEF || s->st_value == 0)
        return false;               /* undefined: a canonical PLT entry has a value, and is not one */
    if (type != STT_FUNC && type != STT_GNU_IFUNC && type != STT_NOTYPE)
        return false;
    if (bind != STB_GLOBAL && bind != STB_WEAK)
        return false;
    if (d->versym && (d->versym[i] & 0x8000))
        return false;               /* a hidden (old) version */
    return true;
}

/* Index of the definition of `name` in `d`, or 0. */
static uint32_t find_def(const struct dyn *d, const char *name)
{
    if (d->gnu_hash) {
        const uint32_t *ht = d->gnu_hash;
        uint32_t nbuckets = ht[0], symoffset = ht[1], bloom_size = ht[2];
        if (!nbuckets)
            return 0;
        const ElfW(Addr) *bloom = (const ElfW(Addr) *)&ht[4];
        const uint32_t *buckets = (const uint32_t *)&bloom[bloom_size];
        const uint32_t *chain = &buckets[nbuckets];
        uint32_t h = gnu_hash_of(name);
        uint32_t i = buckets[h % nbuckets];
        if (i < symoffset)
            return 0;
        for (;; i++) {
            uint32_t h2 = chain[i - symoffset];
            if ((h | 1) == (h2 | 1) && strcmp(name, d->strtab + d->symtab[i].st_name) == 0 && defines(d, i))
                return i;
            if (h2 & 1)
                return 0;
        }
    }
    if (d->sysv_hash) {
        const uint32_t *ht = d->sysv_hash;
        uint32_t nbucket = ht[0];
        const uint32_t *bucket = &ht[2], *chain = &bucket[nbucket];
        for (uint32_t i = bucket[sysv_hash_of(name) % nbucket]; i; i = chain[i])
            if (strcmp(name, d->strtab + d->symtab[i].st_name) == 0 && defines(d, i))
                return i;
    }
    return 0;
}

/* Number of dynamic symbols (for walking the shim's exports). */
static uint32_t sym_count(const struct dyn *d)
{
    if (d->sysv_hash)
        return d->sysv_hash[1];
    if (!d->gnu_hash)
        return 0;
    const uint32_t *ht = d->gnu_hash;
    uint32_t nbuckets = ht[0], symoffset = ht[1], bloom_size = ht[2];
    const ElfW(Addr) *bloom = (const ElfW(Addr) *)&ht[4];
    const uint32_t *buckets = (const uint32_t *)&bloom[bloom_size];
    const uint32_t *chain = &buckets[nbuckets];
    uint32_t last = 0;
    for (uint32_t b = 0; b < nbuckets; b++)
        if (buckets[b] > last)
            last = buckets[b];
    if (last < symoffset)
        return symoffset;
    while (!(chain[last - symoffset] & 1))
        last++;
    return last + 1;
}

/* The vDSO, the dynamic loader, the shim: never routed. */
static bool skipped(const struct dl_phdr_info *info, const char *interp)
{
    const char *name = info->dlpi_name ? info->dlpi_name : "";
    if (strstr(name, "linux-vdso") || strstr(name, "linux-gate"))
        return true;
    if ((interp && strcmp(name, interp) == 0) || strstr(name, "/ld-linux") || strncmp(name, "ld-linux", 8) == 0)
        return true;
    uintptr_t lo = info->dlpi_addr + info->dlpi_phdr[0].p_vaddr;
    for (int i = 0; i < info->dlpi_phnum; i++)
        if (info->dlpi_phdr[i].p_type == PT_LOAD) {
            uintptr_t a = info->dlpi_addr + info->dlpi_phdr[i].p_vaddr;
            if (a >= self_lo && a < self_hi)
                return true;
            lo = a;
        }
    (void)lo;
    return false;
}

/* ------------------------------------------------------------- lookup */

struct lookup { const char *name; void *found; bool ifunc; bool contains; uintptr_t addr; int index; int self_index, libc_index; };

static bool contains(const struct dl_phdr_info *info, uintptr_t a)
{
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        uintptr_t lo = info->dlpi_addr + ph->p_vaddr;
        if (ph->p_type == PT_LOAD && a >= lo && a - lo < ph->p_memsz)
            return true;
    }
    return false;
}

static int lookup_cb(struct dl_phdr_info *info, size_t size, void *arg)
{
    (void)size;
    struct lookup *q = arg;
    const char *name = info->dlpi_name ? info->dlpi_name : "";
    if (strstr(name, "linux-vdso") || contains(info, (uintptr_t)hs_got_lookup))
        return 0;
    struct dyn d;
    if (!read_dyn(info, &d))
        return 0;
    uint32_t i = find_def(&d, q->name);
    if (!i)
        return 0;
    q->found = (void *)(d.base + d.symtab[i].st_value);
    q->ifunc = ELF64_ST_TYPE(d.symtab[i].st_info) == STT_GNU_IFUNC;
    return 1;
}

void *hs_got_lookup(const char *name)
{
    struct lookup q = { .name = name };
    dl_iterate_phdr(lookup_cb, &q);
    if (q.found && q.ifunc)
        return dlsym(RTLD_DEFAULT, name);
    return q.found;
}

static int order_cb(struct dl_phdr_info *info, size_t size, void *arg)
{
    (void)size;
    struct lookup *q = arg;
    const char *name = info->dlpi_name ? info->dlpi_name : "";
    const char *base = strrchr(name, '/');
    base = base ? base + 1 : name;
    if (q->libc_index < 0 && strncmp(base, "libc.so", 7) == 0)
        q->libc_index = q->index;
    if (q->self_index < 0 && contains(info, q->addr))
        q->self_index = q->index;
    q->index++;
    return 0;
}

bool hs_got_loaded_late(const void *self)
{
    struct lookup q = { .addr = (uintptr_t)self, .self_index = -1, .libc_index = -1 };
    dl_iterate_phdr(order_cb, &q);
    return q.libc_index >= 0 && q.self_index > q.libc_index;
}

/* --------------------------------------------------------------- init */

struct self_query { uintptr_t addr; const char *const *skip; bool done; int err; };

static bool skip_name(const char *name, const char *const *skip)
{
    for (; skip && *skip; skip++)
        if (strncmp(name, *skip, strlen(*skip)) == 0)
            return true;
    return false;
}

static int self_cb(struct dl_phdr_info *info, size_t size, void *arg)
{
    (void)size;
    struct self_query *q = arg;
    if (!contains(info, q->addr))
        return 0;
    q->done = true;
    uintptr_t lo = UINTPTR_MAX, hi = 0;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_LOAD)
            continue;
        uintptr_t a = info->dlpi_addr + ph->p_vaddr;
        if (a < lo)
            lo = a;
        if (a + ph->p_memsz > hi)
            hi = a + ph->p_memsz;
    }
    self_lo = lo;
    self_hi = hi;
    struct dyn d;
    if (!read_dyn(info, &d)) {
        q->err = -ENOEXEC;
        return 1;
    }
    uint32_t n = sym_count(&d);
    for (uint32_t i = 1; i < n; i++) {
        const ElfW(Sym) *s = &d.symtab[i];
        const char *name = d.strtab + s->st_name;
        if (ELF64_ST_TYPE(s->st_info) != STT_FUNC || s->st_shndx == SHN_UNDEF || s->st_value == 0 ||
            ELF64_ST_BIND(s->st_info) != STB_GLOBAL || skip_name(name, q->skip))
            continue;
        if (n_routes == MAX_ROUTES) {
            q->err = -E2BIG;
            return 1;
        }
        routes[n_routes++] = (struct route){ name, (void *)(d.base + s->st_value), gnu_hash_of(name) };
    }
    return 1;
}

int hs_got_init(const void *self, const char *const *skip_prefixes, const struct hs_got_extra *extra, size_t n_extra)
{
    if (hs_got_enabled())
        return 0;
    struct self_query q = { .addr = (uintptr_t)self, .skip = skip_prefixes };
    dl_iterate_phdr(self_cb, &q);
    if (!q.done)
        return -ENOENT;
    if (q.err)
        return q.err;
    for (size_t i = 0; i < n_extra; i++) {
        if (n_routes == MAX_ROUTES)
            return -E2BIG;
        routes[n_routes++] = (struct route){ extra[i].name, extra[i].to, gnu_hash_of(extra[i].name) };
    }
    void *m = mmap(NULL, MAX_SLOTS * sizeof(struct slot), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED)
        return -errno;
    slots = m;
    __atomic_store_n(&enabled, true, __ATOMIC_RELEASE);
    return 0;
}

/* ------------------------------------------------------------- routing */

static const struct route *route_of(const char *name)
{
    uint32_t h = gnu_hash_of(name);
    for (size_t i = 0; i < n_routes; i++)
        if (routes[i].gnu_hash == h && strcmp(routes[i].name, name) == 0)
            return &routes[i];
    return NULL;
}

/* Writes `v` into `at`, making a RELRO page writable for the moment. */
static int poke(void **at, void *v, bool relro)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    void *pg = (void *)((uintptr_t)at & ~(page - 1));
    if (relro && mprotect(pg, page, PROT_READ | PROT_WRITE) != 0)
        return -errno;
    __atomic_store_n(at, v, __ATOMIC_RELEASE);
    if (relro)
        mprotect(pg, page, PROT_READ);
    return 0;
}

struct pass { const char *interp; int changed; int err; unsigned long long adds; bool first; };

static void route_reloc(const struct dyn *d, uint32_t type, uint32_t symi, ElfW(Addr) offset, ElfW(Sxword) addend,
                        struct pass *p)
{
    if (type != R_SLOT && type != R_GLOB && type != R_ABS)
        return;
    if (addend && type != R_SLOT)
        return;                         /* a pointer into the function, not to it */
    if (!symi)
        return;
    const ElfW(Sym) *s = &d->symtab[symi];
    const struct route *r = route_of(d->strtab + s->st_name);
    if (!r)
        return;
    void **at = (void **)(d->base + offset);
    void *cur = __atomic_load_n(at, __ATOMIC_ACQUIRE);
    if (cur == r->to)
        return;                         /* routed already */
    /* A weak undefined reference stays what it is while nothing defines
     * the name (ddprof #348): NULL must stay NULL. */
    if (s->st_shndx == SHN_UNDEF && ELF64_ST_BIND(s->st_info) == STB_WEAK && (!cur || !hs_got_lookup(r->name)))
        return;
    if (n_slots == MAX_SLOTS) {
        p->err = -ENOSPC;
        return;
    }
    bool relro = (uintptr_t)at >= d->relro_lo && (uintptr_t)at < d->relro_hi;
    slots[n_slots] = (struct slot){ at, cur, r->to, relro };
    int err = poke(at, r->to, relro);
    if (err) {
        p->err = err;
        return;
    }
    n_slots++;
    p->changed++;
}

static int route_cb(struct dl_phdr_info *info, size_t size, void *arg)
{
    struct pass *p = arg;
    if (p->first) {
        p->first = false;
        if (size >= offsetof(struct dl_phdr_info, dlpi_adds) + sizeof info->dlpi_adds)
            p->adds = info->dlpi_adds;
        for (int i = 0; i < info->dlpi_phnum; i++)
            if (info->dlpi_phdr[i].p_type == PT_INTERP)
                p->interp = (const char *)(info->dlpi_addr + info->dlpi_phdr[i].p_vaddr);
    }
    if (skipped(info, p->interp))
        return 0;
    struct dyn d;
    if (!read_dyn(info, &d))
        return 0;
    for (size_t i = 0; d.rela && i < d.relasz / sizeof(ElfW(Rela)); i++)
        route_reloc(&d, ELF64_R_TYPE(d.rela[i].r_info), ELF64_R_SYM(d.rela[i].r_info), d.rela[i].r_offset, d.rela[i].r_addend, p);
    for (size_t i = 0; d.rel && i < d.relsz / sizeof(ElfW(Rel)); i++)
        route_reloc(&d, ELF64_R_TYPE(d.rel[i].r_info), ELF64_R_SYM(d.rel[i].r_info), d.rel[i].r_offset, 0, p);
    if (d.jmprel && d.jmprel_is_rela) {
        const ElfW(Rela) *r = d.jmprel;
        for (size_t i = 0; i < d.pltrelsz / sizeof *r; i++)
            route_reloc(&d, ELF64_R_TYPE(r[i].r_info), ELF64_R_SYM(r[i].r_info), r[i].r_offset, r[i].r_addend, p);
    } else if (d.jmprel) {
        const ElfW(Rel) *r = d.jmprel;
        for (size_t i = 0; i < d.pltrelsz / sizeof *r; i++)
            route_reloc(&d, ELF64_R_TYPE(r[i].r_info), ELF64_R_SYM(r[i].r_info), r[i].r_offset, 0, p);
    }
    return 0;
}

int hs_got_route(bool start)
{
    if (!hs_got_enabled())
        return -ENODEV;
    pthread_mutex_lock(&route_lock);
    if (start)
        routing = true;
    if (!routing) {                     /* a dlopen racing a stop: stay restored */
        pthread_mutex_unlock(&route_lock);
        return 0;
    }
    struct pass p = { .first = true };
    dl_iterate_phdr(route_cb, &p);
    __atomic_store_n(&last_adds, p.adds, __ATOMIC_RELAXED);
    bool say = p.err == -ENOSPC && !full_said;
    if (say)
        full_said = true;
    pthread_mutex_unlock(&route_lock);
    return p.err && !say ? p.err : p.changed;
}

void hs_got_restore(void)
{
    if (!hs_got_enabled())
        return;
    pthread_mutex_lock(&route_lock);
    routing = false;
    while (n_slots) {
        struct slot *s = &slots[--n_slots];
        if (__atomic_load_n(s->at, __ATOMIC_ACQUIRE) == s->to)
            (void)poke(s->at, s->old, s->relro);
    }
    pthread_mutex_unlock(&route_lock);
}

struct ranges { uintptr_t lo[1024], hi[1024]; int n; bool overflow; };

static int ranges_cb(struct dl_phdr_info *info, size_t size, void *arg)
{
    (void)size;
    struct ranges *r = arg;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_LOAD)
            continue;
        if (r->n == 1024) {
            r->overflow = true;
            return 1;
        }
        r->lo[r->n] = info->dlpi_addr + ph->p_vaddr;
        r->hi[r->n] = r->lo[r->n] + ph->p_memsz;
        r->n++;
    }
    return 0;
}

void hs_got_forget_unloaded(void)
{
    if (!hs_got_enabled())
        return;
    static struct ranges r;             /* under route_lock: 16 KiB off the stack */
    pthread_mutex_lock(&route_lock);
    r.n = 0;
    r.overflow = false;
    dl_iterate_phdr(ranges_cb, &r);
    size_t kept = 0;
    for (size_t i = 0; i < n_slots && !r.overflow; i++) {
        uintptr_t a = (uintptr_t)slots[i].at;
        for (int j = 0; j < r.n; j++)
            if (a >= r.lo[j] && a < r.hi[j]) {
                slots[kept++] = slots[i];
                break;
            }
    }
    if (!r.overflow)
        n_slots = kept;
    pthread_mutex_unlock(&route_lock);
}

static int adds_cb(struct dl_phdr_info *info, size_t size, void *arg)
{
    if (size >= offsetof(struct dl_phdr_info, dlpi_adds) + sizeof info->dlpi_adds)
        *(unsigned long long *)arg = info->dlpi_adds;
    return 1;
}

bool hs_got_objects_added(void)
{
    unsigned long long adds = 0;
    dl_iterate_phdr(adds_cb, &adds);
    return adds != __atomic_load_n(&last_adds, __ATOMIC_RELAXED);
}

/* ------------------------------------------------- the caller's search path */

/* Tries each directory of `list` (':'-separated, $ORIGIN expanded to
 * `origin`) for `file`. */
static bool search(const char *list, const char *origin, const char *file, char *out, size_t size)
{
    while (list && *list) {
        const char *end = strchr(list, ':');
        size_t len = end ? (size_t)(end - list) : strlen(list);
        char dir[PATH_MAX];
        size_t o = 0;
        for (size_t i = 0; i < len && o + 1 < sizeof dir;) {
            if (strncmp(list + i, "$ORIGIN", 7) == 0 || strncmp(list + i, "${ORIGIN}", 9) == 0) {
                size_t skip = list[i + 1] == '{' ? 9 : 7;
                size_t ol = strlen(origin);
                if (o + ol >= sizeof dir)
                    break;
                memcpy(dir + o, origin, ol);
                o += ol;
                i += skip;
            } else {
                dir[o++] = list[i++];
            }
        }
        dir[o] = 0;
        size_t need = o + 1 + strlen(file) + 1;
        if (o && need <= size) {
            memcpy(out, dir, o);
            out[o] = '/';
            strcpy(out + o + 1, file);
            if (access(out, F_OK) == 0)
                return true;
        }
        list = end ? end + 1 : NULL;
    }
    return false;
}

struct caller_query { uintptr_t addr; struct dyn d; const char *name; bool found; bool main_rpath; struct dyn main; bool first; };

static int caller_cb(struct dl_phdr_info *info, size_t size, void *arg)
{
    (void)size;
    struct caller_query *q = arg;
    if (q->first) {
        q->first = false;
        q->main_rpath = read_dyn(info, &q->main);
    }
    if (!q->found && contains(info, q->addr) && read_dyn(info, &q->d)) {
        q->found = true;
        q->name = info->dlpi_name;
    }
    return 0;
}

bool hs_got_caller_path(const void *caller, const char *file, char *out, size_t size)
{
    struct caller_query q = { .addr = (uintptr_t)caller, .first = true };
    dl_iterate_phdr(caller_cb, &q);
    if (!q.found)
        return false;
    char origin[PATH_MAX];
    if (q.name && q.name[0]) {
        strncpy(origin, q.name, sizeof origin - 1);
        origin[sizeof origin - 1] = 0;
    } else {
        ssize_t n = readlink("/proc/self/exe", origin, sizeof origin - 1);
        origin[n > 0 ? n : 0] = 0;
    }
    char *slash = strrchr(origin, '/');
    if (slash)
        *slash = 0;
    if (q.d.runpath) {
        /* LD_LIBRARY_PATH comes before DT_RUNPATH: a match there is the
         * loader's own answer for the plain name. */
        char tmp[PATH_MAX];
        if (search(getenv("LD_LIBRARY_PATH"), origin, file, tmp, sizeof tmp))
            return false;
        return search(q.d.runpath, origin, file, out, size);
    }
    if (q.d.rpath && search(q.d.rpath, origin, file, out, size))
        return true;
    /* DT_RPATH of the executable applies to every object without DT_RUNPATH. */
    if (q.main_rpath && q.main.rpath && !q.main.runpath) {
        char exe[PATH_MAX];
        ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
        exe[n > 0 ? n : 0] = 0;
        char *s = strrchr(exe, '/');
        if (s)
            *s = 0;
        return search(q.main.rpath, exe, file, out, size);
    }
    return false;
}
