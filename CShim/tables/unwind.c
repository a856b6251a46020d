/*
 * unwind.c - a fast stack walk from cached .eh_frame rules; unw_backtrace
 * as the fallback, so the frames are always what libunwind would record.
 *
 * The walk (the idea of the kernel's ORC unwinder and of libunwind's own
 * tdep_trace, Gtrace.c): for each frame, one rule for its address says where
 * the CFA is (rsp or rbp plus an offset), that the return address is at
 * CFA-8, and whether rbp is unchanged or saved at CFA+k. Then rsp = CFA,
 * rip = *(CFA-8), rbp as the rule says. Caller frames are looked up at
 * return address - 1 (inside the call), but recorded as the return address
 * itself: that is what Debian's libunwind 1.6.2 unw_backtrace stores
 * (checked with HEAPSNAP_UNWIND=check; its unw_step fallback stores the IP
 * too, while newer upstream tdep_trace stores `rip - use_prev_instr`), and
 * what the symbolizer expects (it subtracts one). A rule whose return address (or rbp) is undefined marks the
 * outermost frame (_start, clone3): libunwind then stops (unw_step returns
 * 0) having recorded that frame, and so do we. A return address below
 * 0x4000 ends the walk unrecorded, as in tdep_trace.
 *
 * Rules are derived once per address from the module's PT_GNU_EH_FRAME
 * (.eh_frame_hdr's sorted table -> FDE -> CIE, then the CFA program up to
 * the address) and kept in a fixed, lock-free cache shared by all threads.
 * Only what tdep_trace calls a standard frame is walked here: CFA on rsp or
 * rbp with |offset| < 2^28, return address at CFA-8, rbp and rsp unsaved or
 * at CFA+k (|k| < 2^14, k != -1). Anything else - a signal frame ('S'), a
 * CFA expression or another CFA register (stack realignment, PLT), a rule
 * in a register, no FDE, no module, a step that does not move rsp up by at
 * least 8 and at most HS_UW_MAX_STEP - throws the walk away and calls
 * unw_backtrace for the whole stack. Unsupported addresses are cached too.
 *
 * Cache: 2^15 entries of two 64-bit words {key ^ rule, rule}, written and
 * read with relaxed atomics; a reader accepts an entry only if the xor of
 * the two words is its key, so a torn entry is a miss. The key is the
 * address with the generation in bits 47..63 (user addresses are below
 * 2^47); hs_unwind_forget() (dlclose) bumps the generation, which misses
 * every entry at once (and empties the cache when those 17 bits wrap).
 * Nothing is allocated, ever: we run inside malloc.
 *
 * Safety: every read of .eh_frame_hdr/.eh_frame is bounds-checked against
 * the loaded segment that holds it, and parsing happens inside the
 * dl_iterate_phdr callback (the loader's lock keeps the module mapped).
 * The stack is read only at CFA-8 and CFA+k after checking that the CFA
 * lies above rsp, within HS_UW_MAX_STEP: correct unwind tables then keep
 * every read inside the frame being popped, and libunwind trusts the same
 * tables without validation (its local unwinding does not check either).
 */
#define _GNU_SOURCE
#include "tables/unwind.h"
#include "base/options.h"
#include "base/stderr.h"

#include <dlfcn.h>
#include <link.h>
#include <pthread.h>
#include <stdbool.h>
#include <string.h>

#define HS_UW_CACHE_BITS 15
#define HS_UW_MAX_STEP ((uintptr_t)1 << 20)    /* a frame of more than 1 MiB: fall back */
#define HS_UW_GEN_SHIFT 47
#define HS_UW_STATE_STACK 8                     /* remember_state depth */
#define HS_UW_DIFFS 3                           /* differing stacks kept for the report */
#define HS_UW_DIFF_FRAMES 12                    /* frames of each kept */

/* A rule in 64 bits: kind, CFA base register, rbp saved or not, the two
 * offsets. 0 is never a rule (kind 0), so an empty entry is never a hit. */
enum { RULE_UNSUPPORTED = 1, RULE_STEP = 2, RULE_LAST = 3 };
#define RULE_KIND(r) ((unsigned)((r) & 3))
#define RULE_CFA_RBP ((uint64_t)1 << 2)
#define RULE_RBP_SAVED ((uint64_t)1 << 3)
#define RULE_RBP_OFF(r) ((int64_t)(int16_t)(uint16_t)((r) >> 16))
#define RULE_CFA_OFF(r) ((int64_t)(int32_t)(uint32_t)((r) >> 32))

static uint64_t make_rule(bool cfa_rbp, int64_t cfa_off, bool rbp_saved, int64_t rbp_off)
{
    return RULE_STEP | (cfa_rbp ? RULE_CFA_RBP : 0) | (rbp_saved ? RULE_RBP_SAVED : 0) |
           ((uint64_t)(uint16_t)(int16_t)rbp_off << 16) | ((uint64_t)(uint32_t)(int32_t)cfa_off << 32);
}

/* ------------------------------------------------------------ the cache */

struct entry { uint64_t w0, w1; };     /* w0 = key ^ rule, w1 = rule; relaxed atomics */

static struct entry cache[1u << HS_UW_CACHE_BITS] __attribute__((aligned(64)));
static uint64_t generation;             /* atomic add by hs_unwind_forget; read relaxed */

static inline uint64_t cache_key(uintptr_t ip, uint64_t gen)
{
    return (uint64_t)ip ^ (gen << HS_UW_GEN_SHIFT);
}

/* A fold, not a multiply: the walk waits on this between two loads in
 * every frame. The generation (bits 47..) never reaches the index. */
static inline struct entry *slot_of(uint64_t key)
{
    return &cache[(key ^ (key >> HS_UW_CACHE_BITS)) & ((1u << HS_UW_CACHE_BITS) - 1)];
}

static inline bool cache_get(uint64_t key, uint64_t *rule)
{
    struct entry *e = slot_of(key);
    uint64_t w0 = __atomic_load_n(&e->w0, __ATOMIC_RELAXED);
    uint64_t w1 = __atomic_load_n(&e->w1, __ATOMIC_RELAXED);
    if ((w0 ^ w1) != key)
        return false;
    *rule = w1;
    return true;
}

static inline void cache_put(uint64_t key, uint64_t rule)
{
    struct entry *e = slot_of(key);
    __atomic_store_n(&e->w0, key ^ rule, __ATOMIC_RELAXED);
    __atomic_store_n(&e->w1, rule, __ATOMIC_RELAXED);
}

void hs_unwind_forget(void)
{
    uint64_t gen = __atomic_add_fetch(&generation, 1, __ATOMIC_SEQ_CST);
    if (gen & ((1ull << (64 - HS_UW_GEN_SHIFT)) - 1))
        return;
    /* The generation's bits in the key wrapped (after 2^17 bumps): keys of
     * long ago would match again, so empty every entry. A reader racing
     * with this sees a miss; a rule stored meanwhile under the old
     * generation cannot match before another 2^17 bumps. */
    for (size_t i = 0; i < sizeof cache / sizeof cache[0]; i++) {
        __atomic_store_n(&cache[i].w0, 0, __ATOMIC_RELAXED);
        __atomic_store_n(&cache[i].w1, 0, __ATOMIC_RELAXED);
    }
}

/* ------------------------------------------------ reading .eh_frame data */

/* A bounded reader: every access checks [p, end); a failed one sets bad. */
struct rd {
    const uint8_t *p, *lo, *end;        /* lo..end: the segment holding the data */
    bool bad;
};

static bool need(struct rd *r, size_t n)
{
    if (r->bad || r->p < r->lo || r->p > r->end || (size_t)(r->end - r->p) < n) {
        r->bad = true;
        return false;
    }
    return true;
}

static uint64_t rd_u(struct rd *r, size_t n)
{
    if (!need(r, n))
        return 0;
    uint64_t v = 0;
    memcpy(&v, r->p, n);                /* little endian */
    r->p += n;
    return v;
}

static uint64_t rd_uleb(struct rd *r)
{
    uint64_t v = 0;
    for (unsigned shift = 0; need(r, 1); shift += 7) {
        uint8_t b = *r->p++;
        if (shift < 64)
            v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80))
            return v;
        if (shift > 70) {
            r->bad = true;
            return 0;
        }
    }
    return 0;
}

static int64_t rd_sleb(struct rd *r)
{
    int64_t v = 0;
    unsigned shift = 0;
    while (need(r, 1)) {
        uint8_t b = *r->p++;
        if (shift < 64)
            v |= (int64_t)((uint64_t)(b & 0x7f) << shift);
        shift += 7;
        if (!(b & 0x80)) {
            if (shift < 64 && (b & 0x40))
                v |= -((int64_t)1 << shift);
            return v;
        }
        if (shift > 70)
            break;
    }
    r->bad = true;
    return 0;
}

/* A pointer in DW_EH_PE encoding `enc` (not DW_EH_PE_omit): absolute,
 * pc-relative or relative to `datarel`. Indirect is refused (only the
 * personality uses it, and its caller masks it: the value is skipped).
 * Anything else sets bad. */
static uint64_t rd_ptr(struct rd *r, uint8_t enc, uintptr_t datarel)
{
    uintptr_t here = (uintptr_t)r->p;
    uint64_t v;
    if (enc & 0x80) {                   /* indirect: only the personality, which is masked */
        r->bad = true;
        return 0;
    }
    switch (enc & 0x0f) {
    case 0x00: v = rd_u(r, 8); break;                               /* absptr */
    case 0x01: v = rd_uleb(r); break;
    case 0x02: v = rd_u(r, 2); break;
    case 0x03: v = rd_u(r, 4); break;
    case 0x04: v = rd_u(r, 8); break;
    case 0x09: v = (uint64_t)rd_sleb(r); break;
    case 0x0a: v = (uint64_t)(int64_t)(int16_t)rd_u(r, 2); break;
    case 0x0b: v = (uint64_t)(int64_t)(int32_t)rd_u(r, 4); break;
    case 0x0c: v = rd_u(r, 8); break;
    default: r->bad = true; return 0;
    }
    switch (enc & 0x70) {
    case 0x00: break;
    case 0x10: v += here; break;                                    /* pcrel */
    case 0x30: if (!datarel) { r->bad = true; return 0; } v += datarel; break;
    default: r->bad = true; return 0;
    }
    return v;
}

/* ------------------------------------------------- the CFA program */

/* The registers a standard frame involves: rbp (6), rsp (7), return address (16). */
enum { T_RBP, T_RSP, T_RA, T_COUNT };
enum { HOW_SAME, HOW_UNDEF, HOW_OFFSET, HOW_OTHER };

struct reg { uint8_t how; int64_t off; };
struct row {
    uint64_t cfa_reg;
    int64_t cfa_off;
    bool cfa_expr;
    struct reg r[T_COUNT];
};

static int tracked(uint64_t dwarf_reg)
{
    return dwarf_reg == 6 ? T_RBP : dwarf_reg == 7 ? T_RSP : dwarf_reg == 16 ? T_RA : -1;
}

struct cie {
    uint64_t code_align;
    int64_t data_align;
    uint8_t fde_enc;
    bool augmented;                     /* 'z': FDEs carry augmentation data */
    bool signal;                        /* 'S' */
    const uint8_t *insn, *insn_end;
};

/* Runs a CFA program from `loc` while the location stays <= target.
 * `initial` is the row after the CIE's instructions (DW_CFA_restore).
 * Returns false for an instruction we cannot follow (unsupported). */
static bool run_cfa(struct rd *r, const struct cie *c, struct row *row, const struct row *initial,
                    uint64_t loc, uint64_t target)
{
    struct row stack[HS_UW_STATE_STACK];
    int depth = 0;
    while (r->p < r->end && !r->bad) {
        uint8_t op = (uint8_t)rd_u(r, 1);
        uint64_t reg = op & 0x3f, delta = 0;
        int t;
        switch (op & 0xc0) {
        case 0x40:                                      /* advance_loc */
            delta = reg;
            goto advance;
        case 0x80:                                      /* offset */
            if ((t = tracked(reg)) >= 0)
                row->r[t] = (struct reg){ HOW_OFFSET, (int64_t)rd_uleb(r) * c->data_align };
            else
                rd_uleb(r);
            continue;
        case 0xc0:                                      /* restore */
            if ((t = tracked(reg)) >= 0)
                row->r[t] = initial ? initial->r[t] : (struct reg){ HOW_SAME, 0 };
            continue;
        }
        switch (op) {
        case 0x00:                                      /* nop */
            break;
        case 0x01: {                                    /* set_loc */
            uint64_t to = rd_ptr(r, c->fde_enc, 0);
            if (to > target)
                return !r->bad;
            loc = to;
            break;
        }
        case 0x02: delta = rd_u(r, 1); goto advance;    /* advance_loc1 */
        case 0x03: delta = rd_u(r, 2); goto advance;    /* advance_loc2 */
        case 0x04: delta = rd_u(r, 4); goto advance;    /* advance_loc4 */
        case 0x05:                                      /* offset_extended */
        case 0x2f: {                                    /* GNU_negative_offset_extended */
            reg = rd_uleb(r);
            int64_t off = (int64_t)rd_uleb(r) * c->data_align;
            if ((t = tracked(reg)) >= 0)
                row->r[t] = (struct reg){ HOW_OFFSET, op == 0x2f ? -off : off };
            break;
        }
        case 0x11:                                      /* offset_extended_sf */
            reg = rd_uleb(r);
            if ((t = tracked(reg)) >= 0)
                row->r[t] = (struct reg){ HOW_OFFSET, rd_sleb(r) * c->data_align };
            else
                rd_sleb(r);
            break;
        case 0x06:                                      /* restore_extended */
            if ((t = tracked(rd_uleb(r))) >= 0)
                row->r[t] = initial ? initial->r[t] : (struct reg){ HOW_SAME, 0 };
            break;
        case 0x07:                                      /* undefined */
            if ((t = tracked(rd_uleb(r))) >= 0)
                row->r[t] = (struct reg){ HOW_UNDEF, 0 };
            break;
        case 0x08:                                      /* same_value */
            if ((t = tracked(rd_uleb(r))) >= 0)
                row->r[t] = (struct reg){ HOW_SAME, 0 };
            break;
        case 0x09:                                      /* register */
            if ((t = tracked(rd_uleb(r))) >= 0)
                row->r[t] = (struct reg){ HOW_OTHER, 0 };
            rd_uleb(r);
            break;
        case 0x0a:                                      /* remember_state */
            if (depth == HS_UW_STATE_STACK)
                return false;
            stack[depth++] = *row;
            break;
        case 0x0b:                                      /* restore_state */
            if (depth == 0)
                return false;
            *row = stack[--depth];
            break;
        case 0x0c:                                      /* def_cfa */
            row->cfa_reg = rd_uleb(r);
            row->cfa_off = (int64_t)rd_uleb(r);
            row->cfa_expr = false;
            break;
        case 0x12:                                      /* def_cfa_sf */
            row->cfa_reg = rd_uleb(r);
            row->cfa_off = rd_sleb(r) * c->data_align;
            row->cfa_expr = false;
            break;
        case 0x0d:                                      /* def_cfa_register */
            row->cfa_reg = rd_uleb(r);
            row->cfa_expr = false;
            break;
        case 0x0e:                                      /* def_cfa_offset */
            row->cfa_off = (int64_t)rd_uleb(r);
            break;
        case 0x13:                                      /* def_cfa_offset_sf */
            row->cfa_off = rd_sleb(r) * c->data_align;
            break;
        case 0x0f: {                                    /* def_cfa_expression */
            uint64_t len = rd_uleb(r);
            if (!need(r, len))
                return false;
            r->p += len;
            row->cfa_expr = true;
            break;
        }
        case 0x10:                                      /* expression */
        case 0x16: {                                    /* val_expression */
            t = tracked(rd_uleb(r));
            uint64_t len = rd_uleb(r);
            if (!need(r, len))
                return false;
            r->p += len;
            if (t >= 0)
                row->r[t] = (struct reg){ HOW_OTHER, 0 };
            break;
        }
        case 0x14:                                      /* val_offset */
            if ((t = tracked(rd_uleb(r))) >= 0)
                row->r[t] = (struct reg){ HOW_OTHER, 0 };
            rd_uleb(r);
            break;
        case 0x15:                                      /* val_offset_sf */
            if ((t = tracked(rd_uleb(r))) >= 0)
                row->r[t] = (struct reg){ HOW_OTHER, 0 };
            rd_sleb(r);
            break;
        case 0x2e:                                      /* GNU_args_size */
            rd_uleb(r);
            break;
        default:                                        /* window_save, vendor ops */
            return false;
        }
        continue;
advance:
        loc += delta * c->code_align;
        if (loc > target)
            return !r->bad;
    }
    return !r->bad;
}

/* What tdep_trace would make of the row (libunwind's tdep_stash_frame
 * decides "standard"; unw_step's end of stack decides "last"). */
static uint64_t classify(const struct row *row)
{
    bool plain_cfa = !row->cfa_expr && (row->cfa_reg == 6 || row->cfa_reg == 7) &&
                     row->cfa_off > -(1 << 28) && row->cfa_off < (1 << 28);
    if (!plain_cfa)
        return RULE_UNSUPPORTED;
    const struct reg *ra = &row->r[T_RA], *bp = &row->r[T_RBP], *sp = &row->r[T_RSP];
    if (ra->how == HOW_UNDEF)
        return RULE_LAST;
    if (ra->how != HOW_OFFSET || ra->off != -8)
        return RULE_UNSUPPORTED;
    if (bp->how == HOW_UNDEF)
        return RULE_LAST;               /* unw_step: a NULL rbp location ends the chain */
    bool bp_ok = bp->how == HOW_SAME ||
                 (bp->how == HOW_OFFSET && bp->off > -(1 << 14) && bp->off < (1 << 14) && bp->off != -1);
    bool sp_ok = sp->how == HOW_SAME || sp->how == HOW_UNDEF ||
                 (sp->how == HOW_OFFSET && sp->off > -(1 << 14) && sp->off < (1 << 14) && sp->off != -1);
    if (!bp_ok || !sp_ok)
        return RULE_UNSUPPORTED;
    /* The walk reads a saved rbp only below the return address, inside the
     * frame it pops (checked again against rsp at run time). */
    if (bp->how == HOW_OFFSET && bp->off > -16)
        return RULE_UNSUPPORTED;
    return make_rule(row->cfa_reg == 6, row->cfa_off, bp->how == HOW_OFFSET, bp->off);
}

/* Parses the CIE at `at`. False if malformed or not supported. */
static bool parse_cie(const uint8_t *at, const uint8_t *lo, const uint8_t *hi, struct cie *c)
{
    struct rd r = { at, lo, hi, false };
    uint64_t len = rd_u(&r, 4);
    bool wide = len == 0xffffffffu;
    if (wide)
        len = rd_u(&r, 8);
    if (r.bad || len == 0 || len > (uint64_t)(hi - r.p))
        return false;
    const uint8_t *end = r.p + len;
    r.end = end;
    if (rd_u(&r, wide ? 8 : 4) != 0)    /* CIE id in .eh_frame */
        return false;
    uint8_t version = (uint8_t)rd_u(&r, 1);
    if (version != 1 && version != 3 && version != 4)
        return false;
    const char *aug = (const char *)r.p;
    size_t alen = 0;
    while (need(&r, 1) && *r.p) {
        r.p++;
        alen++;
    }
    rd_u(&r, 1);                        /* the terminating 0 */
    if (r.bad || (alen && aug[0] != 'z'))
        return false;                   /* "eh" and other old forms */
    if (version == 4) {
        if (rd_u(&r, 1) != 8 || rd_u(&r, 1) != 0)  /* address size, segment selector size */
            return false;
    }
    c->code_align = rd_uleb(&r);
    c->data_align = rd_sleb(&r);
    uint64_t ra = version == 1 ? rd_u(&r, 1) : rd_uleb(&r);
    if (r.bad || ra != 16)
        return false;
    c->fde_enc = 0;
    c->augmented = alen > 0;
    c->signal = false;
    if (c->augmented) {
        uint64_t dlen = rd_uleb(&r);
        if (!need(&r, dlen))
            return false;
        const uint8_t *data_end = r.p + dlen;
        for (size_t i = 1; i < alen; i++) {
            switch (aug[i]) {
            case 'R': c->fde_enc = (uint8_t)rd_u(&r, 1); break;
            case 'L': rd_u(&r, 1); break;
            case 'P': {
                uint8_t enc = (uint8_t)rd_u(&r, 1);
                rd_ptr(&r, enc & 0x7f, 0);          /* skipped, never followed */
                break;
            }
            case 'S': c->signal = true; break;
            default: return false;                  /* unknown: libunwind gives up too */
            }
        }
        if (r.bad || r.p > data_end)
            return false;
        r.p = data_end;
    }
    c->insn = r.p;
    c->insn_end = end;
    return !r.bad;
}

/* The rule for `ip` in a module whose .eh_frame_hdr is at hdr (size n),
 * with the loaded segment [lo, hi) holding .eh_frame. Context: inside a
 * dl_iterate_phdr callback. */
static uint64_t rule_from_hdr(const uint8_t *hdr, size_t n, const uint8_t *lo, const uint8_t *hi, uintptr_t ip)
{
    struct rd r = { hdr, hdr, hdr + n, false };
    uint8_t version = (uint8_t)rd_u(&r, 1), ptr_enc = (uint8_t)rd_u(&r, 1);
    uint8_t count_enc = (uint8_t)rd_u(&r, 1), table_enc = (uint8_t)rd_u(&r, 1);
    if (r.bad || version != 1 || ptr_enc == 0xff || count_enc == 0xff || table_enc != 0x3b)
        return RULE_UNSUPPORTED;        /* no binary search table: libunwind scans; we fall back */
    rd_ptr(&r, ptr_enc, (uintptr_t)hdr);
    uint64_t count = rd_ptr(&r, count_enc, (uintptr_t)hdr);
    if (r.bad || count == 0 || count > (uint64_t)(r.end - r.p) / 8)
        return RULE_UNSUPPORTED;
    const uint8_t *table = r.p;
    /* Entries are {int32 initial location, int32 FDE address}, both
     * relative to hdr, sorted by location: the last one <= ip. */
    int64_t want = (int64_t)ip - (int64_t)(uintptr_t)hdr;
    uint64_t a = 0, b = count;
    while (b - a > 1) {
        uint64_t m = a + (b - a) / 2;
        int32_t loc;
        memcpy(&loc, table + m * 8, 4);
        if ((int64_t)loc <= want)
            a = m;
        else
            b = m;
    }
    int32_t loc0, fde_rel;
    memcpy(&loc0, table + a * 8, 4);
    memcpy(&fde_rel, table + a * 8 + 4, 4);
    if ((int64_t)loc0 > want)
        return RULE_UNSUPPORTED;

    /* The FDE. */
    struct rd f = { hdr + fde_rel, lo, hi, false };
    uint64_t len = rd_u(&f, 4);
    bool wide = len == 0xffffffffu;
    if (wide)
        len = rd_u(&f, 8);
    if (f.bad || len == 0 || len > (uint64_t)(hi - f.p))
        return RULE_UNSUPPORTED;
    f.end = f.p + len;
    const uint8_t *id_at = f.p;
    uint64_t cie_off = rd_u(&f, wide ? 8 : 4);
    if (f.bad || cie_off == 0 || cie_off > (uint64_t)(id_at - lo))
        return RULE_UNSUPPORTED;        /* 0 would be a CIE */
    struct cie c;
    if (!parse_cie(id_at - cie_off, lo, hi, &c) || c.signal)
        return RULE_UNSUPPORTED;
    uint64_t start = rd_ptr(&f, c.fde_enc, 0);
    uint64_t range = rd_ptr(&f, c.fde_enc & 0x0f, 0);
    if (f.bad || ip < start || ip - start >= range)
        return RULE_UNSUPPORTED;        /* a gap between functions: no FDE */
    if (c.augmented) {
        uint64_t alen = rd_uleb(&f);
        if (!need(&f, alen))
            return RULE_UNSUPPORTED;
        f.p += alen;                    /* the LSDA pointer */
    }

    /* Every register "same value" to begin with (as libunwind), then the
     * CIE's initial instructions, then the FDE's up to ip. */
    struct row row = { .cfa_reg = 7, .cfa_off = 0, .cfa_expr = false };
    for (int i = 0; i < T_COUNT; i++)
        row.r[i] = (struct reg){ HOW_SAME, 0 };
    struct rd ci = { c.insn, lo, c.insn_end, false };
    if (!run_cfa(&ci, &c, &row, NULL, 0, UINT64_MAX))
        return RULE_UNSUPPORTED;
    struct row initial = row;
    if (!run_cfa(&f, &c, &row, &initial, start, ip))
        return RULE_UNSUPPORTED;
    return classify(&row);
}

struct lookup {
    uintptr_t ip;
    uint64_t rule;
};

/* Context: dl_iterate_phdr callback (the loader's lock held). */
static int find_module(struct dl_phdr_info *info, size_t size, void *arg)
{
    (void)size;
    struct lookup *l = arg;
    const ElfW(Phdr) *eh = NULL;
    bool mine = false;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        uintptr_t lo = info->dlpi_addr + ph->p_vaddr;
        if (ph->p_type == PT_LOAD && l->ip >= lo && l->ip - lo < ph->p_memsz)
            mine = true;
        else if (ph->p_type == PT_GNU_EH_FRAME)
            eh = ph;
    }
    if (!mine)
        return 0;
    l->rule = RULE_UNSUPPORTED;
    if (!eh)
        return 1;
    /* The loaded segment that holds .eh_frame_hdr bounds every read
     * (.eh_frame sits in the same read-only segment). */
    uintptr_t hdr = info->dlpi_addr + eh->p_vaddr;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        uintptr_t lo = info->dlpi_addr + ph->p_vaddr;
        if (ph->p_type != PT_LOAD || hdr < lo || hdr - lo >= ph->p_filesz)
            continue;
        uintptr_t hi = lo + ph->p_filesz;
        if (eh->p_memsz > hi - hdr)
            return 1;
        l->rule = rule_from_hdr((const uint8_t *)hdr, eh->p_memsz, (const uint8_t *)lo, (const uint8_t *)hi, l->ip);
        return 1;
    }
    return 1;
}

/* The rule for `ip`, from the cache or computed and cached.
 * Context: inside malloc; a miss takes the loader's lock. */
static uint64_t rule_for(uintptr_t ip, uint64_t gen)
{
    uint64_t rule, key = cache_key(ip, gen);
    if (__builtin_expect(cache_get(key, &rule), 1))
        return rule;
    struct lookup l = { ip, RULE_UNSUPPORTED };
    dl_iterate_phdr(find_module, &l);
    cache_put(key, l.rule);
    return l.rule;
}

/* ------------------------------------------------- the thread's last walk */

/* Consecutive stacks of a thread share their outer frames (a loop that
 * allocates, an interpreter whose outer activations stay put). Each step of
 * the walk is a function of its state (the address looked up, rsp, rbp),
 * the rule for that address and the stack words it reads (the return
 * address, and rbp where the frame saved it). So the thread's last walk is
 * kept, step by step: when the walk reaches a state that a step of the last
 * walk started from, and every stack word the last walk read from there on
 * still holds what it read, the rest of the walk is the last walk's rest,
 * and its frames are copied instead of looked up and stepped (a load and a
 * compare a word instead of ~50 instructions a frame).
 *
 * The check reads the words in the walk's own order and stops at the first
 * that differs, so it reads no address the walk itself would not read from
 * that state: it is exactly as safe as walking. The rules come from the
 * cache of one generation: a walk of another generation (a module was
 * closed since) is not used.
 *
 * Records are chosen by the thread's TLS address and taken with a try-lock
 * (a thread that finds its record busy walks without it); a thread that
 * finds another thread's walk in its record starts it afresh. Each holds two
 * walks, the last and the one being made. A walk of more than LAST_STEPS
 * steps keeps its first LAST_STEPS; a copied walk goes on stepping from
 * where the kept steps end unless the walk ended there. */
#define LAST_RECORDS 32
#define LAST_SKIP 8                     /* the innermost steps, which change most, are never kept */
#define LAST_STEPS 80

struct step {
    uintptr_t look, sp, bp;             /* the state it started from */
    uintptr_t cfa, ra;                  /* the return address, read at cfa - 8 */
    uintptr_t bp_at, bp_next;           /* where rbp was read (0: kept), and rbp after the step */
};

struct last_walk {
    uint32_t busy;                      /* try-lock: 0 free, 1 taken */
    const void *owner;                  /* the thread's TLS anchor */
    uint64_t gen;
    int cur;                            /* which of the two is the last walk */
    int steps[2];
    bool ended[2];                      /* the walk ended after its last step (no more frames) */
    struct step s[2][LAST_STEPS];
};

static struct last_walk last_walks[LAST_RECORDS];
static __thread char walk_anchor;

static struct last_walk *last_take(uint64_t gen)
{
    struct last_walk *r = &last_walks[((uintptr_t)&walk_anchor * 0x9E3779B97F4A7C15ull) >> (64 - 5)];
    uint32_t free_ = 0;
    if (__atomic_load_n(&r->busy, __ATOMIC_RELAXED) ||
        !__atomic_compare_exchange_n(&r->busy, &free_, 1, false, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED))
        return NULL;
    if (r->owner != &walk_anchor || r->gen != gen) {
        r->owner = &walk_anchor;
        r->gen = gen;
        r->steps[r->cur] = 0;
    }
    return r;
}

static void last_give(struct last_walk *r) { __atomic_store_n(&r->busy, 0, __ATOMIC_RELEASE); }

/* The first of the last walk's steps from `from` on that would read
 * another word now (steps if none), reading in the walk's order: a word is
 * read only if every word before it matched. */
static int first_changed(const struct step *s, int from, int steps)
{
    int j = from;
    while (j < steps && *(const uintptr_t *)(s[j].cfa - 8) == s[j].ra &&
           (!s[j].bp_at || *(const uintptr_t *)s[j].bp_at == s[j].bp_next))
        j++;
    return j;
}

/* Context: fork child, single-threaded. */
static void last_reset_child(void)
{
    memset(last_walks, 0, sizeof last_walks);
}

/* ------------------------------------------------------------ the walk */

/* One step from the frame at (look, *sp, *bp) to its caller's: *ra is the
 * return address read, *bp_at where rbp was read (0: kept). STEPPED, or
 * OUTERMOST (the frame was the outermost, nothing read), or BEYOND (a frame
 * the fast walk does not follow). */
enum { STEPPED, OUTERMOST, BEYOND };

static inline __attribute__((always_inline)) int step(uintptr_t look, uint64_t gen, uintptr_t *sp, uintptr_t *bp,
                                                      uintptr_t *ra, uintptr_t *bp_at)
{
    if (look >> HS_UW_GEN_SHIFT)
        return BEYOND;
    uint64_t rule = rule_for(look, gen);
    unsigned kind = RULE_KIND(rule);
    if (kind == RULE_LAST)
        return OUTERMOST;
    if (kind != RULE_STEP)
        return BEYOND;
    uintptr_t cfa = ((rule & RULE_CFA_RBP) ? *bp : *sp) + (uintptr_t)RULE_CFA_OFF(rule);
    if (cfa < *sp + 8 || cfa - *sp > HS_UW_MAX_STEP || *sp + 8 < *sp)
        return BEYOND;
    *ra = *(const uintptr_t *)(cfa - 8);
    *bp_at = 0;
    if (rule & RULE_RBP_SAVED) {
        uintptr_t at = cfa + (uintptr_t)RULE_RBP_OFF(rule);
        if (at < *sp)
            return BEYOND;
        *bp = *(const uintptr_t *)at;
        *bp_at = at;
    }
    *sp = cfa;
    return STEPPED;
}

/* The walk past its first LAST_SKIP steps, from the frame at (look, sp,
 * bp) with n frames recorded: the same steps, kept in the thread's record,
 * and the last walk's rest copied where it is still on the stack. */
static inline __attribute__((always_inline)) int walk_on_from(void **buf, int max, int n, uintptr_t look, uintptr_t sp,
                                                              uintptr_t bp, uint64_t gen, struct hs_unwind_stop stop)
{
    struct last_walk *r = last_take(gen);
    const struct step *last = r ? r->s[r->cur] : NULL;
    struct step *made = r ? r->s[!r->cur] : NULL;
    int last_steps = r ? r->steps[r->cur] : 0, at = 0, k = 0, changed = -1;
    bool ended = false;
    while (n < max) {
        /* The last walk's step that started from this sp, if any (its
         * steps' sp grow outward, as ours do). */
        while (at < last_steps && last[at].sp < sp)
            at++;
        if (at < last_steps && at > changed && last[at].sp == sp && last[at].look == look && last[at].bp == bp) {
            changed = first_changed(last, at, last_steps);
            if (changed == last_steps) {
                /* The rest is the last walk's: one frame a step, but for a
                 * last step that read the end of the stack, as many as fit. */
                const struct step *t = last + at;
                bool low = last[last_steps - 1].ra < 0x4000;
                int frames = last_steps - at - low;
                if (frames > max - n) {
                    frames = max - n;
                    low = false;
                }
                bool stopped = false;
                for (int i = 0; stop.size && i < frames; i++)
                    if (hs_unwind_at_stop(stop, t[i].ra)) {
                        frames = i + 1;     /* the walk ends at its stop: copied no further */
                        low = false;
                        stopped = true;
                        break;
                    }
                int taken = frames + low;
                for (int i = 0; i < frames; i++)
                    buf[n + i] = (void *)t[i].ra;
                n += frames;
                int keep = taken < LAST_STEPS - k ? taken : LAST_STEPS - k;
                memcpy(made + k, t, (size_t)keep * sizeof *t);
                k += keep;
                sp = t[taken - 1].cfa;
                bp = t[taken - 1].bp_next;
                look = t[taken - 1].ra - 1;
                if (stopped)
                    break;              /* not ended: the record is this walk's first steps */
                if (low || (at + taken == last_steps && r->ended[r->cur])) {
                    ended = true;
                    break;              /* the last walk's end: the same now */
                }
                at = last_steps;        /* go on stepping from its last state, room left */
                continue;
            }
            /* A word changed further out: step on; only a step past it can match. */
        }
        uintptr_t from = sp, bp_before = bp, ra, bp_at;
        int how = step(look, gen, &sp, &bp, &ra, &bp_at);
        if (how == BEYOND) {
            if (r)
                last_give(r);           /* the last walk stays */
            return -1;
        }
        if (how == OUTERMOST) {
            ended = true;
            break;                      /* this frame was the outermost (and is recorded) */
        }
        if (r && k < LAST_STEPS)
            made[k++] = (struct step){ look, from, bp_before, sp, ra, bp_at, bp };
        if (ra < 0x4000) {
            ended = true;
            break;                      /* tdep_trace stops here, unrecorded */
        }
        look = ra - 1;
        buf[n++] = (void *)ra;
        if (hs_unwind_at_stop(stop, ra))
            break;                      /* the stop: not ended, the record is this walk's first steps */
    }
    if (r) {
        r->cur = !r->cur;
        r->steps[r->cur] = k;
        r->ended[r->cur] = ended && k < LAST_STEPS;
        last_give(r);
    }
    return n;
}

/* A walk with no stop and one with a stop: each its own function, so that
 * the walk of every stack pays nothing for HEAPSNAP_NATIVE=inner. */
static __attribute__((noinline)) int walk_on(void **buf, int max, int n, uintptr_t look, uintptr_t sp, uintptr_t bp,
                                             uint64_t gen)
{
    return walk_on_from(buf, max, n, look, sp, bp, gen, (struct hs_unwind_stop){ 0, 0 });
}

static __attribute__((noinline)) int walk_on_to(void **buf, int max, int n, uintptr_t look, uintptr_t sp, uintptr_t bp,
                                                uint64_t gen, struct hs_unwind_stop stop)
{
    return walk_on_from(buf, max, n, look, sp, bp, gen, stop);
}

/* Fills buf as unw_backtrace called from hs_unwind's caller would (return
 * addresses, the first one into that caller): the first two frames (walk,
 * hs_unwind) are stepped over unrecorded. Returns the count, or -1 when a
 * frame is beyond the fast walk. With a stop (size > 0), the walk ends
 * after the first return address in it, which is not its end: the record
 * keeps this walk's first steps. Context: inside malloc. */
static inline __attribute__((always_inline)) int walk_from(void **buf, int max, const uintptr_t *entry,
                                                           struct hs_unwind_stop stop)
{
    uintptr_t ip, sp, bp;
    /* rbp first: an output register may be rbp itself. ip is the address
     * of the instruction after the lea, where rsp is what we read. */
    __asm__ volatile("mov %%rbp, %2\n\t"
                     "lea 0(%%rip), %0\n\t"
                     "mov %%rsp, %1"
                     : "=r"(ip), "=r"(sp), "=r"(bp));
    uint64_t gen = __atomic_load_n(&generation, __ATOMIC_RELAXED);
    uintptr_t look = ip;                /* this frame: ip itself; callers: return address - 1 */
    int n = -1;                         /* the return address into hs_unwind is not kept */
    if (entry) {
        /* Start at the entry's frame: its saved rbp, its return address
         * (the first frame kept) and the caller's rsp after the return. It
         * lies above us on this stack, or it is not what it claims. */
        if ((uintptr_t)entry <= sp || (uintptr_t)entry - sp > HS_UW_MAX_STEP || ((uintptr_t)entry & 7))
            return -1;
        uintptr_t ra = entry[1];
        bp = entry[0];
        sp = (uintptr_t)(entry + 2);
        if (ra < 0x4000)
            return 0;
        if (max <= 0)
            return 0;
        buf[0] = (void *)ra;
        n = 1;
        look = ra - 1;
        if (hs_unwind_at_stop(stop, ra))
            return n;
    }
    /* The first LAST_SKIP steps here; a deeper stack goes on with the last walk. */
    int first = max - n > LAST_SKIP ? n + LAST_SKIP : max;
    while (n < first) {
        uintptr_t ra, bp_at;
        int how = step(look, gen, &sp, &bp, &ra, &bp_at);
        if (how == BEYOND)
            return -1;
        if (how == OUTERMOST || ra < 0x4000)
            return n < 0 ? 0 : n;       /* the outermost frame (recorded), or tdep_trace's stop (unrecorded) */
        look = ra - 1;
        if (n >= 0) {
            buf[n] = (void *)ra;
            if (hs_unwind_at_stop(stop, ra))
                return n + 1;
        }
        n++;
    }
    if (n < max)
        return stop.size ? walk_on_to(buf, max, n, look, sp, bp, gen, stop) : walk_on(buf, max, n, look, sp, bp, gen);
    return n < 0 ? 0 : n;
}

static __attribute__((noinline)) int walk(void **buf, int max, const uintptr_t *entry)
{
    return walk_from(buf, max, entry, (struct hs_unwind_stop){ 0, 0 });
}

static __attribute__((noinline)) int walk_to(void **buf, int max, const uintptr_t *entry, struct hs_unwind_stop stop)
{
    return walk_from(buf, max, entry, stop);
}

/* --------------------------------------------------- the shim's own text */

uintptr_t hs_shim_text_lo, hs_shim_text_hi;     /* set once by hs_unwind_init */

static int find_text(struct dl_phdr_info *info, size_t size, void *arg)
{
    (void)size;
    uintptr_t me = (uintptr_t)arg;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_LOAD || !(ph->p_flags & PF_X))
            continue;
        uintptr_t lo = info->dlpi_addr + ph->p_vaddr, hi = lo + ph->p_memsz;
        if (me >= lo && me < hi) {
            hs_shim_text_lo = lo;
            hs_shim_text_hi = hi;
            return 1;
        }
    }
    return 0;
}

void hs_unwind_init(void)
{
    dl_iterate_phdr(find_text, (void *)(uintptr_t)&hs_unwind_init);
}

/* ----------------------------------------------------------- counting */

struct counts {
    uint64_t fast, fallback, compared, differed;    /* relaxed atomic adds */
} __attribute__((aligned(64)));

/* Striped by thread so that two threads do not share a line. */
static struct counts counts[16];
static __thread char stripe_anchor;

static inline struct counts *my_counts(void)
{
    return &counts[((uintptr_t)&stripe_anchor * 0x9E3779B97F4A7C15ull) >> 60];
}

#define COUNT(field) __atomic_fetch_add(&my_counts()->field, 1, __ATOMIC_RELAXED)

void hs_unwind_stats(struct hs_unwind_stats *out)
{
    memset(out, 0, sizeof *out);
    for (int i = 0; i < 16; i++) {
        out->fast += __atomic_load_n(&counts[i].fast, __ATOMIC_RELAXED);
        out->fallback += __atomic_load_n(&counts[i].fallback, __ATOMIC_RELAXED);
        out->compared += __atomic_load_n(&counts[i].compared, __ATOMIC_RELAXED);
        out->differed += __atomic_load_n(&counts[i].differed, __ATOMIC_RELAXED);
    }
}

/* The first differing stacks, for the report at exit. A slot is claimed
 * with fetch_add on diff_claimed and published by its release store of
 * `ready`; the report reads only ready slots. */
struct diff {
    int ready;
    int fast_n, lib_n;
    uintptr_t fast[HS_UW_DIFF_FRAMES], lib[HS_UW_DIFF_FRAMES];
};
static struct diff diffs[HS_UW_DIFFS];
static unsigned diff_claimed;

static void keep_diff(void *const *fast, int fast_n, void *const *lib, int lib_n)
{
    unsigned i = __atomic_fetch_add(&diff_claimed, 1, __ATOMIC_RELAXED);
    if (i >= HS_UW_DIFFS)
        return;
    struct diff *d = &diffs[i];
    d->fast_n = fast_n;
    d->lib_n = lib_n;
    for (int k = 0; k < HS_UW_DIFF_FRAMES; k++) {
        d->fast[k] = k < fast_n ? (uintptr_t)fast[k] : 0;
        d->lib[k] = k < lib_n ? (uintptr_t)lib[k] : 0;
    }
    __atomic_store_n(&d->ready, 1, __ATOMIC_RELEASE);
}

void hs_unwind_reset_child(void)
{
    last_reset_child();
    memset(counts, 0, sizeof counts);
    memset(diffs, 0, sizeof diffs);
    diff_claimed = 0;
}

/* ------------------------------------------------------------- entry */

/* libunwind's unw_backtrace, loaded on the first request (hs_unwind_load). */
static int (*unw_backtrace_fn)(void **buf, int size);
static pthread_once_t unwind_once = PTHREAD_ONCE_INIT;

static void load_libunwind(void)
{
    void *lib = dlopen(HS_LIBUNWIND, RTLD_NOW | RTLD_LOCAL);
    void *fn = lib ? dlsym(lib, "unw_backtrace") : NULL;
    if (!fn)
        hs_say("cannot load " HS_LIBUNWIND " (", dlerror(),
               "): a stack the fast walk cannot follow is recorded without frames", NULL);
    __atomic_store_n(&unw_backtrace_fn, (int (*)(void **, int))fn, __ATOMIC_RELEASE);
}

/* A second caller waits until the first one's load is over. */
void hs_unwind_load(void) { pthread_once(&unwind_once, load_libunwind); }

/* unw_backtrace as if called by hs_unwind's caller: the frame of the
 * call made here is dropped, so libunwind and the fast walk agree frame for
 * frame, and the caller sees as many of its own frames as before. Without
 * libunwind (not loaded yet, or missing), no frames. */
static __attribute__((noinline)) int libunwind(void **buf, int max)
{
    int (*unw_backtrace)(void **, int) = __atomic_load_n(&unw_backtrace_fn, __ATOMIC_ACQUIRE);
    if (!unw_backtrace)
        return 0;
    void *all[max + 2];
    int n = unw_backtrace(all, max + 2);   /* [0] in here, [1] in hs_unwind */
    if (n <= 2)
        return 0;
    memcpy(buf, all + 2, (size_t)(n - 2) * sizeof *buf);
    return n - 2;
}

/* Both walks count on hs_unwind's own frame being on the stack: no call
 * from it may become a tail jump. */
#define KEEP_FRAME(n) __asm__ volatile("" : "+r"(n))

/* The frames past the shim's own at the top: where a walk from the entry
 * and one from here should agree. */
static int user_start(void *const *f, int n)
{
    int i = 0;
    while (i < n && hs_unwind_in_shim((uintptr_t)f[i]))
        i++;
    return i;
}

/* libunwind's list ends where the fast walk would have stopped. */
static int cut_at_stop(void *const *buf, int n, struct hs_unwind_stop stop)
{
    for (int i = 0; stop.size && i < n; i++)
        if (hs_unwind_at_stop(stop, (uintptr_t)buf[i]))
            return i + 1;
    return n;
}

static inline __attribute__((always_inline)) int unwind_from(void **buf, int max, const void *entry,
                                                             struct hs_unwind_stop stop)
{
    if (hs_opt.unwind == HS_UNWIND_LIBUNWIND) {
        int n = libunwind(buf, max);
        KEEP_FRAME(n);
        return cut_at_stop(buf, n, stop);
    }
    if (hs_opt.unwind == HS_UNWIND_FAST) {
        /* Nothing counted here: only check mode reports counts, and an
         * atomic add per stack is a locked instruction per allocation in
         * exact mode. */
        int n = stop.size ? walk_to(buf, max, entry, stop) : walk(buf, max, entry);
        if (__builtin_expect(n >= 0, 1))
            return n;
        n = libunwind(buf, max);
        KEEP_FRAME(n);
        return cut_at_stop(buf, n, stop);
    }
    /* check: both; libunwind's frames are the ones kept. Both are compared
     * past the shim's frames at the top, which the fast walk skips when it
     * starts at the entry. */
    void *mine[max];
    int n = walk(mine, max, entry);     /* compared whole */
    int m = libunwind(buf, max);
    COUNT(compared);
    if (n < 0) {
        COUNT(fallback);
        return cut_at_stop(buf, m, stop);
    }
    COUNT(fast);
    int a = user_start(mine, n), b = user_start(buf, m);
    /* With the shim's frames skipped the fast walk has room for more
     * frames than libunwind's list holds: compare what both hold. */
    int fast_n = n - a, lib_n = m - b;
    if (fast_n > lib_n && m == max)
        fast_n = lib_n;
    if (fast_n != lib_n || memcmp(mine + a, buf + b, (size_t)fast_n * sizeof *buf) != 0) {
        COUNT(differed);
        keep_diff(mine + a, n - a, buf + b, m - b);
    }
    return cut_at_stop(buf, m, stop);
}

int hs_unwind(void **buf, int max, const void *entry)
{
    return unwind_from(buf, max, entry, (struct hs_unwind_stop){ 0, 0 });
}

int hs_unwind_to(void **buf, int max, const void *entry, struct hs_unwind_stop stop)
{
    return unwind_from(buf, max, entry, stop);
}

/* ------------------------------------------------------ check report */

static char *put(char *p, char *end, const char *s)
{
    while (*s && p < end)
        *p++ = *s++;
    return p;
}

static char *put_hex(char *p, char *end, uintptr_t v)
{
    char tmp[19] = "0x";
    int n = 2;
    for (int shift = 60; shift >= 0; shift -= 4)
        if ((v >> shift) || shift == 0 || n > 2)
            tmp[n++] = "0123456789abcdef"[(v >> shift) & 15];
    tmp[n] = 0;
    return put(p, end, tmp);
}

static char *put_frames(char *p, char *end, const uintptr_t *f, int n)
{
    for (int i = 0; i < n && i < HS_UW_DIFF_FRAMES; i++) {
        p = put(p, end, " ");
        p = put_hex(p, end, f[i]);
    }
    if (n > HS_UW_DIFF_FRAMES)
        p = put(p, end, " ...");
    return p;
}

/* HEAPSNAP_UNWIND=check: one line of counts, then the first differing
 * stacks (innermost first, from hs_unwind's caller).
 * Context: process exit (destructor), single-threaded as far as we care:
 * counts still moving on other threads are read as they are. */
__attribute__((destructor)) static void report(void)
{
    if (hs_opt.unwind != HS_UNWIND_CHECK)
        return;
    struct hs_unwind_stats s;
    hs_unwind_stats(&s);
    char a[24], b[24], c[24], d[24];
    char line[256], *p = line, *end = line + sizeof line - 1;
    p = put(p, end, hs_u64s(a, s.compared));
    p = put(p, end, " stacks, ");
    p = put(p, end, hs_u64s(b, s.fast));
    p = put(p, end, " fast, ");
    p = put(p, end, hs_u64s(c, s.fallback));
    p = put(p, end, " libunwind, ");
    p = put(p, end, hs_u64s(d, s.differed));
    p = put(p, end, " differed");
    *p = 0;
    hs_say("unwind check: ", line, NULL, NULL);
    for (int i = 0; i < HS_UW_DIFFS; i++) {
        const struct diff *df = &diffs[i];
        if (!__atomic_load_n(&df->ready, __ATOMIC_ACQUIRE))
            continue;
        char text[1024], *q = text, *qend = text + sizeof text - 1;
        q = put(q, qend, "fast:");
        q = put_frames(q, qend, df->fast, df->fast_n);
        q = put(q, qend, " | libunwind:");
        q = put_frames(q, qend, df->lib, df->lib_n);
        *q = 0;
        hs_say("unwind differs: ", text, NULL, NULL);
    }
}
