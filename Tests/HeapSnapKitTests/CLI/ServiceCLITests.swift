// top, diff, flamegraph and export over directories of a service's snapshots,
// through the real binary: the newest snapshot of each process merged, older
// ones and exited processes left out with a note, damaged files listed and
// passed over, several programs refused unless one is picked, per-process
// columns, and a diff of two moments.

import Foundation
import Testing
@testable import HeapSnapKit

@Suite struct ServiceCLITests {
    /// Fixture's in-use total at scale 1 (its four stacks).
    static let unit = 6_000_000.0

    /// A snapshot of `pid` taken `second` s after the fixture's start, in use `scale` × `unit`.
    static func snapshot(pid: UInt32, seq: UInt32, second: Double, scale: Double,
                         commandLine: [String] = [Fixture.appPath, "--port", "8080"]) -> Snapshot {
        var s = Fixture.snapshot(scale: scale)
        s.header.pid = pid
        s.header.seq = seq
        s.header.flags = [.periodic]
        s.header.timeNanoseconds = s.header.startNanoseconds + UInt64(second * 1e9)
        s.header.commandLine = commandLine
        return s
    }

    static func write(_ s: Snapshot, in dir: String) throws -> String {
        let path = dir + "/heapsnap.\(s.header.pid).\(s.header.seq).heapsnap"
        try SnapshotWriter.write(s, to: path)
        return path
    }

    /// Workers 101 (two snapshots: 1× at 1900 s, 2× at 2000 s) and 102 (0.5× at 1995 s),
    /// and 103, which exited long before (1× at 10 s; the slack is 3 × 100 s).
    static func service(_ tag: String) throws -> (dir: String, older: String, stale: String) {
        let dir = try Toolbox.temporaryDirectory(tag)
        let older = try write(snapshot(pid: 101, seq: 0, second: 1900, scale: 1), in: dir)
        _ = try write(snapshot(pid: 101, seq: 1, second: 2000, scale: 2), in: dir)
        _ = try write(snapshot(pid: 102, seq: 0, second: 1995, scale: 0.5), in: dir)
        let stale = try write(snapshot(pid: 103, seq: 0, second: 10, scale: 1), in: dir)
        return (dir, older, stale)
    }

    static func json(_ arguments: [String]) throws -> (object: [String: Any], stderr: String) {
        let result = try Toolbox.run(Toolbox.heapsnap, arguments + ["--format", "json"])
        #expect(result.status == 0, "\(arguments): \(result.stderr)")
        return (try #require(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any]), result.stderr)
    }

    static func value(_ object: [String: Any], _ key: String) -> Double? {
        ((object[key] as? [String: Any])?["inuseBytes"] as? [String: Any])?["value"] as? Double
    }

    @Test func topMergesTheNewestOfEachProcessAndLeavesOutExitedOnes() throws {
        let (dir, older, stale) = try Self.service("svc-top")
        let (object, stderr) = try Self.json(["top", dir])
        // 2× (101's newest) + 0.5× (102): not 101's older snapshot, not exited 103.
        #expect(Self.value(object, "total") == 2.5 * Self.unit)
        let lines = stderr.split(separator: "\n").map(String.init)
        // The directory's older snapshots are its history, not worth a note; the exited process is.
        #expect(lines.count == 1, "\(stderr)")
        #expect(lines.contains { $0.contains("left out 1 process") && $0.contains("pid 103 (\(stale))") && $0.contains("name their files") })
        // An older snapshot named on the command line is passed over with a note naming it.
        let newer = (older as NSString).deletingLastPathComponent + "/heapsnap.101.1.heapsnap"
        let named = try Self.json(["top", older, newer])
        #expect(Self.value(named.object, "total") == 2 * Self.unit)
        #expect(named.stderr.split(separator: "\n").contains { $0.contains("passed over 1 older named") && $0.hasSuffix(older) }, "\(named.stderr)")
        let table = try Toolbox.run(Toolbox.heapsnap, ["top", dir])
        #expect(table.stdout.contains("2 processes of server merged, the newest snapshot of each"), "\(table.stdout)")
        // Naming the exited process's file includes it.
        #expect(Self.value(try Self.json(["top", dir, stale]).object, "total") == 3.5 * Self.unit)
        // One file is that file, as before.
        #expect(Self.value(try Self.json(["top", older]).object, "total") == Self.unit)
    }

    @Test func damagedFilesAreListedAndTheRestIsUsed() throws {
        let (dir, _, _) = try Self.service("svc-damaged")
        try Data("not a snapshot".utf8).write(to: URL(fileURLWithPath: dir + "/heapsnap.999.0.heapsnap"))
        let (object, stderr) = try Self.json(["top", dir])
        #expect(Self.value(object, "total") == 2.5 * Self.unit)
        let damaged = stderr.split(separator: "\n").filter { $0.contains("heapsnap.999.0.heapsnap") }
        #expect(damaged.count == 1 && damaged[0].contains("not a heapsnap snapshot"), "\(stderr)")
    }

    @Test func twoProgramsAreRefusedUnlessOneIsPicked() throws {
        let (dir, _, _) = try Self.service("svc-programs")
        _ = try Self.write(Self.snapshot(pid: 201, seq: 0, second: 2000, scale: 3, commandLine: ["/usr/bin/python3", "worker.py"]), in: dir)
        let refused = try Toolbox.run(Toolbox.heapsnap, ["top", dir])
        #expect(refused.status != 0)
        let lines = refused.stderr.split(separator: "\n")
        #expect(lines.count == 1 && lines[0].contains("2 programs") && lines[0].contains("worker.py") && lines[0].contains("server ("),
                "\(refused.stderr)")
        #expect(Self.value(try Self.json(["top", dir, "--program", "worker.py"]).object, "total") == 3 * Self.unit)
        #expect(Self.value(try Self.json(["top", dir, "--program", "server"]).object, "total") == 2.5 * Self.unit)
    }

    @Test func perProcessColumnsAddUpToEachRow() throws {
        let (dir, _, _) = try Self.service("svc-split")
        let (object, _) = try Self.json(["top", dir, "--per-process", "--limit", "0"])
        let processes = try #require(object["processes"] as? [String: Any])
        let columns = try #require(processes["columns"] as? [[String: Any]])
        #expect(columns.compactMap { ($0["pid"] as? NSNumber)?.intValue } == [101, 102])
        #expect(columns.compactMap { Self.value($0, "total") } == [2 * Self.unit, 0.5 * Self.unit])
        let rows = try #require(object["rows"] as? [[String: Any]])
        #expect(rows.count >= 2)
        for row in rows {
            let cells = try #require(row["processes"] as? [[String: Any]]).compactMap { $0["value"] as? Double }
            let total = try #require(Self.value(row, "values"))
            #expect(cells.count == 2 && abs(cells.reduce(0, +) - total) < 1e-6 && abs(cells[0] - 4 * cells[1]) < 1e-6, "\(row)")
        }
        let table = try Toolbox.run(Toolbox.heapsnap, ["top", dir, "--per-process", "--width", "200"]).stdout
        #expect(table.contains("pid 101") && table.contains("pid 102") && table.contains("11.4 MiB"), "\(table)")
        let csv = try Toolbox.run(Toolbox.heapsnap, ["top", dir, "--per-process", "--format", "csv"]).stdout
        #expect(csv.split(separator: "\n")[0].hasSuffix("pid_101_inuse_bytes,pid_102_inuse_bytes"), "\(csv)")
    }

    /// Ten processes holding 1× … 10×: seven columns for the biggest, the other three summed.
    @Test func perProcessColumnsStopAtEightWithOthers() throws {
        let dir = try Toolbox.temporaryDirectory("svc-others")
        for k in 1...10 { _ = try Self.write(Self.snapshot(pid: UInt32(300 + k), seq: 0, second: 100, scale: Double(k)), in: dir) }
        let (object, _) = try Self.json(["top", dir, "--per-process"])
        #expect(Self.value(object, "total") == 55 * Self.unit)
        let processes = try #require(object["processes"] as? [String: Any])
        let columns = try #require(processes["columns"] as? [[String: Any]]), others = try #require(processes["others"] as? [[String: Any]])
        #expect(columns.compactMap { ($0["pid"] as? NSNumber)?.intValue } == [310, 309, 308, 307, 306, 305, 304])
        #expect(Set(others.compactMap { ($0["pid"] as? NSNumber)?.intValue }) == [301, 302, 303])
        for row in try #require(object["rows"] as? [[String: Any]]) {
            let cells = try #require(row["processes"] as? [[String: Any]]).compactMap { $0["value"] as? Double }
            let total = try #require(Self.value(row, "values"))
            // 10k … 4k parts of 55, then others 1 + 2 + 3.
            #expect(cells.count == 8 && abs(cells[7] - total * 6 / 55) < 1e-6 && abs(cells.reduce(0, +) - total) < 1e-6, "\(row)")
        }
    }

    @Test func timelineReadsADirectory() throws {
        // Two processes of one program, three snapshots each with their series, and a damaged file.
        let dir = try Toolbox.temporaryDirectory("svc-timeline")
        for pid: UInt32 in [4242, 4343] {
            for n in 0..<3 {
                var s = TimelineFixture.snapshot(n)
                s.header.pid = pid
                _ = try Self.write(s, in: dir)
            }
        }
        try Data("not a snapshot".utf8).write(to: URL(fileURLWithPath: dir + "/heapsnap.999.0.heapsnap"))
        let result = try Toolbox.run(Toolbox.heapsnap, ["timeline", dir, "--format", "csv", "-o", "-"])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stderr.split(separator: "\n").filter { $0.contains("heapsnap.999.0.heapsnap") }.count == 1, "\(result.stderr)")
        let snapshots = result.stdout.split(separator: "\n").filter { $0.contains(",snapshot,") }
        #expect(snapshots.filter { $0.hasPrefix("4242,") }.count == 3 && snapshots.filter { $0.hasPrefix("4343,") }.count == 3,
                "\(result.stdout)")
    }

    @Test func diffComparesTheServiceAtTwoMoments() throws {
        let before = try Toolbox.temporaryDirectory("svc-before")
        _ = try Self.write(Self.snapshot(pid: 101, seq: 0, second: 100, scale: 1), in: before)
        _ = try Self.write(Self.snapshot(pid: 102, seq: 0, second: 100, scale: 1), in: before)
        let (after, _, _) = try Self.service("svc-after")
        let (object, _) = try Self.json(["diff", before, after])
        #expect(Self.value(object, "oldTotal") == 2 * Self.unit)
        #expect(Self.value(object, "newTotal") == 2.5 * Self.unit)
        // One directory: each process's first snapshot against its newest (101: 1× → 2×, 102: 0.5× → 0.5×).
        let (growth, _) = try Self.json(["diff", after])
        #expect(Self.value(growth, "oldTotal") == 1.5 * Self.unit)
        #expect(Self.value(growth, "newTotal") == 2.5 * Self.unit)
        let file = try Toolbox.run(Toolbox.heapsnap, ["diff", after + "/heapsnap.101.0.heapsnap"])
        #expect(file.status != 0 && file.stderr.contains("must be a directory"), "\(file.stderr)")
    }

    @Test func flamegraphAndExportReadDirectories() throws {
        let (dir, _, _) = try Self.service("svc-export")
        let folded = try Toolbox.run(Toolbox.heapsnap, ["export", dir, "--format", "folded", "-o", "-"])
        #expect(folded.status == 0, "\(folded.stderr)")
        let sum = folded.stdout.split(separator: "\n").compactMap { $0.split(separator: " ").last.flatMap { Double($0) } }.reduce(0, +)
        #expect(sum == 2.5 * Self.unit)
        let svg = dir + "/service.svg"
        let drawn = try Toolbox.run(Toolbox.heapsnap, ["flamegraph", dir, "-o", svg])
        #expect(drawn.status == 0, "\(drawn.stderr)")
        #expect(try String(contentsOfFile: svg, encoding: .utf8).contains("total 14.3 MiB"))
    }
}
