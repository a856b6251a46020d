// `heapsnap attach PID`: loads libheapsnap_preload.so into a process started
// without it (the injector, Sources/CInject/inject.c, does the ptrace work),
// with the settings `run` would have put in its environment. What this file
// adds around the injector: the checks that refuse before anything is touched
// (no such process, another user's, ptrace_scope, already loaded), the
// library and snapshot directory made visible inside the process's mount
// namespace, and reading back what an attached library uses (its environment
// does not say) for `dump`, `stop` and `detach`.

import CInject

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// What `heapsnap attach` asks for.
public struct AttachRequest: Sendable {
    /// The process.
    public var pid: Int32
    /// The library on this side (`Launcher.findLibrary`).
    public var library: String
    /// Mean bytes between samples (HEAPSNAP_RATE); nil for the shim's default.
    public var rate: UInt64?
    /// The snapshot directory as the process sees it; nil for /tmp.
    public var directory: String?
    /// HEAPSNAP_SIGNAL_BASE; nil for 1.
    public var signalBase: Int32?
    /// Start sampling at once (else later with `heapsnap start PID`).
    public var startSampling: Bool
    /// Seconds to wait for the process to reach a safe point.
    public var timeout: Double
    /// HEAPSNAP_NATIVE; nil for the shim's default.
    public var nativeFrames: NativeFrames?

    public init(pid: Int32, library: String, rate: UInt64? = nil, directory: String? = nil, signalBase: Int32? = nil,
                startSampling: Bool = true, timeout: Double = 5, nativeFrames: NativeFrames? = nil) {
        self.pid = pid
        self.library = library
        self.rate = rate
        self.directory = directory
        self.signalBase = signalBase
        self.startSampling = startSampling
        self.timeout = timeout
        self.nativeFrames = nativeFrames
    }

    /// The settings heapsnap_attach parses (the shim's HEAPSNAP_* names, one a line).
    var spec: String {
        var lines = ["HEAPSNAP_START=\(startSampling ? 1 : 0)", "HEAPSNAP_DIR=\(directory ?? "/tmp")"]
        if let rate { lines.append("HEAPSNAP_RATE=\(rate)") }
        if let signalBase { lines.append("HEAPSNAP_SIGNAL_BASE=\(signalBase)") }
        if let nativeFrames { lines.append("HEAPSNAP_NATIVE=\(nativeFrames.rawValue)") }
        return lines.joined(separator: "\n") + "\n"
    }
}

/// What `attach` did.
public struct AttachReport: Sendable {
    /// Loaded now, or found loaded already (preloaded or attached before): then only started through the signal.
    public var loadedNow: Bool
    /// Seconds the whole injection took (0 when the library was loaded already).
    public var seconds: Double
    /// Seconds until a thread reached a safe point.
    public var safePointSeconds: Double
    /// Threads traced.
    public var threads: Int
    /// The process was stopped (SIGSTOP) and was left stopped.
    public var wasStopped: Bool
    /// The library's path as the process sees it.
    public var libraryInProcess: String
    /// Where its snapshots appear, as this side sees it.
    public var directory: String
}

/// `heapsnap attach`.
public enum Attacher {
    /// Checks the process, loads the library at a safe point and starts it, or starts an already
    /// loaded one through its signal. Throws `.attachFailed` (or the process-control errors) with
    /// the process left as it was.
    public static func attach(_ request: AttachRequest) throws(HeapSnapError) -> AttachReport {
        let pid = request.pid
        guard pid > 0 else { throw .noSuchProcess(pid: pid) }
        if pid == getpid() { throw .attachFailed(pid: pid, reason: "process \(pid) is this heapsnap process") }
        if kill(pid, 0) != 0 {
            if errno == ESRCH { throw .noSuchProcess(pid: pid) }
            throw .permissionDenied(pid: pid)
        }
        guard let status = readSmallFile("/proc/\(pid)/status"), let maps = readSmallFile("/proc/\(pid)/maps") else {
            throw .permissionDenied(pid: pid)
        }
        if let refusal = refusal(pid: pid, status: status) { throw .attachFailed(pid: pid, reason: refusal) }
        if maps.contains("/libheapsnap_preload.so") {
            if request.startSampling {
                _ = try ProcessController(signalBase: request.signalBase).perform(.start, pid: pid)
            }
            let target = try TargetProcess.inspect(pid: pid)
            return AttachReport(loadedNow: false, seconds: 0, safePointSeconds: 0, threads: 0, wasStopped: false,
                                libraryInProcess: "", directory: target.environmentDirectory ?? "/tmp")
        }
        let root = processRoot(pid: pid)
        let libraryInProcess = try visibleLibrary(request.library, pid: pid, root: root)
        var request = request
        if let dir = request.directory, !dir.hasPrefix("/") {
            request.directory = currentDirectory() + "/" + dir
        }
        let directory = (root ?? "") + (request.directory ?? "/tmp")
        try makeDirectory(directory, ownerOf: pid, status: status)

        var result = hs_inject_result()
        let code = libraryInProcess.withCString { lib in
            request.spec.withCString { spec in hs_inject(pid, lib, spec, request.timeout, &result) }
        }
        let message = withUnsafeBytes(of: result.message) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        switch Int(code) {
        case Int(HS_INJECT_DONE.rawValue):
            return AttachReport(loadedNow: true, seconds: result.seconds, safePointSeconds: result.seconds_to_safe_point,
                                threads: Int(result.threads), wasStopped: result.was_stopped != 0,
                                libraryInProcess: libraryInProcess, directory: directory)
        case Int(HS_INJECT_ALREADY.rawValue):
            if request.startSampling { _ = try ProcessController(signalBase: request.signalBase).perform(.start, pid: pid) }
            return AttachReport(loadedNow: false, seconds: result.seconds, safePointSeconds: 0, threads: Int(result.threads),
                                wasStopped: result.was_stopped != 0, libraryInProcess: libraryInProcess, directory: directory)
        default:
            throw .attachFailed(pid: pid, reason: message.isEmpty ? "process \(pid): attach failed" : message)
        }
    }

    /// Why attaching must not even be tried, from /proc and the Yama setting; nil when it may.
    static func refusal(pid: Int32, status: String, ptraceScope: String? = readSmallFile("/proc/sys/kernel/yama/ptrace_scope"))
        -> String?
    {
        let uids = field("Uid:", in: status)
        let me = geteuid()
        if me != 0, !uids.isEmpty, uids.contains(where: { $0 != me }) {
            return "process \(pid) belongs to user \(uids.first ?? 0), not to you (\(me)): attach as that user or as root"
        }
        if let scope = ptraceScope.flatMap({ Int($0.filter { !$0.isWhitespace }) }) {
            switch scope {
            case 3: return "process \(pid): kernel.yama.ptrace_scope is 3, which forbids attaching to any process until reboot"
            case 2 where me != 0:
                return "process \(pid): kernel.yama.ptrace_scope is 2 (admin only): attach as root"
            case 1 where me != 0 && !isDescendant(pid):
                return "process \(pid): kernel.yama.ptrace_scope is 1 (descendants only): attach as root, or allow it with "
                    + "`sysctl kernel.yama.ptrace_scope=0`"
            default: break
            }
        }
        return nil
    }

    /// The numbers of a `Name:\tA\tB...` line of /proc/PID/status.
    static func field(_ name: String, in status: String) -> [UInt32] {
        guard let line = status.split(separator: "\n").first(where: { $0.hasPrefix(name) }) else { return [] }
        return line.dropFirst(name.count).split(whereSeparator: { $0 == "\t" || $0 == " " }).compactMap { UInt32($0) }
    }

    static func isDescendant(_ pid: Int32) -> Bool {
        var current = pid
        for _ in 0..<64 {
            guard let stat = readSmallFile("/proc/\(current)/stat"), let parent = ProcessTree.parentPID(stat: stat),
                  parent > 1 else { return false }
            if parent == getpid() { return true }
            current = parent
        }
        return false
    }

    /// "/proc/PID/root" when the process sees another file system than we do (another mount
    /// namespace or root), nil when it sees ours.
    static func processRoot(pid: Int32) -> String? {
        let ours = readLink("/proc/self/ns/mnt"), theirs = readLink("/proc/\(pid)/ns/mnt")
        var a = stat(), b = stat()
        let sameRoot = stat("/", &a) == 0 && stat("/proc/\(pid)/root/", &b) == 0 && a.st_dev == b.st_dev && a.st_ino == b.st_ino
        if ours != nil && ours == theirs && sameRoot { return nil }
        return "/proc/\(pid)/root"
    }

    /// The library's path as the process sees it: ours when it shares our file system, else a
    /// copy in its /dev/shm (written under a temporary name, then renamed; mode 0644, since the
    /// process may run as another user and must read it).
    static func visibleLibrary(_ library: String, pid: Int32, root: String?) throws(HeapSnapError) -> String {
        let absolute = library.hasPrefix("/") ? library : currentDirectory() + "/" + library
        guard let root else { return absolute }
        let inside = "/dev/shm/heapsnap.\(geteuid())"
        let dir = root + inside
        if mkdir(dir, 0o755) != 0 && errno != EEXIST {
            throw .cannotCreateDirectory(path: dir, reason: String(cString: strerror(errno)))
        }
        var st = stat()
        guard lstat(dir, &st) == 0, st.st_mode & S_IFMT == S_IFDIR, st.st_uid == geteuid() else {
            throw .cannotCreateDirectory(path: dir, reason: "exists and is not a directory of ours")
        }
        let final = dir + "/libheapsnap_preload.so", temporary = dir + "/.libheapsnap_preload.so.\(getpid())"
        guard let bytes = readWholeFile(absolute) else {
            throw .libraryNotFound(searched: [absolute])
        }
        unlink(temporary)
        let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw .cannotWrite(file: temporary, step: "create", reason: String(cString: strerror(errno))) }
        let written = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        fchmod(fd, 0o644)
        close(fd)
        guard written == bytes.count, rename(temporary, final) == 0 else {
            unlink(temporary)
            throw .cannotWrite(file: final, step: "copy", reason: String(cString: strerror(errno)))
        }
        return inside + "/libheapsnap_preload.so"
    }

    /// Creates the snapshot directory when missing (mode 0700), owned by the process's user when
    /// we are root and it is another: the process writes there.
    static func makeDirectory(_ path: String, ownerOf pid: Int32, status: String) throws(HeapSnapError) {
        var st = stat()
        if stat(path, &st) == 0 { return }
        try Launcher.makeDirectory(path)
        let uids = field("Uid:", in: status), gids = field("Gid:", in: status)
        if geteuid() == 0, let uid = uids.dropFirst().first, let gid = gids.dropFirst().first, uid != 0 {
            _ = chown(path, uid, gid)
        }
    }

    static func readLink(_ path: String) -> String? {
        var buffer = [CChar](repeating: 0, count: 4096)
        let n = readlink(path, &buffer, buffer.count - 1)
        guard n > 0 else { return nil }
        return String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    static func currentDirectory() -> String {
        var buffer = [CChar](repeating: 0, count: 4096)
        guard getcwd(&buffer, buffer.count) != nil else { return "/" }
        return String(cString: buffer)
    }

    static func readWholeFile(_ path: String) -> [UInt8]? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 { return nil }
            if n == 0 { return bytes }
            bytes += chunk[0..<n]
        }
    }
}

/// What an attached library uses, read from the process's memory (heapsnap_attach_info).
public struct AttachedSettings: Sendable, Equatable {
    /// Its HEAPSNAP_SIGNAL_BASE.
    public var signalBase: Int32
    /// Its snapshot directory as this side sees it (under /proc/PID/root when the process sees another file system).
    public var directory: String

    /// nil when the library in `pid` was not attached (preloaded, absent) or cannot be read.
    public static func read(pid: Int32) -> AttachedSettings? {
        var base: Int32 = 0
        var dir = [CChar](repeating: 0, count: 4096)
        guard hs_read_attach_info(pid, &base, &dir, UInt(dir.count)) == 1 else { return nil }
        let inside = String(cString: dir)
        return AttachedSettings(signalBase: base, directory: (Attacher.processRoot(pid: pid) ?? "") + inside)
    }
}
