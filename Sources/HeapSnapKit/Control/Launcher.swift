// `heapsnap run`: starts a command with the shim preloaded, sampling from its
// first allocation and writing a snapshot at exit; forwards signals sent to
// us (not the terminal's, which the child gets itself); reports the command's
// exit status and the snapshots that appeared while it ran.

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// The child being run, for the signal handler (written before handlers are installed).
nonisolated(unsafe) private var forwardTo: pid_t = 0

/// Which native frames a thread running Python records (HEAPSNAP_NATIVE).
public enum NativeFrames: String, Sendable, CaseIterable {
    /// Every native frame, each activation of the eval loop replaced by its Python frames.
    case all
    /// Only the natives below the innermost Python frame, then every Python frame.
    case inner
    /// Only the Python frames (no native walk), as tracemalloc and memray record them.
    case none
}

/// Runs commands under the shim.
public struct Launcher: Sendable {
    /// Path of libheapsnap_preload.so.
    public var library: String
    /// Mean bytes between samples (HEAPSNAP_RATE); nil for the shim's default.
    public var rate: UInt64?
    /// Where snapshots go (HEAPSNAP_DIR); nil for the environment's or /tmp.
    public var directory: String?
    /// Start sampling at once (HEAPSNAP_START=1); false waits for `heapsnap start`.
    public var startSampling: Bool
    /// HEAPSNAP_NATIVE; nil for the environment's or the shim's default.
    public var nativeFrames: NativeFrames?

    public init(library: String, rate: UInt64? = nil, directory: String? = nil, startSampling: Bool = true,
                nativeFrames: NativeFrames? = nil) {
        self.library = library
        self.rate = rate
        self.directory = directory
        self.startSampling = startSampling
        self.nativeFrames = nativeFrames
    }

    /// The preload library: `$HEAPSNAP_LIB`, else beside this executable
    /// (found through /proc/self/exe), else in `../lib` next to it.
    public static func findLibrary(environment: [String: String]) throws(HeapSnapError) -> String {
        if let explicit = environment["HEAPSNAP_LIB"], !explicit.isEmpty {
            guard access(explicit, R_OK) == 0 else { throw .libraryNotFound(searched: ["HEAPSNAP_LIB=\(explicit)"]) }
            return explicit
        }
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let n = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        var searched: [String] = []
        if n > 0 {
            let exe = String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
            let dir = exe.lastIndex(of: "/").map { String(exe[..<$0]) } ?? "."
            searched = [dir + "/libheapsnap_preload.so", dir + "/../lib/libheapsnap_preload.so"]
        }
        if let found = searched.first(where: { access($0, R_OK) == 0 }) { return found }
        throw .libraryNotFound(searched: searched)
    }

    /// The environment the command gets.
    public func environment(from base: [String: String]) -> [String: String] {
        var env = base
        let existing = env["LD_PRELOAD"] ?? ""
        env["LD_PRELOAD"] = existing.isEmpty ? library : library + ":" + existing
        if startSampling { env["HEAPSNAP_START"] = "1" } else { env.removeValue(forKey: "HEAPSNAP_START") }
        env["HEAPSNAP_AT_EXIT"] = "1"
        if let rate { env["HEAPSNAP_RATE"] = String(rate) }
        if let directory { env["HEAPSNAP_DIR"] = directory }
        if let nativeFrames { env["HEAPSNAP_NATIVE"] = nativeFrames.rawValue }
        return env
    }

    /// Creates `path` and any missing parents with mode 0700, so that a run is
    /// not profiled in full only to fail at the end; an existing directory is left as it is.
    static func makeDirectory(_ path: String) throws(HeapSnapError) {
        var st = stat()
        if stat(path, &st) == 0 {
            guard st.st_mode & S_IFMT == S_IFDIR else { throw .cannotCreateDirectory(path: path, reason: "a file of that name exists") }
            return
        }
        var prefix = path.hasPrefix("/") ? "" : "."
        for component in path.split(separator: "/") {
            prefix += "/" + component
            if mkdir(prefix, 0o700) != 0, errno != EEXIST {
                throw .cannotCreateDirectory(path: path, reason: String(cString: strerror(errno)))
            }
        }
        guard stat(path, &st) == 0, st.st_mode & S_IFMT == S_IFDIR else {
            throw .cannotCreateDirectory(path: path, reason: "a file of that name exists")
        }
    }

    /// The outcome of a run.
    public struct Outcome: Sendable {
        /// Shell-style status: the exit code, or 128 + signal number.
        public var status: Int32
        /// Snapshot files that appeared in the snapshot directory during the run, by pid and sequence.
        public var snapshots: [String]
    }

    /// Runs `command` (argv, searched on PATH) to completion.
    public func run(_ command: [String], environment base: [String: String]) throws(HeapSnapError) -> Outcome {
        guard let program = command.first else { throw .noCommand }
        let env = environment(from: base)
        let dir = env["HEAPSNAP_DIR"].flatMap { $0.isEmpty ? nil : $0 } ?? "/tmp"
        try Self.makeDirectory(dir)
        let before = Set(snapshotFiles(in: dir))
        let child = try ChildProcess.spawn(path: program, arguments: command,
                                           environment: env.map { "\($0.key)=\($0.value)" }.sorted())
        forwardTo = child.pid
        let rt = __libc_current_sigrtmin()
        let forwarded: [Int32] = [SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGALRM, rt + 1, rt + 2, rt + 3]
        var previous: [Int32: sigaction] = [:]
        for sig in forwarded {
            var action = sigaction()
            action.__sigaction_handler.sa_sigaction = { sig, info, _ in
                // Signals from the terminal (si_code > 0, SI_KERNEL) reach the child
                // directly as part of the foreground group; forward only kill()ed ones.
                if let info, info.pointee.si_code > 0 { return }
                if forwardTo > 0 { kill(forwardTo, sig) }
            }
            action.sa_flags = SA_SIGINFO | SA_RESTART
            sigemptyset(&action.sa_mask)
            var old = sigaction()
            sigaction(sig, &action, &old)
            previous[sig] = old
        }
        let status = child.wait()
        for (sig, old) in previous {
            var old = old
            sigaction(sig, &old, nil)
        }
        forwardTo = 0
        let code: Int32
        if status & 0x7F == 0 {
            code = (status >> 8) & 0xFF
        } else {
            code = 128 + (status & 0x7F)
        }
        let after = snapshotFiles(in: dir).filter { !before.contains($0) }
        return Outcome(status: code, snapshots: after.map { "\(dir)/\($0.name)" })
    }
}
