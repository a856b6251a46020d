// Driving the shim in a running process: `start`, `stop` and `dump` send
// SIGRTMIN+1, +2 and +3 (see docs/FORMAT.md and the shim's DESIGN.md), then
// wait for the snapshot the process writes as `heapsnap.<pid>.<seq>.heapsnap`
// in its HEAPSNAP_DIR. Before signalling, the process is checked: it exists,
// we may signal it, and it has the preload library mapped — an RT signal's
// default action is to terminate, so signalling a process without the shim
// would kill it.

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// What a control signal asks the shim to do.
public enum ControlAction: String, Sendable, CaseIterable {
    /// Start sampling (SIGRTMIN+1). Writes no snapshot.
    case start
    /// Stop sampling and write a final snapshot (SIGRTMIN+2).
    case stop
    /// Write a snapshot and keep sampling (SIGRTMIN+3).
    case dump

    /// The signal number on this system.
    public var signal: Int32 {
        let base = __libc_current_sigrtmin()
        switch self {
        case .start: return base + 1
        case .stop: return base + 2
        case .dump: return base + 3
        }
    }

    /// Whether the shim answers with a snapshot file.
    public var writesSnapshot: Bool { self != .start }
}

/// Sends control signals to profiled processes and finds the snapshots they write.
public struct ProcessController: Sendable {
    /// Where to look for snapshots; nil reads HEAPSNAP_DIR from the process's environment (default /tmp).
    public var directory: String?
    /// How long to wait for the snapshot, in seconds.
    public var timeout: Double

    public init(directory: String? = nil, timeout: Double = 10) {
        self.directory = directory
        self.timeout = timeout
    }

    /// Checks `pid`, sends the action's signal, and for stop/dump waits for
    /// the new snapshot and returns its path (nil for start).
    public func perform(_ action: ControlAction, pid: Int32) throws(HeapSnapError) -> String? {
        guard pid > 0 else { throw .noSuchProcess(pid: pid) }
        try Self.checkProfiled(pid: pid)
        let dir = directory ?? Self.snapshotDirectory(of: pid)
        let before = Self.highestSeq(pid: pid, in: dir)
        guard kill(pid, action.signal) == 0 else {
            if errno == ESRCH { throw .noSuchProcess(pid: pid) }
            throw .permissionDenied(pid: pid)
        }
        guard action.writesSnapshot else { return nil }
        var waited = 0.0
        let step = 0.02
        while waited < timeout {
            if let seq = Self.highestSeq(pid: pid, in: dir), seq > (before ?? -1) {
                return "\(dir)/heapsnap.\(pid).\(seq).heapsnap"
            }
            if kill(pid, 0) != 0, errno == ESRCH {
                // One last look: the process may have written it on its way out.
                if let seq = Self.highestSeq(pid: pid, in: dir), seq > (before ?? -1) {
                    return "\(dir)/heapsnap.\(pid).\(seq).heapsnap"
                }
                throw .failed("process \(pid): exited before writing a snapshot to \(dir)")
            }
            usleep(UInt32(step * 1e6))
            waited += step
        }
        throw .timedOut(pid: pid, seconds: timeout, directory: dir)
    }

    /// Throws unless `pid` exists, may be signalled by us, and maps the preload library.
    public static func checkProfiled(pid: Int32) throws(HeapSnapError) {
        if kill(pid, 0) != 0 {
            if errno == ESRCH { throw .noSuchProcess(pid: pid) }
            throw .permissionDenied(pid: pid)
        }
        guard let maps = readSmallFile("/proc/\(pid)/maps") else {
            if errno == ENOENT { throw .noSuchProcess(pid: pid) }
            throw .permissionDenied(pid: pid)
        }
        guard maps.contains("libheapsnap") else { throw .notProfiled(pid: pid) }
    }

    /// HEAPSNAP_DIR from the process's initial environment, else /tmp.
    public static func snapshotDirectory(of pid: Int32) -> String {
        if let environ = readSmallFile("/proc/\(pid)/environ") {
            for entry in environ.split(separator: "\0") where entry.hasPrefix("HEAPSNAP_DIR=") {
                let value = String(entry.dropFirst("HEAPSNAP_DIR=".count))
                if !value.isEmpty { return value }
            }
        }
        return "/tmp"
    }

    /// The highest snapshot sequence number of `pid` in `dir`, if any.
    static func highestSeq(pid: Int32, in dir: String) -> Int? {
        snapshotFiles(in: dir).filter { $0.pid == pid }.map(\.seq).max()
    }
}

/// A snapshot file name's parts: `heapsnap.<pid>.<seq>.heapsnap`.
struct SnapshotFileName: Hashable, Comparable {
    var pid: Int32
    var seq: Int
    var name: String

    init?(_ name: String) {
        let parts = name.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4, parts[0] == "heapsnap", parts[3] == "heapsnap",
              let pid = Int32(parts[1]), let seq = Int(parts[2]) else { return nil }
        self.pid = pid
        self.seq = seq
        self.name = name
    }

    static func < (a: SnapshotFileName, b: SnapshotFileName) -> Bool { (a.pid, a.seq) < (b.pid, b.seq) }
}

/// The snapshot files in `dir`.
func snapshotFiles(in dir: String) -> [SnapshotFileName] {
    guard let handle = opendir(dir) else { return [] }
    defer { closedir(handle) }
    var names: [SnapshotFileName] = []
    while let entry = readdir(handle) {
        let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
            String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
        }
        if let parsed = SnapshotFileName(name) { names.append(parsed) }
    }
    return names.sorted()
}

/// A small file's contents (for /proc files, whose size reads as 0); nil when unreadable.
func readSmallFile(_ path: String) -> String? {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { return nil }
    defer { close(fd) }
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 65536)
    while true {
        let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress!, $0.count) }
        if n < 0, errno == EINTR { continue }
        if n < 0 { return nil }
        if n == 0 { break }
        bytes += chunk[0..<n]
        if bytes.count > 64 << 20 { break }
    }
    return String(decoding: bytes, as: UTF8.self)
}
