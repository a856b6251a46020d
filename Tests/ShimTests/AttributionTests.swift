// Attribution to the program's own code (issue: "the row names the first frame
// in the program's own code"): real C++ and Swift programs whose allocations are
// made by their standard libraries (std::string, std::map, Swift arrays and
// strings) must be attributed to the program's functions by default, and to the
// standard library with --keep-runtime-frames.

import Foundation
import HeapSnapKit
import Testing

#if canImport(Glibc)
import Glibc
#endif

@Suite("Attribution")
struct AttributionTests {
    /// Allocated bytes by function, as `heapsnap top --by function --metric alloc-bytes` groups them.
    func functions(_ file: String, keepRuntimeFrames: Bool = false) throws -> [(name: String, module: String, bytes: Double)] {
        let query = ProfileQuery(SnapshotSelection(files: [file]), trimming: Trimming(runtimeFrames: !keepRuntimeFrames))
        let profile = try Pipeline(options: SymbolizeOptions(progress: false), environment: ProcessInfo.processInfo.environment).run(query).profile
        let report = Aggregator(options: AggregationOptions(groupBy: .function, metric: .allocBytes, limit: nil)).aggregate(profile)
        return report.rows.map { ($0.key.function, $0.frame?.moduleName ?? "", $0.values.allocBytes.value) }
    }

    func profiled(_ program: String) throws -> String {
        let dir = try Scratch()
        let r = try run(program, [], env: ["HEAPSNAP_DIR": dir.path, "HEAPSNAP_START": "1", "HEAPSNAP_AT_EXIT": "1", "HEAPSNAP_RATE": "4096"])
        try #require(r.status == 0, "\(r.stderr)")
        let file = try #require(dir.snapshots.first, "\(dir.entries)")
        let kept = FileManager.default.temporaryDirectory.appendingPathComponent("attribution-\(UUID().uuidString).heapsnap").path
        try FileManager.default.copyItem(atPath: file, toPath: kept)
        return kept
    }

    @Test("C++: std::string and std::map growth is attributed to fill and index_rows, not to libstdc++ or the headers")
    func cxx() throws {
        let file = try profiled(try Programs.shared.path("runtime_sites.cpp"))
        defer { unlink(file) }
        let rows = try functions(file)
        #expect(rows.prefix(2).map(\.name).sorted() == ["fill(int)", "index_rows(int)"], "\(rows.prefix(4))")
        // fill: 20,000 strings of 100 bytes (+1 for the terminator, and the vector's growth).
        let fill = try #require(rows.first { $0.name == "fill(int)" })
        #expect(fill.bytes > 2_000_000 && fill.bytes < 5_000_000, "\(fill)")
        let kept = try functions(file, keepRuntimeFrames: true)
        #expect(!kept.prefix(2).contains { $0.name == "fill(int)" }, "with --keep-runtime-frames the library allocates: \(kept.prefix(3))")
    }

    @Test("Swift: Array and String growth is attributed to grow and names, not to libswiftCore or specialised stdlib code")
    func swift() throws {
        let file = try profiled(try UnwindBuilds.shared.swift())
        defer { unlink(file) }
        let rows = try functions(file)
        let top = rows.prefix(2).map(\.name)
        #expect(top.count == 2 && top[0].hasPrefix("runtimesites.grow(") && top[1].hasPrefix("runtimesites.names("), "\(rows.prefix(4))")
        let kept = try functions(file, keepRuntimeFrames: true)
        #expect(kept.first?.module == "libswiftCore.so", "\(kept.prefix(3))")
    }
}
