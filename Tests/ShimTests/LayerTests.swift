// CShim's include graph points one way (CShim/DESIGN.md, "Layers"):
// Scripts/check-layers passes on the tree as it is, and fails on a copy of it
// with an upward include, a circle inside one layer, or a file of no layer.

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
        ("sampler.c", "#include \"writer.h\"", "higher"),              // a lower file reaching up
        ("say.h", "#include \"forward.h\"", "circle"),                  // with forward.h below: a circle in one layer
        ("stacks.c", "#include \"unwinder.h\"", "no layer"),           // a file the table does not know
    ]

    @Test("a planted include that breaks the layering fails the check", arguments: 0..<3)
    func plantedIncludeFails(_ index: Int) throws {
        let (file, line, complaint) = Self.plants[index]
        let dir = try Scratch()
        let copy = "\(dir.path)/CShim"
        let fm = FileManager.default
        try fm.createDirectory(atPath: "\(copy)/include", withIntermediateDirectories: true)
        for sub in ["", "include"] {
            let from = sub.isEmpty ? Self.cshim : "\(Self.cshim)/\(sub)"
            for name in try fm.contentsOfDirectory(atPath: from) where name.hasSuffix(".c") || name.hasSuffix(".h") {
                try fm.copyItem(atPath: "\(from)/\(name)", toPath: sub.isEmpty ? "\(copy)/\(name)" : "\(copy)/\(sub)/\(name)")
            }
        }
        // The unchanged copy passes: what fails below is the planted line.
        #expect(try run(Self.script, [copy], preload: false).status == 0)
        if index == 1 {
            // forward.h must include say.h for the circle to close.
            try append("#include \"say.h\"\n", to: "\(copy)/forward.h")
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
