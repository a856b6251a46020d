// The fast unwinder (CShim/tables/unwind.c) against libunwind on real programs: with
// HEAPSNAP_UNWIND=check every capture is walked both ways and compared, and the
// shim prints one line at exit ("unwind check: N stacks, F fast, L libunwind,
// D differed"). Each program must differ nowhere, compare a meaningful number of
// stacks, and take the fast path for more than 90% of them (a walk that always
// fell back would agree trivially), also while libraries come and go (dlclose
// invalidates the cached rules). The default mode is also compared with
// HEAPSNAP_UNWIND=libunwind end to end, through `heapsnap top --by traceback`.

import Foundation
import HeapSnapKit
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The counts of the "unwind check:" line.
struct UnwindCheck: CustomStringConvertible {
    var stacks = 0, fast = 0, libunwind = 0, differed = 0

    var description: String { "\(stacks) stacks, \(fast) fast, \(libunwind) libunwind, \(differed) differed" }

    /// The line of the process we started: the last one (a fork child that
    /// exits normally prints its own before its parent does).
    init?(stderr: String) {
        guard let line = stderr.split(separator: "\n").last(where: { $0.contains("heapsnap: unwind check: ") }) else { return nil }
        let numbers = line.split(whereSeparator: { !$0.isNumber }).compactMap { Int($0) }
        guard numbers.count == 4 else { return nil }
        (stacks, fast, libunwind, differed) = (numbers[0], numbers[1], numbers[2], numbers[3])
    }
}

/// A program to walk, and what it must show.
struct UnwindProgram: CustomTestStringConvertible, Sendable {
    var name: String
    var minimum: Int                    // stacks compared at least
    var rate = "1"
    var fallbacks = 0                   // libunwind walks expected at least (frames the fast walk leaves alone)

    var testDescription: String { name }

    static let all: [UnwindProgram] = [
        UnwindProgram(name: "C -O2 without frame pointers", minimum: 5000),
        UnwindProgram(name: "C -O2 with frame pointers", minimum: 5000),
        UnwindProgram(name: "C threads", minimum: 4000),
        UnwindProgram(name: "C++ exceptions", minimum: 10000),
        UnwindProgram(name: "C++ exceptions, two threads", minimum: 20000),
        UnwindProgram(name: "C++ signal handler", minimum: 10000, fallbacks: 40),
        UnwindProgram(name: "Swift", minimum: 20000),
        UnwindProgram(name: "Debian python3", minimum: 20000),
        UnwindProgram(name: "dlopen and dlclose in a loop", minimum: 100000),
    ]
    static let pyenv = UnwindProgram(name: "pyenv python 3.12", minimum: 20000)
    static let sqlite3 = UnwindProgram(name: "sqlite3", minimum: 20000)

    /// (executable, arguments, extra environment).
    func command() throws -> (String, [String], [String: String]) {
        switch name {
        case "C -O2 without frame pointers":
            return (try Programs.shared.path("sites.c", flags: ["-O2", "-fomit-frame-pointer"]), ["basic"], [:])
        case "C -O2 with frame pointers":
            return (try Programs.shared.path("sites.c", flags: ["-O2", "-fno-omit-frame-pointer"]), ["basic"], [:])
        case "C threads":
            return (try Programs.shared.path("sites.c", flags: ["-O2"]), ["threads"], [:])
        case "C++ exceptions":
            return (try Programs.shared.path("unwind_sites.cpp", flags: ["-O2"]), ["exceptions", "2000"], [:])
        case "C++ exceptions, two threads":
            return (try Programs.shared.path("unwind_sites.cpp", flags: ["-O2"]), ["threads", "2000"], [:])
        case "C++ signal handler":
            return (try Programs.shared.path("unwind_sites.cpp", flags: ["-O2"]), ["signal", "2000"], [:])
        case "Swift":
            return (try UnwindBuilds.shared.swift(), [], [:])
        case "dlopen and dlclose in a loop":
            // libz comes and goes (libbz2 may land where it was) while zlib and
            // two other threads allocate: dlclose must invalidate the rules.
            return (try Programs.shared.path("robust.c", flags: ["-O1"]), ["dlopen", "3000"], [:])
        case "Debian python3":
            return ("/usr/bin/python3", [PythonSites.path], [:])
        case "pyenv python 3.12":
            return (try #require(Interpreter.pyenv(12).path), [PythonSites.path], [:])
        case "sqlite3":
            return ("/usr/bin/sqlite3", [":memory:", """
                create table t(a integer primary key, b text); create index tb on t(b);
                with recursive c(x) as (select 1 union all select x+1 from c where x<20000)
                  insert into t select x, printf('%08d-%s', x*7919 % 100003, hex(x)) from c;
                select count(*), sum(a), min(b), max(b) from t;
                delete from t where a % 3 = 0; vacuum; select count(*) from t;
                """], [:])
        default:
            throw ShimTestError("no program \(name)")
        }
    }
}

/// The Swift test program (Tests/Programs/runtime_sites.swift), built once per run for these tests and AttributionTests.
final class UnwindBuilds: @unchecked Sendable {
    static let shared = UnwindBuilds()
    private let lock = NSLock()
    private var built: [String: String] = [:]
    private let dir: String = {
        let d = FileManager.default.temporaryDirectory.appendingPathComponent("heapsnap-unwind-\(getpid())").path
        try? FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
        return d
    }()

    /// Tests/Programs/runtime_sites.swift, compiled with swiftc -O -g.
    func swift() throws -> String {
        lock.lock()
        defer { lock.unlock() }
        if let p = built["swift"] { return p }
        let out = "\(dir)/runtime_sites"
        let r = try run(swiftCompiler(), ["-O", "-g", "-module-name", "runtimesites", "-o", out,
                                          Shim.packageRoot + "/Tests/Programs/runtime_sites.swift"], preload: false, timeout: 300)
        guard r.status == 0 else { throw ShimTestError("swiftc failed:\n\(r.stderr)") }
        built["swift"] = out
        return out
    }
}

@Suite("Fast unwinder")
struct UnwindTests {
    /// Runs `program` with HEAPSNAP_UNWIND=check and checks its counts.
    func verify(_ program: UnwindProgram) throws {
        let (path, args, env) = try program.command()
        let dir = try Scratch()
        let r = try run(path, args, env: env.merging(["HEAPSNAP_DIR": dir.path, "HEAPSNAP_START": "1", "HEAPSNAP_AT_EXIT": "1",
                                                      "HEAPSNAP_RATE": program.rate, "HEAPSNAP_UNWIND": "check"]) { $1 },
                        timeout: 300)
        #expect(r.status == 0, "\(r.stderr.prefix(2000))")
        let counts = try #require(UnwindCheck(stderr: r.stderr), "no check line on stderr: \(r.stderr.prefix(2000))")
        let differing = r.stderr.split(separator: "\n").filter { $0.contains("unwind differs") }.joined(separator: "\n")
        #expect(counts.differed == 0, "\(counts)\n\(differing)")
        #expect(counts.stacks >= program.minimum, "\(counts)")
        #expect(counts.fast + counts.libunwind == counts.stacks, "\(counts)")
        #expect(Double(counts.fast) > 0.9 * Double(counts.stacks), "\(counts)")
        #expect(counts.libunwind >= program.fallbacks, "\(counts)")
        print("unwind check, \(program.name): \(counts)")    // the figures, for the record
    }

    @Test("HEAPSNAP_UNWIND=check: the fast walk records libunwind's frames exactly, and is the path taken",
          arguments: UnwindProgram.all)
    func check(program: UnwindProgram) throws {
        try verify(program)
    }

    @Test("HEAPSNAP_UNWIND=check on pyenv's CPython 3.12 (libpython3.12.so)",
          .enabled(if: Interpreter.pyenv(12).path != nil, "no pyenv CPython 3.12 installed (pyenv root/versions/3.12.*)"))
    func checkPyenv() throws {
        try verify(UnwindProgram.pyenv)
    }

    @Test("HEAPSNAP_UNWIND=check on the distro's sqlite3",
          .enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/sqlite3"), "/usr/bin/sqlite3 is not installed"))
    func checkSqlite() throws {
        try verify(UnwindProgram.sqlite3)
    }

    @Test("a bad HEAPSNAP_UNWIND gets one line and the default; libunwind mode prints no check line")
    func option() throws {
        let program = try Programs.shared.path("sites.c", flags: ["-O2"])
        let dir = try Scratch()
        let bad = try run(program, ["exact"], env: ["HEAPSNAP_DIR": dir.path, "HEAPSNAP_RATE": "1", "HEAPSNAP_UNWIND": "orc"])
        #expect(bad.status == 0)
        let lines = bad.stderr.split(separator: "\n").filter { $0.contains("HEAPSNAP_UNWIND") }
        #expect(lines == ["heapsnap: HEAPSNAP_UNWIND=\"orc\" is not valid (expected fast, libunwind or check); using fast"], "\(bad.stderr)")
        #expect(UnwindCheck(stderr: bad.stderr) == nil)
        let plain = try run(program, ["exact"], env: ["HEAPSNAP_DIR": dir.path, "HEAPSNAP_RATE": "1", "HEAPSNAP_UNWIND": "libunwind"])
        #expect(plain.status == 0 && UnwindCheck(stderr: plain.stderr) == nil, "\(plain.stderr)")
    }

    /// `heapsnap top --by traceback` of the at-exit snapshot, without its header.
    func tracebacks(_ program: String, _ args: [String], unwind: String) throws -> String {
        let dir = try Scratch()
        let r = try run(program, args, env: ["HEAPSNAP_DIR": dir.path, "HEAPSNAP_START": "1", "HEAPSNAP_AT_EXIT": "1",
                                             "HEAPSNAP_RATE": "1", "HEAPSNAP_UNWIND": unwind])
        try #require(r.status == 0, "\(r.stderr)")
        let file = try #require(dir.snapshots.last, "\(dir.entries)")
        let top = try run(heapsnapTool(), ["top", file, "--by", "traceback", "--metric", "alloc-bytes", "--limit", "0"],
                          preload: false)
        try #require(top.status == 0, "\(top.stderr)")
        // The header names the file, the pid and the time: the rest must match.
        return top.stdout.split(separator: "\n")
            .filter { !$0.hasPrefix("heapsnap top ") && !$0.hasPrefix("pid ") && !$0.hasPrefix("snapshot #") }
            .joined(separator: "\n")
    }

    @Test("the default mode's stacks are libunwind's: the same tracebacks, byte for byte, at RATE=1")
    func sameTracebacks() throws {
        let program = try Programs.shared.path("unwind_sites.cpp", flags: ["-O2"])
        let fast = try tracebacks(program, ["exceptions", "300"], unwind: "fast")
        let libunwind = try tracebacks(program, ["exceptions", "300"], unwind: "libunwind")
        #expect(fast.contains("level3"), "\(fast.prefix(2000))")
        #expect(fast == libunwind, "fast:\n\(fast.prefix(3000))\nlibunwind:\n\(libunwind.prefix(3000))")
    }
}

extension UnwindCheck: Equatable {}
