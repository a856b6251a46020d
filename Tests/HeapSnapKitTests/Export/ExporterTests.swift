import Foundation
import Testing
@testable import HeapSnapKit

/// A symbolized profile with known stacks: main → load → (inlined parse) → malloc site,
/// main → serve → site, with exact integer values.
func exportProfile() -> Profile {
    let frames = [
        Frame(function: "parse_line", file: "/src/parse.c", line: 12, module: "/usr/bin/app", inlined: true), // 0
        Frame(function: "load", file: "/src/load.c", line: 40, module: "/usr/bin/app"), // 1
        Frame(function: "main", file: "/src/main.c", line: 7, module: "/usr/bin/app"), // 2
        Frame(function: "std::vector<int>::push_back(int const&)", file: "/usr/include/vector", line: 99,
              module: "/usr/lib/libstdc++.so.6"), // 3
        Frame(function: "serve", file: "/src/serve.c", line: 21, module: "/usr/bin/app"), // 4
    ]
    func values(_ inuse: Double, _ alloc: Double, _ objects: Double) -> Values {
        Values(inuseBytes: Estimate(value: inuse, variance: 16), inuseObjects: Estimate(value: objects),
               allocBytes: Estimate(value: alloc), allocObjects: Estimate(value: objects * 2),
               inuseSamples: 3, allocSamples: 5)
    }
    let samples = [
        Sample(frames: [0, 1, 2], values: values(6000, 9000, 6)),
        Sample(frames: [3, 4, 2], values: values(3000, 3000, 3), truncated: true),
        Sample(frames: [4, 2], values: values(1000, 4000, 1)),
    ]
    var header = SnapshotHeader()
    header.pid = 77
    header.rate = 524_288
    header.executable = "/usr/bin/app"
    header.hostname = "h"
    header.startNanoseconds = 1_000
    header.timeNanoseconds = 5_000
    let modules = [
        Module(start: 0x7000_0000, end: 0x7001_0000, fileOffset: 0, vaddr: 0, buildID: [0xab], path: "/usr/lib/libstdc++.so.6"),
        Module(start: 0x1000, end: 0x9000, fileOffset: 0x1000, vaddr: 0x1000, buildID: [0x01, 0xfe], path: "/usr/bin/app"),
    ]
    let totals = samples.map(\.values).reduce(.zero, +)
    return Profile(frames: frames, samples: samples,
                   source: ProfileSource(file: "app.heapsnap", header: header, modules: modules, totals: totals))
}

@Suite struct ExporterTests {
    @Test func foldedLinesAreRootFirstAndSumToTheTotal() {
        let folded = FoldedExporter.export(exportProfile(), metric: .inuseBytes)
        #expect(folded == """
            main;load;parse_line [inlined] 6000
            main;serve 1000
            main;serve;std::vector<int>::push_back(int const&) 3000

            """)
        let sum = folded.split(separator: "\n").compactMap { Int($0.split(separator: " ").last!) }.reduce(0, +)
        #expect(Double(sum) == exportProfile().source.totals.inuseBytes.value)
        #expect(FoldedExporter.export(exportProfile(), metric: .allocObjects).hasSuffix("main;serve;std::vector<int>::push_back(int const&) 6\n"))
    }

    @Test func pprofRoundTripsWithInlineChainsAndMappings() throws {
        let bytes = try PprofExporter.export(exportProfile())
        #expect(bytes.prefix(2) == [0x1f, 0x8b])
        let p = try Perftools_Profiles_Profile(serializedBytes: try #require(Gunzip.decompress(bytes)))
        let s = p.stringTable
        #expect(p.sampleType.map { "\(s[Int($0.type)])/\(s[Int($0.unit)])" }
            == ["inuse_objects/count", "inuse_space/bytes", "alloc_objects/count", "alloc_space/bytes"])
        #expect(s[Int(p.defaultSampleType)] == "inuse_space")
        #expect(p.period == 524_288 && s[Int(p.periodType.type)] == "space")
        #expect(p.durationNanos == 4_000)
        #expect(p.sample.map(\.value) == [[6, 6000, 12, 9000], [3, 3000, 6, 3000], [1, 1000, 2, 4000]])
        // The main executable is mapping 1, with its build-id in hex.
        #expect(s[Int(p.mapping[0].filename)] == "/usr/bin/app" && s[Int(p.mapping[0].buildID)] == "01fe")
        func names(_ locationID: UInt64) -> [String] {
            let location = p.location[Int(locationID) - 1]
            return location.line.map { s[Int(p.function[Int($0.functionID) - 1].name)] }
        }
        // The first stack: the inlined parse_line and load share one location.
        #expect(p.sample[0].locationID.map(names) == [["parse_line", "load"], ["main"]])
        #expect(p.sample[1].locationID.map(names) == [["std::vector<int>::push_back(int const&)"], ["serve"], ["main"]])
        #expect(p.location[Int(p.sample[1].locationID[0]) - 1].mappingID == 2)
        #expect(p.sample[1].label.map { s[Int($0.key)] } == ["truncated"])
        // Functions are shared between locations ("main", "serve" appear once).
        #expect(p.function.count == 5)
        #expect(p.location.count == 4)
    }

    @Test func pprofRefusesDiffs() {
        let diff = exportProfile().subtracting(exportProfile())
        #expect(throws: HeapSnapError.self) { try PprofExporter.export(diff) }
    }

    @Test func goToolPprofReadsTheExport() throws {
        guard let go = ["/usr/bin/go", "/usr/lib/go/bin/go"].first(where: { FileManager.default.isExecutableFile(atPath: $0) }) else {
            // Scripts/test installs golang-go; without it this check cannot run here.
            Issue.record("go is not installed: run Scripts/test, which installs golang-go")
            return
        }
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("heapsnap-pprof-\(getpid())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let file = directory.appendingPathComponent("app.pb.gz")
        try Data(PprofExporter.export(exportProfile())).write(to: file)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: go)
        process.arguments = ["tool", "pprof", "-top", "-sample_index=inuse_space", file.path]
        var environment = ProcessInfo.processInfo.environment
        environment["HOME"] = directory.path
        environment["PPROF_TMPDIR"] = directory.path
        environment["GOCACHE"] = directory.appendingPathComponent("cache").path
        process.environment = environment
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        #expect(process.terminationStatus == 0, "\(output)")
        // -top lists flat values: parse_line holds 6000 of 10000 bytes.
        // pprof marks the inlined frame and shortens C++ template arguments.
        let lines = output.split(separator: "\n").map { $0.split(separator: " ", omittingEmptySubsequences: true).joined(separator: " ") }
        #expect(lines.contains("6000B 60.00% 60.00% 6000B 60.00% parse_line (inline)"), "\(output)")
        #expect(lines.contains("3000B 30.00% 90.00% 3000B 30.00% std::vector::push_back"), "\(output)")
        #expect(lines.contains("0 0% 100% 10000B 100% main"), "\(output)")
    }

    @Test func speedscopeHasOneSampledProfilePerMetric() throws {
        let bytes = try SpeedscopeExporter.export(exportProfile(), first: .allocBytes)
        let json = try #require(try JSONSerialization.jsonObject(with: Data(bytes)) as? [String: Any])
        #expect(json["$schema"] as? String == "https://www.speedscope.app/file-format-schema.json")
        let frames = try #require((json["shared"] as? [String: Any])?["frames"] as? [[String: Any]])
        #expect(frames.count == 5 && frames[0]["name"] as? String == "parse_line [inlined]" && frames[0]["line"] as? Int == 12)
        let profiles = try #require(json["profiles"] as? [[String: Any]])
        #expect(profiles.map { $0["name"] as? String } == ["alloc bytes", "inuse bytes", "inuse objects", "alloc objects"])
        let first = profiles[0]
        #expect(first["type"] as? String == "sampled" && first["unit"] as? String == "bytes")
        #expect(first["samples"] as? [[Int]] == [[2, 1, 0], [2, 4, 3], [2, 4]]) // root first
        #expect(first["weights"] as? [Double] == [9000, 3000, 4000])
        #expect(first["endValue"] as? Double == 16000)
    }

    @Test func flameTreeOfADiffHasBothSides() {
        let old = exportProfile()
        var new = exportProfile()
        new.samples[0].values.inuseBytes.value = 10_000 // the parse site grew by 4000
        let tree = FlameGraphBuilder(metric: .inuseBytes).tree(new.subtracting(old))
        let main = tree.root.children[0]
        #expect(main.frame.name == "main" && main.value.value == 14_000 && main.baseline.value == 10_000)
        let load = main.children.first { $0.frame.name == "load" }
        #expect(load?.change.value == 4_000 && load?.change.variance == 32)
        // Normalized: the old side is scaled to the new total (14000/10000).
        let normalized = FlameGraphBuilder(metric: .inuseBytes, normalize: true).tree(new.subtracting(old))
        #expect(abs(normalized.root.children[0].baseline.value - 14_000) < 1e-6)
        // Inverted: allocation sites are the roots.
        let inverted = FlameGraphBuilder(metric: .inuseBytes, inverted: true).tree(old)
        #expect(Set(inverted.root.children.map(\.frame.name))
            == ["parse_line [inlined]", "std::vector<int>::push_back(int const&)", "serve"])
    }
}
