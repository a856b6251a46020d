/*
 * options.c - parsing HEAPSNAP_* variables into hs_opt, with defaults.
 *
 * Sizes take K/M/G suffixes (powers of 1024), booleans 1/0/yes/no/true/
 * false/on/off, intervals decimal seconds. A relative HEAPSNAP_DIR is made
 * absolute now: the host may chdir later. Each bad value costs one line on
 * the shim's stderr naming what was expected and the default used.
 */
#define _GNU_SOURCE
#include "options.h"
#include "say.h"
#include "heapsnap.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct hs_options hs_opt = {
    .rate = 524288, .max_depth = 64, .max_memory = (size_t)64 << 20,
    .signal_base = 1, .python = true, .keep = HS_KEEP_DEFAULT, .dir = "/tmp",
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

void hs_options_parse(void)
{
    char num[24];
    const char *v;
    uint64_t u;

    if ((v = getenv("HEAPSNAP_RATE"))) {
        if (parse_size(v, true, &u) == 0 && u >= 1)
            hs_opt.rate = u;
        else
            bad("HEAPSNAP_RATE", v, "mean bytes between samples, >= 1, e.g. 524288 or 512K; 1 records everything", hs_u64s(num, hs_opt.rate));
    }
    if ((v = getenv("HEAPSNAP_MAX_DEPTH"))) {
        if (parse_size(v, false, &u) == 0 && u >= 1 && u <= HEAPSNAP_MAX_FRAMES)
            hs_opt.max_depth = (uint32_t)u;
        else
            bad("HEAPSNAP_MAX_DEPTH", v, "frames per stack, 1 to 1024", hs_u64s(num, hs_opt.max_depth));
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
            hs_u64s(lim + 5, (uint64_t)span);
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
    if ((v = getenv("HEAPSNAP_PYTHON_FREE_LISTS"))) {
        if (strcmp(v, "empty") == 0 || strcmp(v, "keep") == 0)
            hs_opt.py_free_lists = strcmp(v, "keep") == 0;
        else
            bad("HEAPSNAP_PYTHON_FREE_LISTS", v, "empty or keep", "empty");
    }
    if ((v = getenv("HEAPSNAP_UNWIND"))) {
        if (strcmp(v, "fast") == 0)
            hs_opt.unwind = HS_UNWIND_FAST;
        else if (strcmp(v, "libunwind") == 0)
            hs_opt.unwind = HS_UNWIND_LIBUNWIND;
        else if (strcmp(v, "check") == 0)
            hs_opt.unwind = HS_UNWIND_CHECK;
        else
            bad("HEAPSNAP_UNWIND", v, "fast, libunwind or check", "fast");
    }
    if ((v = getenv("HEAPSNAP_INTERVAL"))) {
        if (parse_seconds(v, &u) == 0 && (u == 0 || u >= 1000000ull))
            hs_opt.interval_ns = u;
        else
            bad("HEAPSNAP_INTERVAL", v, "seconds between snapshots, e.g. 60 or 0.5; 0 = off", "off");
    }
    if ((v = getenv("HEAPSNAP_KEEP"))) {
        if (parse_size(v, false, &u) == 0 && (u == 0 || (u >= 2 && u <= HS_KEEP_MAX)))
            hs_opt.keep = (uint32_t)u;
        else
            bad("HEAPSNAP_KEEP", v, "periodic snapshots kept per process, 2 to 10000; 0 keeps them all",
                hs_u64s(num, HS_KEEP_DEFAULT));
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
    /* The shim's variables, then the tool's (HEAPSNAP_LIB, HEAPSNAP_SYMBOLIZER)
     * and the one Scripts/lib.sh exports to every program the scripts start
     * (HEAPSNAP_BIN): not typos either. Keep in sync when the tool grows a
     * HEAPSNAP_* variable. Variables only the test suites read are not
     * listed: a program that inherits one hears about it once. */
    static const char *known[] = { "RATE", "MAX_DEPTH", "MAX_MEMORY", "SIGNAL_BASE", "START",
                                   "AT_EXIT", "INTERVAL", "KEEP", "DIR", "PYTHON", "PYTHON_FREE_LISTS", "UNWIND",
                                   "BIN", "LIB", "SYMBOLIZER" };
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
