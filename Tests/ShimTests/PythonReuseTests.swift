// Objects CPython reuses from its free lists, charged where tracemalloc
// charges them: Tests/Programs/python_reuse.py (a list built and dropped by
// one function, reused for the list another keeps) and python_records.py
// (dicts and lists through json, a class with __slots__, tuples, floats,
// strings, bytes) on every supported interpreter, against tracemalloc run on
// the same program (`-X tracemalloc=8`, each block at its innermost line of
// the program, as heapsnap's rows name the first frame of the program's own
// code).

import Foundation
import HeapSnapKit
import Testing

/// A test program whose lines are marked `# site: NAME` (holds memory),
/// `# churn` (keeps nothing), `# tm` (runs only to report tracemalloc's
/// figures) and `# startup` (the module's first imports, which may run before
/// the shim's wrappers are in place).
struct ReuseProgram: Sendable {
    var name: String
    var path: String { "\(Shim.packageRoot)/Tests/Programs/\(name)" }

    /// Line -> mark ("site", "churn", "tm", "startup").
    var marks: [Int: String] {
        let text = (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
        var result: [Int: String] = [:]
        for (i, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            for mark in ["# site:", "# churn", "# tm", "# startup"] where line.contains(mark) {
                result[i + 1] = String(mark.dropFirst(2).prefix { $0.isLetter })
            }
        }
        return result
    }

    static let reuse = ReuseProgram(name: "python_reuse.py")
    static let records = ReuseProgram(name: "python_records.py")
}

struct ReuseCase: CustomTestStringConvertible, Sendable {
    var interpreter: Interpreter
    var program: ReuseProgram
    var testDescription: String { "\(program.name) on \(interpreter.name)" }

    static let all = Interpreter.supported.flatMap { i in [ReuseProgram.reuse, .records].map { ReuseCase(interpreter: i, program: $0) } }
}

/// Bytes and blocks held by one line.
struct Held: CustomStringConvertible {
    var bytes: Double
    var blocks: Double
    var description: String { "\(Int(bytes)) B in \(Int(blocks)) blocks" }
}

enum Reuse {
    /// tracemalloc's figures per line of the program (run without the shim).
    static func tracemalloc(_ python: String, _ program: ReuseProgram, n: Int) throws -> [Int: Held] {
        let r = try run(python, ["-X", "tracemalloc=8", program.path, "--tm", "--n", "\(n)"], preload: false, timeout: 300)
        try #require(r.status == 0, "\(r.stderr)")
        var held: [Int: Held] = [:]
        for line in r.stdout.split(separator: "\n") where line.hasPrefix("TM ") {
            let p = line.split(separator: " ")
            held[Int(p[1])!] = Held(bytes: Double(p[2])!, blocks: Double(p[3])!)
        }
        return held
    }

    /// The program under the shim from its start; its at-exit snapshot and in-use rows by line.
    static func heapsnap(_ python: String, _ program: ReuseProgram, rate: Int, n: Int, _ dir: Scratch)
        throws -> (snapshot: Snapshot, rows: [Int: Row], profile: Profile)
    {
        let env = ["HEAPSNAP_DIR": dir.path, "HEAPSNAP_START": "1", "HEAPSNAP_AT_EXIT": "1", "HEAPSNAP_RATE": "\(rate)"]
        let r = try run(python, [program.path, "--n", "\(n)"], env: env)
        try #require(r.status == 0 && r.stdout.hasPrefix("done"), "\(r.stderr)")
        let files = dir.snapshots
        try #require(files.count == 1, "one at-exit snapshot expected: \(dir.entries); \(r.stderr)")
        let profile = try PythonSites.profile(files[0])
        return (try dir.read(files[0]), rows(profile, program), profile)
    }

    /// Rows of the program's own lines: those holding memory, or with `metric`, those it counts.
    static func rows(_ profile: Profile, _ program: ReuseProgram, metric: Metric = .inuseBytes) -> [Int: Row] {
        let report = Aggregator(options: AggregationOptions(groupBy: .line, metric: metric, limit: nil)).aggregate(profile)
        var rows: [Int: Row] = [:]
        for row in report.rows where row.key.file == program.path { rows[row.key.line] = row }
        return rows
    }

    /// The profile's stacks of blocks of at most `bytes` each (an in-use sample's bytes over
    /// its objects is its block's size; a stack of several, their mean).
    static func blocks(_ profile: Profile, atMost bytes: Double) -> Profile {
        var small = profile
        small.samples = profile.samples.filter {
            $0.values.inuseObjects.value > 0 && $0.values.inuseBytes.value / $0.values.inuseObjects.value <= bytes
        }
        return small
    }
}

@Suite("Python free lists")
struct PythonReuseTests {
    @Test("exact mode: every line of the program holds what tracemalloc says, within 1% in bytes and blocks; lines that keep nothing hold nothing",
          arguments: ReuseCase.all)
    func exactMatchesTracemalloc(_ c: ReuseCase) throws {
        let python = try c.interpreter.required()
        let marks = c.program.marks
        let truth = try Reuse.tracemalloc(python, c.program, n: 15000)
        let dir = try Scratch()
        let (snapshot, rows, _) = try Reuse.heapsnap(python, c.program, rate: 1, n: 15000, dir)
        let info = try #require(snapshot.python, "no PYTH record")
        #expect(info.flags.contains(.freeListsOff), "\(c.interpreter.name): free lists not off: \(info.flags)")
        #expect(info.reuseWarning == nil)

        let counted = { (line: Int) in marks[line] != "tm" && marks[line] != "startup" }
        let total = truth.filter { counted($0.key) }.values.reduce(0) { $0 + $1.bytes }
        let threshold = 0.01 * total
        let sites = marks.filter { $0.value == "site" }.keys
        try #require(sites.count >= 3 && total > 1_000_000, "\(c.program.name): sites \(sites.sorted()), \(total) B")
        for line in sites.sorted() {
            #expect((truth[line]?.bytes ?? 0) >= threshold, "site at line \(line) holds too little to compare: \(String(describing: truth[line]))")
        }
        for line in Set(truth.keys).union(rows.keys).sorted() where counted(line) {
            let theirs = truth[line] ?? Held(bytes: 0, blocks: 0)
            let values = rows[line]?.values
            let ours = Held(bytes: values?.inuseBytes.value ?? 0, blocks: values?.inuseObjects.value ?? 0)
            guard max(theirs.bytes, ours.bytes) >= threshold else { continue }
            #expect(marks[line] == "site", "\(c.testDescription): line \(line) (\(marks[line] ?? "unmarked")) holds \(ours), tracemalloc \(theirs)")
            #expect(abs(ours.bytes - theirs.bytes) <= 0.01 * theirs.bytes && abs(ours.blocks - theirs.blocks) <= 0.01 * theirs.blocks,
                    "\(c.testDescription): line \(line): heapsnap \(ours), tracemalloc \(theirs)")
        }
    }

    @Test("default rate: every site's estimate within its error bars of tracemalloc's figure; churn lines hold nothing",
          arguments: ReuseCase.all)
    func sampledMatchesTracemalloc(_ c: ReuseCase) throws {
        let python = try c.interpreter.required()
        let marks = c.program.marks
        let n = 60000
        let truth = try Reuse.tracemalloc(python, c.program, n: n)
        let dir = try Scratch()
        let (snapshot, rows, profile) = try Reuse.heapsnap(python, c.program, rate: 512 * 1024, n: n, dir)
        #expect(snapshot.python?.flags.contains(.freeListsOff) == true)
        let rate = 512.0 * 1024
        var judged = 0
        for (line, mark) in marks.sorted(by: { $0.key < $1.key }) where mark == "site" {
            let expected = try #require(truth[line], "tracemalloc has no line \(line)").bytes
            // A site expected to get fewer than 8 samples has no sample at all in one run of
            // 3,000 or more (e^-8): one run cannot judge it (Scripts/python-coverage does, over many).
            guard expected >= 8 * rate else { continue }
            judged += 1
            let estimate = rows[line]?.values.inuseBytes ?? Estimate(value: 0, variance: 0)
            // 4σ: a 95% interval misses one site in twenty by design (Scripts/python-coverage
            // measures how often it does); this asks that none is far off. σ is the spread the
            // truth gives: for blocks far below the rate, sum of s²(1-p)/p ≈ rate x bytes (an upper
            // bound for larger blocks). The estimate's own variance is small exactly when a draw
            // came out low (fewer samples), which made fair draws look 4.45σ low now and then.
            let sd = (rate * expected).squareRoot()
            #expect(abs(estimate.value - expected) <= 4 * sd && estimate.value > 0,
                    "\(c.testDescription): line \(line): \(estimate.value) ±\(estimate.standardDeviation) (truth's sd \(sd)) vs tracemalloc \(expected)")
        }
        #expect(judged >= 1, "\(c.testDescription): too few sites big enough to judge")
        // What the free lists used to charge to churn: the kept objects made in blocks churn
        // first allocated, a share of the kept memory. Counted over blocks of pymalloc's sizes
        // (at most 512 bytes), the only ones a free list passes on: the interpreter's own larger
        // blocks are charged to whichever line makes them grow, by tracemalloc too (pymalloc's
        // array of arenas, 1,536 bytes once there are 32, realloc'ed during churn, was one
        // sample there: one sample weighs the rate, 512 KiB, more than the 2% allowed).
        let objects = Reuse.rows(Reuse.blocks(profile, atMost: 512), c.program)
        let churn = marks.filter { $0.value == "churn" }.keys.reduce(0.0) { $0 + (objects[$1]?.values.inuseBytes.value ?? 0) }
        let kept = marks.filter { $0.value == "site" }.keys.reduce(0.0) { $0 + (truth[$1]?.bytes ?? 0) }
        #expect(churn <= 0.02 * kept, "\(c.testDescription): churn lines hold \(churn) of \(kept)")
    }

    @Test("lists, dicts, their subclasses and tuples nested 300,000 deep are freed without overflowing the stack, with threads, across start/stop cycles",
          arguments: Interpreter.supported)
    func deepNestingAndCycles(_ interpreter: Interpreter) throws {
        let python = try interpreter.required()
        let dir = try Scratch()
        // Without the trashcan in the dealloc wrappers (3.11, 3.12), this program overflows
        // the C stack: a segmentation fault.
        let r = try run(python, ["\(Shim.packageRoot)/Tests/Programs/python_deep.py", "3", "300000"],
                        env: ["HEAPSNAP_DIR": dir.path], timeout: 120)
        #expect(r.status == 0 && r.stdout.hasPrefix("done"), "\(interpreter.name): status \(r.status) \(r.stderr)")
        let files = dir.snapshots
        #expect(files.count == 3, "one final snapshot per stop: \(dir.entries)")
        for file in files {
            let snapshot = try dir.read(file)
            #expect(snapshot.header.flags.contains(.final))
            #expect(snapshot.python?.flags.contains(.freeListsOff) == true, "\(file): \(String(describing: snapshot.python?.flags))")
        }
    }

    @Test("objects a program's gc callback drops onto the free lists a full collection put back in use leave the live table when heapsnap empties the lists",
          arguments: Interpreter.supported)
    func drainedObjectsLeaveTheTable(_ interpreter: Interpreter) throws {
        let python = try interpreter.required()
        let program = ReuseProgram(name: "python_gc_drain.py")
        let churn = program.marks.filter { $0.value == "churn" }.keys.sorted()
        try #require(churn.count == 2)
        let dir = try Scratch()
        let r = try run(python, [program.path], env: ["HEAPSNAP_DIR": dir.path, "HEAPSNAP_RATE": "1"], timeout: 120)
        try #require(r.status == 0 && r.stdout.hasPrefix("done"), "\(interpreter.name): status \(r.status) \(r.stdout) \(r.stderr)")
        let files = dir.snapshots
        try #require(files.count == 1, "\(dir.entries)")
        let rows = Reuse.rows(try PythonSites.profile(files[0]), program, metric: .allocObjects)
        // Seen made (200 floats, 200 tuples; a few more if a collection ran in the program's
        // own loops), and none left: the lists were emptied with the guard held, whose frees
        // are not looked up, so ~100 floats and ~200 tuples stayed in the table, charged here.
        let made = churn.reduce(0.0) { $0 + (rows[$1]?.values.allocObjects.value ?? 0) }
        let held = churn.map { rows[$0]?.values.inuseObjects.value ?? 0 }
        #expect(made >= 400, "\(interpreter.name): \(made) objects seen made at lines \(churn)")
        #expect(held == [0, 0], "\(interpreter.name): lines \(churn) hold \(held) objects after the collection")
    }

    @Test("the block cache: a float-heavy session's floats carry the tag of a key of its own, in sampling and exact mode; every value computed survives, across the allocator's domains and reallocs; after a subinterpreter (3.12+) no float is tagged",
          arguments: Interpreter.supported)
    func blockCache(_ interpreter: Interpreter) throws {
        let python = try interpreter.required()
        let program = "\(Shim.packageRoot)/Tests/Programs/python_cache.py"
        var checksums: [String: Substring] = [:]
        for floats in ["200000", "30000"] {
            let plain = try run(python, [program, "3", floats], preload: false)
            try #require(plain.status == 0, "\(plain.stderr)")
            checksums[floats] = try #require(plain.stdout.split(separator: "\n").first { $0.hasPrefix("checksum") }, "\(plain.stdout)")
            let plainKeys = plain.stdout.split(separator: "\n").filter { $0.hasPrefix("key ") }
            #expect(plainKeys == ["key none", "key none", "key none"], "without the shim nothing is tagged: \(plain.stdout)")
        }
        // Sampling decides at its samples (every 512 KiB): 200,000 floats a session give it
        // a dozen; exact mode starts active, and records every block: fewer floats.
        for (rate, floats) in [("524288", "200000"), ("1", "30000")] {
            let dir = try Scratch()
            let r = try run(python, [program, "3", floats], env: ["HEAPSNAP_DIR": dir.path, "HEAPSNAP_RATE": rate], timeout: 120)
            try #require(r.status == 0 && r.stdout.contains("done"), "\(interpreter.name), rate \(rate): status \(r.status) \(r.stdout) \(r.stderr)")
            let lines = r.stdout.split(separator: "\n")
            #expect(lines.first { $0.hasPrefix("checksum") } == checksums[floats], "\(interpreter.name), rate \(rate): \(r.stdout) against \(String(describing: checksums[floats]))")
            // One key a session, each new: a float-heavy session activates the cache (sampling
            // decides at its samples; exact mode from the start), and every start draws anew.
            let keys = lines.filter { $0.hasPrefix("key ") }.map { $0.dropFirst(4) }
            #expect(keys.count == 3 && !keys.contains("none") && Set(keys).count == 3, "\(interpreter.name), rate \(rate): keys \(keys)")
            if interpreter.minor >= 12 {
                #expect(lines.contains("after subinterpreter none"), "\(interpreter.name), rate \(rate): \(r.stdout)")
            }
        }
    }

    @Test("HEAPSNAP_PYTHON_FREE_LISTS=keep leaves the free lists on: the churning line holds rec's lists, and the snapshot says so")
    func keepLeavesThemOn() throws {
        let python = try Interpreter.debian.required()
        let marks = ReuseProgram.reuse.marks
        let churn = try #require(marks.first { $0.value == "churn" }?.key)
        let rec = try #require(marks.first { $0.value == "site" }?.key)
        let dir = try Scratch()
        let env = ["HEAPSNAP_DIR": dir.path, "HEAPSNAP_START": "1", "HEAPSNAP_AT_EXIT": "1", "HEAPSNAP_RATE": "1",
                   "HEAPSNAP_PYTHON_FREE_LISTS": "keep"]
        let r = try run(python, [ReuseProgram.reuse.path, "--n", "20000"], env: env)
        try #require(r.status == 0, "\(r.stderr)")
        let file = try #require(dir.snapshots.first)
        let snapshot = try dir.read(file)
        #expect(snapshot.python?.flags.contains(.freeListsOff) == false)
        let profile = try PythonSites.profile(file)
        #expect(profile.warnings.contains { $0.contains("HEAPSNAP_PYTHON_FREE_LISTS=keep") }, "\(profile.warnings)")
        let rows = Aggregator(options: AggregationOptions(groupBy: .line, limit: nil)).aggregate(profile).rows
            .filter { $0.key.file == ReuseProgram.reuse.path }
        let churned = rows.first { $0.key.line == churn }?.values.inuseObjects.value ?? 0
        let kept = rows.first { $0.key.line == rec }?.values.inuseObjects.value ?? 0
        // The lists rec keeps came from churn's dead ones: charged to churn, as before this shim kept them empty.
        #expect(churned > 15000 && kept < 65000, "churn \(churned), rec \(kept) blocks")

        let bad = try run(python, ["-c", "pass"], env: ["HEAPSNAP_PYTHON_FREE_LISTS": "sometimes"])
        #expect(bad.status == 0 && bad.stderr.contains("HEAPSNAP_PYTHON_FREE_LISTS") && bad.stderr.split(separator: "\n").count == 1, "\(bad.stderr)")
    }
}
