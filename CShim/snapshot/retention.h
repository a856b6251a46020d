/*
 * retention.h - how many periodic snapshots a process keeps on disk, and which.
 *
 * The snapshot writer (snapshot_writer.c) asks for room before it writes a
 * periodic snapshot (HEAPSNAP_INTERVAL) and reports each one it wrote; the
 * THIN record of every file says what was thinned so far. Only periodic
 * snapshots are ever deleted, only files this process wrote (the same name,
 * device and inode, in the same directory, owned by the same uid, never
 * through a symlink). Same layer as the snapshot writer, below it.
 */
#ifndef HS_RETENTION_H
#define HS_RETENTION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

/* What the THIN record carries (docs/FORMAT.md). */
struct hs_retention {
    uint32_t keep;              /* HEAPSNAP_KEEP: the bound, 0 = keep all */
    uint32_t kept;              /* periodic snapshots of this process on disk */
    uint64_t written;           /* periodic snapshots this process wrote */
    uint64_t thinned;           /* of them, deleted to keep the bound */
    uint64_t lost;              /* left the list without being deleted: gone, replaced, or not ours any more */
    uint32_t oldest_seq;        /* the oldest kept periodic snapshot (valid when kept > 0) */
    uint64_t oldest_ns;         /* its time (CLOCK_REALTIME) */
    uint64_t widest_gap_ns;     /* the widest spacing between two kept neighbours */
};

/* `heapsnap.<pid>.<seq>.heapsnap` into buf. */
void hs_snapshot_name(char *buf, size_t size, uint32_t pid, uint32_t seq);

/* Before a periodic snapshot is written at mono_ns (CLOCK_MONOTONIC): with
 * the bound reached, deletes the kept periodic snapshot whose loss widens
 * the spacing least relative to its age (never the oldest), from dirfd (the
 * open snapshot directory, `dir` its fstat). Context: writer thread, control
 * lock held. */
void hs_retain_make_room(int dirfd, const struct stat *dir, uint64_t mono_ns);

/* A periodic snapshot was written (renamed to its final name): `file` and
 * `dir` are its and its directory's fstat. Context: as above. */
void hs_retain_add(uint32_t seq, uint64_t mono_ns, uint64_t real_ns, const struct stat *file,
                   const struct stat *dir);

/* The state for the THIN record of a snapshot about to be written at
 * (mono_ns, real_ns), counting it when it is periodic; false when this
 * process has no periodic snapshots to speak of (no HEAPSNAP_INTERVAL).
 * Context: control lock held. */
bool hs_retain_read(struct hs_retention *out, bool periodic, uint32_t seq, uint64_t mono_ns, uint64_t real_ns);

/* Fork child: the parent's files are not the child's. Context: fork child. */
void hs_retain_reset_child(void);

#endif
