// End-to-end tests of libheapsnap_preload.so (CShim). Each test runs a real
// program under LD_PRELOAD and asserts on values a broken shim would get
// wrong: which sites appear, live vs freed, exact counts, estimates within
// the file's own error bars, pids, flags, file modes and messages.

import Foundation
import HeapSnapKit
import HeapSnapTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

@Suite("Shim")
struct ShimTests {
    let sites = "sites.c"

    @Test("links only libc: no libunwind until sampling starts, no Swift runtime, no libstdc++, no toolchain RUNPATH")
    func linkage() throws {
        let r = try run("/usr/bin/readelf", ["-d", Shim.library], preload: false)
        #expect(r.status == 0, "\(r.stderr)")
        let needed = r.stdout.split(separator: "\n").filter { $0.contains("(NEEDED)") }
            .compactMap { $0.split(separator: "[").last?.split(separator: "]").first.map(String.init) }
        #expect(needed.contains("libc.so.6"))
        let allowed: Set = ["libc.so.6", "libm.so.6", "libdl.so.2", "libpthread.so.0", "ld-linux-x86-64.so.2"]
        #expect(Set(needed).isSubset(of: allowed), "unexpected NEEDED: \(needed)")
        let paths = r.stdout.split(separator: "\n").filter { $0.contains("RPATH") || $0.contains("RUNPATH") }
        #expect(!paths.contains { $0.contains("swift") || $0.contains("/opt") }, "\(paths)")
        let ldd = try run("/usr/bin/ldd", [Shim.library], preload: false)
        #expect(!ldd.stdout.contains("swift") && !ldd.stdout.contains("libstdc++"), "\(ldd.stdout)")
    }

    /// The shim computes e^x - 1 and ln x itself (CShim/base/exp_log.h) so that loading it
    /// does not map libm; sampling weights and countdowns rest on them.
    @Test("exp_log: the shim's expm1 and log are within 2 units in the last place of libm's")
    func expLog() throws {
        let r = try run(Programs.shared.path("exp_log_check.c", flags: ["-O2"]), [], preload: false)
        #expect(r.status == 0, "\(r.stderr)")
        var worst: [String: Double] = [:]
        for line in r.stdout.split(separator: "\n") {
            let parts = line.split(separator: " ")
            if parts.count == 4, parts[2] == "over", Int(parts[3]) ?? 0 >= 1_000_000 { worst[String(parts[0])] = Double(parts[1]) }
        }
        #expect(worst.count == 2, "\(r.stdout)")
        #expect(worst.values.allSatisfy { $0 <= 2 }, "\(worst)")
    }

    /// What loading the library costs a process that is never asked anything: no
    /// libunwind (nor the liblzma it pulls in), no libm; the first request loads
    /// libunwind before sampling starts, and sampling then works as ever.
    @Test("loaded and never asked: no libunwind, no libm; the first start loads libunwind, then samples")
    func loadCostsLittle() throws {
        let dir = try Scratch()
        func maps(_ pid: Int32) -> String { (try? String(contentsOfFile: "/proc/\(pid)/maps", encoding: .utf8)) ?? "" }
        let h = try Background(try Programs.shared.path("robust.c"), ["idle"],
                               env: ["HEAPSNAP_DIR": dir.path, "HEAPSNAP_RATE": "1"], interactive: true)
        let pid = Int32(try h.line("pid ").split(separator: " ")[1])!
        #expect(h.waitUntilHandled(), "the shim installed no handlers: \(h.stderr)")
        let loaded = maps(pid)
        #expect(loaded.contains(Shim.library), "the library is not loaded: the test proves nothing")
        #expect(!loaded.contains("libunwind") && !loaded.contains("liblzma") && !loaded.contains("libm.so"), "\(loaded)")

        #expect(kill(pid, Command.start.signal) == 0)
        try Wait.until("libunwind loaded after start") { maps(pid).contains("libunwind") }
        // The start runs after the load; until then a snapshot request finds sampling off and says so.
        let snap = try snapshotWithSamples(h, pid, dir)
        #expect(snap.header.flags == [.exact] && snap.header.session == 1)
        let serve = snap.site(h.sites["serve"])
        #expect(serve.alloc.samples > 0 && serve.alloc.bytes.value == Double(serve.alloc.samples) * 300, "\(serve.alloc)")
        h.closeInput()
        #expect(try h.wait() == 0, "\(h.stderr)")
        let said = h.stderr.split(separator: "\n").filter { !$0.hasSuffix("snapshot ignored: not sampling") }
        #expect(said.isEmpty, "\(h.stderr)")
    }

    /// `robust idle` after a start request: makes it allocate and asks for snapshots
    /// until one holds samples of its site (the start runs when the writer gets to it).
    func snapshotWithSamples(_ h: Background, _ pid: Int32, _ dir: Scratch) throws -> Snapshot {
        try Wait.for("a snapshot with samples: \(dir.entries); \(h.stderr)", every: 0) {
            let before = dir.snapshots.count
            h.send("more\n")
            kill(pid, Command.snapshot.signal)
            guard Wait.poll(timeout: 0.5, { dir.snapshots.count > before }), let last = dir.snapshots.last else { return nil }
            let snap = try dir.read(last)
            return snap.site(h.sites["serve"]).alloc.samples > 0 ? snap : nil
        }
    }

    @Test("idle costs one jump: each exported allocation function only jumps through its route; the sampling paths of malloc and free set up no frame")
    func idlePathShape() throws {
        let r = try run("/usr/bin/objdump", ["-d", "--no-show-raw-insn", Shim.library], preload: false)
        #expect(r.status == 0, "\(r.stderr)")
        // Function name -> its instructions (mnemonic and operands), from objdump's listing.
        var body: [String: [String]] = [:]
        var current: String?
        for line in r.stdout.split(separator: "\n", omittingEmptySubsequences: false) {
            if line.hasSuffix(">:"), let open = line.firstIndex(of: "<") {
                current = String(line[line.index(after: open)..<line.index(line.endIndex, offsetBy: -2)])
                body[current!] = []
            } else if line.isEmpty {
                current = nil
            } else if let name = current, let tab = line.firstIndex(of: "\t") {
                body[name]!.append(line[line.index(after: tab)...].trimmingCharacters(in: .whitespaces))
            }
        }
        for name in ["malloc", "free", "calloc", "realloc", "posix_memalign", "aligned_alloc", "memalign", "valloc", "pvalloc"] {
            let code = try #require(body[name], "no \(name) in the library")
            let upToJump = code.prefix { !$0.hasPrefix("jmp") }
            // A load of the route and the jump (or the jump through memory): no test of any state.
            #expect(upToJump.count <= 1 && code.count > upToJump.count, "\(name): \(code)")
            #expect(!code.joined().contains("hs_active") && !code.joined().contains("%fs"), "\(name): \(code)")
            #expect(code.prefix(upToJump.count + 1).joined().contains("hs_route"), "\(name) does not jump through its route: \(code)")
        }
        for name in ["malloc_fast_path", "free_fast_path"] {
            let code = try #require(body[name], "no \(name) in the library")
            #expect(!code.contains { $0.hasPrefix("push") || $0.hasPrefix("call") }, "\(name): \(code)")
        }
    }

    @Test("known sites, live vs freed, estimates within 4 sigma of the truth")
    func sampledEstimates() throws {
        let dir = try Scratch()
        let r = try run(Programs.shared.path(sites), ["basic"], env: ["HEAPSNAP_DIR": dir.path, "HEAPSNAP_RATE": "4096"])
        #expect(r.status == 0, "\(r.stderr)")
        let files = dir.snapshots
        try #require(files.count == 2, "\(dir.entries)")
        let mid = try dir.read(files[0]), last = try dir.read(files[1])
        let s = r.sites
        #expect(mid.header.pid == UInt32(r.pid) && mid.header.seq == 0 && last.header.seq == 1)
        #expect(mid.header.rate == 4096 && mid.header.flags == [] && last.header.flags == [.final])
        #expect(mid.header.session == 1 && mid.header.dropped == 0)

        // leak: 2000 x 1000 B live at the first snapshot, 1000 x 1000 B at the last.
        let leak = mid.site(s["leak"])
        #expect(leak.inuse.samples > 100)
        #expect(leak.inuse.bytes.covers(2_000_000), "\(leak.inuse.bytes)")
        #expect(leak.inuse.objects.covers(2000), "\(leak.inuse.objects)")
        #expect(leak.alloc.bytes.covers(2_000_000))
        #expect(last.site(s["leak"]).inuse.bytes.covers(1_000_000), "\(last.site(s["leak"]).inuse.bytes)")
        #expect(last.site(s["leak"]).alloc.bytes.value == leak.alloc.bytes.value)

        // churn: everything freed, 4 MB allocated.
        let churn = mid.site(s["churn"])
        #expect(churn.inuse.samples == 0 && churn.inuse.bytes.value == 0)
        #expect(churn.alloc.samples > 100)
        #expect(churn.alloc.bytes.covers(4_000_000), "\(churn.alloc.bytes)")

        // calloc with mixed sizes 16 B..64 KiB: per-sample weights keep it unbiased. Judged by
        // the spread the known sizes give (sum of (1-p)/p over the blocks, p = 1 - e^(-s/R)),
        // not by the estimate's own variance: a draw that happens to miss the rare 16 B samples
        // (weight 256 each) is low and also reports a small variance, which made a fair draw
        // look 4 sigma low about once in a few hundred runs.
        let mixed = Double(r.stdout.split(separator: "\n").first { $0.hasPrefix("mixed ") }!.split(separator: " ")[1])!
        let calloc = mid.site(s["calloc"])
        let sizes = (0..<3000).map { Double(16 << ($0 % 13)) }      // as sites.c allocates them
        let p = sizes.map { -expm1(-$0 / 4096) }
        let objectsVar = p.map { (1 - $0) / $0 }.reduce(0, +)
        let bytesVar = zip(sizes, p).map { $0 * $0 * (1 - $1) / $1 }.reduce(0, +)
        #expect(abs(calloc.inuse.bytes.value - mixed) <= 4 * bytesVar.squareRoot(), "\(calloc.inuse.bytes) vs \(mixed), sd \(bytesVar.squareRoot())")
        #expect(abs(calloc.inuse.objects.value - 3000) <= 4 * objectsVar.squareRoot(), "\(calloc.inuse.objects), sd \(objectsVar.squareRoot())")
        #expect(sizes.reduce(0, +) == mixed, "sites.c's sizes changed: \(mixed)")

        // Stacks start at the caller: the innermost frame of a leak stack is in site_leak.
        let leakStacks = mid.records.map { mid.stacks[$0.stack] }.filter { st in st.frames.contains { $0 >= s["leak"]! && $0 < s["leak"]! + 4096 } }
        #expect(!leakStacks.isEmpty && leakStacks.allSatisfy { $0.frames[0] >= s["leak"]! && $0.frames[0] < s["leak"]! + 4096 })
        // Modules: the executable is listed with a build-id and covers the site.
        let exe = mid.modules.first { $0.contains(s["leak"]!) }
        #expect(exe?.path == (try Programs.shared.path(sites)) && (exe?.buildID.count ?? 0) >= 16)
    }

    @Test("exact mode (HEAPSNAP_RATE=1) counts every allocation exactly, size 0 included")
    func exactMode() throws {
        let dir = try Scratch()
        let r = try run(Programs.shared.path(sites), ["exact"], env: ["HEAPSNAP_DIR": dir.path, "HEAPSNAP_RATE": "1"])
        #expect(r.status == 0, "\(r.stderr)")
        let snap = try dir.read(try #require(dir.snapshots.first))
        #expect(snap.header.flags == [.exact, .final] && snap.header.rate == 1)
        let s = r.sites
        let leak = snap.site(s["leak"])
        #expect(leak.alloc.samples == 1000 && leak.alloc.objects.value == 1000 && leak.alloc.bytes.value == 50_500)
        #expect(leak.inuse.samples == 500 && leak.inuse.objects.value == 500 && leak.inuse.bytes.value == 25_500)
        #expect(leak.alloc.bytes.variance == 0 && leak.inuse.objects.variance == 0)
        let churn = snap.site(s["churn"])
        #expect(churn.alloc.objects.value == 500 && churn.alloc.bytes.value == 12_000 && churn.inuse.samples == 0)
        let zero = snap.site(s["calloc"])
        #expect(zero.inuse.objects.value == 7 && zero.inuse.bytes.value == 0)
    }

    @Test("exact mode: 300 distinct stacks from 2 threads, each with exactly its own allocations, at a snapshot half way and at the end")
    func exactManyStacks() throws {
        let dir = try Scratch()
        let r = try run(Programs.shared.path(sites), ["stacks"], env: ["HEAPSNAP_DIR": dir.path, "HEAPSNAP_RATE": "1", "HEAPSNAP_MAX_DEPTH": "400"])
        #expect(r.status == 0, "\(r.stderr)")
        let files = dir.snapshots
        try #require(files.count == 2, "\(dir.entries)")
        let deep = try #require(r.sites["deep"])
        // Blocks at depth d are 8 (d + 1) bytes and their stack holds d + 1 frames of site_deep.
        for (file, perStack, live) in [(files[0], 2, 2), (files[1], 4, 2)] {
            let snap = try dir.read(file)
            var seen: [Int: (alloc: SampleGroup, inuse: SampleGroup)] = [:]
            for record in snap.records {
                let frames = snap.stacks[record.stack].frames.filter { $0 >= deep && $0 < deep + 4096 }
                guard !frames.isEmpty else { continue }
                let depth = frames.count - 1
                let sum = seen[depth] ?? (.zero, .zero)
                seen[depth] = (sum.alloc + record.alloc, sum.inuse + record.inuse)
            }
            #expect(seen.count == 300, "\(file): \(seen.count) depths")
            for (depth, g) in seen {
                let bytes = UInt64(8 * (depth + 1))
                #expect(g.alloc.samples == UInt64(perStack) && g.alloc.bytes.value == Double(UInt64(perStack) * bytes),
                        "\(file) depth \(depth): alloc \(g.alloc.samples) blocks, \(g.alloc.bytes.value) B")
                #expect(g.inuse.samples == UInt64(live) && g.inuse.bytes.value == Double(UInt64(live) * bytes),
                        "\(file) depth \(depth): in use \(g.inuse.samples) blocks, \(g.inuse.bytes.value) B")
            }
        }
    }

    /// Allocators that bring their own operator new/delete (and so never call malloc for them).
    static let nextAllocators = ["libjemalloc.so.2", "libtcmalloc.so.4"]

    /// The path of a shared library in the multiarch directory, if installed.
    static func systemLibrary(_ name: String) -> String? {
        ["/usr/lib/x86_64-linux-gnu/", "/usr/lib/aarch64-linux-gnu/"].map { $0 + name }
            .first { FileManager.default.fileExists(atPath: $0) }
    }

    @Test("C++ new/delete: through libstdc++'s malloc, or sampled in our operators when the next allocator brings its own",
          arguments: [nil] + nextAllocators)
    func cxxNewDelete(allocator: String?) throws {
        let dir = try Scratch()
        var also: String?
        if let allocator {
            let found: String = try #require(Self.systemLibrary(allocator),
                                             "\(allocator) is missing (Scripts/test installs its package, see Scripts/lib.sh)")
            also = found
        }
        let r = try run(Programs.shared.path("cxx_sites.cpp"), [],
                        env: ["HEAPSNAP_DIR": dir.path, "HEAPSNAP_RATE": "1", "HEAPSNAP_START": "1", "HEAPSNAP_AT_EXIT": "1"],
                        alsoPreload: also)
        #expect(r.status == 0, "\(r.stderr)")
        let snap = try dir.read(try #require(dir.snapshots.first))
        if let allocator { #expect(snap.modules.contains { $0.path.hasSuffix(allocator) }) }
        #expect(snap.header.flags == [.exact, .atExit])
        let s = r.sites
        let node = snap.site(s["new"])
        #expect(node.alloc.objects.value == 300 && node.alloc.bytes.value == 300 * 48)
        #expect(node.inuse.objects.value == 200 && node.inuse.bytes.value == 200 * 48)
        let array = snap.site(s["array"])
        #expect(array.inuse.objects.value == 20 && array.inuse.bytes.value == 20 * 333)
        let vector = snap.site(s["vector"])
        #expect(vector.inuse.bytes.value >= 4000 && vector.inuse.objects.value == 2)
    }

    @Test("threads: every thread's allocations, frees from another thread")
    func threads() throws {
        let dir = try Scratch()
        let r = try run(Programs.shared.path(sites), ["threads"], env: ["HEAPSNAP_DIR": dir.path, "HEAPSNAP_RATE": "1"])
        #expect(r.status == 0, "\(r.stderr)")
        let snap = try dir.read(try #require(dir.snapshots.first))
        let t = snap.site(r.sites["thread"])
        #expect(t.alloc.objects.value == 4000 && t.alloc.bytes.value == 4000 * 64)
        #expect(t.inuse.objects.value == 3000 && t.inuse.bytes.value == 3000 * 64)
    }

    @Test("realloc chains: each realloc frees the old block and allocates the new one")
    func reallocChains() throws {
        let dir = try Scratch()
        let r = try run(Programs.shared.path(sites), ["realloc"], env: ["HEAPSNAP_DIR": dir.path, "HEAPSNAP_RATE": "1"])
        #expect(r.status == 0, "\(r.stderr)")
        let snap = try dir.read(try #require(dir.snapshots.first))
        let s = r.sites
        let first = snap.site(s["leak"]), grown = snap.site(s["realloc"])
        #expect(first.alloc.objects.value == 100 && first.inuse.objects.value == 0)
        // 100 chains x 10 reallocs + realloc(NULL, 100); realloc(p, 0) allocates nothing.
        #expect(grown.alloc.objects.value == 1001)
        // 49 chains of 16 KiB still live (50 freed, one freed by realloc(p, 0)), plus the 100 B block.
        #expect(grown.inuse.objects.value == 50 && grown.inuse.bytes.value == 49 * 16384 + 100)
    }

    @Test("aligned allocation functions are recorded with their requested sizes")
    func alignedAllocations() throws {
        let dir = try Scratch()
        let r = try run(Programs.shared.path(sites), ["aligned"], env: ["HEAPSNAP_DIR": dir.path, "HEAPSNAP_RATE": "1"])
        #expect(r.status == 0, "exit \(r.status): \(r.stderr)")
        let snap = try dir.read(try #require(dir.snapshots.first))
        for name in ["posix_memalign", "aligned_alloc", "memalign", "valloc", "pvalloc"] {
            let g = snap.site(r.sites[name])
            #expect(g.alloc.objects.value == 20 && g.inuse.objects.value == 10 && g.inuse.bytes.value == 1000, "\(name)")
        }
    }

    @Test("jemalloc preloaded after the shim: forwarded to it, missing functions built from its own",
          .enabled(if: ShimTests.systemLibrary("libjemalloc.so.2") != nil,
                   "libjemalloc.so.2 is not installed (apt-get install libjemalloc2; Scripts/test installs it)"),
          arguments: ["aligned", "realloc", "exact"])
    func nextAllocator(mode: String) throws {
        let jemalloc = try #require(Self.systemLibrary("libjemalloc.so.2"))
        let dir = try Scratch()
        let r = try run(Programs.shared.path(sites), [mode], env: ["HEAPSNAP_DIR": dir.path, "HEAPSNAP_RATE": "1"],
                        alsoPreload: jemalloc)
        #expect(r.status == 0, "exit \(r.status): \(r.stderr)")
        let snap = try dir.read(try #require(dir.snapshots.first))
        #expect(snap.modules.contains { $0.path.contains("libjemalloc") })
        switch mode {
        case "aligned":
            for name in ["posix_memalign", "aligned_alloc", "memalign", "valloc", "pvalloc"] {
                #expect(snap.site(r.sites[name]).inuse.objects.value == 10, "\(name)")
            }
        case "realloc":
            #expect(snap.site(r.sites["realloc"]).alloc.objects.value == 1001)
        default:
            #expect(snap.site(r.sites["leak"]).inuse.bytes.value == 25_500)
        }
    }

    /// A child forked while its parent samples samples too, in a fresh session: it frees half of
    /// the parent's sampled blocks (not its own samples) and allocates 30 of its own.
    @Test("fork: a child forked while its parent samples samples too, only its own blocks, in its own file")
    func forkChild() throws {
        let dir = try Scratch()
        let r = try run(Programs.shared.path(sites), ["fork"], env: ["HEAPSNAP_DIR": dir.path, "HEAPSNAP_RATE": "1"])
        #expect(r.status == 0, "exit \(r.status): \(r.stderr)")
        let files = dir.snapshots
        try #require(files.count == 2, "\(dir.entries)")
        let snaps = try files.map { try dir.read($0) }
        let parent = try #require(snaps.first { $0.header.pid == UInt32(r.pid) })
        let child = try #require(snaps.first { $0.header.pid != UInt32(r.pid) })
        #expect(child.header.ppid == UInt32(r.pid) && child.header.seq == 0 && child.header.session == 1)
        #expect(r.stdout.contains("child \(child.header.pid)"))
        let s = r.sites
        #expect(parent.site(s["leak"]).inuse.objects.value == 110 && parent.site(s["child"]).alloc.samples == 0)
        #expect(child.site(s["child"]).inuse.objects.value == 30 && child.site(s["leak"]).alloc.samples == 0)
        #expect(child.header.flags == [.exact, .final])
        #expect(child.header.startNanoseconds > parent.header.startNanoseconds, "the child's session is its own")
    }

    @Test("driven from outside with kill: start, snapshot, stop")
    func externalSignals() throws {
        let dir = try Scratch()
        let process = Process()
        process.executableURL = URL(fileURLWithPath: try Programs.shared.path(sites))
        process.arguments = ["serve"]
        var env = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("HEAPSNAP_") }
        env["LD_PRELOAD"] = Shim.library
        env["HEAPSNAP_DIR"] = dir.path
        env["HEAPSNAP_RATE"] = "8192"
        process.environment = env
        let input = Pipe()
        process.standardInput = input
        let outPath = dir.path + "/../" + URL(fileURLWithPath: dir.path).lastPathComponent + ".out"
        _ = FileManager.default.createFile(atPath: outPath, contents: nil)
        defer { try? FileManager.default.removeItem(atPath: outPath) }
        process.standardOutput = try FileHandle(forWritingTo: URL(fileURLWithPath: outPath))
        try process.run()
        let pid = process.processIdentifier
        /// Work for the program at a steady pace (a byte, 100 allocations, every 5 ms): its load, not a wait.
        func feed(_ ms: Int) {
            for _ in 0..<(ms / 5) {
                input.fileHandleForWriting.write(Data([1]))
                usleep(5000)
            }
        }
        func waitFor(_ count: Int) -> Bool { Wait.poll { dir.snapshots.count >= count } }
        feed(100)
        #expect(dir.snapshots.isEmpty)                       // idle: nothing written
        #expect(kill(pid, Shim.signalBase + 1) == 0)
        feed(300)
        #expect(kill(pid, Shim.signalBase + 3) == 0)
        #expect(waitFor(1))
        feed(100)
        #expect(kill(pid, Shim.signalBase + 2) == 0)
        #expect(waitFor(2))
        try input.fileHandleForWriting.close()
        process.waitUntilExit()
        #expect(process.terminationStatus == 0)
        let files = dir.snapshots
        try #require(files.count == 2)
        let a = try dir.read(files[0]), b = try dir.read(files[1])
        #expect(a.header.pid == UInt32(pid) && a.header.seq == 0 && a.header.flags == [])
        #expect(b.header.seq == 1 && b.header.flags == [.final] && b.header.session == 1)
        #expect(a.header.startNanoseconds == b.header.startNanoseconds && a.header.timeNanoseconds < b.header.timeNanoseconds)
        #expect(b.header.commandLine.last == "serve")
        #expect(a.header.samples > 0 && b.header.samples >= a.header.samples)
        let out = RunResult(status: 0, stdout: (try? String(contentsOfFile: outPath, encoding: .utf8)) ?? "", stderr: "", pid: pid)
        let leak = out.sites["leak"]
        #expect(a.site(leak).inuse.samples > 0 && b.site(leak).inuse.samples >= a.site(leak).inuse.samples)
        #expect(b.site(out.sites["churn"]).alloc.samples > 0)
    }

    @Test("storm: threads allocating while sampling starts, snapshots, stops and the process forks")
    func storm() throws {
        let dir = try Scratch()
        let r = try run(Programs.shared.path(sites), ["storm"], env: ["HEAPSNAP_DIR": dir.path, "HEAPSNAP_RATE": "256"],
                        timeout: 60)
        #expect(r.status == 0, "exit \(r.status): \(r.stderr)")
        #expect(r.stderr.isEmpty, "\(r.stderr)")
        let files = dir.snapshots
        #expect(files.count == 40 && dir.entries.count == 40, "\(dir.entries)")
        var sessions: [UInt32] = []
        for file in files {
            let snap = try dir.read(file)
            #expect(snap.header.pid == UInt32(r.pid) && snap.header.samples > 0)
            #expect(snap.records.allSatisfy { $0.inuse.samples <= $0.alloc.samples })
            sessions.append(snap.header.session)
        }
        #expect(sessions == (1...20).flatMap { [UInt32($0), UInt32($0)] })
    }

    @Test("a host that closes every descriptor: no byte lands in its files, control recovers")
    func daemonClosesDescriptors() throws {
        let dir = try Scratch()
        let victim = dir.path + "/victim"
        let r = try run(Programs.shared.path(sites), ["daemon", victim], env: ["HEAPSNAP_DIR": dir.path, "HEAPSNAP_RATE": "1"])
        #expect(r.status == 0, "exit \(r.status): \(r.stderr)")
        let size = (try? FileManager.default.attributesOfItem(atPath: victim)[.size] as? Int) ?? -1
        #expect(size == 0)
        let snap = try dir.read(try #require(dir.snapshots.first))
        #expect(snap.site(r.sites["leak"]).inuse.objects.value == 1)
    }

    @Test("a host that takes our signal keeps its wish, we keep control, one warning")
    func hostHandler() throws {
        let dir = try Scratch()
        let r = try run(Programs.shared.path(sites), ["handler"], env: ["HEAPSNAP_DIR": dir.path, "HEAPSNAP_RATE": "1"])
        #expect(r.status == 0, "exit \(r.status): \(r.stderr)")
        #expect(r.stderr.contains("HEAPSNAP_SIGNAL_BASE"))
        #expect(r.stderr.split(separator: "\n").count == 1, "\(r.stderr)")
        let snap = try dir.read(try #require(dir.snapshots.first))
        #expect(snap.site(r.sites["leak"]).inuse.objects.value == 1)
    }

    @Test("HEAPSNAP_SIGNAL_BASE moves the three signals")
    func signalBase() throws {
        let dir = try Scratch()
        let r = try run(Programs.shared.path(sites), ["exact"],
                        env: ["HEAPSNAP_DIR": dir.path, "HEAPSNAP_RATE": "1", "HEAPSNAP_SIGNAL_BASE": "6"])
        #expect(r.status == 0, "exit \(r.status): \(r.stderr)")
        let snap = try dir.read(try #require(dir.snapshots.first))
        #expect(snap.site(r.sites["leak"]).inuse.bytes.value == 25_500)
        // SIGRTMIN+1 is not ours any more: its default action (terminate) applies.
        let other = try run(Programs.shared.path(sites), ["exact"],
                            env: ["HEAPSNAP_DIR": dir.path, "HEAPSNAP_SIGNAL_BASE": "6", "SITES_SIGNAL_BASE": "1"])
        #expect(other.status != 0)
    }

    @Test("memory budget: samples beyond it are dropped, the budget holds, the host is fine")
    func budget() throws {
        let dir = try Scratch()
        let r = try run(Programs.shared.path(sites), ["budget"],
                        env: ["HEAPSNAP_DIR": dir.path, "HEAPSNAP_RATE": "1", "HEAPSNAP_MAX_MEMORY": "1M"])
        #expect(r.status == 0, "exit \(r.status): \(r.stderr)")
        let snap = try dir.read(try #require(dir.snapshots.first))
        #expect(snap.header.budget == 1 << 20 && snap.header.shimBytes <= 1 << 20)
        // 200,000 blocks from site_deep, plus the few the program's wait loop makes while stopping
        // (it polls for the file; a request that reaches the signalfd waits 20 ms for handlers first).
        #expect(snap.header.samples >= 200_000 && snap.header.samples < 200_200 && snap.header.dropped > 0, "\(snap.header.samples) samples, \(snap.header.dropped) dropped")
        let deep = snap.site(r.sites["deep"])
        #expect(deep.inuse.samples > 1000 && deep.inuse.samples + snap.header.dropped >= 200_000)
        #expect(snap.stacks.count == 50)    // 50 recursion depths = 50 distinct stacks
    }

    @Test("HEAPSNAP_MAX_DEPTH cuts stacks and flags them")
    func truncation() throws {
        let dir = try Scratch()
        let r = try run(Programs.shared.path(sites), ["budget"],
                        env: ["HEAPSNAP_DIR": dir.path, "HEAPSNAP_RATE": "65536", "HEAPSNAP_MAX_DEPTH": "8"])
        #expect(r.status == 0, "exit \(r.status): \(r.stderr)")
        let snap = try dir.read(try #require(dir.snapshots.first))
        #expect(snap.header.maxDepth == 8)
        #expect(snap.stacks.allSatisfy { $0.frames.count <= 8 })
        #expect(snap.stacks.contains { $0.truncated } && snap.header.truncated > 0)
    }

    @Test("bad values: one clear line each on stderr, defaults used, the host runs")
    func badEnvironment() throws {
        let dir = try Scratch()
        let r = try run(Programs.shared.path(sites), ["exit", "3"],
                        env: ["HEAPSNAP_DIR": dir.path, "HEAPSNAP_RATE": "lots", "HEAPSNAP_MAX_DEPTH": "0",
                              "HEAPSNAP_START": "1", "HEAPSNAP_AT_EXIT": "1", "HEAPSNAP_INTERVAL": "-5",
                              "HEAPSNAP_MAX_MEMORY": "12Q", "HEAPSNAP_KEEP": "1", "HEAPSNAP_TYPO": "1",
                              // The test suites' own variables are not the shim's either.
                              "HEAPSNAP_FUZZ_ROUNDS": "10"])
        #expect(r.status == 3)
        let lines = r.stderr.split(separator: "\n")
        #expect(lines.count == 7, "\(r.stderr)")
        for v in ["HEAPSNAP_RATE=\"lots\"", "HEAPSNAP_MAX_DEPTH=\"0\"", "HEAPSNAP_INTERVAL=\"-5\"", "HEAPSNAP_MAX_MEMORY=\"12Q\"",
                  "HEAPSNAP_KEEP=\"1\" is not valid (expected periodic snapshots kept per process, 2 to 10000; 0 keeps them all); using 100", "HEAPSNAP_TYPO",
                  "HEAPSNAP_FUZZ_ROUNDS"] {
            #expect(lines.contains { $0.hasPrefix("heapsnap: ") && $0.contains(v) }, "\(v)")
        }
        let snap = try dir.read(try #require(dir.snapshots.first))
        #expect(snap.header.rate == 524_288 && snap.header.maxDepth == 128 && snap.header.budget == 64 << 20)
        #expect(snap.header.flags == [.atExit])
    }

    /// HEAPSNAP_MAX_MEMORY's default follows the mode: exact mode keeps an entry per live block, so
    /// its default is 512M; a value set is used as set (1M, the smallest, and 2G); a bad one in exact
    /// mode falls back to exact mode's default and says so.
    @Test("the budget: 64M when sampling, 512M in exact mode, a value set is obeyed", arguments: [
        (rate: "2", budget: nil as String?, expected: UInt64(64) << 20),
        (rate: "1", budget: nil, expected: UInt64(512) << 20),
        (rate: "1", budget: "1M", expected: UInt64(1) << 20),
        (rate: "1", budget: "64M", expected: UInt64(64) << 20),
        (rate: "2", budget: "2G", expected: UInt64(2) << 30),
        (rate: "1", budget: "12Q", expected: UInt64(512) << 20),
    ])
    func budgetDefault(rate: String, budget: String?, expected: UInt64) throws {
        let dir = try Scratch()
        var env = ["HEAPSNAP_DIR": dir.path, "HEAPSNAP_RATE": rate, "HEAPSNAP_START": "1", "HEAPSNAP_AT_EXIT": "1"]
        if let budget { env["HEAPSNAP_MAX_MEMORY"] = budget }
        let r = try run(Programs.shared.path(sites), ["exit", "0"], env: env)
        #expect(r.status == 0, "\(r.stderr)")
        let snap = try dir.read(try #require(dir.snapshots.first))
        #expect(snap.header.budget == expected && snap.header.rate == UInt64(rate)!)
        if budget == "12Q" {
            #expect(r.stderr == "heapsnap: HEAPSNAP_MAX_MEMORY=\"12Q\" is not valid (expected bytes for the shim's tables, 1M to 1T, e.g. 64M); "
                    + "using 512M (exact mode's default)\n", "\(r.stderr)")
        } else {
            #expect(r.stderr.isEmpty, "\(r.stderr)")
        }
    }

    @Test("missing or unusable directory: one line, no file, host exit code unchanged", arguments: ["missing", "file"])
    func unwritableDirectory(kind: String) throws {
        let dir = try Scratch()
        let target = kind == "missing" ? "\(dir.path)/does/not/exist" : "\(dir.path)/plain"
        if kind == "file" { _ = FileManager.default.createFile(atPath: target, contents: Data([1])) }
        let r = try run(Programs.shared.path(sites), ["exit", "7"],
                        env: ["HEAPSNAP_DIR": target, "HEAPSNAP_START": "1", "HEAPSNAP_AT_EXIT": "1"])
        #expect(r.status == 7)
        #expect(r.stderr.hasPrefix("heapsnap: cannot write snapshot \(target)/heapsnap.\(r.pid).0.heapsnap"), "\(r.stderr)")
        #expect(r.stderr.split(separator: "\n").count == 1)
        #expect(dir.entries == (kind == "file" ? ["plain"] : []))
    }

    @Test("full disk: one line, the temporary file removed, host exit code unchanged (needs a tmpfs mount: root)")
    func fullDisk() throws {
        let dir = try Scratch()
        let mnt = dir.path + "/full"
        try FileManager.default.createDirectory(atPath: mnt, withIntermediateDirectories: false)
        guard getuid() == 0, (try? run("/bin/mount", ["-t", "tmpfs", "-o", "size=16k", "tmpfs", mnt], preload: false))?.status == 0 else {
            return      // not root or no mount permission in this container: nothing to check here
        }
        defer { _ = try? run("/bin/umount", [mnt], preload: false) }
        _ = try run("/bin/dd", ["if=/dev/zero", "of=\(mnt)/fill", "bs=4k", "count=100"], preload: false)   // fails when full
        let r = try run(Programs.shared.path(sites), ["exit", "5"],
                        env: ["HEAPSNAP_DIR": mnt, "HEAPSNAP_START": "1", "HEAPSNAP_AT_EXIT": "1", "HEAPSNAP_RATE": "1"])
        #expect(r.status == 5)
        #expect(r.stderr.hasPrefix("heapsnap: cannot write snapshot \(mnt)/heapsnap.\(r.pid).0.heapsnap: "), "\(r.stderr)")
        #expect(r.stderr.split(separator: "\n").count == 1)
        #expect((try FileManager.default.contentsOfDirectory(atPath: mnt)) == ["fill"])
    }

    @Test("files: heapsnap.<pid>.<seq>.heapsnap, mode 0600, no temporary left, existing names skipped")
    func fileNaming() throws {
        let dir = try Scratch()
        // A stale file from an earlier process with the same pid must not be overwritten:
        // we cannot know the pid in advance, so run twice with the same directory and check both.
        let r = try run(Programs.shared.path(sites), ["exit", "0"],
                        env: ["HEAPSNAP_DIR": dir.path, "HEAPSNAP_START": "1", "HEAPSNAP_AT_EXIT": "1", "HEAPSNAP_RATE": "1"])
        #expect(r.status == 0 && r.stderr.isEmpty, "\(r.stderr)")
        #expect(dir.entries == ["heapsnap.\(r.pid).0.heapsnap"])
        var st = stat()
        #expect(stat("\(dir.path)/heapsnap.\(r.pid).0.heapsnap", &st) == 0)
        #expect(st.st_mode & 0o777 == 0o600)
        let snap = try dir.read(dir.snapshots[0])
        #expect(snap.site(r.sites["leak"]).inuse.objects.value == 100)
        #expect(snap.header.executable == (try Programs.shared.path(sites)))
        #expect(snap.header.commandLine == [try Programs.shared.path(sites), "exit", "0"])
    }

    @Test("HEAPSNAP_INTERVAL writes periodic snapshots while sampling")
    func periodic() throws {
        let dir = try Scratch()
        // Runs until three periodic snapshots exist, however slowly the machine
        // schedules the writer; only a hang (none within 60 s) fails.
        let host = try Background("/bin/sleep", ["600"],
                                  env: ["HEAPSNAP_DIR": dir.path, "HEAPSNAP_START": "1", "HEAPSNAP_INTERVAL": "0.1"])
        Wait.poll(every: 0.01) { dir.snapshots.count >= 3 || !host.isRunning }
        #expect(host.isRunning, "\(host.stderr)")
        kill(host.pid, SIGKILL)
        _ = try? host.wait()
        let mine = dir.snapshots.filter { $0.contains("heapsnap.\(host.pid).") }
        try #require(mine.count >= 3, "\(dir.entries)")
        let snaps = try mine.prefix(3).map { try dir.read($0) }
        #expect(snaps.map(\.header.seq) == [0, 1, 2])
        for snap in snaps { #expect(snap.header.flags == [.periodic]) }
        // Written on a timer while sampling, one after another.
        #expect(snaps[0].header.timeNanoseconds < snaps[1].header.timeNanoseconds)
        #expect(snaps[1].header.timeNanoseconds < snaps[2].header.timeNanoseconds)
    }
}

@Suite("Real programs under the shim")
struct RealProgramTests {
    static let commands: [(String, [String], String?)] = [
        ("/usr/bin/python3", ["-c", "import json,collections; d={str(i): list(range(i%50)) for i in range(3000)}; print(len(json.dumps(d)), sum(collections.Counter(str(i%7) for i in range(10000)).values()))"], nil),
        ("/usr/bin/sqlite3", [":memory:", "create table t(a,b); with recursive c(x) as (select 1 union all select x+1 from c where x<20000) insert into t select x, hex(randomblob(20)) from c; select count(*), sum(a) from t; select count(distinct b) from t;"], nil),
        ("/usr/bin/git", ["log", "--format=%H %s", "-n", "50"], Shim.packageRoot),
    ]

    @Test("identical stdout and a valid snapshot", arguments: 0..<3)
    func identicalOutput(index: Int) throws {
        let (path, args, cwd) = Self.commands[index]
        guard FileManager.default.fileExists(atPath: path) else {
            Issue.record("\(path) is missing (Scripts/test installs it)")
            return
        }
        let dir = try Scratch()
        let plain = try run(path, args, preload: false, cwd: cwd)
        let shimmed = try run(path, args, env: ["HEAPSNAP_DIR": dir.path, "HEAPSNAP_START": "1", "HEAPSNAP_AT_EXIT": "1",
                                                "HEAPSNAP_RATE": "4096", "PYTHONMALLOC": "malloc"], cwd: cwd)
        #expect(plain.status == 0 && shimmed.status == plain.status)
        #expect(!plain.stdout.isEmpty && shimmed.stdout == plain.stdout)
        #expect(shimmed.stderr.isEmpty, "\(shimmed.stderr)")
        let snap = try dir.read(try #require(dir.snapshots.first { $0.contains(".\(shimmed.pid).") }))
        #expect(snap.header.pid == UInt32(shimmed.pid) && snap.header.samples > 10)
        #expect(!snap.stacks.isEmpty && snap.records.allSatisfy { $0.inuse.samples <= $0.alloc.samples })
        #expect(snap.modules.contains { $0.path.hasSuffix("libc.so.6") && $0.buildID.count == 20 })
        // Every innermost frame lies in some module (the shim's own frames were dropped).
        let shimModule = snap.modules.first { $0.path.hasSuffix("libheapsnap_preload.so") }
        #expect(snap.stacks.allSatisfy { st in !(shimModule?.contains(st.frames.first ?? 0) ?? false) })
    }
}
