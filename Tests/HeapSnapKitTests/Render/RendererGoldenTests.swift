// Golden tests: every renderer on the synthetic fixture, compared byte for
// byte with files in Golden/. `HEAPSNAP_BLESS=1 swift test` re-records them.

import Foundation
import Testing
@testable import HeapSnapKit

@Suite struct RendererGoldenTests {
    static let goldenDirectory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Golden")

    static func check(_ name: String, _ actual: String, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let url = goldenDirectory.appendingPathComponent(name)
        if ProcessInfo.processInfo.environment["HEAPSNAP_BLESS"] == "1" {
            try FileManager.default.createDirectory(at: goldenDirectory, withIntermediateDirectories: true)
            try actual.write(to: url, atomically: true, encoding: .utf8)
            return
        }
        let expected = try String(contentsOf: url, encoding: .utf8)
        #expect(actual == expected, "golden \(name) differs; re-record with HEAPSNAP_BLESS=1 if intended", sourceLocation: sourceLocation)
    }

    static func top(_ options: AggregationOptions = AggregationOptions()) -> Report {
        Aggregator(options: options).aggregate(Fixture.trimmedProfile())
    }

    static func diff(_ options: AggregationOptions = AggregationOptions()) -> Report {
        let old = Fixture.trimmedProfile(Fixture.snapshot(), file: "/tmp/heapsnap.4242.1.heapsnap")
        let new = Fixture.trimmedProfile(Fixture.snapshot(scale: 1.02, extraLeak: 3_000_000), file: "/tmp/heapsnap.4242.3.heapsnap")
        return Aggregator(options: options).aggregate(new.subtracting(old))
    }

    /// The fixture as a snapshot whose shim dropped samples: 7 of its 120, with the default budget.
    static func dropping(_ snapshot: Snapshot = Fixture.snapshot(), dropped: UInt64 = 7) -> Snapshot {
        var snapshot = snapshot
        snapshot.header.dropped = dropped
        return snapshot
    }

    /// `top` of a snapshot that dropped samples, as the query's result builds it (with its warnings).
    static var droppedTop: Report {
        let file = "/tmp/heapsnap.4242.3.heapsnap"
        let query = ProfileQuery(SnapshotSelection(files: [file]))
        return query.result(new: Fixture.trimmedProfile(dropping(), file: file), base: nil).report
    }

    /// `diff OLD NEW` where both sides dropped samples (3 and 7).
    static var droppedDiff: Report {
        let oldFile = "/tmp/heapsnap.4242.1.heapsnap", newFile = "/tmp/heapsnap.4242.3.heapsnap"
        let query = ProfileQuery(SnapshotSelection(files: [newFile]), base: SnapshotSelection(files: [oldFile]))
        return query.result(new: Fixture.trimmedProfile(dropping(Fixture.snapshot(scale: 1.02, extraLeak: 3_000_000)), file: newFile),
                            base: Fixture.trimmedProfile(dropping(dropped: 3), file: oldFile)).report
    }

    static var info: InfoReport {
        var snapshot = Fixture.snapshot()
        snapshot.header.dropped = 7
        return InfoReport(snapshot: snapshot, file: "/tmp/heapsnap.4242.3.heapsnap", locator: TrustingLocator(missing: [Fixture.libPath]))
    }

    static var peakInfo: InfoReport {
        InfoReport(snapshot: TimelineFixture.snapshot(2), file: TimelineFixture.files[2], locator: TrustingLocator())
    }

    /// `top FILE@peak`, as the pipeline builds it.
    static var peakTop: Report {
        var profile = TimelineFixture.profile(try! TimelineFixture.snapshot(2).at(.peak, file: TimelineFixture.files[2]), TimelineFixture.files[2])
        profile.source.peakNanoseconds = TimelineFixture.peakTime
        return Aggregator(options: AggregationOptions()).aggregate(profile)
    }

    /// `diff FILE@peak FILE`: what was alive at the peak and is gone now.
    static var peakDiff: Report {
        let file = TimelineFixture.files[2], snapshot = TimelineFixture.snapshot(2)
        var old = TimelineFixture.profile(try! snapshot.at(.peak, file: file), file)
        old.source.peakNanoseconds = TimelineFixture.peakTime
        return Aggregator(options: AggregationOptions()).aggregate(TimelineFixture.profile(snapshot, file).subtracting(old))
    }

    static let wide = TableRenderer(options: RenderOptions(width: 120))

    static func render(_ name: String) -> String {
        switch name {
        case "top-line.txt": wide.render(top())
        case "top-line-narrow.txt": TableRenderer(options: RenderOptions(width: 64)).render(top())
        case "top-function-cumulative.txt": wide.render(top(AggregationOptions(groupBy: .function, cumulative: true)))
        case "top-traceback.txt": wide.render(top(AggregationOptions(groupBy: .traceback, metric: .allocBytes, limit: 3)))
        case "top-line.json": JSONRenderer().render(top())
        case "top-traceback.json": JSONRenderer().render(top(AggregationOptions(groupBy: .traceback, limit: 1)))
        case "top-line.csv": CSVRenderer().render(top())
        case "top-traceback.csv": CSVRenderer().render(top(AggregationOptions(groupBy: .traceback)))
        case "diff-line.txt": wide.render(diff())
        case "diff-line-color.txt": TableRenderer(options: RenderOptions(width: 120, color: true)).render(diff())
        case "diff-line.json": JSONRenderer().render(diff())
        case "diff-line.csv": CSVRenderer().render(diff())
        case "info.txt": wide.render(info)
        case "info.json": JSONRenderer().render(info)
        case "info.csv": CSVRenderer().render(info)
        case "info-peak.txt": wide.render(peakInfo)
        case "info-peak.json": JSONRenderer().render(peakInfo)
        case "top-peak.txt": wide.render(peakTop)
        case "diff-peak.txt": wide.render(peakDiff)
        case "top-dropped.txt": wide.render(droppedTop)
        case "top-dropped.json": JSONRenderer().render(droppedTop)
        case "diff-dropped.txt": wide.render(droppedDiff)
        default: "unknown golden \(name)"
        }
    }

    @Test(arguments: [
        "top-line.txt", "top-line-narrow.txt", "top-function-cumulative.txt", "top-traceback.txt", "top-line.json",
        "top-traceback.json", "top-line.csv", "top-traceback.csv", "diff-line.txt", "diff-line-color.txt", "diff-line.json",
        "diff-line.csv", "info.txt", "info.json", "info.csv", "info-peak.txt", "info-peak.json", "top-peak.txt", "diff-peak.txt",
        "top-dropped.txt", "top-dropped.json", "diff-dropped.txt",
    ])
    func golden(name: String) throws {
        try Self.check(name, Self.render(name))
    }

    @Test func narrowTableFitsItsWidth() throws {
        let text = TableRenderer(options: RenderOptions(width: 64)).render(Self.top())
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        let header = try #require(lines.firstIndex { $0.hasPrefix("    Size") }, "no table header in:\n\(text)")
        let table = lines[header...].prefix { !$0.isEmpty && !$0.hasPrefix("±") }
        #expect(table.count == 4, "header and the fixture's three rows:\n\(text)")
        for line in table { #expect(line.count <= 64, "\(line)") }
        // The labels were cut to fit, not left short.
        #expect(table.map(\.count).max() == 64, "\(table)")
        #expect(table.dropFirst().allSatisfy { $0.contains("…") })
    }

    @Test func jsonParses() throws {
        for text in [JSONRenderer().render(Self.top()), JSONRenderer().render(Self.diff()), JSONRenderer().render(Self.info)] {
            let object = try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any]
            #expect(object?["schema"] is String)
        }
    }

    /// The warning says how many, what share and the budget in force, once, under the header and
    /// before the rows; a snapshot that dropped nothing has no such line.
    @Test func droppedSamplesWarnOnceAboveTheRows() throws {
        let expected = "warning: 7 of 120 samples (5.8%) were dropped because HEAPSNAP_MAX_MEMORY=64M was full: "
            + "figures are low; raise HEAPSNAP_MAX_MEMORY, or sample less often (a larger HEAPSNAP_RATE)"
        let lines = Self.wide.render(Self.droppedTop).split(separator: "\n").map(String.init)
        #expect(lines.filter { $0.contains("were dropped") } == [expected])
        let warning = try #require(lines.firstIndex(of: expected))
        let columns = try #require(lines.firstIndex { $0.hasPrefix("    Size") })
        #expect(warning < columns)
        #expect(Self.droppedTop.warnings.first == String(expected.dropFirst("warning: ".count)))
        let diff = Self.wide.render(Self.droppedDiff).split(separator: "\n")
        #expect(diff.filter { $0.contains("were dropped") }.map { $0.prefix(36) } == ["warning: old: 3 of 120 samples (2.5%", "warning: new: 7 of 120 samples (5.8%"])
        #expect(!Self.wide.render(Self.top()).contains("were dropped"))
        #expect(Self.top().warnings.allSatisfy { !$0.contains("dropped") })
    }

    @Test func noColorWithoutBeingAsked() {
        #expect(!Self.wide.render(Self.diff()).contains("\u{1B}["))
        #expect(TableRenderer(options: RenderOptions(color: true)).render(Self.diff()).contains("\u{1B}[31m"))
    }
}

@Suite struct FormatTests {
    @Test(arguments: [
        (0.0, "0 B"), (1023.0, "1023 B"), (1024.0, "1.00 KiB"), (1536.0, "1.50 KiB"), (10_240.0, "10.0 KiB"),
        (1_048_575.0, "1.00 MiB"), (5.5 * 1_048_576, "5.50 MiB"), (-2048.0, "-2.00 KiB"), (3 * 1_073_741_824.0, "3.00 GiB"),
    ])
    func bytes(value: Double, text: String) {
        #expect(Format.bytes(value) == text)
    }

    /// A budget as HEAPSNAP_MAX_MEMORY spells it, the largest exact suffix, read back the same.
    @Test(arguments: [(UInt64(64) << 20, "64M"), (UInt64(1) << 30, "1G"), (UInt64(1536) << 10, "1536K"), (UInt64(1000), "1000"),
                      (UInt64(3) << 29, "1536M"), (UInt64(0), "0")])
    func spelledSizes(value: UInt64, text: String) {
        #expect(Units.spelled(value) == text)
        #expect(Units.bytes(text) == value)
    }

    @Test func commandLineQuotesAndDropsTitlePadding() {
        #expect(Format.commandLine(["demo", "--flag", ""]) == "demo --flag ''")
        #expect(Format.commandLine(["redis-server *:6379", "", "", ""]) == "'redis-server *:6379'")
    }

    @Test func signedAndCounts() {
        #expect(Format.bytes(2048, signed: true) == "+2.00 KiB")
        #expect(Format.count(1_234_567.4) == "1,234,567")
        #expect(Format.count(-1500, signed: true) == "-1,500")
        #expect(Format.count(12, signed: true) == "+12")
        #expect(Format.percent(1, of: 3) == "33.3%")
        #expect(Format.time(nanoseconds: 1_700_000_012_500_000_000) == "2023-11-14 22:13:32.500 UTC")
    }
}
