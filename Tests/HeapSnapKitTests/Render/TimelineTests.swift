// The timeline stage and its renderers on `TimelineFixture` (known series,
// peak and snapshots), and `--at peak` / `FILE@peak` on the same files.

import Foundation
import Testing
@testable import HeapSnapKit

@Suite struct TimelineBuilderTests {
    @Test func pointsPeakAndSitesOfPeriodicSnapshots() throws {
        let timeline = try TimelineFixture.timeline()
        #expect(timeline.originNanoseconds == TimelineFixture.start)
        let process = try #require(timeline.processes.first)
        #expect(timeline.processes.count == 1)
        #expect(process.pid == 4242 && process.label == "pid 4242 server --port 8080")
        // The three files' series merged: 13 distinct points, 0 to 6 s.
        #expect(process.points.count == 13)
        #expect(process.points.map(\.inuseBytes.value) == TimelineFixture.inuse)
        #expect(!process.pointsFromSnapshots)
        let peak = try #require(process.peak)
        #expect(peak.inuseBytes.value == 8_500_000 && timeline.seconds(peak.timeNanoseconds) == 3.5)
        #expect(peak.file == TimelineFixture.files[1])
        // The peak is split over the sites too, from its own per-stack values.
        #expect(peak.sites.map(\.value) == [6_000_000, 2_000_000, 500_000] && peak.other.value == 0)
        // Sites by line, largest first; the snapshots split over them.
        #expect(timeline.sites.map(\.label) == ["/srv/app/src/cache.cpp:42", "/srv/app/src/parser.c:17", "/srv/app/src/parser.c:30"])
        #expect(process.snapshots.map { $0.inuseBytes.value.rounded() } == [5_000_000, 7_000_000, 3_000_000])
        let middle = process.snapshots[1]
        #expect(middle.sites.map { $0.value.rounded() } == [4_666_667, 1_750_000, 583_333])
        #expect(middle.other.value.rounded() == 0)
        #expect(process.maxRSSBytes == UInt64(6 << 20) + 9_350_000 + 1_400_000)
    }

    @Test func topZeroDrawsNoSites() throws {
        let timeline = try TimelineFixture.timeline(top: 0)
        #expect(timeline.sites.isEmpty && timeline.processes[0].snapshots.allSatisfy { $0.sites.isEmpty })
        #expect(!TimelineSVG.render(timeline).contains("<g id=\"sites\">"))
    }

    @Test func snapshotsWithoutSeriesFormTheCurve() throws {
        var inputs = TimelineFixture.inputs
        for i in inputs.indices { inputs[i].snapshot.series = nil; inputs[i].snapshot.peak = nil }
        let timeline = try TimelineBuilder().build(inputs, profile: TimelineFixture.profile)
        let process = timeline.processes[0]
        #expect(process.pointsFromSnapshots)
        #expect(process.points.map { $0.inuseBytes.value.rounded() } == [5_000_000, 7_000_000, 3_000_000])
        // No PEAK: the highest point is marked instead.
        #expect(process.peak?.inuseBytes.value == 7_000_000 && process.peak?.file == nil)
    }

    @Test func oneFileWithoutSeriesIsRefused() {
        var snapshot = TimelineFixture.snapshot(2)
        snapshot.series = nil
        #expect(throws: HeapSnapError.noSeries(file: "/tmp/one.heapsnap", pid: 4242)) {
            try TimelineBuilder().build([("/tmp/one.heapsnap", snapshot)], profile: TimelineFixture.profile)
        }
        // A single file with a series is fine: no sites (one snapshot), but the curve and the peak.
        let single = try? TimelineBuilder().build([(TimelineFixture.files[2], TimelineFixture.snapshot(2))], profile: TimelineFixture.profile)
        #expect(single?.sites.isEmpty == true && single?.processes[0].points.count == 13)
    }

    @Test func filesOfAnotherProgramAreRefused() {
        var inputs = TimelineFixture.inputs
        inputs[2].snapshot.header.executable = "/usr/bin/python3"
        #expect(throws: HeapSnapError.differentPrograms(file: TimelineFixture.files[2], program: "/usr/bin/python3",
                                                        expected: Fixture.appPath, firstFile: TimelineFixture.files[0])) {
            try TimelineBuilder().build(inputs, profile: TimelineFixture.profile)
        }
    }

    @Test func severalProcessesOfOneProgram() throws {
        var inputs = TimelineFixture.inputs
        var other = TimelineFixture.snapshot(2)
        other.header.pid = 4243
        other.series!.points = other.series!.points.map { var p = $0; p.timeNanoseconds += TimelineFixture.second; return p }
        inputs.append(("/tmp/heapsnap.4243.0.heapsnap", other))
        let timeline = try TimelineBuilder().build(inputs, profile: TimelineFixture.profile)
        #expect(timeline.processes.map(\.pid) == [4242, 4243])
        #expect(timeline.processes[1].snapshots.allSatisfy { $0.sites.isEmpty })
        let svg = TimelineSVG.render(timeline)
        #expect(svg.contains("pid 4243 server --port 8080"))
        #expect(!svg.contains("<g id=\"sites\">"), "sites are stacked only for one process")
        #expect(timeline.processes[1].peak?.sites.isEmpty == true, "one snapshot: not split")
        #expect(svg.components(separatedBy: "class=\"inuse\"").count == 3)
    }
}

@Suite struct TimelineRenderTests {
    @Test func goldenSVG() throws {
        try RendererGoldenTests.check("timeline.svg", TimelineSVG.render(try TimelineFixture.timeline()))
    }

    @Test func goldenCSV() throws {
        try RendererGoldenTests.check("timeline.csv", CSVRenderer().render(try TimelineFixture.timeline()))
    }

    @Test func goldenJSON() throws {
        try RendererGoldenTests.check("timeline.json", JSONRenderer().render(try TimelineFixture.timeline()))
    }

    /// The peak marker sits at 3.5 s of a 0-6 s axis and at 8.5 MB, and says so.
    @Test func peakMarkerPositionAndLabel() throws {
        let timeline = try TimelineFixture.timeline()
        let svg = TimelineSVG.render(timeline)
        let marker = try #require(svg.firstMatch(of: /<g class="peak" id="peak-0" data-t="([0-9.]+)"[^>]*>[\s\S]*?<circle cx="([0-9.]+)" cy="([0-9.]+)"/))
        #expect(marker.1 == "3.500")
        // Plot from x=84 to 1200-270-24=906 over 0..6 s.
        let expectedX: Double = 84 + 3.5 / 6 * 822
        #expect(Double(marker.2) == expectedX)
        let scale = TimelineSVG.scale(timeline, options: TimelineSVGOptions())
        #expect(scale.tMax == 6)
        #expect(abs(Double(marker.3)! - scale.y(8_500_000)) < 0.06)
        #expect(svg.contains(">peak 8.11 MiB ± 574 KiB at 3.50 s</text>"), "peak label")
        #expect(svg.contains("heapsnap top \(TimelineFixture.files[1])@peak"))
    }

    @Test func csvRowsCarryTheNumbers() throws {
        let lines = CSVRenderer().render(try TimelineFixture.timeline()).split(separator: "\n").map(String.init)
        #expect(lines[0] == "pid,command,kind,time_ns,seconds,inuse_bytes,inuse_bytes_err,alloc_bytes,rss_bytes,file,"
            + "/srv/app/src/cache.cpp:42,/srv/app/src/parser.c:17,/srv/app/src/parser.c:30,other_sites")
        #expect(lines.count == 1 + 13 + 3 + 1)
        let peak = try #require(lines.first { $0.contains(",peak,") })
        #expect(peak == "4242,/srv/app/bin/server --port 8080,peak,\(TimelineFixture.peakTime),3.500000,8500000,588000,,,\(TimelineFixture.files[1]),6000000,2000000,500000,0")
        let snapshot = try #require(lines.first { $0.contains(",snapshot,") && $0.contains("4242.1.") })
        #expect(snapshot.hasSuffix(",\(TimelineFixture.files[1]),4666667,1750000,583333,0"), "\(snapshot)")
        #expect(lines.contains { $0.hasPrefix("4242,/srv/app/bin/server --port 8080,point,\(TimelineFixture.peakTime),3.500000,8500000,") })
    }

    @Test func jsonParses() throws {
        let text = JSONRenderer().render(try TimelineFixture.timeline())
        let object = try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
        #expect(object["schema"] as? String == "heapsnap.timeline/1")
        let process = try #require((object["processes"] as? [[String: Any]])?.first)
        let peak = try #require(process["peak"] as? [String: Any])
        #expect(peak["seconds"] as? Double == 3.5)
        #expect((peak["inuseBytes"] as? [String: Any])?["value"] as? Double == 8_500_000)
        #expect((process["points"] as? [Any])?.count == 13)
    }

    /// The embedded scripts (configuration and script) must parse, or hovering shows nothing.
    @Test func embeddedScriptParses() throws {
        for timeline in [try TimelineFixture.timeline(), try TimelineFixture.timeline(top: 0)] {
            let scripts = SVGScripts.elements(TimelineSVG.render(timeline))
            #expect(scripts.count == 2)
            for script in scripts {
                let complaint = try SVGScripts.nodeComplaint(script, name: "timeline")
                #expect(complaint == nil, "\(complaint ?? "")")
            }
        }
    }
}

@Suite struct PeakMomentTests {
    @Test func peakProfileHasThePeaksPerSiteValues() throws {
        let snapshot = TimelineFixture.snapshot(2)
        let profile = TimelineFixture.profile(try snapshot.at(.peak, file: "f"), "f")
        let report = Aggregator(options: AggregationOptions()).aggregate(profile)
        #expect(report.total.inuseBytes.value == 8_500_000)
        #expect(report.rows.map(\.key.label) == ["/srv/app/src/cache.cpp:42", "/srv/app/src/parser.c:17", "/srv/app/src/parser.c:30"])
        #expect(report.rows.map(\.values.inuseBytes.value) == [6_000_000, 2_000_000, 500_000])
        #expect(report.rows[0].values.allocBytes.value == 7_000_000)
    }

    @Test func noPeakIsAnError() {
        #expect(throws: HeapSnapError.noPeak(file: "/tmp/x.heapsnap")) { try Fixture.snapshot().at(.peak, file: "/tmp/x.heapsnap") }
        #expect((try? Fixture.snapshot().at(.snapshot, file: "f")) == Fixture.snapshot())
    }

    @Test func refsParseThePeakSuffix() {
        #expect(SnapshotRef(argument: "/tmp/a.heapsnap@peak", fileExists: { _ in false }) == SnapshotRef(path: "/tmp/a.heapsnap", moment: .peak))
        #expect(SnapshotRef(argument: "/tmp/a.heapsnap", fileExists: { _ in false }).moment == .snapshot)
        // A file really named so is read as itself.
        #expect(SnapshotRef(argument: "/tmp/odd@peak", fileExists: { _ in true }) == SnapshotRef(path: "/tmp/odd@peak"))
        #expect(SnapshotRef(argument: "@peak", fileExists: { _ in false }).path == "@peak")
    }

    @Test func runSummaryNamesThePeakAndTheExit() {
        let lines = TableRenderer().renderExitSummary(MemorySummary(TimelineFixture.snapshot(2)), file: "/tmp/s.heapsnap", estimated: true)
        #expect(lines == [
            "peak: 8.11 MiB ±574 KiB in use, 3.50 s after start (heapsnap top /tmp/s.heapsnap@peak)",
            "at exit: 2.86 MiB ±445 KiB in use, 5.01 MiB ±617 KiB allocated since start (6.00 s)",
        ])
    }
}
