// The processes on this host that have libheapsnap_preload.so mapped, and
// the Start / Snapshot now / Stop actions on them.
//
// Whether a process is sampling lives in the shim's memory, which nothing
// outside can read, so the state shown is inferred from what is visible, the
// most recent first: an action sent from this page, the newest snapshot of
// this process (a final one means sampling stopped; any other was written
// while sampling), HEAPSNAP_START=1 in /proc/PID/environ (sampling from
// load); otherwise idle. `stateSource` tells which one decided.
//
// Actions go through HeapSnapKit's ProcessController, the code behind
// `heapsnap start|stop|dump`: the process must map the shim and catch the
// exact signal, whose base comes from its own environment. On top of that,
// a process of another user is refused unless the server runs as root.

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import Dispatch
import HeapSnapKit

/// One profiled process as the page lists it.
struct ProfiledProcess: Sendable, Codable, Hashable {
    var pid: Int32
    var uid: UInt32
    var user: String
    var command: String
    /// When the process started, ms since the Unix epoch.
    var startMs: Double
    /// "sampling" or "idle" (inferred; see `stateSource`).
    var state: String
    /// What the state was inferred from: "action", "snapshot", "environment" or "default".
    var stateSource: String
    /// Snapshots of this process in the served directories.
    var snapshots: Int
    /// Where it writes snapshots (HEAPSNAP_DIR, else /tmp).
    var directory: String
    /// Whether that directory is served (else its snapshots do not show here).
    var directoryServed: Bool
    /// Whether this server may signal it (same user, or running as root).
    var controllable: Bool
}

/// Lists profiled processes and performs actions on them.
actor ProcessTable {
    private let directories: ServedDirectories
    /// Which (pid, start time) map the shim: a process does not gain or lose a preload library.
    private var hasShim: [ProcessIdentity: Bool] = [:]
    /// The last action this server sent to a process, and when (ms since the epoch).
    private var lastAction: [ProcessIdentity: (action: ControlAction, timeMs: Double)] = [:]
    /// How long an action waits for its snapshot.
    let timeout: Double

    struct ProcessIdentity: Hashable {
        var pid: Int32
        var startTicks: UInt64
    }

    init(directories: ServedDirectories, timeout: Double = 10) {
        self.directories = directories
        self.timeout = timeout
    }

    /// The processes with the shim mapped that we can see, with their snapshot counts from `snapshots`.
    /// - Complexity: one read of /proc/PID/stat per process; maps are read once per new process.
    func list(snapshots: [SnapshotSummary]) -> [ProfiledProcess] {
        var result: [ProfiledProcess] = []
        var alive: Set<ProcessIdentity> = []
        let me = getpid()
        for pid in Self.pids() where pid != me {
            guard let startTicks = Self.startTicks(pid) else { continue }
            let identity = ProcessIdentity(pid: pid, startTicks: startTicks)
            alive.insert(identity)
            if hasShim[identity] == nil {
                guard let maps = ProcFile.read("/proc/\(pid)/maps") else { continue } // another user's: invisible
                hasShim[identity] = maps.contains("/libheapsnap_preload.so")
            }
            guard hasShim[identity] == true, let process = describe(identity, snapshots: snapshots) else { continue }
            result.append(process)
        }
        hasShim = hasShim.filter { alive.contains($0.key) }
        lastAction = lastAction.filter { alive.contains($0.key) }
        return result.sorted { $0.pid < $1.pid }
    }

    private func describe(_ identity: ProcessIdentity, snapshots: [SnapshotSummary]) -> ProfiledProcess? {
        let pid = identity.pid
        guard let status = ProcFile.read("/proc/\(pid)/status") else { return nil }
        let uid = Self.realUID(status: status) ?? UInt32.max
        let environment = ProcFile.environment(pid)
        let startMs = Self.startMilliseconds(ticks: identity.startTicks)
        let mine = snapshots.filter { $0.error == nil && !$0.isMerged && $0.pid == UInt32(bitPattern: pid) && $0.timeMs >= startMs - 1000 }
        let directory = environment["HEAPSNAP_DIR"].flatMap { $0.isEmpty ? nil : $0 } ?? "/tmp"
        // The most recent evidence decides.
        var state = (sampling: environment["HEAPSNAP_START"] == "1", source: "environment", timeMs: startMs)
        if environment["HEAPSNAP_START"] != "1" { state = (false, "default", startMs) }
        if let newest = mine.max(by: { ($0.timeMs, $0.seq) < ($1.timeMs, $1.seq) }), newest.timeMs >= state.timeMs {
            state = (!newest.flags.contains("final"), "snapshot", newest.timeMs)
        }
        if let action = lastAction[identity], action.timeMs >= state.timeMs {
            state = (action.action != .stop, "action", action.timeMs)
        }
        let command = ProcFile.read("/proc/\(pid)/cmdline").map { text in
            Format.commandLine(Array(text.split(separator: "\0", omittingEmptySubsequences: false).map(String.init).dropLast(text.hasSuffix("\0") ? 1 : 0)))
        } ?? ""
        return ProfiledProcess(pid: pid, uid: uid, user: Self.userName(uid), command: command, startMs: startMs,
                               state: state.sampling ? "sampling" : "idle", stateSource: state.source, snapshots: mine.count,
                               directory: directory, directoryServed: directories.serves(directory: directory),
                               controllable: Self.maySignal(uid: uid))
    }

    /// Sends `action` to `pid` with the CLI's checks, after refusing another user's process
    /// unless we are root. Returns the id (or path, when not served) of the snapshot it wrote.
    func perform(_ action: ControlAction, pid: Int32) async throws(ServeError) -> String? {
        guard pid > 0, let startTicks = Self.startTicks(pid) else { throw .control(.noSuchProcess(pid: pid)) }
        guard let status = ProcFile.read("/proc/\(pid)/status") else { throw .control(.permissionDenied(pid: pid)) }
        guard let uid = Self.realUID(status: status), Self.maySignal(uid: uid) else { throw .control(.permissionDenied(pid: pid)) }
        let controller = ProcessController(timeout: timeout)
        let result: Result<String?, HeapSnapError> = await withCheckedContinuation { continuation in
            // perform() polls for the new file with sleeps: keep it off the server's threads.
            DispatchQueue.global().async {
                do throws(HeapSnapError) {
                    continuation.resume(returning: .success(try controller.perform(action, pid: pid)))
                } catch {
                    continuation.resume(returning: .failure(error))
                }
            }
        }
        switch result {
        case .success(let path):
            lastAction[ProcessIdentity(pid: pid, startTicks: startTicks)] = (action, Self.nowMilliseconds())
            return path.map { directories.id(ofPath: $0) ?? $0 }
        case .failure(let error):
            throw .control(error)
        }
    }

    /// Whether this process may signal a process of `uid`: root, or the same user.
    static func maySignal(uid: UInt32) -> Bool {
        geteuid() == 0 || uid == getuid() || uid == geteuid()
    }

    static func pids() -> [Int32] {
        guard let handle = opendir("/proc") else { return [] }
        defer { closedir(handle) }
        var pids: [Int32] = []
        while let entry = readdir(handle) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            if let pid = Int32(name), pid > 0 { pids.append(pid) }
        }
        return pids
    }

    /// Field 22 of /proc/PID/stat: start time in clock ticks since boot (fields counted after the command's ")").
    static func startTicks(_ pid: Int32) -> UInt64? {
        guard let text = ProcFile.read("/proc/\(pid)/stat"), let end = text.lastIndex(of: ")") else { return nil }
        let fields = text[text.index(after: end)...].split(separator: " ")
        return fields.count > 19 ? UInt64(fields[19]) : nil
    }

    static func startMilliseconds(ticks: UInt64) -> Double {
        let boot = ProcFile.read("/proc/stat")?.split(separator: "\n").first { $0.hasPrefix("btime ") }
            .flatMap { Double($0.dropFirst(6).trimmingPrefix(" ")) } ?? 0
        return (boot + Double(ticks) / Double(sysconf(Int32(_SC_CLK_TCK)))) * 1000
    }

    static func nowMilliseconds() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Double(ts.tv_sec) * 1000 + Double(ts.tv_nsec) / 1e6
    }

    static func realUID(status: String) -> UInt32? {
        guard let line = status.split(separator: "\n").first(where: { $0.hasPrefix("Uid:") }) else { return nil }
        return line.dropFirst(4).split(whereSeparator: { $0 == " " || $0 == "\t" }).first.flatMap { UInt32($0) }
    }

    static func userName(_ uid: UInt32) -> String {
        var entry = passwd()
        var result: UnsafeMutablePointer<passwd>?
        var buffer = [CChar](repeating: 0, count: 4096)
        guard getpwuid_r(uid, &entry, &buffer, buffer.count, &result) == 0, result != nil, let name = entry.pw_name else {
            return String(uid)
        }
        return String(cString: name)
    }
}

/// Small files under /proc (their size reads as 0, so read to the end).
enum ProcFile {
    static func read(_ path: String, limit: Int = 16 << 20) -> String? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while bytes.count < limit {
            let n = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress!, $0.count) }
            if n < 0, errno == EINTR { continue }
            if n < 0 { return nil }
            if n == 0 { break }
            bytes += chunk[0..<n]
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// /proc/PID/environ as a dictionary (the first of repeated names wins, like getenv); empty when unreadable.
    static func environment(_ pid: Int32) -> [String: String] {
        var result: [String: String] = [:]
        for entry in (read("/proc/\(pid)/environ") ?? "").split(separator: "\0") {
            guard let equals = entry.firstIndex(of: "=") else { continue }
            let name = String(entry[..<equals])
            if result[name] == nil { result[name] = String(entry[entry.index(after: equals)...]) }
        }
        return result
    }
}
