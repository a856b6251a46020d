// Synthetic snapshots and fake stages, so tests run each stage on known input
// without files, compilers or llvm-symbolizer.

@testable import HeapSnapKit

/// Symbolizes from a fixed table: (object, ELF address) -> frames.
final class FakeSymbolizer: AddressSymbolizer {
    var table: [SymbolRequest: [SymbolizedFrame]]
    private(set) var requested: [SymbolRequest] = []

    init(_ table: [SymbolRequest: [SymbolizedFrame]]) { self.table = table }

    func symbolize(_ requests: [SymbolRequest]) -> [[SymbolizedFrame]] {
        requested += requests
        return requests.map { table[$0] ?? [] }
    }
}

/// Trusts every module's path as is.
struct TrustingLocator: ModuleLocator {
    var missing: Set<String> = []
    func locate(_ module: Module) -> ModuleLocation {
        if missing.contains(module.path) {
            return ModuleLocation(objectPath: nil, warning: "\(module.path): file not found", status: "missing")
        }
        return ModuleLocation(objectPath: module.path, status: "ok")
    }
}

enum Fixture {
    static let appPath = "/srv/app/bin/server"
    static let libPath = "/usr/lib/libfoo.so.1"
    static let app = Module(start: 0x5555_0000_0000, end: 0x5555_0001_0000, fileOffset: 0x1000, vaddr: 0x1000,
                            buildID: [0xAB, 0xCD, 0x01], path: appPath)
    static let lib = Module(start: 0x7F00_0000_0000, end: 0x7F00_0000_8000, fileOffset: 0, vaddr: 0,
                            buildID: [0x12, 0x34], path: libPath)

    /// Runtime return address for an ELF address in `module` (+1: frames are return addresses).
    static func ret(_ module: Module, _ elf: UInt64) -> UInt64 { elf - module.vaddr + module.start + 1 }

    static func frame(_ function: String, _ file: String, _ line: Int) -> SymbolizedFrame {
        SymbolizedFrame(function: function, file: file, line: line, column: 3)
    }

    /// What the fake symbolizer knows. ELF addresses in the app:
    /// 0x1100 malloc wrapper `xmalloc_impl` in libfoo (allocator by extra pattern only),
    /// 0x2000 `Cache::insert` at cache.cpp:42 with `std::vector` inline (inlined frame),
    /// 0x2100 `parse_request` at parser.c:17, 0x2200 `parse_request` at parser.c:30,
    /// 0x3000 `main` at main.c:9, 0x3100 `handle` at main.c:20,
    /// 0x4000 mangled Swift `$s6server5StoreC3addyySSF`, store.swift:5.
    static var symbols: [SymbolRequest: [SymbolizedFrame]] {
        [
            SymbolRequest(objectPath: libPath, address: 0x100): [frame("operator new(unsigned long)", "", 0)],
            SymbolRequest(objectPath: appPath, address: 0x2000): [
                frame("std::vector<int>::push_back(int const&)", "/usr/include/c++/12/bits/stl_vector.h", 1281),
                frame("Cache::insert(int)", "/srv/app/src/cache.cpp", 42),
            ],
            SymbolRequest(objectPath: appPath, address: 0x2100): [frame("parse_request", "/srv/app/src/parser.c", 17)],
            SymbolRequest(objectPath: appPath, address: 0x2200): [frame("parse_request", "/srv/app/src/parser.c", 30)],
            SymbolRequest(objectPath: appPath, address: 0x3000): [frame("main", "/srv/app/src/main.c", 9)],
            SymbolRequest(objectPath: appPath, address: 0x3100): [frame("handle", "/srv/app/src/main.c", 20)],
            SymbolRequest(objectPath: appPath, address: 0x4000): [frame("$s6server5StoreC3addyySSF", "/srv/app/src/store.swift", 5)],
        ]
    }

    static func group(_ samples: UInt64, _ bytes: Double, _ objects: Double, _ bytesVar: Double = 0, _ objectsVar: Double = 0) -> SampleGroup {
        SampleGroup(samples: samples, bytes: Estimate(value: bytes, variance: bytesVar), objects: Estimate(value: objects, variance: objectsVar))
    }

    static var header: SnapshotHeader {
        var h = SnapshotHeader()
        h.pid = 4242; h.ppid = 1; h.seq = 3; h.flags = [.final]
        h.startNanoseconds = 1_700_000_000_000_000_000
        h.timeNanoseconds = 1_700_000_012_500_000_000
        h.rate = 524_288; h.maxDepth = 64; h.session = 1
        h.samples = 120; h.dropped = 0; h.truncated = 1
        h.shimBytes = 1 << 20; h.budget = 64 << 20
        h.executable = appPath; h.hostname = "web-1"
        h.commandLine = [appPath, "--port", "8080"]
        return h
    }

    /// Four stacks:
    /// 0: operator new <- Cache::insert (via inlined vector::push_back) <- handle <- main   (big, in use)
    /// 1: parse_request:17 <- handle <- main                                              (medium)
    /// 2: parse_request:30 <- parse_request:17 (recursion) <- main                        (small)
    /// 3: Swift Store.add <- main                                                         (alloc only, freed)
    static func snapshot(scale: Double = 1, extraLeak: Double = 0) -> Snapshot {
        let stacks = [
            RawStack(frames: [ret(lib, 0x100), ret(app, 0x2000), ret(app, 0x3100), ret(app, 0x3000)]),
            RawStack(frames: [ret(app, 0x2100), ret(app, 0x3100), ret(app, 0x3000)]),
            RawStack(frames: [ret(app, 0x2200), ret(app, 0x2100), ret(app, 0x3000)], truncated: true),
            RawStack(frames: [ret(app, 0x4000), ret(app, 0x3000)]),
        ]
        let records = [
            StackRecord(stack: 0, inuse: group(40, 4_000_000 * scale + extraLeak, 1000 * scale, 4e10, 2500),
                        alloc: group(50, 5_000_000 * scale + extraLeak, 1500 * scale, 5e10, 3000)),
            StackRecord(stack: 1, inuse: group(20, 1_500_000 * scale, 300 * scale, 1e10, 400),
                        alloc: group(30, 2_000_000 * scale, 400 * scale, 2e10, 500)),
            StackRecord(stack: 2, inuse: group(5, 500_000 * scale, 100 * scale, 4e9, 100),
                        alloc: group(5, 500_000 * scale, 100 * scale, 4e9, 100)),
            StackRecord(stack: 3, inuse: .zero, alloc: group(35, 3_000_000 * scale, 6000 * scale, 3e10, 9000)),
        ]
        return Snapshot(header: header, modules: [app, lib], stacks: stacks, records: records)
    }

    /// The fixture symbolized with the fake symbolizer (allocator frames not yet trimmed).
    static func profile(_ snapshot: Snapshot = snapshot(), file: String = "/tmp/heapsnap.4242.3.heapsnap") -> Profile {
        ProfileSymbolizer(symbolizer: FakeSymbolizer(symbols), locator: TrustingLocator()).profile(of: snapshot, file: file)
    }

    /// Symbolized and trimmed, as the CLI would produce.
    static func trimmedProfile(_ snapshot: Snapshot = snapshot(), file: String = "/tmp/heapsnap.4242.3.heapsnap") -> Profile {
        AllocatorFrames().trim(profile(snapshot, file: file))
    }
}

/// Snapshots with a peak and a series: three periodic snapshots of process
/// 4242 at 2, 4 and 6 s after sampling started, with points every 0.5 s and
/// a peak of 8,500,000 bytes at 3.5 s (6,000,000 at Cache::insert,
/// 2,000,000 at parser.c:17, 500,000 at parser.c:30).
enum TimelineFixture {
    static let second: UInt64 = 1_000_000_000
    static var start: UInt64 { Fixture.header.startNanoseconds }
    /// In use at 0, 0.5, … 6 s (the peak, 8.5 MB, at 3.5 s).
    static let inuse: [Double] = [0, 1_000_000, 2_000_000, 3_500_000, 5_000_000, 6_500_000, 7_500_000, 8_500_000,
                                  7_000_000, 5_500_000, 4_000_000, 3_500_000, 3_000_000]
    static let peakBytes = 8_500_000.0
    static var peakTime: UInt64 { start + 3 * second + second / 2 }
    static let files = ["/tmp/heapsnap.4242.0.heapsnap", "/tmp/heapsnap.4242.1.heapsnap", "/tmp/heapsnap.4242.2.heapsnap"]

    static func point(_ i: Int) -> SeriesPoint {
        SeriesPoint(timeNanoseconds: start + UInt64(i) * second / 2, inuseBytes: Estimate(value: inuse[i], variance: 1e10 + inuse[i] * 2e4),
                    allocBytes: Double(i) * 1_500_000, rssBytes: UInt64(6 << 20) + UInt64(inuse[i] * 1.1) + UInt64(i) * 200_000)
    }

    static var peak: Peak {
        let g = Fixture.group
        return Peak(timeNanoseconds: peakTime, inuseBytes: Estimate(value: peakBytes, variance: 9e10), records: [
            StackRecord(stack: 0, inuse: g(60, 6_000_000, 1500, 6e10, 3000), alloc: g(70, 7_000_000, 2000, 7e10, 4000)),
            StackRecord(stack: 1, inuse: g(20, 2_000_000, 400, 2e10, 500), alloc: g(30, 2_500_000, 500, 2.5e10, 600)),
            StackRecord(stack: 2, inuse: g(5, 500_000, 100, 1e10, 100), alloc: g(5, 500_000, 100, 1e10, 100)),
        ])
    }

    /// Snapshot `n` (0, 1, 2) at 2, 4, 6 s: in use 5,000,000, 7,000,000 and 3,000,000 bytes (as the series says then),
    /// the fixture's four stacks scaled; the last two carry the peak.
    static func snapshot(_ n: Int) -> Snapshot {
        var s = Fixture.snapshot(scale: [5.0 / 6, 7.0 / 6, 0.5][n])
        s.header.seq = UInt32(n)
        s.header.flags = n == 2 ? [.periodic, .final] : [.periodic]
        s.header.timeNanoseconds = start + UInt64(2 * (n + 1)) * second
        s.header.formatMinor = 2
        let last = 4 * (n + 1)
        s.series = Series(intervalNanoseconds: second / 2, points: (0...last).map(point))
        if n >= 1 { s.peak = peak }
        return s
    }

    static var inputs: [(path: String, snapshot: Snapshot)] { (0..<3).map { (files[$0], snapshot($0)) } }

    /// Symbolized and trimmed as the CLI does (allocator and runtime frames): sites are the program's lines.
    static func profile(_ snapshot: Snapshot, _ file: String) -> Profile {
        RuntimeFrames().trim(Fixture.trimmedProfile(snapshot, file: file))
    }

    static func timeline(top: Int = 3) throws -> Timeline {
        try TimelineBuilder(options: TimelineOptions(top: top)).build(inputs, profile: profile)
    }
}
