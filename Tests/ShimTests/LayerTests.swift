// CShim's include graph points one way (CShim/DESIGN.md, "Layers"):
// Scripts/check-layers passes on the tree as it is, and fails on a copy of it
// with an upward include, a circle inside one layer, a file of no layer, or an
// include that does not name its file's folder.

import Foundation
import Testing

@Suite("Shim layers")
struct LayerTests {
    static let script = "\(Shim.packageRoot)/Scripts/check-layers"
    static let cshim = "\(Shim.packageRoot)/CShim"

    @Test("every include in CShim points to a lower layer, and there is no circle")
    func layersHold() throws {
        let r = try run(Self.script, [Self.cshim], preload: false)
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.contains("no circle"), "\(r.stdout)")
    }

    /// (file to change, line to add, what the complaint must name)
    static let plants: [(String, String, String)] = [
        ("sampling/sampler.c", "#include \"control/writer.h\"", "higher"),    // a lower file reaching up
        ("base/stderr.h", "#include \"base/forward.h\"", "circle"),               // with forward.h below: a circle in one layer
        ("tables/stacks.c", "#include \"tables/unwinder.h\"", "no layer"),    // a file the table does not know
        ("tables/live.c", "#include \"stacks.h\"", "path from CShim"),        // an include that does not name its folder
    ]

    @Test("a planted include that breaks the layering fails the check", arguments: 0..<4)
    func plantedIncludeFails(_ index: Int) throws {
        let (file, line, complaint) = Self.plants[index]
        let dir = try Scratch()
        let copy = "\(dir.path)/CShim"
        let fm = FileManager.default
        // Every layer's folder, with its .c and .h files.
        for sub in try fm.contentsOfDirectory(atPath: Self.cshim).sorted() {
            let from = "\(Self.cshim)/\(sub)"
            var isDirectory: ObjCBool = false
            guard fm.fileExists(atPath: from, isDirectory: &isDirectory), isDirectory.boolValue else { continue }
            try fm.createDirectory(atPath: "\(copy)/\(sub)", withIntermediateDirectories: true)
            for name in try fm.contentsOfDirectory(atPath: from) where name.hasSuffix(".c") || name.hasSuffix(".h") {
                try fm.copyItem(atPath: "\(from)/\(name)", toPath: "\(copy)/\(sub)/\(name)")
            }
        }
        // The unchanged copy passes: what fails below is the planted line.
        #expect(try run(Self.script, [copy], preload: false).status == 0)
        if index == 1 {
            // forward.h must include stderr.h for the circle to close.
            try append("#include \"base/stderr.h\"\n", to: "\(copy)/base/forward.h")
        }
        try append(line + "\n", to: "\(copy)/\(file)")
        let r = try run(Self.script, [copy], preload: false)
        #expect(r.status == 1, "\(r.stdout)\(r.stderr)")
        #expect(r.stderr.contains(complaint), "\(r.stderr)")
    }

    private func append(_ text: String, to path: String) throws {
        let handle = try #require(FileHandle(forWritingAtPath: path))
        defer { try? handle.close() }
        try handle.seekToEnd()
        try handle.write(contentsOf: Data(text.utf8))
    }
}
