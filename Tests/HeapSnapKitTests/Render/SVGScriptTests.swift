// The scripts are files: every .js file in Sources parses, and each SVG carries
// its script file byte for byte after one line of JSON configuration, whatever
// text its labels hold.

import Foundation
import Testing
@testable import HeapSnapKit

/// The package's own files, found from this test file's path.
enum SourceFiles {
    static let root = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// The text of the file at `path` (relative to the package).
    static func text(_ path: String) throws -> String {
        try String(contentsOf: root.appendingPathComponent(path), encoding: .utf8)
    }

    /// Every .js file under Sources, relative to the package, sorted.
    static func scripts() -> [String] {
        let sources = root.appendingPathComponent("Sources").path
        let all = FileManager.default.enumerator(atPath: sources)?.allObjects as? [String] ?? []
        return all.filter { $0.hasSuffix(".js") }.map { "Sources/" + $0 }.sorted()
    }
}

/// Checks on the scripts inside an SVG document.
enum SVGScripts {
    /// The text of each `<script>` element (the inside of its CDATA section), in order.
    static func elements(_ svg: String) -> [String] {
        svg.matches(of: /<script type="text\/ecmascript"><!\[CDATA\[\n(.*?)\]\]><\/script>/.dotMatchesNewlines())
            .map { String($0.1) }
    }

    /// The document's configuration: the JSON of the first element's `var config = {…};`.
    static func config(_ svg: String) throws -> [String: Any] {
        let first = try #require(elements(svg).first)
        let json = try #require(first.wholeMatch(of: /var config = (\{.*\});\n/)?.1, "\(first)")
        return try #require(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])
    }

    /// `node --check` of `source`: nil when it parses, else node's complaint.
    static func nodeComplaint(_ source: String, name: String) throws -> String? {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("heapsnap-\(name)-\(getpid()).js")
        try source.write(to: path, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(at: path) }
        let result = try Toolbox.run("/usr/bin/env", ["node", "--check", path.path])
        return result.status == 0 ? nil : result.stderr
    }
}

@Suite struct SVGScriptTests {
    /// Editors, `node --check` and the binary read the same files; node ships on these machines.
    @Test func everyScriptFileParses() throws {
        let files = SourceFiles.scripts()
        #expect(files.contains("Sources/HeapSnapKit/Render/FlameGraph/flamegraph.js"), "\(files)")
        #expect(files.contains("Sources/HeapSnapKit/Render/Timeline/timeline.js"), "\(files)")
        #expect(files.contains("Sources/HeapSnapServe/Assets/app.js"), "\(files)")
        for file in files {
            let result = try Toolbox.run("/usr/bin/env", ["node", "--check", SourceFiles.root.appendingPathComponent(file).path])
            #expect(result.status == 0, "\(file): \(result.stderr)")
        }
    }

    /// Embedded inside CDATA as they are, the scripts must not end it.
    @Test(arguments: ["Sources/HeapSnapKit/Render/FlameGraph/flamegraph.js", "Sources/HeapSnapKit/Render/Timeline/timeline.js"])
    func scriptFileLeavesCDATAOpen(_ file: String) throws {
        #expect(!(try SourceFiles.text(file)).contains("]]>"))
    }

    @Test func flameGraphCarriesItsFileAndWidth() throws {
        var tree = FlameTree()
        tree.add(rootFirst: [FlameFrame(name: "main", module: "/bin/app"), FlameFrame(name: "load", module: "/bin/app")],
                 value: Estimate(value: 600))
        var options = FlameGraphOptions()
        options.width = 800
        let svg = FlameGraphSVG.render(tree, options: options)
        let elements = SVGScripts.elements(svg)
        #expect(elements.count == 2)
        #expect(elements.last == (try SourceFiles.text("Sources/HeapSnapKit/Render/FlameGraph/flamegraph.js")))
        let config = try SVGScripts.config(svg)
        #expect(config["width"] as? Int == 800)
        #expect(config["padding"] as? Double == FlameGraphSVG.padding)
        #expect(config["charWidth"] as? Double == 7.08)
    }

    @Test func timelineCarriesItsFileAndData() throws {
        let svg = TimelineSVG.render(try TimelineFixture.timeline())
        let elements = SVGScripts.elements(svg)
        #expect(elements.count == 2)
        #expect(elements.last == (try SourceFiles.text("Sources/HeapSnapKit/Render/Timeline/timeline.js")))
        let config = try SVGScripts.config(svg)
        #expect(config["x0"] as? Double == TimelineSVG.left && config["y0"] as? Double == TimelineSVG.top)
        #expect(config["tMax"] as? Double == 6)
        let process = try #require((config["processes"] as? [[String: Any]])?.first)
        #expect(process["label"] as? String == "pid 4242 server --port 8080")
        let points = try #require(process["points"] as? [[Double]])
        #expect(points.map { $0[1] } == TimelineFixture.inuse)
        #expect(points.first?[0] == 0 && points.last?[0] == 6)
        #expect((config["sites"] as? [String]) == ["/srv/app/src/cache.cpp:42", "/srv/app/src/parser.c:17", "/srv/app/src/parser.c:30"])
        let snapshots = try #require(config["snapshots"] as? [[Any]])
        #expect(snapshots.map { $0[1] as? String } == ["snapshot #0", "the peak", "snapshot #1", "snapshot #2"])
        #expect(snapshots[1][2] as? [Double] == [6_000_000, 2_000_000, 500_000])
    }

    /// A label that would end the CDATA section or open a tag stays inside its JSON string, unchanged.
    @Test func configSurvivesAnyLabel() throws {
        let label = "a]]></script><script>alert(1)</script> & \"q\"\n"
        let line = SVGScript.cdataSafe(JSON.object([("label", .string(label))]).line)
        #expect(!line.contains("]]>") && !line.contains("<") && !line.contains("\n"))
        let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
        #expect(object["label"] as? String == label)
    }
}
