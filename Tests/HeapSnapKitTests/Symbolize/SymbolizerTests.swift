// The real symbolizer on programs compiled at test time: C, C++ (templates,
// inlined frames, demangling) and Swift (demangled by swift_demangle).

import Foundation
import Testing
@testable import HeapSnapKit

@Suite(.serialized) struct SymbolizerTests {
    static let symbolizerPath = LLVMSymbolizer.find()

    func profile(_ snapshot: Snapshot) -> Profile {
        let locator = FileSystemModuleLocator()
        let symbolizer = Self.symbolizerPath.map { LLVMSymbolizer(executable: $0) }
        return ProfileSymbolizer(symbolizer: symbolizer, locator: locator).profile(of: snapshot, file: "test")
    }

    @Test func findsASymbolizer() {
        #expect(Self.symbolizerPath != nil)
        #expect(LLVMSymbolizer.find(environment: ["HEAPSNAP_SYMBOLIZER": "/nonexistent/llvm-symbolizer"]) == nil)
        #expect(LLVMSymbolizer.find(environment: ["HEAPSNAP_SYMBOLIZER": "/usr/bin/llvm-symbolizer"]) == "/usr/bin/llvm-symbolizer")
    }

    @Test func cProgram() throws {
        let dir = try Toolbox.temporaryDirectory("c")
        let source = Toolbox.programs + "/symbols.c", binary = dir + "/csym"
        #expect(try Toolbox.run("/usr/bin/gcc", ["-g", "-O0", "-fno-builtin", "-o", binary, source]).status == 0)
        let ret = try Toolbox.returnAddress(in: binary, function: "c_site", callee: "malloc")
        let p = profile(Toolbox.snapshot(binary: binary, returnAddresses: [ret]))
        let frames = p.samples[0].frames.map { p.frames[$0] }
        #expect(frames.count == 1)
        #expect(frames[0].function == "c_site")
        #expect(frames[0].file.hasSuffix("symbols.c"))
        #expect(frames[0].line == (try Toolbox.line(of: "C_SITE", in: source)))
        #expect(frames[0].module == binary)
        #expect(p.warnings.isEmpty)
    }

    @Test func cxxProgramWithInlinedTemplates() throws {
        let dir = try Toolbox.temporaryDirectory("cxx")
        let source = Toolbox.programs + "/symbols.cpp", binary = dir + "/cxxsym"
        #expect(try Toolbox.run("/usr/bin/g++", ["-g", "-O2", "-fno-optimize-sibling-calls", "-o", binary, source]).status == 0)
        let ret = try Toolbox.returnAddress(in: binary, function: "_ZN3app5outerEm", callee: "_Znam")
        let p = profile(Toolbox.snapshot(binary: binary, returnAddresses: [ret]))
        let frames = p.samples[0].frames.map { p.frames[$0] }
        #expect(frames.map(\.function) == ["Pool<int>::make(unsigned long)", "helper(unsigned long)", "app::outer(unsigned long)"])
        #expect(frames.map(\.inlined) == [true, true, false])
        #expect(frames.map(\.line) == [
            try Toolbox.line(of: "CXX_NEW", in: source), try Toolbox.line(of: "CXX_HELPER", in: source),
            try Toolbox.line(of: "CXX_OUTER", in: source),
        ])
        // Trimming keeps the template frame: it is the user's code, not an allocator.
        let trimmed = AllocatorFrames().trim(p)
        #expect(trimmed.samples[0].frames.count == 3)
    }

    @Test func swiftProgramIsDemangled() throws {
        let dir = try Toolbox.temporaryDirectory("swift")
        let source = dir + "/main.swift", binary = dir + "/swiftsym"
        try FileManager.default.copyItem(atPath: Toolbox.programs + "/symbols.swift", toPath: source)
        let swiftc = ProcessInfo.processInfo.environment["PATH"].flatMap { path in
            path.split(separator: ":").map { $0 + "/swiftc" }.first { FileManager.default.isExecutableFile(atPath: $0) }
        } ?? "/opt/swift/usr/bin/swiftc"
        let build = try Toolbox.run(swiftc, ["-g", "-O", "-module-name", "symprog", "-o", binary, source])
        #expect(build.status == 0, "\(build.stderr)")
        let ret = try Toolbox.returnAddress(in: binary, function: "$s7symprog8makeNodeyAA0C0CSiF", callee: "swift_allocObject")
        let p = profile(Toolbox.snapshot(binary: binary, returnAddresses: [ret]))
        let frames = p.samples[0].frames.map { p.frames[$0] }
        #expect(frames.contains { $0.function == "symprog.makeNode(Swift.Int) -> symprog.Node" })
        #expect(frames.allSatisfy { !$0.function.hasPrefix("$s") })
        #expect(frames.last?.file.hasSuffix("main.swift") == true)
        #expect(frames.contains { $0.line == (try? Toolbox.line(of: "SWIFT_SITE", in: source)) })
    }

    @Test func buildIDMismatchWarnsOnceAndNamesNothing() throws {
        let dir = try Toolbox.temporaryDirectory("mismatch")
        let source = Toolbox.programs + "/symbols.c", binary = dir + "/csym"
        #expect(try Toolbox.run("/usr/bin/gcc", ["-g", "-O0", "-fno-builtin", "-o", binary, source]).status == 0)
        let ret = try Toolbox.returnAddress(in: binary, function: "c_site", callee: "malloc")
        let p = profile(Toolbox.snapshot(binary: binary, returnAddresses: [ret, ret + 3], buildID: [0xDE, 0xAD, 0xBE, 0xEF]))
        #expect(p.warnings.count == 1)
        #expect(p.warnings.first?.contains("build-id") == true)
        #expect(p.warnings.first?.contains("deadbeef") == true)
        let names = p.samples.map { p.frames[$0.frames[0]].function }
        #expect(names == ["csym+0x" + String(ret - 1, radix: 16), "csym+0x" + String(ret + 2, radix: 16)])
    }

    @Test func missingFileWarnsOnce() {
        let p = profile(Toolbox.snapshot(binary: "/nonexistent/prog", returnAddresses: [0x1001, 0x2001], buildID: [1, 2]))
        #expect(p.warnings.count == 1)
        #expect(p.warnings.first?.contains("/nonexistent/prog: file not found") == true)
        #expect(p.frames.map(\.function).sorted() == ["prog+0x1000", "prog+0x2000"])
    }

    /// glibc's shared library on this machine (x86-64 or arm64 Debian).
    static let libc: String? = ["/usr/lib/x86_64-linux-gnu/libc.so.6", "/usr/lib/aarch64-linux-gnu/libc.so.6"]
        .first { FileManager.default.fileExists(atPath: $0) }

    /// Whether glibc's separate debug file (libc6-dbg) is installed where the symbolizer looks.
    static var hasLibcDebugFile: Bool {
        guard let libc, let id = ELFFile.buildID(path: libc) else { return false }
        return FileSystemModuleLocator().debugFile(buildID: hex(id)) != nil
    }

    @Test(.enabled(if: SymbolizerTests.libc != nil, "no libc.so.6 in /usr/lib/{x86_64,aarch64}-linux-gnu"))
    func elfBuildIDMatchesReadelf() throws {
        let libc = try #require(Self.libc)
        let id = try #require(ELFFile.buildID(path: libc))
        let readelf = try Toolbox.run("/usr/bin/readelf", ["-n", libc]).stdout
        #expect(readelf.contains(hex(id)))
        #expect(ELFFile.buildID(path: "/etc/passwd") == nil)
    }

    @Test(.enabled(if: SymbolizerTests.hasLibcDebugFile, "glibc's debug file is not under /usr/lib/debug/.build-id (apt-get install libc6-dbg; Scripts/test installs it)"))
    func glibcGetsLineInfoFromDebugFileByBuildID() throws {
        let libc = try #require(Self.libc)
        let symbols = try Toolbox.run("/usr/bin/nm", ["-D", "--defined-only", libc]).stdout
        let line = try #require(symbols.split(separator: "\n").first { $0.hasSuffix(" T qsort") || $0.hasSuffix(" T qsort@@GLIBC_2.2.5") })
        let address = try #require(UInt64(line.split(separator: " ")[0], radix: 16))
        let p = profile(Toolbox.snapshot(binary: libc, returnAddresses: [address + 2]))
        let frames = p.samples[0].frames.map { p.frames[$0] }
        #expect(frames.last?.function.contains("qsort") == true)
        #expect(frames.last?.file.hasSuffix(".c") == true)
    }

    @Test func swiftDemanglerLeavesOtherNamesAlone() {
        let d = SwiftDemangler()
        #expect(d.demangle("$sSS5countSivg") == "Swift.String.count.getter : Swift.Int")
        #expect(d.demangle("main") == "main")
        #expect(d.demangle("_Z3foov") == "_Z3foov")
    }
}
