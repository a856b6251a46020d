/*
 * retention.c - bounds the periodic snapshots a process keeps on disk.
 *
 * HEAPSNAP_INTERVAL=30 writes 20,000 files a week; a leak detector reading
 * the series needs a long history, not every file of it. So each process
 * keeps at most HEAPSNAP_KEEP periodic snapshots (default 100) and, when a
 * new one would exceed that, deletes the one kept periodic snapshot whose
 * loss widens the spacing least relative to its age: for each kept one but
 * the oldest, the gap its neighbours would then span, divided by the age of
 * the older neighbour; the smallest goes (the older on a tie). The spacing
 * of what is kept then grows in proportion to age: recent snapshots dense,
 * old ones sparse, the first one kept for good; 100 files span a week at a
 * 30 s interval with gaps of about a tenth of their age.
 *
 * What is never deleted: snapshots that are not periodic (start/dump/stop,
 * at-exit, the control API's), files of another process (a fork child
 * starts with an empty list), and any file that is no longer the one this
 * process wrote. Before unlinking, the directory must be the one the file
 * was written to (device and inode of the open directory), and the name,
 * looked up without following a symlink, must be a regular file with the
 * device and inode recorded when it was written, owned by our effective
 * uid. A file that fails a check leaves the list uncounted as `lost`.
 *
 * The list is mapped on the first periodic snapshot (keep + 1 entries,
 * 56 bytes each, outside the sampling budget: it outlives sessions) and is
 * read and written only under the control lock, by the writer thread, the
 * only thread that writes periodic snapshots.
 */
#define _GNU_SOURCE
#include "snapshot/retention.h"
#include "base/options.h"
#include "base/stderr.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

struct kept {
    uint32_t seq;
    uint64_t mono_ns, real_ns;
    dev_t dev, dir_dev;
    ino_t ino, dir_ino;
};

/* Written under the control lock. */
static struct {
    struct kept *list;          /* oldest first; mapped once, never unmapped */
    uint32_t count;
    bool unmappable;            /* mmap failed: nothing is thinned (said once) */
    bool said_unlink;           /* an unlink failure was reported */
    uint64_t written, thinned, lost;
    uint32_t first_seq;         /* the first periodic snapshot (for HEAPSNAP_KEEP=0, which lists none) */
    uint64_t first_real_ns;
} ret;

static char *put_u64(char *d, char *end, uint64_t v)
{
    char tmp[24];
    int n = 0;
    do tmp[n++] = (char)('0' + v % 10); while (v /= 10);
    while (n && d < end - 1)
        *d++ = tmp[--n];
    *d = 0;
    return d;
}

static char *put(char *d, char *end, const char *s)
{
    while (*s && d < end - 1)
        *d++ = *s++;
    *d = 0;
    return d;
}

void hs_snapshot_name(char *buf, size_t size, uint32_t pid, uint32_t seq)
{
    char *e = buf + size, *d = put(buf, e, "heapsnap.");
    d = put_u64(d, e, pid);
    d = put(d, e, ".");
    d = put_u64(d, e, seq);
    put(d, e, ".heapsnap");
}

static bool ensure_list(void)
{
    if (ret.list)
        return true;
    if (ret.unmappable)
        return false;
    void *p = mmap(NULL, ((size_t)hs_opt.keep + 1) * sizeof *ret.list, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        ret.unmappable = true;
        hs_say("cannot map the list of periodic snapshots; none will be deleted (HEAPSNAP_KEEP)", NULL, NULL, NULL);
        return false;
    }
    ret.list = p;
    return true;
}

/* Deletes k's file if it is still the one we wrote, in the directory we
 * wrote it to; false otherwise. */
static bool delete_ours(int dirfd, const struct stat *dir, const struct kept *k)
{
    char name[96];
    struct stat st;
    hs_snapshot_name(name, sizeof name, (uint32_t)getpid(), k->seq);
    if (dir->st_dev != k->dir_dev || dir->st_ino != k->dir_ino)
        return false;
    if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(st.st_mode) || st.st_dev != k->dev ||
        st.st_ino != k->ino || st.st_uid != geteuid())
        return false;
    if (unlinkat(dirfd, name, 0) == 0)
        return true;
    if (!ret.said_unlink) {
        ret.said_unlink = true;
        hs_say("cannot delete the old periodic snapshot ", name, ": ", strerror(errno));
    }
    return false;
}

/* Which kept snapshot to delete for a new one at now_ns: 1 .. count-1. */
static uint32_t victim(uint64_t now_ns)
{
    uint32_t best = 1;
    double best_r = 0;
    for (uint32_t i = 1; i < ret.count; i++) {
        uint64_t older = ret.list[i - 1].mono_ns;
        uint64_t newer = i + 1 < ret.count ? ret.list[i + 1].mono_ns : now_ns;
        double age = now_ns > older ? (double)(now_ns - older) : 1;
        double r = (double)(newer > older ? newer - older : 0) / age;
        if (i == 1 || r < best_r) {
            best = i;
            best_r = r;
        }
    }
    return best;
}

void hs_retain_make_room(int dirfd, const struct stat *dir, uint64_t mono_ns)
{
    if (!hs_opt.keep || !ensure_list())
        return;
    while (ret.count + 1 > hs_opt.keep && ret.count >= 2) {
        uint32_t i = victim(mono_ns);
        if (delete_ours(dirfd, dir, &ret.list[i]))
            ret.thinned++;
        else
            ret.lost++;
        memmove(&ret.list[i], &ret.list[i + 1], (ret.count - i - 1) * sizeof *ret.list);
        ret.count--;
    }
}

void hs_retain_add(uint32_t seq, uint64_t mono_ns, uint64_t real_ns, const struct stat *file,
                   const struct stat *dir)
{
    if (!ret.written++) {
        ret.first_seq = seq;
        ret.first_real_ns = real_ns;
    }
    if (!hs_opt.keep || !ensure_list() || ret.count >= hs_opt.keep + 1)
        return;
    ret.list[ret.count++] = (struct kept){
        .seq = seq, .mono_ns = mono_ns, .real_ns = real_ns,
        .dev = file->st_dev, .ino = file->st_ino, .dir_dev = dir->st_dev, .dir_ino = dir->st_ino,
    };
}

bool hs_retain_read(struct hs_retention *out, bool periodic, uint32_t seq, uint64_t mono_ns, uint64_t real_ns)
{
    if (!hs_opt.interval_ns && !ret.written)
        return false;
    memset(out, 0, sizeof *out);
    out->keep = hs_opt.keep;
    out->written = ret.written + periodic;
    out->thinned = ret.thinned;
    out->lost = ret.lost;
    /* With keep = 0 nothing is listed: every periodic file is kept. */
    uint32_t listed = hs_opt.keep ? ret.count : 0;
    out->kept = hs_opt.keep ? listed + periodic : (uint32_t)out->written;
    if (listed) {
        out->oldest_seq = ret.list[0].seq;
        out->oldest_ns = ret.list[0].real_ns;
    } else if (!hs_opt.keep && ret.written) {
        out->oldest_seq = ret.first_seq;
        out->oldest_ns = ret.first_real_ns;
    } else if (periodic) {
        out->oldest_seq = seq;
        out->oldest_ns = real_ns;
    }
    for (uint32_t i = 0; i + 1 < listed; i++) {
        uint64_t gap = ret.list[i + 1].mono_ns - ret.list[i].mono_ns;
        if (gap > out->widest_gap_ns)
            out->widest_gap_ns = gap;
    }
    if (periodic && listed && mono_ns - ret.list[listed - 1].mono_ns > out->widest_gap_ns)
        out->widest_gap_ns = mono_ns - ret.list[listed - 1].mono_ns;
    return true;
}

void hs_retain_reset_child(void)
{
    ret.count = 0;
    ret.written = ret.thinned = ret.lost = 0;
    ret.said_unlink = false;
}
