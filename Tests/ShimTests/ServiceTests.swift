// Services of many processes under the real shim and the real CLI: one
// command for a pre-fork server's master and workers (`heapsnap start|dump|stop
// --tree`), workers forked while their master samples sampling on their own
// (Tests/Programs/prefork.c), several pids with some refused, and the
// retention of periodic snapshots (HEAPSNAP_KEEP).

import Foundation
import HeapSnapKit
import HeapSnapTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

@Suite("Services")
struct ServiceTests {
    static func cli(_ arguments: [String]) throws -> RunResult {
        try Background.run(heapsnapTool(), arguments, preload: false, timeout: 60)
    }

    /// The `pid` of a "PREFIX... PID" line: the field at `index`.
    static func pid(_ host: Background, _ prefix: String, field index: Int) throws -> Int32 {
        let line = try host.line(prefix)
        return try #require(Int32(line.split(separator: " ")[index]), "\(line)")
    }

    static func lines(_ text: String) -> [String] { text.split(separator: "\n").map(String.init) }

    @Test("--tree reaches a pre-fork master and its workers; workers forked while it samples sample, each only its own blocks")
    func preforkTree() throws {
        let dir = try Scratch()
        let host = try Background(try Programs.shared.path("prefork.c"), [],
                                  env: ["HEAPSNAP_DIR": dir.path, "HEAPSNAP_RATE": "1", "HEAPSNAP_INTERVAL": "0.2"],
                                  interactive: true)
        let master = try Self.pid(host, "master ", field: 1)
        let sites = host.sites       // printed before the master line
        try #require(sites["worker"] != nil && sites["master"] != nil, "\(host.stdout)")
        var workers = [try Self.pid(host, "worker 0 ", field: 2), try Self.pid(host, "worker 1 ", field: 2)]
        try #require(Background.waitUntilHandled(master, while: { host.isRunning }))
        // An absence has no moment to wait for: one and a half intervals, in which a sampling
        // process would have written a periodic snapshot.
        usleep(300_000)
        #expect(dir.entries.isEmpty, "written before start: \(dir.entries)")

        let start = try Self.cli(["start", "--tree", String(master)])
        #expect(start.status == 0, "\(start.stderr)")
        #expect(Set(Self.lines(start.stderr)) == Set(([master] + workers).map { "heapsnap: sampling started in process \($0)" }),
                "\(start.stderr)")

        func files(_ pid: Int32) -> [String] { dir.snapshots.filter { $0.contains("/heapsnap.\(pid).") } }
        func waitForFiles(_ pids: [Int32]) { Wait.poll(every: 0.02) { pids.allSatisfy { files($0).count >= 2 } } }
        waitForFiles([workers[0]])
        // Forked after sampling started, and nobody signals them: a new worker, and a
        // replacement for worker 0 (a recycled worker).
        host.send("spawn\n")
        workers.append(try Self.pid(host, "worker 2 ", field: 2))
        host.send("retire 0\n")
        let replacement = try Self.pid(host, "worker 3 ", field: 2)
        #expect(try host.line("worker 3 ").hasSuffix(" replaces 0"))
        workers.append(replacement)
        waitForFiles([workers[2], replacement])
        #expect(files(workers[2]).count >= 2 && files(replacement).count >= 2, "\(dir.entries); \(host.stderr)")

        let live = [master, workers[1], workers[2], replacement]
        let dump = try Self.cli(["dump", "--tree", String(master)])
        #expect(dump.status == 0, "\(dump.stderr)")
        let dumped = Self.lines(dump.stdout)
        #expect(dumped.count == 4 && dump.stderr.isEmpty, "\(dump.stdout)\(dump.stderr)")
        for path in dumped {
            let snap = try SnapshotReader.read(path: path)
            #expect(live.contains(Int32(snap.header.pid)) && path.contains("/heapsnap.\(snap.header.pid)."))
            #expect(!snap.header.flags.contains(.periodic) && !snap.header.flags.contains(.final), "\(path): \(snap.header.flags)")
        }
        let stop = try Self.cli(["stop", "--tree", String(master)])
        #expect(stop.status == 0, "\(stop.stderr)")
        let stopped = try Self.lines(stop.stdout).map { try SnapshotReader.read(path: $0) }
        #expect(Set(stopped.map { Int32($0.header.pid) }) == Set(live) && stopped.allSatisfy { $0.header.flags.contains(.final) })

        // Forked after stop: idle, nothing written.
        host.send("spawn\n")
        let idle = try Self.pid(host, "worker 4 ", field: 2)
        // Four intervals in which a sampling worker would have written periodic snapshots,
        // allocating all along: no writer thread (none is made until a command comes) and
        // nothing written.
        usleep(800_000)
        #expect(!Background.hasWriter(idle), "worker 4 made a writer thread with no command")
        #expect(files(idle).isEmpty, "a worker forked while its master was idle wrote \(files(idle))")
        host.closeInput()
        #expect(try host.wait() == 0, "\(host.stderr)")
        #expect(host.stdout.contains("workers exited, 0 bad"))

        // Every worker's files: its own pid, its master's child, session 1, and only its own
        // blocks: each in-use sample at site worker is 1000 + 16 K bytes, none of the master's.
        for (k, worker) in workers.enumerated() {
            let mine = files(worker)
            #expect(mine.count >= 2, "worker \(k) wrote \(mine.count) files")
            for path in mine {
                let snap = try SnapshotReader.read(path: path)
                #expect(snap.header.pid == UInt32(worker) && snap.header.ppid == UInt32(master) && snap.header.session == 1)
                let own = snap.site(sites["worker"])
                #expect(own.inuse.objects.value > 0, "worker \(k): \(path)")
                #expect(own.inuse.bytes.value == own.inuse.objects.value * Double(1000 + 16 * k), "worker \(k): \(path) holds others' blocks")
                #expect(snap.site(sites["master"]).alloc.samples == 0, "worker \(k) has the master's samples: \(path)")
            }
            // Those forked after start were never signalled: their periodic snapshots start at seq 0.
            if k >= 2 {
                #expect(try SnapshotReader.read(path: mine[0]).header.flags == [.exact, .periodic])
            }
        }
        for path in files(master) {
            #expect(try SnapshotReader.read(path: path).site(sites["worker"]).alloc.samples == 0, "the master has a worker's samples")
        }
        // top over the directory merges the service: the newest snapshot of the master and of each of its 4 workers.
        let top = try Self.cli(["top", dir.path])
        #expect(top.status == 0 && top.stdout.hasPrefix("heapsnap top  5 processes of "), "\(top.stdout)\(top.stderr)")
    }

    @Test("several pids: the one with the shim is done, one without and a dead one are refused, exit 1; --tree skips those without")
    func manyTargets() throws {
        let dir = try Scratch()
        let profiled = try Background("/bin/sleep", ["600"], env: ["HEAPSNAP_DIR": dir.path])
        let plain = try Background("/bin/sleep", ["600"], preload: false)
        let gone = try Background("/bin/true", [], preload: false)
        _ = try gone.wait()
        try #require(Background.waitUntilHandled(profiled.pid, while: { profiled.isRunning }))
        let pids = [profiled.pid, plain.pid, gone.pid].map(String.init)

        let start = try Self.cli(["start"] + pids)
        #expect(start.status == 1, "\(start.stderr)")
        #expect(Self.lines(start.stderr) == [
            "heapsnap: sampling started in process \(profiled.pid)",
            "heapsnap: " + HeapSnapError.notProfiled(pid: plain.pid).description,
            "heapsnap: process \(gone.pid): no such process",
        ], "\(start.stderr)")
        let dump = try Self.cli(["dump"] + pids)
        #expect(dump.status == 1)
        let path = dump.stdout.trimmingCharacters(in: .newlines)
        #expect(path.hasPrefix("\(dir.path)/heapsnap.\(profiled.pid).") && !path.contains("\n"), "\(dump.stdout)")
        #expect(Self.lines(dump.stderr).count == 2, "\(dump.stderr)")
        #expect(profiled.isRunning && plain.isRunning)

        // A tree: a shell without the shim, a child without it and one with it.
        let shell = try Background("/bin/sh", ["-c", "/bin/sleep 600 & LD_PRELOAD=\(Shim.library) HEAPSNAP_DIR=\(dir.path) /bin/sleep 601; wait"],
                                   preload: false)
        func mapsShim(_ pid: Int32) -> Bool { (try? TargetProcess.inspect(pid: pid)) != nil }
        var members: [Int32] = []
        Wait.poll {      // until both children have exec'd
            members = ProcessTree.members(of: shell.pid)
            return members.count >= 3 && members.contains(where: mapsShim)
        }
        try #require(members.count == 3 && members[0] == shell.pid, "\(members)")
        let withShim = try #require(members.first(where: mapsShim))
        try #require(Background.waitUntilHandled(withShim, while: { shell.isRunning }))
        let tree = try Self.cli(["start", "--tree", String(shell.pid)])
        #expect(tree.status == 0, "\(tree.stderr)")
        let said = Self.lines(tree.stderr)
        #expect(said.count == 3 && said.contains("heapsnap: sampling started in process \(withShim)"), "\(tree.stderr)")
        #expect(said.filter { $0.hasSuffix(": skipped: libheapsnap_preload.so is not loaded") }.count == 2, "\(tree.stderr)")
        #expect(said.contains("heapsnap: process \(shell.pid) (sh): skipped: libheapsnap_preload.so is not loaded"), "\(tree.stderr)")
        let stop = try Self.cli(["stop", "--tree", String(shell.pid)])
        #expect(stop.status == 0 && stop.stdout.hasPrefix("\(dir.path)/heapsnap.\(withShim)."), "\(stop.stdout)\(stop.stderr)")

        // A tree with no process that has the shim: refused.
        let none = try Self.cli(["dump", "--tree", String(plain.pid)])
        #expect(none.status == 1)
        #expect(Self.lines(none.stderr).last == "heapsnap: process \(plain.pid): no process of its tree has libheapsnap_preload.so loaded",
                "\(none.stderr)")
        #expect(plain.isRunning && shell.isRunning)
        kill(shell.pid, SIGKILL)
        for pid in members where pid != shell.pid { kill(pid, SIGKILL) }
    }

    @Test("retention: HEAPSNAP_KEEP=6 at 50 ms: bounded, the first kept, requested and final kept, spacing grows with age")
    func retention() throws {
        let dir = try Scratch()
        let keep = 6
        let host = try Background("/bin/sleep", ["600"],
                                  env: ["HEAPSNAP_DIR": dir.path, "HEAPSNAP_START": "1", "HEAPSNAP_INTERVAL": "0.05",
                                        "HEAPSNAP_KEEP": String(keep)])
        try #require(host.waitUntilHandled())
        var periodic: [String: Bool] = [:]       // file name -> PERIODIC, read once (a name is never reused)
        func isPeriodic(_ path: String) -> Bool {
            if let known = periodic[path] { return known }
            // Unreadable: deleted since the listing, and only periodic snapshots are deleted.
            let flag = (try? SnapshotReader.read(path: path))?.header.flags.contains(.periodic) ?? true
            periodic[path] = flag
            return flag
        }
        var most = 0
        func look() -> [String] {
            let now = dir.snapshots
            most = max(most, now.filter(isPeriodic).count)
            return now
        }
        /// A snapshot signal; the new file that is not periodic.
        func request(_ command: Command) throws -> String {
            let before = Set(look())
            kill(host.pid, command.signal)
            return try Wait.for("a snapshot after \(command): \(dir.entries); \(host.stderr)", every: 0.01) {
                look().first { !before.contains($0) && !isPeriodic($0) }
            }
        }
        func written() -> UInt64 {
            look().compactMap { try? SnapshotReader.read(path: $0).retention?.written }.max() ?? 0
        }
        var requested: [String] = []
        for count in [15, 30] {
            try Wait.until("\(count) periodic snapshots written: \(dir.entries)", every: 0.02) { written() >= count }
            requested.append(try request(.snapshot))
        }
        try Wait.until("50 periodic snapshots written: \(dir.entries)", every: 0.02) { written() >= 50 }
        let final = try request(.stop)
        kill(host.pid, SIGKILL)
        _ = try? host.wait()

        let files = try dir.snapshots.map { ($0, try dir.read($0)) }
        let kept = files.filter { $0.1.header.flags.contains(.periodic) }.sorted { $0.1.header.seq < $1.1.header.seq }
        let last = try #require(try dir.read(final).retention, "the final snapshot has no THIN record")
        #expect(last.written >= 50 && last.keep == UInt32(keep) && last.kept == UInt32(keep), "\(last)")
        #expect(last.thinned == last.written - UInt64(keep) && last.lost == 0, "\(last)")
        #expect(kept.count == keep && most <= keep, "kept \(kept.count), most seen at once \(most)")
        // Requested and final snapshots survive; the first periodic one (seq 0) is the oldest kept.
        for path in requested + [final] { #expect(files.contains { $0.0 == path }, "\(path) was deleted") }
        #expect(kept.first?.1.header.seq == 0 && last.oldestSeq == 0)
        #expect(files.count == keep + requested.count + 1, "\(dir.entries)")
        // Spacing grows with age: every gap at least about as wide as the next newer one
        // (the interval's jitter aside), the oldest many times the newest.
        let times = kept.map { Double($0.1.header.timeNanoseconds) / 1e9 }
        let gaps = zip(times.dropFirst(), times).map { $0 - $1 }
        for (older, newer) in zip(gaps, gaps.dropFirst()) {
            #expect(older + 0.03 >= newer, "gaps \(gaps)")
        }
        #expect(gaps.first! >= 4 * gaps.last!, "gaps \(gaps)")
        #expect(Double(last.widestGapNanoseconds) / 1e9 >= gaps.max()! - 0.001, "\(last)")
        // info says it.
        let info = try Self.cli(["info", final])
        #expect(info.stdout.contains("HEAPSNAP_KEEP=6: 6 of \(last.written) periodic snapshots kept, \(last.thinned) thinned; the oldest kept #0"),
                "\(info.stdout)")
    }
}
