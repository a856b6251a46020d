/*
 * stderr.c - one line at a time on a dup of stderr, and descriptor helpers.
 *
 * The dup is taken once at load (hs_say_init) and remembered by identity
 * (device and inode): a host that closes it, or closes it and opens another
 * file under the same number, makes the shim quiet, never makes it write into
 * the host's file. Lines are built in a stack buffer; nothing allocates.
 *
 * References: fcntl(2) F_DUPFD_CLOEXEC.
 */
#define _GNU_SOURCE
#include "base/stderr.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

/* Written once by hs_say_init (constructor); read-only after. */
static int errfd = -1;
static struct hs_fdid err_id;

void hs_say_init(void)
{
    errfd = fcntl(2, F_DUPFD_CLOEXEC, 3);
    if (errfd >= 0)
        errfd = hs_fd_high(errfd);
    err_id = hs_fd_id(errfd);
}

int hs_say_fd(void) { return hs_fd_is(errfd, err_id) ? errfd : -1; }

void hs_say(const char *a, const char *b, const char *c, const char *d)
{
    int fd = errfd;
    if (!hs_fd_is(fd, err_id))
        return;                     /* closed by the host, maybe reused: stay quiet */
    char buf[1024];
    size_t n = 0;
    const char *parts[] = { "heapsnap: ", a, b, c, d, "\n" };
    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) {
        const char *s = parts[i];
        if (i == 5 && n >= sizeof buf - 1)
            n = sizeof buf - 2;
        for (; s && *s && n < sizeof buf - 1; s++)
            buf[n++] = *s;
    }
    int saved = errno;
    (void)!write(fd, buf, n);
    errno = saved;
}

void hs_say_errno(const char *what, int err)
{
    hs_say(what, ": ", strerror(err), NULL);
}

const char *hs_u64s(char *buf, uint64_t v)
{
    char tmp[24];
    int n = 0;
    do tmp[n++] = (char)('0' + v % 10); while (v /= 10);
    for (int i = 0; i < n; i++)
        buf[i] = tmp[n - 1 - i];
    buf[n] = 0;
    return buf;
}

/* Moves a descriptor up out of the range hosts expect to get from open()
 * (some count on the next open() returning 3) and out of the range they
 * close by number (bash closes some descriptors twice: harmless for a
 * single-threaded host, but the second close would hit the writer's
 * snapshot file if it had taken the number meanwhile). Returns the new fd. */
int hs_fd_high(int fd)
{
    if (fd < 0)
        return fd;
    struct rlimit rl;
    int floor = 100;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur <= 128)
        floor = 3;
    int nfd = fcntl(fd, F_DUPFD_CLOEXEC, floor);
    if (nfd < 0)
        return fd;
    close(fd);
    return nfd;
}
