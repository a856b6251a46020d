/*
 * stderr.h - the shim's own stderr, and descriptors that hosts cannot take from us.
 *
 * The bottom layer, with options.h: every other file may say things, nothing
 * here includes another shim header. Messages go to a dup of fd 2 taken at
 * load (hosts close fd 2, or expect open() to return 3), and only while that
 * dup is still the file it was (hosts close and reuse descriptor numbers).
 */
#ifndef HS_STDERR_H
#define HS_STDERR_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

/* Which open file a descriptor number should refer to. Hosts close fds they
 * did not open (daemons, closefrom) and may get the same numbers back for
 * their own files: before using one of ours, check it is still ours, so a
 * signal never writes a byte into the host's file. */
struct hs_fdid {
    dev_t dev;
    ino_t ino;
};

static inline struct hs_fdid hs_fd_id(int fd)
{
    struct stat st;
    struct hs_fdid id = { 0, 0 };
    if (fd >= 0 && fstat(fd, &st) == 0) {
        id.dev = st.st_dev;
        id.ino = st.st_ino;
    }
    return id;
}

/* Context: async-signal-safe (fstat). */
static inline bool hs_fd_is(int fd, struct hs_fdid id)
{
    struct stat st;
    return fd >= 0 && id.ino != 0 && fstat(fd, &st) == 0 && st.st_dev == id.dev && st.st_ino == id.ino;
}

/* Moves a descriptor the shim opens up out of the range hosts use (see
 * stderr.c); returns the new number, or fd itself if that fails. */
int hs_fd_high(int fd);

/* Takes the dup of stderr (F_DUPFD_CLOEXEC, moved high). Context: constructor. */
void hs_say_init(void);

/* The dup, -1 if none or if the number is no longer it (the host closed
 * it, maybe reused it). Written once at load; the writer thread keeps it in
 * its own descriptor table. */
int hs_say_fd(void);

/* One line on the shim's own stderr: "heapsnap: " a b c d (NULLs skipped).
 * Context: any thread except signal handlers; no allocation. */
void hs_say(const char *a, const char *b, const char *c, const char *d);

/* hs_say(what, ": ", strerror(err)). Context: as hs_say. */
void hs_say_errno(const char *what, int err);

/* Writes v in decimal into buf (room for 21 bytes); returns buf. */
const char *hs_u64s(char *buf, uint64_t v);

#endif
