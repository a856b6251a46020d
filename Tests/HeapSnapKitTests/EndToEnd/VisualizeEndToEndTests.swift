// End to end with the real shim, for the commands that draw and convert:
// `flamegraph` (plain and diff), `export` (folded, pprof read back by
// `go tool pprof`, speedscope) and `merge`.

import Foundation
import Testing
@testable import HeapSnapKit

@Suite(.serialized)
struct VisualizeEndToEndTests {
    /// One snapshot of `leaky once`: 48 MiB live at big_site, 1 MiB at small_site.
    static func snapshot(in dir: String) throws -> String {
        let (binary, _) = try EndToEndTests.compileLeaky(dir)
        let run = try Toolbox.run(Toolbox.heapsnap, ["run", "--rate", "65536", "--dir", dir, "--", binary, "once"])
        #expect(run.status == 0, "\(run.stderr)")
        let line = try #require(run.stderr.split(separator: "\n").first { $0.hasPrefix("heapsnap: wrote ") })
        return String(line.dropFirst("heapsnap: wrote ".count))
    }

    static func heapsnap(_ arguments: [String]) throws -> Toolbox.Result {
        let result = try Toolbox.run(Toolbox.heapsnap, arguments)
        #expect(result.status == 0, "heapsnap \(arguments.joined(separator: " ")): \(result.stderr)")
        return result
    }

    static func total(_ snapshot: String, _ metric: String = "inuseBytes") throws -> Double {
        let json = try heapsnap(["top", snapshot, "--format", "json"]).stdout
        let object = try #require(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])
        let totals = try #require(object["total"] as? [String: Any])
        return try #require((totals[metric] as? [String: Any])?["value"] as? Double)
    }

    @Test func flamegraphSizesBoxesByTheSnapshot() throws {
        let dir = try Toolbox.temporaryDirectory("e2e-flame")
        let snapshot = try Self.snapshot(in: dir)
        let svg = dir + "/heap.svg"
        try Self.heapsnap(["flamegraph", snapshot, "-o", svg])
        let boxes = try #require(FlameBoxes.parse(try String(contentsOfFile: svg, encoding: .utf8)))
        let root = try #require(boxes.first { $0.depth == 0 })
        #expect(root.width == 1)
        // big_site holds 48 of the 49 MiB; main holds everything the program allocated.
        let big = try #require(boxes.first { $0.title.hasPrefix("big_site") })
        #expect(big.width > 0.9 && big.width < 1, "big_site width \(big.width)")
        #expect(boxes.contains { $0.title.hasPrefix("main ") && $0.width > 0.95 })
        // Inverted: the allocation site sits right under the root.
        try Self.heapsnap(["flamegraph", snapshot, "--inverted", "-o", svg])
        let inverted = try #require(FlameBoxes.parse(try String(contentsOfFile: svg, encoding: .utf8)))
        #expect(inverted.contains { $0.title.hasPrefix("big_site") && $0.depth == 1 })
    }

    @Test func diffFlamegraphColoursGrowthRed() throws {
        let dir = try Toolbox.temporaryDirectory("e2e-flamediff")
        let snapshot = try Self.snapshot(in: dir)
        let doubled = dir + "/doubled.heapsnap"
        try Self.heapsnap(["merge", snapshot, snapshot, "-o", doubled])
        let svg = dir + "/diff.svg"
        try Self.heapsnap(["flamegraph", doubled, "--diff", snapshot, "-o", svg])
        let boxes = try #require(FlameBoxes.parse(try String(contentsOfFile: svg, encoding: .utf8)))
        let big = try #require(boxes.first { $0.title.hasPrefix("big_site") })
        #expect(big.fill.hasPrefix("rgb(250,"), "\(big.fill)") // red: grew well beyond noise
        #expect(big.title.contains("change +"))
        // Normalized, nothing changed shape: no box is coloured as growth.
        try Self.heapsnap(["flamegraph", doubled, "--diff", snapshot, "--normalize", "-o", svg])
        let normalized = try #require(FlameBoxes.parse(try String(contentsOfFile: svg, encoding: .utf8)))
        #expect(normalized.allSatisfy { $0.fill == "rgb(222,222,218)" }, "\(normalized.map(\.fill))")
    }

    @Test func mergeOfTwoCopiesDoublesEveryTotal() throws {
        let dir = try Toolbox.temporaryDirectory("e2e-merge")
        let snapshot = try Self.snapshot(in: dir)
        let merged = dir + "/merged.heapsnap"
        try Self.heapsnap(["merge", snapshot, snapshot, "-o", merged])
        for metric in ["inuseBytes", "allocObjects"] {
            let one = try Self.total(snapshot, metric), two = try Self.total(merged, metric)
            #expect(abs(two - 2 * one) <= 1e-6 * two, "\(metric): \(one) → \(two)")
        }
        let info = try Self.heapsnap(["info", merged]).stdout
        #expect(info.contains("merged"), "\(info)")
    }

    @Test func foldedExportSumsToTheTotal() throws {
        let dir = try Toolbox.temporaryDirectory("e2e-folded")
        let snapshot = try Self.snapshot(in: dir)
        let folded = try Self.heapsnap(["export", snapshot, "--format", "folded", "-o", "-"]).stdout
        let lines = folded.split(separator: "\n")
        let sum = lines.compactMap { Double($0.split(separator: " ").last ?? "") }.reduce(0, +)
        let total = try Self.total(snapshot)
        // Each line is rounded to a whole byte.
        #expect(abs(sum - total) <= Double(lines.count), "folded \(sum), top \(total)")
        #expect(lines.contains { $0.hasPrefix("_start;") && $0.contains(";main;big_site ") }, "\(folded)")
    }

    @Test func pprofExportLoadsInGoToolPprof() throws {
        let dir = try Toolbox.temporaryDirectory("e2e-pprof")
        let snapshot = try Self.snapshot(in: dir)
        let file = dir + "/heap.pb.gz"
        try Self.heapsnap(["export", snapshot, "--format", "pprof", "-o", file])
        var environment = ProcessInfo.processInfo.environment
        environment["HOME"] = dir
        environment["PPROF_TMPDIR"] = dir
        let top = try Toolbox.run("/usr/bin/env", ["go", "tool", "pprof", "-top", file], environment: environment)
        #expect(top.status == 0, "\(top.stderr)")
        // The first row of -top is the biggest flat entry: big_site.
        let rows = top.stdout.split(separator: "\n").drop { !$0.contains("flat%") }.dropFirst()
        #expect(rows.first?.hasSuffix(" big_site") == true, "\(top.stdout)")
        // -diff_base of a profile against itself is empty.
        let diff = try Toolbox.run("/usr/bin/env", ["go", "tool", "pprof", "-top", "-diff_base", file, file], environment: environment)
        #expect(diff.status == 0 && diff.stdout.contains("Showing nodes accounting for 0, 0% of"), "\(diff.stdout)\(diff.stderr)")
    }

    @Test func speedscopeExportIsValidJSON() throws {
        let dir = try Toolbox.temporaryDirectory("e2e-speedscope")
        let snapshot = try Self.snapshot(in: dir)
        let out = try Self.heapsnap(["export", snapshot, "--format", "speedscope", "-o", "-"]).stdout
        let json = try #require(try JSONSerialization.jsonObject(with: Data(out.utf8)) as? [String: Any])
        let profiles = try #require(json["profiles"] as? [[String: Any]])
        #expect(profiles.count == 4)
        let weights = try #require(profiles[0]["weights"] as? [Double])
        #expect(abs(weights.reduce(0, +) - (try Self.total(snapshot))) <= Double(weights.count))
    }
}
