// Dropped samples, end to end: a Python program that keeps 200,000 objects,
// run in exact mode (`heapsnap run --rate 1`) with the smallest budget the shim
// takes (HEAPSNAP_MAX_MEMORY=1M), drops samples; every command that reads the
// snapshot says how many, what share, and the budget, once. With the exact-mode
// default budget the same program drops nothing, and nothing warns.

import Foundation
import Testing
@testable import HeapSnapKit

@Suite(.serialized)
struct DroppedSamplesTests {
    static let python = "/usr/bin/python3"
    static let keep = "keep = [object() for _ in range(200000)]"

    /// `heapsnap run --rate 1` of the program, with `budget` as HEAPSNAP_MAX_MEMORY (nil: unset);
    /// the run and its one snapshot.
    static func run(budget: String?, dir: String) throws -> (run: Toolbox.Result, path: String, header: SnapshotHeader) {
        var env = ProcessInfo.processInfo.environment
        env.removeValue(forKey: "HEAPSNAP_MAX_MEMORY")
        env.removeValue(forKey: "HEAPSNAP_RATE")
        if let budget { env["HEAPSNAP_MAX_MEMORY"] = budget }
        let run = try Toolbox.run(Toolbox.heapsnap, ["run", "--rate", "1", "--dir", dir, "--", python, "-c", keep], environment: env)
        #expect(run.status == 0, "\(run.stderr)")
        let written = run.stderr.split(separator: "\n").filter { $0.hasPrefix("heapsnap: wrote ") }
            .map { String($0.dropFirst("heapsnap: wrote ".count)) }
        #expect(written.count == 1, "\(run.stderr)")
        let path = try #require(written.first)
        return (run, path, try SnapshotReader.read(path: path).header)
    }

    /// 1234567 as "1,234,567".
    static func grouped(_ n: UInt64) -> String {
        var out = "", digits = Array(String(n))
        while digits.count > 3 {
            out = "," + String(digits.suffix(3)) + out
            digits.removeLast(3)
        }
        return String(digits) + out
    }

    @Test func exactModeWithASmallBudgetWarnsEverywhereWithTheRealCount() throws {
        let dir = try Toolbox.temporaryDirectory("dropped")
        let (run, path, h) = try Self.run(budget: "1M", dir: dir)
        // The budget set is the budget used, and it was too small for 200,000 live objects.
        #expect(h.rate == 1 && h.budget == 1 << 20)
        #expect(h.dropped > 10_000 && h.dropped < h.samples, "\(h.dropped) of \(h.samples)")
        let share = String(format: "%.1f%%", 100 * Double(h.dropped) / Double(h.samples))
        let expected = "\(Self.grouped(h.dropped)) of \(Self.grouped(h.samples)) samples (\(share)) were dropped because "
            + "HEAPSNAP_MAX_MEMORY=1M was full: figures are low; raise HEAPSNAP_MAX_MEMORY, or sample less often (a larger HEAPSNAP_RATE)"

        // run: the shim's own line once (raw counts, the file named), and the summary's warning once.
        let runLines = run.stderr.split(separator: "\n").map(String.init)
        let name = (path as NSString).lastPathComponent
        #expect(runLines.filter { $0.contains("samples were dropped") } ==
                ["heapsnap: \(h.dropped) of \(h.samples) samples were dropped because HEAPSNAP_MAX_MEMORY=1M was full; \(name)'s figures are low, "
                 + "as are those of later snapshots this session (raise HEAPSNAP_MAX_MEMORY, or HEAPSNAP_RATE to sample less)"], "\(run.stderr)")
        #expect(runLines.filter { $0.contains("were dropped because") && $0.hasPrefix("heapsnap: warning: ") } == ["heapsnap: warning: " + expected])

        // top: once, under the header, before the rows; and first among the JSON's warnings.
        let top = try Toolbox.run(Toolbox.heapsnap, ["top", path])
        #expect(top.status == 0, "\(top.stderr)")
        let lines = top.stdout.split(separator: "\n").map(String.init)
        #expect(lines.filter { $0.contains("were dropped") } == ["warning: " + expected], "\(top.stdout)")
        let warning = try #require(lines.firstIndex(of: "warning: " + expected))
        let columns = try #require(lines.firstIndex { $0.hasPrefix("    Size") }, "\(top.stdout)")
        #expect(warning < columns)
        let json = try Toolbox.run(Toolbox.heapsnap, ["top", "--format", "json", path])
        let object = try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any]
        #expect((object?["warnings"] as? [String])?.first == expected, "\(json.stdout.suffix(600))")

        // diff: each side's, labelled as the header labels them.
        let diff = try Toolbox.run(Toolbox.heapsnap, ["diff", path, path])
        #expect(diff.stdout.split(separator: "\n").filter { $0.contains("were dropped") }.map(String.init)
                == ["warning: old: " + expected, "warning: new: " + expected], "\(diff.stdout)")

        // flamegraph: one stderr line, and a line drawn above the frames with the whole text in its tooltip.
        let svgPath = dir + "/heap.svg"
        let flame = try Toolbox.run(Toolbox.heapsnap, ["flamegraph", path, "-o", svgPath])
        #expect(flame.status == 0, "\(flame.stderr)")
        #expect(flame.stderr.split(separator: "\n").filter { $0.contains("were dropped") }.map(String.init) == ["heapsnap: warning: " + expected])
        let svg = try String(contentsOfFile: svgPath, encoding: .utf8)
        #expect(svg.components(separatedBy: "<text id=\"warning\"").count == 2)
        #expect(svg.contains("<title>warning: \(expected)</title>warning: \(expected)</text>"), "whole, squeezed to the default width")

        // exports: the stderr line.
        let export = try Toolbox.run(Toolbox.heapsnap, ["export", path, "--format", "folded", "-o", dir + "/heap.folded"])
        #expect(export.status == 0, "\(export.stderr)")
        #expect(export.stderr.contains("heapsnap: warning: " + expected + "\n"), "\(export.stderr)")

        // info, as before, with the same line.
        let info = try Toolbox.run(Toolbox.heapsnap, ["info", path])
        #expect(info.stdout.contains("warning: " + expected + "\n"), "\(info.stdout)")
        try? FileManager.default.removeItem(atPath: dir)
    }

    @Test func exactModeDefaultsToA512MiBBudgetAndAFullSnapshotWarnsNowhere() throws {
        let dir = try Toolbox.temporaryDirectory("exact-default")
        let (run, path, h) = try Self.run(budget: nil, dir: dir)
        #expect(h.rate == 1 && h.budget == 512 << 20, "budget \(h.budget)")
        #expect(h.dropped == 0 && h.samples > 200_000, "\(h.dropped) of \(h.samples)")
        #expect(!run.stderr.contains("dropped"), "\(run.stderr)")

        let top = try Toolbox.run(Toolbox.heapsnap, ["top", path])
        #expect(top.status == 0, "\(top.stderr)")
        #expect(!top.stdout.contains("were dropped") && top.stdout.contains(", 0 dropped"), "\(top.stdout)")
        let svgPath = dir + "/heap.svg"
        let flame = try Toolbox.run(Toolbox.heapsnap, ["flamegraph", path, "-o", svgPath])
        #expect(!flame.stderr.contains("dropped"), "\(flame.stderr)")
        #expect(!(try String(contentsOfFile: svgPath, encoding: .utf8)).contains("id=\"warning\""))
        let info = try Toolbox.run(Toolbox.heapsnap, ["info", path])
        #expect(info.stdout.contains("of a 512 MiB budget") && !info.stdout.contains("were dropped"), "\(info.stdout)")
        try? FileManager.default.removeItem(atPath: dir)
    }
}
