// HeapSnapKit's Model is the bottom room: every stage looks down to it and it
// looks down only to Support (small text helpers). This reads the sources and
// fails when a Model file names a type or a top-level function declared in
// another folder (Aggregate, Render, Control, …), the Swift side's
// counterpart of Scripts/check-layers for the shim.

import Foundation
import Testing

@Suite("Model depends on nothing above it")
struct ModelLayerTests {
    static let sources = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("../../Sources/HeapSnapKit").standardized.path
    /// Folders Model may use.
    static let below: Set<String> = ["Model", "Support"]

    /// Swift files under `sources`, as (folder, path relative to `sources`, text).
    static func files() throws -> [(folder: String, path: String, text: String)] {
        let enumerator = try #require(FileManager.default.enumerator(atPath: sources))
        var result: [(String, String, String)] = []
        while let path = enumerator.nextObject() as? String {
            guard path.hasSuffix(".swift") else { continue }
            let folder = path.contains("/") ? String(path.prefix { $0 != "/" }) : ""
            result.append((folder, path, try String(contentsOfFile: sources + "/" + path, encoding: .utf8)))
        }
        return result
    }

    /// Names declared in `text`: types, protocols, type aliases and top-level functions.
    static func declarations(_ text: String) -> Set<String> {
        var names: Set<String> = []
        let patterns = [#"\b(?:struct|enum|class|protocol|actor|typealias)\s+([A-Za-z_]\w*)"#,
                        #"(?m)^(?:(?:public|internal|fileprivate|private)\s+)?func\s+([A-Za-z_]\w*)"#]
        for pattern in patterns {
            let regex = try! NSRegularExpression(pattern: pattern)
            for match in regex.matches(in: text, range: NSRange(text.startIndex..., in: text)) {
                names.insert(String(text[Range(match.range(at: 1), in: text)!]))
            }
        }
        return names
    }

    /// The identifiers `text` uses outside comments and string literals.
    static func identifiers(_ text: String) -> Set<String> {
        var code = text
        for pattern in [#"/\*[\s\S]*?\*/"#, #"//[^\n]*"#, #""""[\s\S]*?""""#, #""(?:[^"\\\n]|\\.)*""#] {
            code = code.replacingOccurrences(of: pattern, with: " ", options: .regularExpression)
        }
        let regex = try! NSRegularExpression(pattern: #"\b[A-Za-z_]\w*\b"#)
        return Set(regex.matches(in: code, range: NSRange(code.startIndex..., in: code)).map { String(code[Range($0.range, in: code)!]) })
    }

    @Test("no Model file names a type or function of another folder")
    func modelLooksOnlyDown() throws {
        let files = try Self.files()
        try #require(files.contains { $0.folder == "Model" } && files.contains { $0.folder == "Aggregate" },
                     "HeapSnapKit's sources are at \(Self.sources)")
        var allowed: Set<String> = []
        for file in files where Self.below.contains(file.folder) { allowed.formUnion(Self.declarations(file.text)) }
        var above: [String: String] = [:]
        for file in files where !Self.below.contains(file.folder) {
            for name in Self.declarations(file.text) where !allowed.contains(name) { above[name] = file.path }
        }
        // The check can see what it looks for: the stages above do declare what Model must not name.
        #expect(above["Aggregator"] == "Aggregate/Aggregator.swift" && above["FlameGraphBuilder"] != nil && above["ProcessController"] != nil)
        var reaching: [String] = []
        for file in files where file.folder == "Model" {
            for name in Self.identifiers(file.text).sorted() {
                if let home = above[name] { reaching.append("\(file.path) uses \(name) (declared in \(home))") }
            }
        }
        #expect(reaching.isEmpty, "\(reaching.joined(separator: "\n"))")
    }

    @Test("the check finds a name from above in a Model file")
    func theCheckCanFail() {
        let model = Self.identifiers("""
            // Aggregator in a comment does not count, nor "FlameGraphBuilder" in a string.
            public struct Shown { var filtering: Filtering? }
            """)
        #expect(model.contains("Filtering") && !model.contains("Aggregator") && !model.contains("FlameGraphBuilder"))
        #expect(Self.declarations("public struct Filtering: Sendable {}\nfunc baseName(_ p: String) -> String { p }")
            == ["Filtering", "baseName"])
    }
}
