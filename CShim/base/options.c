/*
 * options.c - parsing HEAPSNAP_* variables into hs_opt, with defaults.
 *
 * Sizes take K/M/G suffixes (powers of 1024), booleans 1/0/yes/no/true/
 * false/on/off, intervals decimal seconds. A relative HEAPSNAP_DIR is made
 * absolute now: the host may chdir later. Each bad value costs one line on
 * the shim's stderr naming what was expected and the default used.
 *
 * Every variable is one row of `options` (name, parser, field in hs_opt,
 * range, the line's texts); hs_options_parse reads them in its order.
 *
 * HEAPSNAP_MAX_MEMORY's default depends on HEAPSNAP_RATE, read before it:
 * exact mode keeps a live-table entry for every live block (~70 bytes
 * each), so its default is HS_EXACT_MAX_MEMORY; a value the user sets is
 * always used as it is.
 */
#define _GNU_SOURCE
#include "base/options.h"
#include "base/stderr.h"
#include "include/heapsnap.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* max_depth 128: a Python program's import-time stacks (importlib's frames
 * and the C calls between them, ~14 frames a nested import) are often
 * deeper than 64, and a stack cut at the outer end loses the program's own
 * `import` line, where tracemalloc with enough frames charges them. */
struct hs_options hs_opt = {
    .rate = 524288, .max_depth = 128, .max_memory = HS_MAX_MEMORY,
    .signal_base = 1, .python = true, .keep = HS_KEEP_DEFAULT, .dir = "/tmp",
    .writer_on_demand = true,
};

extern char **environ;

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

/* --------------------------------------------------------------- the table */

/* One HEAPSNAP_* variable: how its text is read and where the value goes.
 * A parser returns 0 once it stored the value, -EINVAL or -ERANGE when the
 * text is not valid: the field then keeps its default, and the one line on
 * stderr says what was expected and which default is used. */
struct option {
    const char *name;                       /* the variable */
    int (*parse)(const struct option *opt, const char *value);
    void *field;                            /* in hs_opt */
    size_t size;                            /* the field's: 1 (bool), 4 or 8 bytes */
    uint64_t min, max;                      /* numbers: the range accepted ... */
    bool zero_too;                          /* ... and also 0 (off, or all) */
    const char *const *words;               /* words: those accepted, NULL-terminated; the value is the index */
    const char *expected;                   /* the line: "expected ..." */
    const char *fallback;                   /* the line: "using ..."; NULL: the default as a number */
};

#define FIELD(name) .field = &hs_opt.name, .size = sizeof hs_opt.name

static void store(const struct option *opt, uint64_t v)
{
    switch (opt->size) {
    case sizeof(bool): *(bool *)opt->field = v != 0; break;
    case sizeof(uint32_t): *(uint32_t *)opt->field = (uint32_t)v; break;
    default: *(uint64_t *)opt->field = v; break;
    }
}

static uint64_t stored(const struct option *opt)
{
    switch (opt->size) {
    case sizeof(bool): return *(bool *)opt->field;
    case sizeof(uint32_t): return *(uint32_t *)opt->field;
    default: return *(uint64_t *)opt->field;
    }
}

static int store_in_range(const struct option *opt, int err, uint64_t v)
{
    if (err)
        return err;
    if (!(v >= opt->min && v <= opt->max) && !(opt->zero_too && v == 0))
        return -ERANGE;
    store(opt, v);
    return 0;
}

/* A size: K/M/G suffixes. */
static int parse_bytes(const struct option *opt, const char *value)
{
    uint64_t v = 0;
    int err = parse_size(value, true, &v);     /* before v is read: C leaves arguments' order open */
    return store_in_range(opt, err, v);
}

/* A plain decimal number. */
static int parse_count(const struct option *opt, const char *value)
{
    uint64_t v = 0;
    int err = parse_size(value, false, &v);
    return store_in_range(opt, err, v);
}

/* Decimal seconds, stored as nanoseconds. */
static int parse_interval(const struct option *opt, const char *value)
{
    uint64_t v = 0;
    int err = parse_seconds(value, &v);
    return store_in_range(opt, err, v);
}

static int parse_flag(const struct option *opt, const char *value)
{
    bool v;
    int err = parse_bool(value, &v);
    if (!err)
        store(opt, v);
    return err;
}

/* One of opt->words, exactly. */
static int parse_word(const struct option *opt, const char *value)
{
    for (uint64_t i = 0; opt->words[i]; i++)
        if (strcmp(value, opt->words[i]) == 0) {
            store(opt, i);
            return 0;
        }
    return -EINVAL;
}

/* A directory, made absolute now (the host may chdir later), without a
 * trailing slash. */
static int parse_dir(const struct option *opt, const char *value)
{
    char d[sizeof hs_opt.dir];
    size_t n = strlen(value);
    if (n == 0 || n >= sizeof d - 1)
        return -EINVAL;
    if (value[0] != '/') {
        if (!getcwd(d, sizeof d) || strlen(d) + 1 + n >= sizeof d)
            return -EINVAL;
        strcat(d, "/");
        strcat(d, value);
    } else {
        strcpy(d, value);
    }
    n = strlen(d);
    while (n > 1 && d[n - 1] == '/')
        d[--n] = 0;
    strcpy(opt->field, d);
    return 0;
}

/* Exact mode's budget, once HEAPSNAP_RATE=1 is read (and before HEAPSNAP_MAX_MEMORY,
 * which replaces it when set and valid; a bad value's line names this default). */
static void default_budget_for_rate(struct option *max_memory)
{
    if (hs_opt.rate != 1)
        return;
    hs_opt.max_memory = HS_EXACT_MAX_MEMORY;
    max_memory->fallback = HS_EXACT_MAX_MEMORY_TEXT " (exact mode's default)";
}

static const char *const unwind_modes[] = { [HS_UNWIND_FAST] = "fast", [HS_UNWIND_LIBUNWIND] = "libunwind",
                                            [HS_UNWIND_CHECK] = "check", NULL };
static const char *const free_lists_modes[] = { "empty", "keep", NULL };     /* py_free_lists: keep them */
static const char *const native_modes[] = { [HS_NATIVE_ALL] = "all", [HS_NATIVE_INNER] = "inner",
                                            [HS_NATIVE_NONE] = "none", NULL };
static const char *const writer_modes[] = { "load", "on-demand", NULL };       /* writer_on_demand: on-demand */

/* Read in this order, so their lines come in it too. HEAPSNAP_SIGNAL_BASE's
 * range depends on the running system's SIGRTMIN and SIGRTMAX: its max and
 * text are filled in by hs_options_parse. */
static struct option options[] = {
    { "HEAPSNAP_RATE", parse_bytes, FIELD(rate), .min = 1, .max = UINT64_MAX,
      .expected = "mean bytes between samples, >= 1, e.g. 524288 or 512K; 1 records everything" },
    { "HEAPSNAP_MAX_DEPTH", parse_count, FIELD(max_depth), .min = 1, .max = HEAPSNAP_MAX_FRAMES,
      .expected = "frames per stack, 1 to 1024" },
    { "HEAPSNAP_MAX_MEMORY", parse_bytes, FIELD(max_memory), .min = 1u << 20, .max = (uint64_t)1 << 40,
      .expected = "bytes for the shim's tables, 1M to 1T, e.g. 64M", .fallback = "64M" },
    { "HEAPSNAP_SIGNAL_BASE", parse_count, FIELD(signal_base), .min = 0, .fallback = "1" },
    { "HEAPSNAP_START", parse_flag, FIELD(start), .expected = "1 or 0", .fallback = "0" },
    { "HEAPSNAP_AT_EXIT", parse_flag, FIELD(at_exit), .expected = "1 or 0", .fallback = "0" },
    { "HEAPSNAP_PYTHON", parse_flag, FIELD(python), .expected = "1 or 0", .fallback = "1" },
    { "HEAPSNAP_PYTHON_FREE_LISTS", parse_word, FIELD(py_free_lists), .words = free_lists_modes,
      .expected = "empty or keep", .fallback = "empty" },
    { "HEAPSNAP_UNWIND", parse_word, FIELD(unwind), .words = unwind_modes,
      .expected = "fast, libunwind or check", .fallback = "fast" },
    { "HEAPSNAP_NATIVE", parse_word, FIELD(native), .words = native_modes,
      .expected = "all, inner or none", .fallback = "all" },
    { "HEAPSNAP_WRITER", parse_word, FIELD(writer_on_demand), .words = writer_modes,
      .expected = "load or on-demand", .fallback = "on-demand" },
    { "HEAPSNAP_INTERVAL", parse_interval, FIELD(interval_ns), .min = 1000000, .max = UINT64_MAX, .zero_too = true,
      .expected = "seconds between snapshots, e.g. 60 or 0.5; 0 = off", .fallback = "off" },
    { "HEAPSNAP_KEEP", parse_count, FIELD(keep), .min = 2, .max = HS_KEEP_MAX, .zero_too = true,
      .expected = "periodic snapshots kept per process, 2 to 10000; 0 keeps them all" },
    { "HEAPSNAP_DIR", parse_dir, .field = hs_opt.dir, .size = sizeof hs_opt.dir,
      .expected = "a directory path", .fallback = "/tmp" },
};

#define OPTION_COUNT (sizeof options / sizeof options[0])

/* The tool's variables (HEAPSNAP_LIB, HEAPSNAP_SYMBOLIZER) and the one
 * Scripts/lib.sh exports to every program the scripts start (HEAPSNAP_BIN):
 * not typos either. Keep in sync when the tool grows a HEAPSNAP_* variable.
 * Variables only the test suites read are not listed: a program that
 * inherits one hears about it once. */
static const char *const tool_variables[] = { "HEAPSNAP_BIN", "HEAPSNAP_LIB", "HEAPSNAP_SYMBOLIZER" };

static bool named(const char *name, const char *entry, size_t len)
{
    return strlen(name) == len && strncmp(name, entry, len) == 0;
}

static bool known(const char *entry, size_t len)
{
    for (size_t i = 0; i < OPTION_COUNT; i++)
        if (named(options[i].name, entry, len))
            return true;
    for (size_t i = 0; i < sizeof tool_variables / sizeof tool_variables[0]; i++)
        if (named(tool_variables[i], entry, len))
            return true;
    return false;
}

/* One line for each HEAPSNAP_* variable that is neither ours nor the tool's. */
static void report_unknown(void)
{
    for (char **e = environ; e && *e; e++) {
        if (strncmp(*e, "HEAPSNAP_", 9) != 0)
            continue;
        const char *eq = strchr(*e, '=');
        size_t len = eq ? (size_t)(eq - *e) : strlen(*e);
        if (known(*e, len))
            continue;
        char name[64] = { 0 };
        memcpy(name, *e, len < sizeof name - 1 ? len : sizeof name - 1);
        hs_say("unknown variable ", name, " ignored (see README, \"Capturing\")", NULL);
    }
}

/* HEAPSNAP_SIGNAL_BASE's range: the three signals SIGRTMIN+base .. +base+2
 * must fit below SIGRTMAX. */
static void bound_signal_base(void)
{
    static char expected[64] = "0 to ";
    uint64_t span = (uint64_t)(SIGRTMAX - SIGRTMIN - 2);
    hs_u64s(expected + 5, span);
    strcat(expected, ", signals SIGRTMIN+base .. +base+2");
    for (size_t i = 0; i < OPTION_COUNT; i++)
        if (options[i].field == &hs_opt.signal_base) {
            options[i].max = span;
            options[i].expected = expected;
        }
}

/* Reads every option through `get` (getenv, or an attach's settings). */
static void parse_with(const char *(*get)(const char *name))
{
    bound_signal_base();
    for (size_t i = 0; i < OPTION_COUNT; i++) {
        struct option *opt = &options[i];
        if (opt->field == &hs_opt.max_memory)
            default_budget_for_rate(opt);
        const char *value = get(opt->name);
        if (!value || opt->parse(opt, value) == 0)
            continue;
        char number[24];
        bad(opt->name, value, opt->expected, opt->fallback ? opt->fallback : hs_u64s(number, stored(opt)));
    }
}

static const char *env_get(const char *name) { return getenv(name); }

void hs_options_parse(void)
{
    parse_with(env_get);
    report_unknown();
}

/* The attach's settings: "NAME=value" lines, kept for spec_get. */
static const char *spec_text;

/* The value of `name` in spec_text, copied into a static buffer (one option
 * is parsed at a time). */
static const char *spec_get(const char *name)
{
    static char value[4096];
    size_t len = strlen(name);
    for (const char *line = spec_text; line && *line;) {
        const char *end = strchr(line, '\n');
        size_t n = end ? (size_t)(end - line) : strlen(line);
        if (n > len && strncmp(line, name, len) == 0 && line[len] == '=') {
            size_t v = n - len - 1 < sizeof value - 1 ? n - len - 1 : sizeof value - 1;
            memcpy(value, line + len + 1, v);
            value[v] = 0;
            return value;
        }
        line = end ? end + 1 : NULL;
    }
    return NULL;
}

void hs_options_parse_spec(const char *spec)
{
    spec_text = spec;
    parse_with(spec_get);
    spec_text = NULL;
}
