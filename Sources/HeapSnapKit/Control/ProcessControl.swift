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
        // An attached library (heapsnap attach) says what it uses in its memory; its environment does not.
        let attached = AttachedSettings.read(pid: pid)
        return TargetProcess(pid: pid,
                             environmentSignalBase: attached?.signalBase ?? environment["HEAPSNAP_SIGNAL_BASE"].flatMap(parseSignalBase),
                             environmentDirectory: attached?.directory ?? environment["HEAPSNAP_DIR"].flatMap { $0.isEmpty ? nil : $0 },
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
        let sent = try send(action, pid: pid)
        guard action.writesSnapshot else { return nil }
        let deadline = Self.now() + timeout
        while true {
            switch sent.poll() {
            case .done(let path): return path
            case .failed(let error): throw error
            case .waiting:
                if Self.now() >= deadline { throw .timedOut(pid: pid, seconds: timeout, directory: sent.directory) }
                usleep(20_000)
            }
        }
    }

    /// `perform` on several processes: each is checked and signalled on its own (one refused
    /// does not stop the others), then every snapshot is awaited together, `timeout` seconds
    /// from the last signal. A member of a tree (`ControlTarget.fromTree`) without the shim, or
    /// heapsnap itself, is skipped rather than refused. Outcomes in the order of `targets`.
    ///
    /// - Complexity: one /proc read per target, then one directory listing per target every 20 ms.
    public func perform(_ action: ControlAction, targets: [ControlTarget]) -> [ControlOutcome] {
        var outcomes: [ControlOutcome] = []
        var waiting: [(index: Int, sent: SentSignal)] = []
        for target in targets {
            if target.pid == getpid() {
                outcomes.append(ControlOutcome(target: target, result: .skipped("this heapsnap process")))
                continue
            }
            do {
                let sent = try send(action, pid: target.pid)
                if action.writesSnapshot {
                    waiting.append((outcomes.count, sent))
                    outcomes.append(ControlOutcome(target: target, result: .waiting))
                } else {
                    outcomes.append(ControlOutcome(target: target, result: .started))
                }
            } catch {
                if target.fromTree, case .notProfiled = error {
                    outcomes.append(ControlOutcome(target: target, result: .skipped("libheapsnap_preload.so is not loaded")))
                } else {
                    outcomes.append(ControlOutcome(target: target, result: .refused(error)))
                }
            }
        }
        let deadline = Self.now() + timeout
        while !waiting.isEmpty {
            waiting.removeAll { item in
                switch item.sent.poll() {
                case .done(let path): outcomes[item.index].result = .wrote(path)
                case .failed(let error): outcomes[item.index].result = .refused(error)
                case .waiting: return false
                }
                return true
            }
            if waiting.isEmpty { break }
            if Self.now() >= deadline {
                for item in waiting {
                    outcomes[item.index].result = .refused(.timedOut(pid: item.sent.pid, seconds: timeout, directory: item.sent.directory))
                }
                break
            }
            usleep(20_000)
        }
        return outcomes
    }

    /// Checks `pid` and sends the action's signal only if the process catches it.
    func send(_ action: ControlAction, pid: Int32) throws(HeapSnapError) -> SentSignal {
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
        let filePid = Self.namespacePid(pid)
        let before = Self.highestSeq(pid: filePid, in: dir)
        guard kill(pid, signal) == 0 else {
            if errno == ESRCH { throw .noSuchProcess(pid: pid) }
            throw .permissionDenied(pid: pid)
        }
        return SentSignal(pid: pid, directory: dir, filePid: filePid, before: before ?? -1)
    }

    static func now() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }

    /// The process's pid as it sees it (the last `NSpid:` field of /proc/PID/status): its
    /// snapshot files carry that one when it runs in a pid namespace of its own.
    static func namespacePid(_ pid: Int32) -> Int32 {
        guard let status = readSmallFile("/proc/\(pid)/status"),
              let line = status.split(separator: "\n").first(where: { $0.hasPrefix("NSpid:") }),
              let inner = line.split(whereSeparator: { $0 == "\t" || $0 == " " }).last.flatMap({ Int32($0) }) else { return pid }
        return inner
    }

    /// The highest snapshot sequence number of `pid` in `dir`, if any.
    static func highestSeq(pid: Int32, in dir: String) -> Int? {
        snapshotFiles(in: dir).filter { $0.pid == pid }.map(\.seq).max()
    }
}

/// A process a many-target `start`, `stop` or `dump` addresses.
public struct ControlTarget: Sendable, Equatable {
    /// The process id.
    public var pid: Int32
    /// Found by `--tree` rather than named: without the shim it is skipped, not refused.
    public var fromTree: Bool
    /// Its command (`/proc/PID/comm`), for the output line; empty when unreadable.
    public var command: String

    public init(pid: Int32, fromTree: Bool = false, command: String? = nil) {
        self.pid = pid
        self.fromTree = fromTree
        self.command = command ?? ProcessTree.command(of: pid)
    }
}

/// What became of one target of a many-target command.
public struct ControlOutcome: Sendable {
    public enum Result: Sendable {
        /// The start signal was sent.
        case started
        /// The process wrote this snapshot.
        case wrote(String)
        /// Nothing was sent, or no snapshot came: why.
        case refused(HeapSnapError)
        /// A tree member left alone, and why (no shim; heapsnap itself).
        case skipped(String)
        /// Sent; its snapshot not seen yet (only while `perform` runs).
        case waiting
    }

    public var target: ControlTarget
    public var result: Result

    /// Whether this outcome makes the command fail: a refusal (a skipped tree member does not).
    public var isRefused: Bool {
        if case .refused = result { return true }
        return false
    }

    /// Whether the target was left alone (a tree member without the shim, or heapsnap itself).
    public var isSkipped: Bool {
        if case .skipped = result { return true }
        return false
    }
}

/// A signal sent to a process that answers with a snapshot file.
struct SentSignal: Sendable {
    var pid: Int32
    var directory: String
    /// The pid in the process's own pid namespace, which names its files (`pid` outside a container).
    var filePid: Int32
    /// The process's highest sequence number in `directory` before the signal.
    var before: Int

    enum Poll {
        case done(String)
        case failed(HeapSnapError)
        case waiting
    }

    /// One look for the answer: a new file of the process that is not a periodic snapshot (one
    /// `HEAPSNAP_INTERVAL` wrote meanwhile is not the answer); whether the process died first.
    func poll() -> Poll {
        if let path = answer() { return .done(path) }
        if kill(pid, 0) != 0, errno == ESRCH {
            // One last look: the process may have written it on its way out.
            if let path = answer() { return .done(path) }
            return .failed(.exitedBeforeSnapshot(pid: pid, directory: directory))
        }
        return .waiting
    }

    private func answer() -> String? {
        for file in snapshotFiles(in: directory) where file.pid == filePid && file.seq > before {
            let path = "\(directory)/\(file.name)"
            if !SnapshotFileName.isPeriodic(path: path) { return path }
        }
        return nil
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

    /// Whether the file at `path` says PERIODIC in its `PROC` flags (the first record, docs/FORMAT.md);
    /// false when it cannot be read that far.
    static func isPeriodic(path: String) -> Bool {
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var head = [UInt8](repeating: 0, count: 48)
        guard head.withUnsafeMutableBytes({ pread(fd, $0.baseAddress!, 48, 0) }) == 48,
              Array(head[0..<8]) == SnapshotFormat.magic, Array(head[16..<20]) == Array("PROC".utf8) else { return false }
        return head[44] & UInt8(truncatingIfNeeded: SnapshotHeader.Flags.periodic.rawValue) != 0
    }
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

/// A process and its descendants, as /proc shows them now.
public enum ProcessTree {
    /// `root` and every descendant: parents before their children, siblings by pid. A process
    /// forked while this runs may be missed (run the command again); one that exits is refused
    /// or skipped by the caller. Children come from `/proc/PID/task/TID/children` (every
    /// thread's, since a child belongs to the thread that forked it) or, where the kernel has
    /// no such files, from the parent pid in every `/proc/*/stat`.
    ///
    /// - Complexity: one read per thread of each member; with the scan, one per process on the host.
    public static func members(of root: Int32, proc: String = "/proc") -> [Int32] {
        var byParent: [Int32: [Int32]]?
        var result: [Int32] = []
        var seen: Set<Int32> = []
        var queue = [root]
        while !queue.isEmpty {
            let pid = queue.removeFirst()
            guard seen.insert(pid).inserted else { continue }
            result.append(pid)
            var kids = children(of: pid, proc: proc)
            if kids == nil {
                if byParent == nil { byParent = parents(proc: proc) }
                kids = byParent?[pid] ?? []
            }
            queue += (kids ?? []).sorted()
        }
        return result
    }

    /// The children of every thread of `pid`; nil when the kernel has no children files.
    static func children(of pid: Int32, proc: String) -> [Int32]? {
        guard let tasks = directoryEntries("\(proc)/\(pid)/task") else { return [] }     // gone
        var found = false
        var kids: [Int32] = []
        for task in tasks {
            guard let text = readSmallFile("\(proc)/\(pid)/task/\(task)/children") else { continue }
            found = true
            kids += text.split(whereSeparator: { $0 == " " || $0 == "\n" }).compactMap { Int32($0) }
        }
        return found || tasks.isEmpty ? kids : nil
    }

    /// Every process's children, from the ppid field of `/proc/*/stat`.
    static func parents(proc: String) -> [Int32: [Int32]] {
        var byParent: [Int32: [Int32]] = [:]
        for entry in directoryEntries(proc) ?? [] {
            guard let pid = Int32(entry), let stat = readSmallFile("\(proc)/\(pid)/stat"),
                  let ppid = parentPID(stat: stat) else { continue }
            byParent[ppid, default: []].append(pid)
        }
        return byParent
    }

    /// The ppid of a `/proc/PID/stat` line: the second field after the command's closing parenthesis
    /// (the command itself may hold spaces and parentheses).
    static func parentPID(stat: String) -> Int32? {
        guard let close = stat.lastIndex(of: ")") else { return nil }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        return fields.count > 1 ? Int32(fields[1]) : nil
    }

    /// `/proc/PID/comm` without its newline; empty when unreadable.
    public static func command(of pid: Int32) -> String {
        (readSmallFile("/proc/\(pid)/comm") ?? "").split(separator: "\n").first.map(String.init) ?? ""
    }

    /// The names in a directory but `.` and `..`; nil when it cannot be opened.
    static func directoryEntries(_ path: String) -> [String]? {
        guard let handle = opendir(path) else { return nil }
        defer { closedir(handle) }
        var names: [String] = []
        while let entry = readdir(handle) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names
    }
}
