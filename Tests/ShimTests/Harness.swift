// The shim tested the way users use it: small C/C++ programs from
// Tests/Programs, compiled at test time with the system cc/c++, run with
// LD_PRELOAD, driven by real signals, and read back with SnapshotReader.

import Foundation
import HeapSnapKit
import Testing

#if canImport(Glibc)
import Glibc
#endif

enum Shim {
    /// The package root, found from this file (Tests/ShimTests/Harness.swift).
    static let packageRoot: String = {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { url.deleteLastPathComponent() }
        return url.path
    }()

    /// libheapsnap_preload.so: $HEAPSNAP_LIB (Scripts/test sets it), else the
    /// package's release or debug build; its real path (.build/release is a
    /// symbolic link), as /proc/PID/maps names it.
    static let library: String = {
        func real(_ path: String) -> String { URL(fileURLWithPath: path).resolvingSymlinksInPath().path }
        if let env = ProcessInfo.processInfo.environment["HEAPSNAP_LIB"], !env.isEmpty { return real(env) }
        for config in ["release", "debug"] {
            let path = "\(packageRoot)/.build/\(config)/libheapsnap_preload.so"
            if FileManager.default.fileExists(atPath: path) { return real(path) }
        }
        return "\(packageRoot)/.build/release/libheapsnap_preload.so"
    }()

    static var signalBase: Int32 { __libc_current_sigrtmin() }
}

/// A per-test scratch directory, removed when the value is released.
final class Scratch: @unchecked Sendable {
    let path: String

    init() throws {
        let base = FileManager.default.temporaryDirectory.path
        var template = Array("\(base)/heapsnap-test.XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else { throw ShimTestError("mkdtemp failed") }
        path = String(cString: made)
    }

    deinit { try? FileManager.default.removeItem(atPath: path) }

    /// Every entry of the directory, sorted.
    var entries: [String] { ((try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []).sorted() }

    /// The snapshot files (final names only), sorted by pid then seq.
    var snapshots: [String] {
        entries.filter { $0.hasPrefix("heapsnap.") && $0.hasSuffix(".heapsnap") }
            .sorted { a, b in
                let x = a.split(separator: "."), y = b.split(separator: ".")
                return (Int(x[1]) ?? 0, Int(x[2]) ?? 0) < (Int(y[1]) ?? 0, Int(y[2]) ?? 0)
            }
            .map { "\(path)/\($0)" }
    }

    func read(_ file: String) throws -> Snapshot { try SnapshotReader.read(path: file) }
}

struct ShimTestError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// Test programs, compiled once per test run.
final class Programs: @unchecked Sendable {
    static let shared = Programs()
    private let lock = NSLock()
    private var built: [String: String] = [:]
    private let dir: String = {
        let d = FileManager.default.temporaryDirectory.appendingPathComponent("heapsnap-programs-\(getpid())").path
        try? FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
        return d
    }()

    /// The path of `source` (a file in Tests/Programs) compiled by cc or c++
    /// with `flags` (plus -g, -fno-builtin, -pthread), once per flag set.
    func path(_ source: String, flags: [String] = ["-O1"]) throws -> String {
        lock.lock()
        defer { lock.unlock() }
        let key = ([source] + flags).joined(separator: " ")
        if let p = built[key] { return p }
        let isCxx = source.hasSuffix(".cpp")
        let variant = flags == ["-O1"] ? "" : "-" + flags.joined().filter { $0.isLetter || $0.isNumber }
        let out = "\(dir)/\(source.split(separator: ".")[0])\(variant)"
        let result = try run(isCxx ? "/usr/bin/c++" : "/usr/bin/cc",
                             flags + ["-g", "-fno-builtin", "-pthread", "-o", out,
                                      "\(Shim.packageRoot)/Tests/Programs/\(source)"] + (isCxx ? [] : ["-ldl"]),
                             preload: false)
        guard result.status == 0 else { throw ShimTestError("compiling \(source) \(flags) failed:\n\(result.stderr)") }
        built[key] = out
        return out
    }
}

struct RunResult {
    var status: Int32
    var stdout: String
    var stderr: String
    var pid: Int32

    /// "site NAME 0xADDR" lines printed by the test programs.
    var sites: [String: UInt64] {
        var map: [String: UInt64] = [:]
        for line in stdout.split(separator: "\n") where line.hasPrefix("site ") {
            let parts = line.split(separator: " ")
            if parts.count == 3, let a = UInt64(parts[2].dropFirst(2), radix: 16) { map[String(parts[1])] = a }
        }
        return map
    }
}

/// Runs `path` to completion with stdout/stderr captured in files; with
/// `preload` the shim is preloaded. `env` is added to our environment minus
/// any HEAPSNAP_* and LD_PRELOAD we happen to have.
func run(_ path: String, _ args: [String], env: [String: String] = [:], preload: Bool = true,
         alsoPreload: String? = nil, cwd: String? = nil, timeout: Double = 60) throws -> RunResult {
    // posix_spawn with every signal unblocked and at its default (RobustnessTests.swift,
    // Background): Foundation's Process passes on the test thread's mask, which
    // blocks nearly every signal, so hosts never ran the shim's handlers.
    try Background.run(path, args, env: env, preload: preload, alsoPreload: alsoPreload, cwd: cwd, timeout: timeout)
}

extension Snapshot {
    /// Sums the records whose stack passes through the site starting at
    /// `address` (each site owns a 4 KiB slot, see Tests/Programs/sites.c).
    func site(_ address: UInt64?) -> (inuse: SampleGroup, alloc: SampleGroup) {
        guard let address else { return (.zero, .zero) }
        var inuse = SampleGroup.zero, alloc = SampleGroup.zero
        for record in records where stacks[record.stack].frames.contains(where: { $0 >= address && $0 < address + 4096 }) {
            inuse = inuse + record.inuse
            alloc = alloc + record.alloc
        }
        return (inuse, alloc)
    }
}

extension Estimate {
    /// True when `truth` lies within `k` standard deviations of the estimate.
    func covers(_ truth: Double, sigmas k: Double = 4) -> Bool {
        abs(value - truth) <= k * standardDeviation
    }
}
