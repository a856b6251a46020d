import Foundation
import Testing
@testable import HeapSnapKit

@Suite struct SnapshotSeriesTests {
    /// A snapshot of `pid` of `executable` taken `second` s into a run that started at `start` s.
    func snapshot(pid: UInt32, seq: UInt32, second: Double, start: Double = 0, executable: String = "/usr/bin/python3.11",
                  commandLine: [String] = ["/srv/venv/bin/python3", "/srv/venv/bin/gunicorn", "-w", "4", "app:app"]) -> Snapshot {
        var s = sampleSnapshot()
        s.sources = []
        s.header.flags = [.periodic]
        s.header.pid = pid
        s.header.seq = seq
        s.header.startNanoseconds = UInt64((1000 + start) * 1e9)
        s.header.timeNanoseconds = UInt64((1000 + second) * 1e9)
        s.header.executable = executable
        s.header.commandLine = commandLine
        return s
    }

    @Test func groupsRunsByProcessAndOrdersThemInTime() throws {
        let dir = try Toolbox.temporaryDirectory("series")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        // Two workers; pid 11 restarted sampling at 5 s (a second run); files written out of time order.
        try SnapshotWriter.write(snapshot(pid: 11, seq: 1, second: 2), to: dir + "/heapsnap.11.1.heapsnap")
        try SnapshotWriter.write(snapshot(pid: 11, seq: 0, second: 1), to: dir + "/heapsnap.11.0.heapsnap")
        try SnapshotWriter.write(snapshot(pid: 11, seq: 2, second: 6, start: 5), to: dir + "/heapsnap.11.2.heapsnap")
        try SnapshotWriter.write(snapshot(pid: 12, seq: 0, second: 1.5), to: dir + "/heapsnap.12.0.heapsnap")
        // Not heapsnap files by name: passed over without a word.
        try Data("notes".utf8).write(to: URL(fileURLWithPath: dir + "/README.txt"))
        try Data("partial".utf8).write(to: URL(fileURLWithPath: dir + "/.heapsnap.11.3.tmp.abcdef"))
        // Named like snapshots but unusable: one problem each.
        try Data("garbage, not a snapshot".utf8).write(to: URL(fileURLWithPath: dir + "/heapsnap.99.0.heapsnap"))
        var newer = SnapshotWriter.encode(snapshot(pid: 13, seq: 0, second: 1))
        newer[8] = 2  // major version 2
        try Data(newer).write(to: URL(fileURLWithPath: dir + "/heapsnap.13.0.heapsnap"))
        var merged = snapshot(pid: 14, seq: 0, second: 1)
        merged.header.flags = [.merged]
        try SnapshotWriter.write(merged, to: dir + "/fleet.heapsnap")

        let series = try SnapshotSeries.scan([dir])
        #expect(series.problems.count == 3)
        #expect(series.problems.contains(.notASnapshot(file: dir + "/heapsnap.99.0.heapsnap")))
        #expect(series.problems.contains(.unsupportedVersion(file: dir + "/heapsnap.13.0.heapsnap", major: 2)))
        #expect(series.problems.contains { $0.description.hasPrefix(dir + "/fleet.heapsnap: ") })
        let program = try series.program(named: nil)
        #expect(program.name == "gunicorn")
        #expect(program.runs.map(\.pid) == [11, 12, 11])
        #expect(program.runs[0].entries.map(\.header.seq) == [0, 1])
        #expect(program.runs[2].entries.map(\.header.seq) == [2])
        #expect(program.entries.map(\.path).map { ($0 as NSString).lastPathComponent } ==
                ["heapsnap.11.0.heapsnap", "heapsnap.12.0.heapsnap", "heapsnap.11.1.heapsnap", "heapsnap.11.2.heapsnap"])
    }

    @Test func severalProgramsNeedAChoice() throws {
        let dir = try Toolbox.temporaryDirectory("series-programs")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try SnapshotWriter.write(snapshot(pid: 11, seq: 0, second: 1), to: dir + "/heapsnap.11.0.heapsnap")
        try SnapshotWriter.write(snapshot(pid: 21, seq: 0, second: 1, commandLine: ["python3", "worker.py"]), to: dir + "/heapsnap.21.0.heapsnap")
        try SnapshotWriter.write(snapshot(pid: 31, seq: 0, second: 1, executable: "/usr/bin/redis-server", commandLine: ["redis-server *:6379"]),
                                 to: dir + "/heapsnap.31.0.heapsnap")
        let series = try SnapshotSeries.scan([dir])
        #expect(series.programs.count == 3)
        #expect(throws: HeapSnapError.self) { try series.program(named: nil) }
        do {
            _ = try series.program(named: nil)
        } catch {
            #expect(error.description.contains("gunicorn (1 process, "))
            #expect(error.description.contains("worker.py (1 process, "))
            #expect(error.description.contains("redis-server (1 process, "))
            #expect(error.description.hasSuffix("pick one with --program NAME"))
        }
        #expect(try series.program(named: "worker.py").runs.map(\.pid) == [21])
        #expect(try series.program(named: "/usr/bin/redis-server").runs.map(\.pid) == [31])
        #expect(throws: HeapSnapError.noSuchProgram(name: "nginx", programs: series.programs.map(\.name))) { try series.program(named: "nginx") }
        #expect(throws: HeapSnapError.unreadable(file: dir + "/missing", reason: "No such file or directory")) {
            try SnapshotSeries.scan([dir + "/missing"])
        }
        #expect(throws: HeapSnapError.noSnapshots(arguments: [dir + "/none"])) {
            try FileManager.default.createDirectory(atPath: dir + "/none", withIntermediateDirectories: false)
            return try SnapshotSeries.scan([dir + "/none"]).program(named: nil)
        }
    }

    @Test func readHeaderMatchesTheFullRead() throws {
        let dir = try Toolbox.temporaryDirectory("series-header")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let s = snapshot(pid: 11, seq: 4, second: 3)
        try SnapshotWriter.write(s, to: dir + "/a.heapsnap")
        #expect(try SnapshotReader.readHeader(path: dir + "/a.heapsnap") == SnapshotReader.read(path: dir + "/a.heapsnap").header)
        // Cut inside PROC: a one-line error naming the file.
        let bytes = SnapshotWriter.encode(s)
        try Data(bytes.prefix(40)).write(to: URL(fileURLWithPath: dir + "/cut.heapsnap"))
        #expect(throws: HeapSnapError.self) { try SnapshotReader.readHeader(path: dir + "/cut.heapsnap") }
    }
}
