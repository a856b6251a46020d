import FoundationXML
import Foundation
import Testing
@testable import HeapSnapKit

/// Collects the `g.f` boxes of a flamegraph SVG, failing on malformed XML.
final class FlameBoxes: NSObject, XMLParserDelegate {
    struct Box { var x = 0.0, width = 0.0, depth = 0, fill = "", title = "", label = "" }
    var boxes: [Box] = []
    private var current: Box?
    private var text = ""

    static func parse(_ svg: String) -> [Box]? {
        let parser = XMLParser(data: Data(svg.utf8))
        let collector = FlameBoxes()
        parser.delegate = collector
        return parser.parse() ? collector.boxes : nil
    }

    func parser(_ parser: XMLParser, didStartElement name: String, namespaceURI: String?, qualifiedName: String?,
                attributes: [String: String] = [:]) {
        text = ""
        if name == "g", attributes["class"] == "f" {
            current = Box(x: Double(attributes["data-x"]!)!, width: Double(attributes["data-w"]!)!,
                          depth: Int(attributes["data-d"]!)!)
        } else if name == "rect", current != nil {
            current?.fill = attributes["fill"] ?? ""
        }
    }

    func parser(_ parser: XMLParser, foundCharacters string: String) { text += string }

    func parser(_ parser: XMLParser, didEndElement name: String, namespaceURI: String?, qualifiedName: String?) {
        switch name {
        case "title" where current != nil: current?.title = text
        case "text" where current != nil: current?.label = text
        case "g" where current != nil:
            boxes.append(current!)
            current = nil
        default: break
        }
    }
}

@Suite struct FlameGraphSVGTests {
    func frame(_ name: String, _ module: String = "/bin/app") -> FlameFrame { FlameFrame(name: name, module: module) }

    func tree() -> FlameTree {
        var tree = FlameTree()
        tree.add(rootFirst: [frame("main"), frame("load"), frame("malloc_a")], value: Estimate(value: 600, variance: 4))
        tree.add(rootFirst: [frame("main"), frame("load"), frame("<b&c>")], value: Estimate(value: 200))
        tree.add(rootFirst: [frame("main"), frame("serve")], value: Estimate(value: 200))
        return tree
    }

    @Test func widthsFollowValuesAndXMLIsWellFormed() throws {
        var options = FlameGraphOptions()
        options.title = "t <&> \"q\""
        let boxes = try #require(FlameBoxes.parse(FlameGraphSVG.render(tree(), options: options)))
        let byLabel = Dictionary(boxes.map { ($0.title.components(separatedBy: "  (")[0].components(separatedBy: "\n")[0], $0) },
                                 uniquingKeysWith: { a, _ in a })
        #expect(boxes.count == 6)
        #expect(byLabel["all"]?.width == 1)
        #expect(byLabel["main"]?.width == 1 && byLabel["main"]?.depth == 1)
        #expect(byLabel["load"]?.width == 0.8 && byLabel["serve"]?.width == 0.2)
        #expect(byLabel["malloc_a"]?.width == 0.6 && byLabel["malloc_a"]?.depth == 3)
        #expect(byLabel["<b&c>"]?.width == 0.2)
        // Children are laid out by name: "<b&c>" sorts before "malloc_a", "load" before "serve".
        #expect(byLabel["<b&c>"]?.x == 0 && byLabel["malloc_a"]?.x == 0.2)
        #expect(byLabel["load"]?.x == 0 && byLabel["serve"]?.x == 0.8)
        // Tooltip: value ± 1.96σ (σ = 2) and the share.
        #expect(byLabel["malloc_a"]?.title.contains("600 ± 3, 60.0%") == true)
    }

    @Test func mergesBoxesTooNarrowToSee() throws {
        var tree = FlameTree()
        tree.add(rootFirst: [frame("big")], value: Estimate(value: 1_000_000))
        for i in 0..<1000 {
            tree.add(rootFirst: [frame("tiny\(i)")], value: Estimate(value: 1))
        }
        let boxes = try #require(FlameBoxes.parse(FlameGraphSVG.render(tree, options: FlameGraphOptions())))
        #expect(boxes.count == 3) // all, big, one merged box for the tiny ones
        #expect(boxes.contains { $0.title.hasPrefix("[1000 small frames]") })
    }

    @Test func diffColoursGrowthRedShrinkBlueNoiseNeutral() throws {
        var tree = FlameTree()
        tree.add(rootFirst: [frame("grows")], value: Estimate(value: 900), baseline: Estimate(value: 100))
        tree.add(rootFirst: [frame("shrinks")], value: Estimate(value: 100), baseline: Estimate(value: 500))
        // A change of 10 with σ = √(50+50) = 10 is within 1.96σ.
        tree.add(rootFirst: [frame("noisy")], value: Estimate(value: 300, variance: 50),
                 baseline: Estimate(value: 290, variance: 50))
        var options = FlameGraphOptions()
        options.differential = true
        let boxes = try #require(FlameBoxes.parse(FlameGraphSVG.render(tree, options: options)))
        func fill(_ name: String) -> String? { boxes.first { $0.title.hasPrefix(name) }?.fill }
        #expect(fill("grows") == "rgb(250,40,40)") // the largest change: full intensity
        #expect(fill("shrinks")?.hasSuffix(",250)") == true && fill("shrinks")?.hasPrefix("rgb(") == true)
        #expect(fill("noisy") == "rgb(222,222,218)")
        #expect(boxes.first { $0.title.hasPrefix("noisy") }?.title.contains("within noise") == true)
        #expect(boxes.first { $0.title.hasPrefix("grows") }?.title.contains("change +800") == true)
    }

    @Test func invertedPutsTheRootOnTop() throws {
        var options = FlameGraphOptions()
        options.inverted = true
        let svg = FlameGraphSVG.render(tree(), options: options)
        let rootY = try #require(svg.firstMatch(of: /<title>all\n[^<]*<\/title><rect x="[0-9.]+" y="([0-9.]+)"/)?.1)
        #expect(Double(rootY) == FlameGraphSVG.top)
    }

    @Test func labelsAreCutToFit() {
        #expect(FlameGraphSVG.fit("abcdefghijklmnop", pixels: 6 + 7.08 * 8) == "abcdef..")
        #expect(FlameGraphSVG.fit("abc", pixels: 100) == "abc")
        #expect(FlameGraphSVG.fit("abc", pixels: 10) == "")
    }

    /// The embedded scripts (configuration and script) must at least parse: a syntax
    /// error would leave a picture with no zoom, search or details. node ships on these machines.
    @Test func embeddedScriptParses() throws {
        let svg = FlameGraphSVG.render(tree(), options: FlameGraphOptions())
        let scripts = SVGScripts.elements(svg)
        #expect(scripts.count == 2)
        for script in scripts {
            let complaint = try SVGScripts.nodeComplaint(script, name: "flame")
            #expect(complaint == nil, "\(complaint ?? "")")
        }
    }
}

/// Golden files for the drawing and folded outputs of the shared fixture:
/// any change to layout, colours, labels or numbers shows up as a diff.
@Suite struct FlameGraphGoldenTests {
    static func options(diff: Bool) -> FlameGraphOptions {
        var options = FlameGraphOptions()
        options.title = diff ? "Memory growth: inuse bytes" : "Memory: inuse bytes"
        options.subtitle = "fixture"
        options.differential = diff
        options.formatValue = { @Sendable in Format.bytes($0) }
        options.formatCompanion = { @Sendable in Format.count($0) + " objects" }
        return options
    }

    @Test func flamegraph() throws {
        let tree = FlameGraphBuilder(metric: .inuseBytes).tree(Fixture.trimmedProfile())
        try RendererGoldenTests.check("flamegraph.svg", FlameGraphSVG.render(tree, options: Self.options(diff: false)))
    }

    @Test func diffFlamegraph() throws {
        let old = Fixture.trimmedProfile(Fixture.snapshot(), file: "old")
        let new = Fixture.trimmedProfile(Fixture.snapshot(scale: 1.02, extraLeak: 3_000_000), file: "new")
        let tree = FlameGraphBuilder(metric: .inuseBytes).tree(new.subtracting(old))
        try RendererGoldenTests.check("flamegraph-diff.svg", FlameGraphSVG.render(tree, options: Self.options(diff: true)))
    }

    @Test func titleAndSubtitleNameTheMetricProcessAndTotal() {
        let profile = Fixture.trimmedProfile()
        let builder = FlameGraphBuilder(metric: .inuseBytes)
        let options = builder.options(for: profile, tree: builder.tree(profile))
        #expect(options.title == "Memory: inuse bytes")
        #expect(options.subtitle == "server [4242] on web-1 · 2023-11-14 22:13:32.500 UTC · total 5.72 MiB ± 445 KiB · sampled every 512 KiB")
        #expect(!options.differential && !options.inverted)
        #expect(options.formatValue(1536) == "1.50 KiB" && options.formatCompanion?(2000) == "2,000 objects")

        let old = Fixture.trimmedProfile(Fixture.snapshot(), file: "old")
        let new = Fixture.trimmedProfile(Fixture.snapshot(scale: 1.02, extraLeak: 3_000_000), file: "new")
        let diff = new.subtracting(old)
        let inverted = FlameGraphBuilder(metric: .allocObjects, inverted: true)
        let diffOptions = inverted.options(for: diff, tree: inverted.tree(diff))
        #expect(diffOptions.title == "Memory growth: alloc objects by allocation site")
        #expect(diffOptions.differential && diffOptions.inverted)
        #expect(diffOptions.subtitle.contains(" → ") && diffOptions.subtitle.hasPrefix("server [4242] on web-1 · "))
        #expect(diffOptions.formatValue(2000) == "2,000")
    }

    @Test func folded() throws {
        try RendererGoldenTests.check("folded.txt", FoldedExporter.export(Fixture.trimmedProfile(), metric: .inuseBytes))
    }
}

@Suite struct FlameGraphScaleTests {
    /// 100,000 distinct stacks draw at most what fits: each row of the
    /// picture holds fewer than width / minimumWidth boxes.
    @Test func aHundredThousandStacksDrawABoundedPicture() {
        var rng = SplitMix64(seed: 42)
        var tree = FlameTree()
        for _ in 0..<100_000 {
            let frames = (0..<12).map { depth in
                FlameFrame(name: "f\(depth)_\(rng.next() % (depth < 3 ? 4 : 200))", module: "/lib/m\(depth % 3).so")
            }
            tree.add(rootFirst: frames, value: Estimate(value: Double(1 + rng.next() % 4096)))
        }
        let options = FlameGraphOptions()
        let svg = FlameGraphSVG.render(tree, options: options)
        let boxes = svg.components(separatedBy: "<g class=\"f\"").count - 1
        let perRow = Int(Double(options.width) / options.minimumWidth)
        #expect(boxes > 100 && boxes < 13 * perRow, "\(boxes) boxes")
        #expect(svg.utf8.count < 16 << 20)
    }
}
