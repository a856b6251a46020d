// The executable's peak and timeline commands on fixture files: values that
// come out, and one-line errors naming the file for input they cannot use.

import Foundation
import Testing
@testable import HeapSnapKit

@Suite struct PeakTimelineCLITests {
    /// The three timeline fixture files written to a fresh directory.
    static func files() throws -> (dir: String, paths: [String]) {
        let dir = try Toolbox.temporaryDirectory("cli-peak")
        var paths: [String] = []
        for n in 0..<3 {
            let path = dir + "/heapsnap.4242.\(n).heapsnap"
            try SnapshotWriter.write(TimelineFixture.snapshot(n), to: path)
            paths.append(path)
        }
        return (dir, paths)
    }

    static func json(_ arguments: [String]) throws -> [String: Any] {
        let result = try Toolbox.run(Toolbox.heapsnap, arguments)
        #expect(result.status == 0, "\(arguments): \(result.stderr)")
        return try #require(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any])
    }

    static func value(_ object: [String: Any], _ key: String, _ metric: String = "inuseBytes") -> Double? {
        ((object[key] as? [String: Any])?[metric] as? [String: Any])?["value"] as? Double
    }

    @Test func topAtPeakReadsThePeak() throws {
        let (_, paths) = try Self.files()
        for arguments in [["top", "--at", "peak", paths[2]], ["top", paths[2] + "@peak"]] {
            let object = try Self.json(arguments + ["--format", "json"])
            #expect(Self.value(object, "total") == 8_500_000, "\(arguments)")
            let snapshot = try #require(object["snapshot"] as? [String: Any])
            #expect((snapshot["atPeakNs"] as? NSNumber)?.uint64Value == TimelineFixture.peakTime)
            let rows = try #require(object["rows"] as? [[String: Any]])
            #expect(rows.compactMap { ($0["values"] as? [String: Any]).flatMap { (($0["inuseBytes"] as? [String: Any])?["value"] as? Double) } }
                    == [6_000_000, 2_000_000, 500_000])
        }
        let table = try Toolbox.run(Toolbox.heapsnap, ["top", "--at", "peak", paths[2]]).stdout
        #expect(table.contains("the peak at 2023-11-14 22:13:23.500 UTC, 3.50 s after start"), "\(table)")
        // Without --at: the snapshot itself.
        #expect(Self.value(try Self.json(["top", paths[2], "--format", "json"]), "total") == 3_000_000)
    }

    /// The peak goes through the same filter stage: without symbols here, stack 0's site is libfoo (6,000,000 at the peak).
    @Test func filtersApplyAtThePeak() throws {
        let (dir, paths) = try Self.files()
        let object = try Self.json(["top", paths[2] + "@peak", "--exclude", "*libfoo*", "--format", "json"])
        #expect(Self.value(object, "total") == 2_500_000)
        let folded = try Toolbox.run(Toolbox.heapsnap, ["export", paths[2], "--at", "peak", "--exclude", "*libfoo*", "--format", "folded", "-o", "-"])
        let sum = folded.stdout.split(separator: "\n").compactMap { $0.split(separator: " ").last.flatMap { Double($0) } }.reduce(0, +)
        #expect(sum == 2_500_000)
        let svg = dir + "/f.svg"
        #expect(try Toolbox.run(Toolbox.heapsnap, ["flamegraph", paths[2], "--at", "peak", "--exclude", "*libfoo*", "-o", svg]).status == 0)
        #expect(try String(contentsOfFile: svg, encoding: .utf8).contains("total 2.38 MiB"))
    }

    @Test func diffAgainstThePeak() throws {
        let (_, paths) = try Self.files()
        let object = try Self.json(["diff", paths[2] + "@peak", paths[2], "--format", "json"])
        #expect(Self.value(object, "oldTotal") == 8_500_000)
        #expect(Self.value(object, "newTotal") == 3_000_000)
        #expect(Self.value(object, "total") == -5_500_000)
    }

    @Test func flamegraphAndExportAtPeak() throws {
        let (dir, paths) = try Self.files()
        let svg = dir + "/peak.svg"
        let result = try Toolbox.run(Toolbox.heapsnap, ["flamegraph", paths[2], "--at", "peak", "-o", svg])
        #expect(result.status == 0, "\(result.stderr)")
        let text = try String(contentsOfFile: svg, encoding: .utf8)
        #expect(text.contains("Memory at the peak: inuse bytes"))
        #expect(text.contains("peak at 2023-11-14 22:13:23.500 UTC · total 8.11 MiB"))
        let diff = try Toolbox.run(Toolbox.heapsnap, ["flamegraph", paths[2], "--diff", paths[2] + "@peak", "-o", svg])
        #expect(diff.status == 0, "\(diff.stderr)")
        #expect(try String(contentsOfFile: svg, encoding: .utf8).contains("8.11 MiB → 2.86 MiB"))
        let folded = try Toolbox.run(Toolbox.heapsnap, ["export", paths[2] + "@peak", "--format", "folded", "-o", "-"])
        let sum = folded.stdout.split(separator: "\n").compactMap { $0.split(separator: " ").last.flatMap { Double($0) } }.reduce(0, +)
        #expect(sum == 8_500_000, "\(folded.stdout)")
    }

    @Test func noPeakIsOneLineNamingTheFile() throws {
        let dir = try Toolbox.temporaryDirectory("cli-nopeak")
        let path = dir + "/old.heapsnap"
        try SnapshotWriter.write(Fixture.snapshot(), to: path)
        for arguments in [["top", "--at", "peak", path], ["diff", path + "@peak", path], ["flamegraph", path, "--at", "peak", "-o", dir + "/x.svg"],
                          ["export", path + "@peak", "--format", "json", "-o", "-"]] {
            let result = try Toolbox.run(Toolbox.heapsnap, arguments)
            #expect(result.status == 2, "\(arguments)")
            #expect(result.stderr.split(separator: "\n").count == 1 && result.stderr.contains(path + ": no peak"), "\(arguments): \(result.stderr)")
        }
    }

    @Test func timelineWritesEveryFormat() throws {
        let (dir, paths) = try Self.files()
        let svg = dir + "/t.svg"
        let run = try Toolbox.run(Toolbox.heapsnap, ["timeline"] + paths + ["-o", svg, "--top", "2"])
        #expect(run.status == 0, "\(run.stderr)")
        let text = try String(contentsOfFile: svg, encoding: .utf8)
        #expect(text.contains("top 2 sites (by line)") && text.contains("peak 8.11 MiB"))
        let csv = try Toolbox.run(Toolbox.heapsnap, ["timeline"] + paths + ["--format", "csv", "-o", "-"]).stdout
        #expect(csv.split(separator: "\n").filter { $0.contains(",point,") }.count == 13)
        let object = try Self.json(["timeline"] + paths + ["--format", "json", "-o", "-"])
        #expect(object["schema"] as? String == "heapsnap.timeline/1")
    }

    @Test func timelineRefusesWhatItCannotDraw() throws {
        let (dir, paths) = try Self.files()
        var lonely = TimelineFixture.snapshot(0)
        lonely.series = nil
        lonely.header.pid = 77
        let noSeries = dir + "/heapsnap.77.0.heapsnap"
        try SnapshotWriter.write(lonely, to: noSeries)
        var python = TimelineFixture.snapshot(0)
        python.header.executable = "/usr/bin/python3"
        python.header.pid = 78
        let other = dir + "/heapsnap.78.0.heapsnap"
        try SnapshotWriter.write(python, to: other)
        for (arguments, file, expected) in [([noSeries], noSeries, "no memory series"), (paths + [other], other, "a snapshot of /usr/bin/python3")] {
            let result = try Toolbox.run(Toolbox.heapsnap, ["timeline"] + arguments + ["-o", dir + "/t.svg"])
            #expect(result.status == 2, "\(arguments)")
            #expect(result.stderr.split(separator: "\n").count == 1 && result.stderr.contains(file + ": " + expected), "\(result.stderr)")
        }
    }

    @Test func infoShowsPeakAndSeries() throws {
        let (_, paths) = try Self.files()
        let object = try Self.json(["info", paths[2], "--format", "json"])
        let peak = try #require(object["peak"] as? [String: Any])
        #expect((peak["inuseBytes"] as? [String: Any])?["value"] as? Double == 8_500_000)
        let series = try #require(object["series"] as? [String: Any])
        #expect(series["points"] as? Int == 13)
        #expect(series["maxRssBytes"] as? Int == (6 << 20) + 9_350_000 + 1_400_000)
    }
}
