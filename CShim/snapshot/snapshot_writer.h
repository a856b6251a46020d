/*
 * snapshot_writer.h - writes one snapshot file (docs/FORMAT.md is the spec).
 */
#ifndef HS_SNAPSHOT_WRITER_H
#define HS_SNAPSHOT_WRITER_H

#include <stdint.h>

struct hs_snap_info {
    uint32_t seq;           /* sequence number: file name and PROC.seq */
    uint32_t flags;         /* HEAPSNAP_FLAG_* */
    uint32_t session;       /* PROC.session */
    uint64_t start_ns;      /* when this sampling session started */
};

/* Writes heapsnap.<pid>.<seq>.heapsnap in hs_opt.dir via a temporary file
 * (O_CREAT|O_EXCL|O_NOFOLLOW|O_CLOEXEC, 0600), fsync, rename. On failure:
 * one line on the shim's stderr, the temporary file unlinked, -errno.
 * Sampling may continue while it runs (see DESIGN.md, "consistency").
 * Context: control (writer thread or exiting thread), control lock held,
 * reentrancy guard set, no other shim lock held. */
/* info->seq is advanced past names already taken in the directory (files left
 * by an earlier process with the same pid); it holds the seq used on return. */
int hs_snapshot_write(struct hs_snap_info *info);

#endif
