// Every command filters through the same stage: the same --exclude gives the
// same total in top, export and flamegraph.

import Foundation
import Testing
@testable import HeapSnapKit

@Suite struct FilterStageTests {
    @Test func topExportAndFlamegraphAgreeOnTheFilteredTotal() throws {
        let dir = try Toolbox.temporaryDirectory("cli-filter")
        let snapshot = dir + "/fixture.heapsnap"
        try SnapshotWriter.write(Fixture.snapshot(), to: snapshot)
        // The fixture's files are not on this host: frames stay module+0xADDR, matched by module name.
        let filter = ["--exclude", "libfoo*", "--metric", "alloc-bytes"]

        func topTotal(_ extra: [String]) throws -> Double {
            let top = try Toolbox.run(Toolbox.heapsnap, ["top", snapshot, "--format", "json"] + extra)
            #expect(top.status == 0, "\(top.stderr)")
            let json = try #require(try JSONSerialization.jsonObject(with: Data(top.stdout.utf8)) as? [String: Any])
            let total = (json["total"] as? [String: Any])?["allocBytes"] as? [String: Any]
            return try #require(total?["value"] as? Double)
        }
        let all = try topTotal(["--metric", "alloc-bytes"])
        let kept = try topTotal(filter)
        #expect(kept > 0 && kept < all, "kept \(kept) of \(all)")

        let folded = try Toolbox.run(Toolbox.heapsnap, ["export", snapshot, "--format", "folded", "-o", "-"] + filter)
        #expect(folded.status == 0, "\(folded.stderr)")
        let lines = folded.stdout.split(separator: "\n")
        #expect(!lines.isEmpty && !lines.contains { $0.contains("libfoo") })
        let sum = lines.compactMap { $0.split(separator: " ").last.flatMap { Double($0) } }.reduce(0, +)
        #expect(abs(sum - kept) <= Double(lines.count), "folded \(sum), top \(kept)")

        let svg = try Toolbox.run(Toolbox.heapsnap, ["flamegraph", snapshot, "-o", "-"] + filter)
        #expect(svg.status == 0, "\(svg.stderr)")
        #expect(svg.stdout.contains("total \(Format.bytes(kept)) ± "), "\(svg.stdout.prefix(2000))")
        #expect(!svg.stdout.contains("libfoo.so.1+0x"))
    }
}
