// Python services under the shim: real interpreters (Debian's static python3.11
// and pyenv's shared-libpython 3.11, 3.12, 3.13) run Tests/Programs/python_sites.py,
// whose sites are marked `# site: NAME`. Each site must be named by its file:line
// and qualified function, with the estimate within its error bars of what
// tracemalloc itself measures on the same program.

import Foundation
import HeapSnapKit
import HeapSnapTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// A CPython to run the tests with.
struct Interpreter: CustomTestStringConvertible, Sendable {
    var name: String
    var path: String?
    var minor: Int

    var testDescription: String { name }

    /// Debian's /usr/bin/python3.11 (static, stripped).
    static let debian = Interpreter(name: "Debian python3.11", path: executable("/usr/bin/python3.11"), minor: 11)

    /// pyenv's build of 3.MINOR (the newest patch release installed), if any.
    static func pyenv(_ minor: Int) -> Interpreter {
        let env = ProcessInfo.processInfo.environment
        let roots = [env["PYENV_ROOT"], env["HOME"].map { $0 + "/.pyenv" }, "/root/.pyenv"].compactMap { $0 }
        for root in roots {
            let versions = (try? FileManager.default.contentsOfDirectory(atPath: root + "/versions")) ?? []
            let found = versions.filter { $0.hasPrefix("3.\(minor).") && Int($0.split(separator: ".")[2]) != nil }
                .sorted { Int($0.split(separator: ".")[2])! < Int($1.split(separator: ".")[2])! }
            if let version = found.last, let path = executable("\(root)/versions/\(version)/bin/python3.\(minor)") {
                return Interpreter(name: "pyenv \(version)", path: path, minor: minor)
            }
        }
        return Interpreter(name: "pyenv 3.\(minor) (not installed)", path: nil, minor: minor)
    }

    static let supported = [debian, pyenv(11), pyenv(12), pyenv(13)]

    /// The path, or a recorded failure: these interpreters are on every machine of this kind.
    func required() throws -> String {
        try #require(path, "\(name) is missing: Debian's python3.11 and pyenv's 3.11, 3.12, 3.13 are expected here")
    }

    /// Include directory with CPython's internal headers, for the offsets check.
    var includeDirectory: String? {
        guard let path else { return nil }
        let prefix = URL(fileURLWithPath: path).deletingLastPathComponent().deletingLastPathComponent().path
        let dir = prefix == "/usr" ? "/usr/include/python3.\(minor)" : "\(prefix)/include/python3.\(minor)"
        return FileManager.default.fileExists(atPath: dir + "/internal/pycore_frame.h") ? dir : nil
    }

    private static func executable(_ path: String) -> String? {
        FileManager.default.isExecutableFile(atPath: path) ? path : nil
    }
}

/// Tests/Programs/python_sites.py and its marked lines.
enum PythonSites {
    static let path = "\(Shim.packageRoot)/Tests/Programs/python_sites.py"

    /// NAME -> line of `# site: NAME`.
    static let lines: [String: Int] = {
        let text = (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
        var result: [String: Int] = [:]
        for (i, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            guard let marker = line.range(of: "# site: "), !line.trimmingCharacters(in: .whitespaces).hasPrefix("#") else { continue }
            result[String(line[marker.upperBound...]).trimmingCharacters(in: .whitespaces)] = i + 1
        }
        return result
    }()

    /// The qualified function of each site (3.11 runs list comprehensions in a code object of their own).
    static func function(_ site: String, minor: Int) -> String {
        switch site {
        case "plain": return minor >= 12 ? "plain_leaf" : "plain_leaf.<locals>.<listcomp>"
        case "method": return "Store.put"
        case "generator": return "numbers"
        case "lambda": return "with_lambda.<locals>.<lambda>"
        case "coroutine": return "fetch"
        case "sortkey": return "sort_key"
        case "thread": return "worker.<locals>.<genexpr>"
        default: return site
        }
    }

    static let built = ["plain", "method", "generator", "lambda", "coroutine", "sortkey", "thread"]

    /// tracemalloc's bytes per line of python_sites.py, the program run without the shim.
    static func tracemalloc(_ python: String) throws -> [Int: Double] {
        let r = try run(python, [path, "tracemalloc"], preload: false)
        try #require(r.status == 0, "\(r.stderr)")
        var sizes: [Int: Double] = [:]
        for line in r.stdout.split(separator: "\n") where line.hasPrefix("line ") {
            let parts = line.split(separator: " ")
            sizes[Int(parts[1])!] = Double(parts[2])!
        }
        return sizes
    }

    /// The profile of a snapshot as `heapsnap top` sees it (allocator and runtime frames trimmed).
    static func profile(_ file: String, keepRuntimeFrames: Bool = false) throws -> Profile {
        let query = ProfileQuery(SnapshotSelection(files: [file]), trimming: Trimming(runtimeFrames: !keepRuntimeFrames))
        return try Pipeline(options: SymbolizeOptions(progress: false), environment: ProcessInfo.processInfo.environment).run(query).profile
    }

    /// In-use rows of python_sites.py by line.
    static func rows(_ profile: Profile) -> [Int: Row] {
        let report = Aggregator(options: AggregationOptions(groupBy: .line, limit: nil)).aggregate(profile)
        var rows: [Int: Row] = [:]
        for row in report.rows where row.key.file == path { rows[row.key.line] = row }
        return rows
    }
}

@Suite("Python")
struct PythonTests {
    /// Runs python_sites.py under the shim from its start; returns the at-exit snapshot's path.
    func atExitSnapshot(_ python: String, _ dir: Scratch, env: [String: String] = [:]) throws -> String {
        var environment = ["HEAPSNAP_DIR": dir.path, "HEAPSNAP_START": "1", "HEAPSNAP_AT_EXIT": "1", "HEAPSNAP_RATE": "4096"]
        environment.merge(env) { $1 }
        let r = try run(python, [PythonSites.path], env: environment)
        #expect(r.status == 0 && r.stdout.hasPrefix("done"), "\(r.stderr)")
        let files = dir.snapshots
        try #require(files.count == 1, "one at-exit snapshot expected: \(dir.entries); \(r.stderr)")
        return files[0]
    }

    @Test("every site named file:line and function, its estimate within error bars of tracemalloc's size",
          arguments: Interpreter.supported)
    func sitesMatchTracemalloc(_ interpreter: Interpreter) throws {
        let python = try interpreter.required()
        let truth = try PythonSites.tracemalloc(python)
        let dir = try Scratch()
        let file = try atExitSnapshot(python, dir)
        let snapshot = try dir.read(file)
        #expect(snapshot.header.flags.contains(.atExit))
        let info = try #require(snapshot.python, "no PYTH record")
        #expect(info.status == .frames && info.flags.contains(.wrapped), "\(info.note) \(info.flags)")
        #expect(info.note.contains("3.\(interpreter.minor)."), "\(info.note)")

        let profile = try PythonSites.profile(file)
        let rows = PythonSites.rows(profile)
        for site in PythonSites.built {
            let line = try #require(PythonSites.lines[site])
            let expected = try #require(truth[line], "tracemalloc has no line \(line)")
            guard let row = rows[line] else {
                Issue.record("\(interpreter.name): no row for \(site) at python_sites.py:\(line); rows: \(rows.keys.sorted())")
                continue
            }
            // Several functions can allocate on one line (a lambda and the list that map() fills):
            // the site's own function must be among the line's first frames.
            let function = PythonSites.function(site, minor: interpreter.minor)
            #expect(profile.samples.contains { s in
                s.frames.first.map { profile.frames[$0] }.map { $0.line == line && $0.function == function } ?? false
            }, "\(site): no stack starts in \(function) at line \(line)")
            let estimate = row.values.inuseBytes
            // 4σ of the sampling error, plus 2% for what differs between two runs (dict and list growth).
            #expect(abs(estimate.value - expected) <= 4 * estimate.standardDeviation + 0.02 * expected,
                    "\(interpreter.name) \(site): \(estimate.value) ±\(estimate.standardDeviation) vs tracemalloc \(expected)")
        }
        // The at-exit snapshot is taken before finalization: everything the program kept is live.
        let kept = PythonSites.built.compactMap { PythonSites.lines[$0].flatMap { truth[$0] } }.reduce(0, +)
        #expect(profile.samples.reduce(0) { $0 + $1.values.inuseBytes.value } >= 0.9 * kept)
    }

    @Test("the top lines are tracemalloc's, in the same order", arguments: Interpreter.supported)
    func sameOrderAsTracemalloc(_ interpreter: Interpreter) throws {
        let python = try interpreter.required()
        let truth = try PythonSites.tracemalloc(python)
        let dir = try Scratch()
        let rows = PythonSites.rows(try PythonSites.profile(try atExitSnapshot(python, dir)))
        // tracemalloc starts after the imports; heapsnap also sees them (at the import lines).
        let theirs = truth.sorted { $0.value > $1.value }.prefix(7).map(\.key)
        let ours = rows.filter { truth[$0.key] != nil }
            .sorted { $0.value.values.inuseBytes.value > $1.value.values.inuseBytes.value }.prefix(7).map(\.key)
        #expect(ours == theirs, "\(interpreter.name): heapsnap \(ours), tracemalloc \(theirs)")
    }

    @Test("Python frames are interleaved with native ones: callers through sorted(), threads, coroutines, the module",
          arguments: Interpreter.supported)
    func stacksReachTheCaller(_ interpreter: Interpreter) throws {
        let python = try interpreter.required()
        let dir = try Scratch()
        let file = try atExitSnapshot(python, dir)
        let profile = try PythonSites.profile(file)
        func stacks(of site: String) -> [[Frame]] {
            let line = PythonSites.lines[site]!
            return profile.samples.map { $0.frames.map { profile.frames[$0] } }
                .filter { $0.first?.file == PythonSites.path && $0.first?.line == line }
        }
        func callers(_ stack: [Frame]) -> [String] { stack.filter { $0.file == PythonSites.path }.map(\.function) }
        // A key function called back by the C builtin sorted(): its caller `build`, then the module.
        let sortkey = stacks(of: "sortkey")
        #expect(!sortkey.isEmpty && sortkey.allSatisfy { callers($0) == ["sort_key", "build", "<module>"] },
                "\(sortkey.map(callers))")
        // Three calls deep.
        let plain = stacks(of: "plain")
        let plainCallers = ["plain_leaf", "plain_middle", "plain_top", "build", "<module>"]
        #expect(!plain.isEmpty && plain.allSatisfy { callers($0).drop { $0.contains("listcomp") }.elementsEqual(plainCallers) },
                "\(plain.map(callers))")
        // A second thread starts at threading's bootstrap, not at the module.
        let thread = stacks(of: "thread")
        #expect(!thread.isEmpty && thread.allSatisfy { callers($0).drop { $0.contains("genexpr") } == ["worker"] && $0.contains { $0.file.hasSuffix("threading.py") } },
                "\(thread.map { $0.map(\.function) })")
        // A coroutine runs under asyncio's event loop, inside build's asyncio.run.
        let coroutine = stacks(of: "coroutine")
        #expect(!coroutine.isEmpty && coroutine.allSatisfy { callers($0).first == "fetch" && callers($0).suffix(2) == ["build", "<module>"] },
                "\(coroutine.map(callers))")
        // The interpreter's own native frames are gone between Python frames; with
        // --keep-runtime-frames they come back, with the eval loop replaced by Python frames.
        let native = profile.samples.flatMap { $0.frames.map { profile.frames[$0] } }
        #expect(!native.contains { $0.function.contains("_PyEval_EvalFrameDefault") })
        let whole = try PythonSites.profile(file, keepRuntimeFrames: true)
        let wholeFrames = whole.samples.flatMap { $0.frames.map { whole.frames[$0].module } }
        #expect(wholeFrames.contains { $0.contains("python3") }, "interpreter frames kept with --keep-runtime-frames")
        // Each activation's Python frames stand at its eval loop's native frame: the C
        // builtin sorted() lies between the key function and its caller, while calls from
        // Python to Python run in one activation, with no native frame between them.
        /// Per stack of the site, the frames between its innermost Python frame and build's.
        func gap(_ site: String) -> [[Frame]?] {
            whole.samples.map { $0.frames.map { whole.frames[$0] } }
                .compactMap { stack -> [Frame]?? in
                    guard let i = stack.firstIndex(where: { $0.module == PythonFrame.module }),
                          stack[i].file == PythonSites.path, stack[i].line == PythonSites.lines[site]! else { return nil }
                    guard let o = stack.firstIndex(where: { $0.file == PythonSites.path && $0.function == "build" }),
                          i < o else { return .some(nil) }
                    return Array(stack[(i + 1)..<o])
                }
        }
        let sortGaps = gap("sortkey")
        #expect(!sortGaps.isEmpty && sortGaps.allSatisfy { $0?.contains { $0.module != PythonFrame.module } == true },
                "\(interpreter.name): sort_key's stacks without a native frame before build: \(sortGaps.map { $0?.map(\.function) ?? [] })")
        let plainGaps = gap("plain")
        #expect(!plainGaps.isEmpty && plainGaps.allSatisfy { $0?.allSatisfy { $0.module == PythonFrame.module } == true },
                "\(interpreter.name): the plain site's stacks with a native frame before build: \(plainGaps.map { $0?.map(\.function) ?? [] })")
    }

    /// HEAPSNAP_NATIVE=inner walks the native stack only down to the innermost Python
    /// frame: each stack is the natives below it (the C code that allocated), then
    /// every Python frame. Both runs are exact, so every site's stacks are there in
    /// both; the natives before the first Python frame and the Python frames must be
    /// the whole walk's, and no native may follow a Python frame (the whole walk has
    /// them: the interpreter between activations, then main and the C library).
    @Test("HEAPSNAP_NATIVE=inner: the natives below the innermost Python frame, then the whole walk's Python frames",
          arguments: Interpreter.supported)
    func innerNatives(_ interpreter: Interpreter) throws {
        let python = try interpreter.required()
        let dir = try Scratch(), innerDir = try Scratch()
        let exact = ["HEAPSNAP_RATE": "1", "HEAPSNAP_MAX_DEPTH": "256"]
        let wholeFile = try atExitSnapshot(python, dir, env: exact)
        let whole = try PythonSites.profile(wholeFile, keepRuntimeFrames: true)
        #expect(try dir.read(wholeFile).python?.flags.contains(.nativeInner) == false)
        let innerFile = try atExitSnapshot(python, innerDir, env: exact.merging(["HEAPSNAP_NATIVE": "inner"]) { $1 })
        let inner = try PythonSites.profile(innerFile, keepRuntimeFrames: true)
        #expect(try innerDir.read(innerFile).python?.flags.contains(.nativeInner) == true, "PYTH says nothing of it")
        let info = try run(heapsnapTool(), ["info", innerFile], preload: false)
        #expect(info.stdout.contains("HEAPSNAP_NATIVE=inner"), "\(info.stdout)")
        func isPython(_ f: Frame) -> Bool { f.module == PythonFrame.module }
        /// Per site line of python_sites.py: each stack as (natives before the first
        /// Python frame, the Python frames), and whether a native follows a Python frame.
        func shapes(_ profile: Profile) -> (stacks: [Int: Set<[String]>], nativeAfterPython: Int) {
            var stacks: [Int: Set<[String]>] = [:]
            var after = 0
            for sample in profile.samples where !sample.truncated {
                let frames = sample.frames.map { profile.frames[$0] }
                guard let site = frames.first(where: isPython), site.file == PythonSites.path,
                      let start = frames.firstIndex(where: isPython) else { continue }
                if frames[start...].contains(where: { !isPython($0) }) { after += 1 }
                let below = frames[..<start].map { "\($0.function) \($0.module)" }
                let pythonFrames = frames.filter(isPython).map { "\($0.function):\($0.line)" }
                stacks[site.line, default: []].insert(below + ["|"] + pythonFrames)
            }
            return (stacks, after)
        }
        let a = shapes(whole), b = shapes(inner)
        #expect(a.nativeAfterPython > 0, "the whole walk has natives after Python frames: else this test proves nothing")
        #expect(b.nativeAfterPython == 0, "\(b.nativeAfterPython) stacks have a native after a Python frame")
        expectSameStacks(whole: a.stacks, other: b.stacks)
        // `heapsnap run --native inner` sets it for the command.
        #expect(try pythonFlags(ofRun: python, native: .inner).contains(.nativeInner))
        let bad = try run(python, ["-c", "pass"], env: ["HEAPSNAP_NATIVE": "some"])
        #expect(bad.status == 0 && bad.stderr.contains("HEAPSNAP_NATIVE") && bad.stderr.split(separator: "\n").count == 1, "\(bad.stderr)")
    }

    /// HEAPSNAP_NATIVE=none walks no native frame on a thread running Python: each
    /// of its stacks is the Python frames the whole walk has, and nothing else (what
    /// tracemalloc and memray record). A stack taken where no Python frame runs (the
    /// interpreter starting, before its first frame) is walked as natives.
    @Test("HEAPSNAP_NATIVE=none: the whole walk's Python frames and no native, natives where no Python runs",
          arguments: Interpreter.supported)
    func noNatives(_ interpreter: Interpreter) throws {
        let python = try interpreter.required()
        let dir = try Scratch(), noneDir = try Scratch()
        let exact = ["HEAPSNAP_RATE": "1", "HEAPSNAP_MAX_DEPTH": "256"]
        let whole = try PythonSites.profile(try atExitSnapshot(python, dir, env: exact), keepRuntimeFrames: true)
        let noneFile = try atExitSnapshot(python, noneDir, env: exact.merging(["HEAPSNAP_NATIVE": "none"]) { $1 })
        let none = try PythonSites.profile(noneFile, keepRuntimeFrames: true)
        let flags = try #require(try noneDir.read(noneFile).python?.flags)
        #expect(flags.contains(.nativeNone) && !flags.contains(.nativeInner), "PYTH flags \(flags)")
        let info = try run(heapsnapTool(), ["info", noneFile], preload: false)
        #expect(info.stdout.contains("HEAPSNAP_NATIVE=none"), "\(info.stdout)")
        func isPython(_ f: Frame) -> Bool { f.module == PythonFrame.module }
        /// Per line of python_sites.py where a stack starts, the stacks' Python frames and
        /// the bytes in use; how many stacks mix natives with Python frames, and how many
        /// have no Python frame.
        func shapes(_ profile: Profile) -> (stacks: [Int: Set<[String]>], bytes: [Int: Double], mixed: Int, nativeOnly: Int) {
            var stacks: [Int: Set<[String]>] = [:]
            var bytes: [Int: Double] = [:]
            var mixed = 0, nativeOnly = 0
            for sample in profile.samples where !sample.truncated {
                let frames = sample.frames.map { profile.frames[$0] }
                guard let site = frames.first(where: isPython) else { nativeOnly += 1; continue }
                if frames.contains(where: { !isPython($0) }) { mixed += 1 }
                if site.file == PythonSites.path {
                    stacks[site.line, default: []].insert(frames.filter(isPython).map { "\($0.function):\($0.line)" })
                    bytes[site.line, default: 0] += sample.values.inuseBytes.value
                }
            }
            return (stacks, bytes, mixed, nativeOnly)
        }
        let a = shapes(whole), b = shapes(none)
        #expect(a.mixed > 0, "the whole walk mixes natives with Python frames: else this test proves nothing")
        #expect(b.mixed == 0, "\(b.mixed) stacks of HEAPSNAP_NATIVE=none have a native frame beside Python frames")
        #expect(b.nativeOnly > 0, "no native stack: the allocations made before the first Python frame are missing")
        expectSameStacks(whole: a.stacks, other: b.stacks)
        // Both runs are exact: each line's bytes in use agree (what differs between two
        // runs of the program is dict and list growth, a few KiB), and so do the totals.
        for (line, wanted) in a.bytes where wanted >= 64 * 1024 {
            let got = b.bytes[line] ?? 0
            #expect(abs(got - wanted) <= 0.02 * wanted + 16 * 1024, "python_sites.py:\(line): none \(got) B in use, all \(wanted) B")
        }
        let sum = { (p: Profile) in p.samples.reduce(0) { $0 + $1.values.inuseBytes.value } }
        #expect(abs(sum(none) - sum(whole)) <= 0.1 * sum(whole), "in use: none \(sum(none)), all \(sum(whole))")
        // `heapsnap run --native none` sets it for the command.
        #expect(try pythonFlags(ofRun: python, native: .none).contains(.nativeNone))
    }

    /// Every site of python_sites.py has stacks in the whole walk's run, and the other
    /// run has exactly those (per site line, as the test shaped them).
    private func expectSameStacks(whole: [Int: Set<[String]>], other: [Int: Set<[String]>]) {
        for site in PythonSites.built {
            let line = PythonSites.lines[site]!
            let wanted = whole[line] ?? [], got = other[line] ?? []
            #expect(!wanted.isEmpty && got == wanted, "\(site): \(wanted.subtracting(got)) missing, \(got.subtracting(wanted)) extra")
        }
    }

    /// The PYTH flags of a snapshot `heapsnap run --rate 1 --native NATIVE` wrote of a short script.
    private func pythonFlags(ofRun python: String, native: NativeFrames) throws -> PythonInfo.Flags {
        let runDir = try Scratch()
        let viaRun = try run(heapsnapTool(), ["run", "--rate", "1", "--native", native.rawValue, "--dir", runDir.path, "--",
                                              python, "-c", "kept = [str(i) * 3 for i in range(1000)]"],
                             env: ["HEAPSNAP_LIB": Shim.library], preload: false)
        #expect(viaRun.status == 0, "\(viaRun.stderr)")
        let ran = try #require(runDir.snapshots.compactMap { try? runDir.read($0) }.first { $0.python != nil },
                               "heapsnap run wrote no snapshot of Python: \(viaRun.stderr)")
        return try #require(ran.python).flags
    }

    @Test("the CLI's outputs carry Python frames: top, folded and pprof exports", arguments: [Interpreter.pyenv(12)])
    func outputsCarryPythonFrames(_ interpreter: Interpreter) throws {
        let python = try interpreter.required()
        let dir = try Scratch()
        let file = try atExitSnapshot(python, dir)
        let line = PythonSites.lines["generator"]!
        let top = try run(heapsnapTool(), ["top", file, "--limit", "0", "--width", "200"], preload: false)
        #expect(top.status == 0 && top.stdout.contains("python_sites.py:\(line)  numbers"), "\(top.stdout)")
        let folded = "\(dir.path)/heap.folded"
        let export = try run(heapsnapTool(), ["export", file, "--format", "folded", "-o", folded], preload: false)
        #expect(export.status == 0, "\(export.stderr)")
        let text = (try? String(contentsOfFile: folded, encoding: .utf8)) ?? ""
        #expect(text.split(separator: "\n").contains { $0.contains("build;") && $0.contains("numbers") }, "\(text.prefix(2000))")
        let info = try run(heapsnapTool(), ["info", file], preload: false)
        #expect(info.stdout.contains("CPython 3.12.") && info.stdout.contains("Python frames"), "\(info.stdout)")
    }

    @Test("a running Python service driven by start, snapshot and stop signals", arguments: Interpreter.supported)
    func signalledService(_ interpreter: Interpreter) throws {
        let python = try interpreter.required()
        let dir = try Scratch()
        let service = try Background(python, [PythonSites.path, "serve"], env: ["HEAPSNAP_DIR": dir.path, "HEAPSNAP_RATE": "4096"],
                                     interactive: true)
        _ = try service.line("ready")
        try #require(service.waitUntilHandled(), "the shim's handlers are not installed")
        let base = Shim.signalBase + 1
        func settle(_ count: Int) throws {
            try Wait.until("\(count) snapshots: \(dir.entries)", every: 0.01) { dir.snapshots.count >= count || !service.isRunning }
        }
        /// The service's resident bytes, which its leak grows (about 4 MB a second of 1 KiB blocks, written).
        func resident() -> Int {
            let statm = ((try? String(contentsOfFile: "/proc/\(service.pid)/statm", encoding: .utf8)) ?? "").split(separator: " ")
            return statm.count > 1 ? (Int(statm[1]) ?? 0) * Int(sysconf(Int32(_SC_PAGESIZE))) : 0
        }
        /// Until the leak has grown by 2 MiB (some 500 samples at 4 KiB), however slowly the machine runs the service.
        func grow() throws {
            let from = resident()
            try Wait.until("the service's leak to grow by 2 MiB (\(resident() - from) bytes)") { resident() - from >= 2 << 20 || !service.isRunning }
        }
        kill(service.pid, base)             // start
        try grow()
        kill(service.pid, base + 2)         // snapshot
        try settle(1)
        try grow()
        kill(service.pid, base + 1)         // stop: final snapshot
        try settle(2)
        service.closeInput()
        #expect(try service.wait() == 0, "\(service.stderr)")
        let files = dir.snapshots
        try #require(files.count == 2, "\(dir.entries); \(service.stderr)")
        let line = PythonSites.lines["serve"]!
        let first = try #require(PythonSites.rows(try PythonSites.profile(files[0]))[line], "no serve row in the first snapshot")
        let last = try #require(PythonSites.rows(try PythonSites.profile(files[1]))[line], "no serve row in the final snapshot")
        #expect(first.frame?.function == "serve")
        #expect(last.values.inuseBytes.value > first.values.inuseBytes.value, "the leak grows between the two snapshots")
        let final = try dir.read(files[1])
        #expect(final.header.flags.contains(.final) && final.python?.flags.contains(.wrapped) == true)
    }

    @Test("a C program that loads libpython by dlopen after sampling started gets Python frames")
    func embeddedByDlopen() throws {
        // The writer looks for Python again only when a module was loaded since
        // its last look: here the loads come after several looks that found none.
        let python = try Interpreter.pyenv(12).required()
        let lib = URL(fileURLWithPath: python).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("lib/libpython3.12.so.1.0").path
        try #require(FileManager.default.fileExists(atPath: lib), "pyenv's 3.12 comes with \(lib)")
        let dir = try Scratch()
        let script = dir.path + "/embedded.py"
        try """
            def grow():
                return [str(i) * 300 for i in range(20000)]  # line 2: 20,000 blocks of ~1.5 KiB, malloc's

            kept = grow()
            """.write(toFile: script, atomically: true, encoding: .utf8)
        let r = try run(Programs.shared.path("embed_python.c"), [lib, script],
                        env: ["HEAPSNAP_DIR": dir.path, "HEAPSNAP_RATE": "65536"])
        #expect(r.status == 0 && r.stdout.hasSuffix("done\n"), "exit \(r.status): \(r.stderr)")
        try #require(dir.snapshots.count == 1, "\(dir.entries)")
        let snapshot = try dir.read(dir.snapshots[0])
        #expect(snapshot.python?.status == .frames, "\(String(describing: snapshot.python))")
        let report = Aggregator(options: AggregationOptions(groupBy: .line, limit: nil))
            .aggregate(try PythonSites.profile(dir.snapshots[0]))
        let row = try #require(report.rows.first { $0.key.file == script && $0.key.line == 2 },
                               "no row for embedded.py:2: \(report.rows.prefix(5).map(\.key))")
        #expect(row.frame?.function == "grow")
        // ~30 MB of strings: the Python line holds nearly all of it.
        #expect(row.values.inuseBytes.value > 20_000_000, "\(row.values.inuseBytes.value) bytes at embedded.py:2")
    }

    @Test("exact mode: a code object remade at the same address under another name keeps its own name",
          arguments: Interpreter.supported)
    func remadeCodeKeepsItsName(_ interpreter: Interpreter) throws {
        let bytes = try remadeInUse(try interpreter.required(), rate: "1")
        // Exact mode: g_K's 30 lists hold 30 x 8 x (1000 + 100 K) bytes of
        // pointers, plus a list header each.
        for k in 0..<10 {
            let items = 30.0 * 8 * Double(1000 + 100 * k)
            let got = bytes["g_\(k)"] ?? 0
            #expect(got >= items && got <= items + 30 * 128, "g_\(k): \(got) B, expected \(items) B and 30 list headers; all: \(bytes)")
        }
    }

    @Test("a script that never releases the GIL gets its at-exit hook, and its snapshot holds what the script kept",
          arguments: Interpreter.supported)
    func busyScriptGetsAtExitSnapshot(_ interpreter: Interpreter) throws {
        // The program spins without releasing the GIL until a callback is
        // registered with atexit (remadeInUse checks it did): on 3.11 and
        // 3.12 only the shim's wake-up makes the main thread run the queued
        // registration. Written before finalization, the snapshot has the
        // 300 kept lists, 3.48 MB of pointers, in use.
        let kept = try remadeInUse(try interpreter.required(), rate: "4096").values.reduce(0, +)
        #expect(kept > 3_300_000 && kept < 3_700_000, "in use from python_remade.py: \(kept) B")
    }

    /// Runs Tests/Programs/python_remade.py under the shim from its start at
    /// `rate`; returns the at-exit snapshot's bytes in use by the function of
    /// each sample's innermost frame in that file.
    func remadeInUse(_ python: String, rate: String) throws -> [String: Double] {
        let dir = try Scratch()
        let program = "\(Shim.packageRoot)/Tests/Programs/python_remade.py"
        let r = try run(python, [program], env: ["HEAPSNAP_DIR": dir.path, "HEAPSNAP_START": "1", "HEAPSNAP_AT_EXIT": "1",
                                                "HEAPSNAP_RATE": rate])
        #expect(r.status == 0 && r.stdout == "hook registered\ndone 300\n", "\(r.stdout) \(r.stderr)")
        let files = dir.snapshots
        try #require(files.count == 1, "one at-exit snapshot expected: \(dir.entries); \(r.stderr)")
        let profile = try PythonSites.profile(files[0])
        var bytes: [String: Double] = [:]
        for sample in profile.samples {
            guard let site = sample.frames.first.map({ profile.frames[$0] }), site.file == program else { continue }
            bytes[site.function, default: 0] += sample.values.inuseBytes.value
        }
        return bytes
    }

    @Test("an interpreter heapsnap does not know keeps native stacks and says so in info")
    func unknownInterpreter() throws {
        let old = Interpreter.pyenv(10)
        let python = try #require(old.path, "pyenv's 3.10 is expected on machines of this kind")
        let dir = try Scratch()
        let file = try atExitSnapshot(python, dir)
        let snapshot = try dir.read(file)
        let info = try #require(snapshot.python)
        #expect(info.status == .unsupported && info.note.contains("native frames only"), "\(info.note)")
        #expect(!snapshot.stacks.contains { $0.frames.contains { PythonFrame.decode($0) != nil } })
        let report = InfoReport(snapshot: snapshot, file: file, locator: FileSystemModuleLocator(debugDirectories: []))
        #expect(report.warnings.contains { $0.contains("native frames only") }, "\(report.warnings)")
        // Nor are its free lists kept empty: one plain line in info and under every table.
        #expect(!info.flags.contains(.freeListsOff))
        #expect(report.warnings.contains { $0.contains("reused from the interpreter's free lists") }, "\(report.warnings)")
        let table = Aggregator(options: AggregationOptions(groupBy: .line, limit: 5)).aggregate(try PythonSites.profile(file))
        #expect(table.warnings.contains { $0.contains("charged to the line that first allocated their memory") }, "\(table.warnings)")
        // pymalloc and the at-exit hook use the stable API: the program's memory is still seen before finalization.
        #expect(info.flags.contains(.wrapped))
        let inuse = snapshot.records.reduce(0) { $0 + $1.inuse.bytes.value }
        #expect(inuse > 15_000_000, "\(inuse) bytes in use at exit")
    }

    @Test("python_layouts.h matches CPython's own headers", arguments: Interpreter.supported)
    func offsetsMatchHeaders(_ interpreter: Interpreter) throws {
        _ = try interpreter.required()
        let include = try #require(interpreter.includeDirectory, "\(interpreter.name): no internal headers (python3.11-dev for Debian's)")
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("python_offsets-\(UUID().uuidString)").path
        defer { unlink(out) }
        let cc = try run("/usr/bin/cc", ["-I", "\(Shim.packageRoot)/CShim", "-I", include, "-o", out,
                                        "\(Shim.packageRoot)/Tests/Programs/python_offsets.c"], preload: false)
        try #require(cc.status == 0, "\(cc.stderr)")
        let r = try run(out, [], preload: false)
        #expect(r.status == 0 && !r.stdout.contains("MISMATCH") && r.stdout.contains(" ok"), "\(r.stdout)")
    }
}
