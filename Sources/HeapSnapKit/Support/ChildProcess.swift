// Starting child processes with posix_spawn, shared by two stages: the
// symbolizer's long-lived llvm-symbolizer (pipes on stdin/stdout) and the
// command under `heapsnap run` (inherits stdio).

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// A started child process and the pipe ends the parent holds.
struct ChildProcess {
    /// The child's process id.
    var pid: pid_t
    /// Write end of the child's stdin, or -1 when stdin is inherited.
    var stdin: Int32
    /// Read end of the child's stdout, or -1 when stdout is inherited.
    var stdout: Int32

    /// Starts `path` with `arguments` (argv[0] included). `environment` nil
    /// inherits ours. Signal dispositions the parent changed (SIGPIPE ignored,
    /// forwarding handlers) are reset to their defaults in the child.
    static func spawn(path: String, arguments: [String], environment: [String]? = nil,
                      pipeStdin: Bool = false, pipeStdout: Bool = false, silenceStderr: Bool = false) throws(HeapSnapError) -> ChildProcess {
        var inPipe: [Int32] = [-1, -1], outPipe: [Int32] = [-1, -1]
        func makePipe(_ fds: inout [Int32]) throws(HeapSnapError) {
            guard pipe(&fds) == 0 else { throw .cannotRun(program: path, reason: "pipe: \(String(cString: strerror(errno)))") }
            for fd in fds { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        }
        if pipeStdin { try makePipe(&inPipe) }
        if pipeStdout { try makePipe(&outPipe) }

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        if pipeStdin { posix_spawn_file_actions_adddup2(&actions, inPipe[0], 0) }
        if pipeStdout { posix_spawn_file_actions_adddup2(&actions, outPipe[1], 1) }
        if silenceStderr { posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0) }

        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var defaults = sigset_t()
        sigfillset(&defaults)
        sigdelset(&defaults, SIGKILL)
        sigdelset(&defaults, SIGSTOP)
        var empty = sigset_t()
        sigemptyset(&empty)
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setsigmask(&attributes, &empty)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK))

        let argv = arguments.map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        let env: [UnsafeMutablePointer<CChar>?]? = environment.map { $0.map { strdup($0) } + [nil] }
        defer { env?.forEach { free($0) } }

        var pid: pid_t = 0
        let rc: Int32
        if let env {
            rc = posix_spawnp(&pid, path, &actions, &attributes, argv, env)
        } else {
            rc = posix_spawnp(&pid, path, &actions, &attributes, argv, environ)
        }
        if pipeStdin { close(inPipe[0]) }
        if pipeStdout { close(outPipe[1]) }
        guard rc == 0 else {
            if pipeStdin { close(inPipe[1]) }
            if pipeStdout { close(outPipe[0]) }
            throw .cannotRun(program: path, reason: String(cString: strerror(rc)))
        }
        return ChildProcess(pid: pid, stdin: pipeStdin ? inPipe[1] : -1, stdout: pipeStdout ? outPipe[0] : -1)
    }

    /// Waits for the child to end; returns the raw wait status. Retries on EINTR.
    func wait() -> Int32 {
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 {
            if errno != EINTR { return -1 }
        }
        return status
    }
}

/// Writes all of `bytes` to `fd`; false on an error (EPIPE when the reader died).
@discardableResult
func writeAll(_ fd: Int32, _ bytes: [UInt8]) -> Bool {
    var done = 0
    while done < bytes.count {
        let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + done, bytes.count - done) }
        if n < 0, errno == EINTR { continue }
        guard n > 0 else { return false }
        done += n
    }
    return true
}
