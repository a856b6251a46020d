// Driving the shim in a running process: `start`, `stop` and `dump` send
// SIGRTMIN+base, +base+1 and +base+2 (base is the process's
// HEAPSNAP_SIGNAL_BASE, 1 by default; see the shim's DESIGN.md), then wait for
// the snapshot the process writes as `heapsnap.<pid>.<seq>.heapsnap` in its
// HEAPSNAP_DIR.
//
// An RT signal's default action is to terminate, so a signal the process does
// not catch would kill it. Before sending, the process is checked: it exists,
// we may signal it, it has libheapsnap_preload.so mapped (/proc/PID/maps), and
// it has a handler for that exact signal (the SigCgt mask in /proc/PID/status).
// The base and directory come from /proc/PID/environ — the environment the
// process started with, which some processes overwrite (redis, for its process
// title) — unless given by hand.

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// What a control signal asks the shim to do.
public enum ControlAction: String, Sendable, CaseIterable {
    /// Start sampling (SIGRTMIN+base). Writes no snapshot.
    case start
    /// Stop sampling and write a final snapshot (SIGRTMIN+base+1).
    case stop
    /// Write a snapshot and keep sampling (SIGRTMIN+base+2).
    case dump

    /// The shim's default HEAPSNAP_SIGNAL_BASE.
    public static let defaultSignalBase: Int32 = 1

    /// The signal bases the shim accepts: the three signals must fit between SIGRTMIN and SIGRTMAX.
    public static var signalBases: ClosedRange<Int32> { 0...(__libc_current_sigrtmax() - __libc_current_sigrtmin() - 2) }

    /// This action's offset from SIGRTMIN+base.
    public var offset: Int32 {
        switch self {
        case .start: 0
        case .stop: 1
        case .dump: 2
        }
    }

    /// The signal number on this system for a shim using `base`.
    public func signal(base: Int32) -> Int32 { __libc_current_sigrtmin() + base + offset }

    /// Whether the shim answers with a snapshot file.
    public var writesSnapshot: Bool { self != .start }
}

/// What /proc says about a process we are about to signal.
public struct TargetProcess: Sendable, Equatable {
    /// The process id.
    public var pid: Int32
    /// HEAPSNAP_SIGNAL_BASE from /proc/PID/environ when present and valid (the shim's own rules).
    public var environmentSignalBase: Int32?
    /// HEAPSNAP_DIR from /proc/PID/environ when present and not empty.
    public var environmentDirectory: String?
    /// Signals with a handler, from the SigCgt mask of /proc/PID/status.
    public var caughtSignals: Set<Int32>

    /// Reads /proc/PID/{maps,environ,status}. Throws unless the process exists,
    /// we may signal it, and it maps libheapsnap_preload.so.
    public static func inspect(pid: Int32) throws(HeapSnapError) -> TargetProcess {
        guard pid > 0 else { throw .noSuchProcess(pid: pid) }
        if kill(pid, 0) != 0 {
            if errno == ESRCH { throw .noSuchProcess(pid: pid) }
            throw .permissionDenied(pid: pid)
        }
        guard let maps = readSmallFile("/proc/\(pid)/maps") else {
            if errno == ENOENT { throw .noSuchProcess(pid: pid) }
            throw .permissionDenied(pid: pid)
        }
        guard maps.contains("/libheapsnap_preload.so") else { throw .notProfiled(pid: pid) }
        guard let status = readSmallFile("/proc/\(pid)/status") else {
            if errno == ENOENT { throw .noSuchProcess(pid: pid) }
            throw .permissionDenied(pid: pid)
        }
        let environment = parseEnvironment(readSmallFile("/proc/\(pid)/environ") ?? "")
        return TargetProcess(pid: pid,
                             environmentSignalBase: environment["HEAPSNAP_SIGNAL_BASE"].flatMap(parseSignalBase),
                             environmentDirectory: environment["HEAPSNAP_DIR"].flatMap { $0.isEmpty ? nil : $0 },
                             caughtSignals: caughtSignals(status: status))
    }

    /// The NUL-separated `NAME=value` entries of /proc/PID/environ (the first of repeated names wins, like getenv).
    static func parseEnvironment(_ text: String) -> [String: String] {
        var result: [String: String] = [:]
        for entry in text.split(separator: "\0") {
            guard let equals = entry.firstIndex(of: "=") else { continue }
            let name = String(entry[..<equals])
            if result[name] == nil { result[name] = String(entry[entry.index(after: equals)...]) }
        }
        return result
    }

    /// A HEAPSNAP_SIGNAL_BASE value as the shim reads it (decimal digits, within
    /// `ControlAction.signalBases`); nil when the shim would fall back to its default.
    static func parseSignalBase(_ text: String) -> Int32? {
        guard !text.isEmpty, text.utf8.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }),
              let value = Int32(text), ControlAction.signalBases.contains(value) else { return nil }
        return value
    }

    /// The signals whose bit is set in the `SigCgt:` hex mask of a /proc/PID/status text (bit n-1 for signal n).
    static func caughtSignals(status: String) -> Set<Int32> {
        guard let line = status.split(separator: "\n").first(where: { $0.hasPrefix("SigCgt:") }) else { return [] }
        let hex = line.dropFirst("SigCgt:".count).filter { $0 != " " && $0 != "\t" }
        var caught: Set<Int32> = []
        for (position, digit) in hex.reversed().enumerated() {
            guard let nibble = digit.hexDigitValue else { return [] }
            for bit in 0..<4 where nibble & (1 << bit) != 0 { caught.insert(Int32(position * 4 + bit + 1)) }
        }
        return caught
    }
}

/// Sends control signals to profiled processes and finds the snapshots they write.
public struct ProcessController: Sendable {
    /// Where to look for snapshots; nil reads HEAPSNAP_DIR from the process's environment (default /tmp).
    public var directory: String?
    /// The process's HEAPSNAP_SIGNAL_BASE; nil reads it from the process's environment (default 1).
    public var signalBase: Int32?
    /// How long to wait for the snapshot, in seconds.
    public var timeout: Double

    public init(directory: String? = nil, signalBase: Int32? = nil, timeout: Double = 10) {
        self.directory = directory
        self.signalBase = signalBase
        self.timeout = timeout
    }

    /// Checks `pid`, sends the action's signal only if the process catches it,
    /// and for stop/dump waits for the new snapshot and returns its path (nil for start).
    public func perform(_ action: ControlAction, pid: Int32) throws(HeapSnapError) -> String? {
        let target = try TargetProcess.inspect(pid: pid)
        let base: Int32
        let origin: SignalBaseOrigin
        if let signalBase {
            (base, origin) = (signalBase, .option)
        } else if let found = target.environmentSignalBase {
            (base, origin) = (found, .environment)
        } else {
            (base, origin) = (ControlAction.defaultSignalBase, .assumedDefault)
        }
        let signal = action.signal(base: base)
        guard target.caughtSignals.contains(signal) else {
            throw .signalNotCaught(pid: pid, signal: signal, rtOffset: base + action.offset, base: base, origin: origin)
        }
        let dir = directory ?? target.environmentDirectory ?? "/tmp"
        let before = Self.highestSeq(pid: pid, in: dir)
        guard kill(pid, signal) == 0 else {
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
                throw .exitedBeforeSnapshot(pid: pid, directory: dir)
            }
            usleep(UInt32(step * 1e6))
            waited += step
        }
        throw .timedOut(pid: pid, seconds: timeout, directory: dir)
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

/// A small file's contents (for /proc files, whose size reads as 0); nil when unreadable (errno set).
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
