// Renders a `FlameTree` as a self-contained interactive SVG: no network, one
// file, opens in any browser. Hover shows details, click zooms, Ctrl-F or
// "Search" highlights matches and reports the matched share, Esc resets;
// `FILE.svg?s=REGEX` opens with a search applied. That script is
// flamegraph.js beside this file, embedded as it is (SVGScript).
//
// Output is deterministic: children are laid out by name, colours come from a
// hash of the module (or, in a diff, from the size of the change), and
// numbers are printed with fixed precision. Boxes narrower than
// `minimumWidth` pixels are merged into one "[N small frames]" box per
// parent, so a profile with 100,000 stacks still draws a few thousand boxes.

/// How to draw a flamegraph.
public struct FlameGraphOptions: Sendable {
    /// First line of the title.
    public var title: String = "Memory flamegraph"
    /// Second line (process, times, totals).
    public var subtitle: String = ""
    /// A third line, drawn in a warning colour above the frames when not empty (samples the
    /// snapshot dropped); cut to the width, whole in its tooltip.
    public var warning: String = ""
    /// Formats a value of the drawn metric ("12.3 MiB", "1,234 objects").
    public var formatValue: @Sendable (Double) -> String = { String(Int($0)) }
    /// Formats the companion count ("1,234 objects" for a bytes metric).
    public var formatCompanion: (@Sendable (Double) -> String)? = nil
    /// Icicle: root at the top, growing down (with allocation sites as roots
    /// when the stacks were added innermost first).
    public var inverted: Bool = false
    /// Colour by change (`value - baseline`) instead of by module.
    public var differential: Bool = false
    /// Changes within ±`noiseSigmas`·σ are drawn neutral in a diff.
    public var noiseSigmas: Double = 1.96
    /// Image width in pixels.
    public var width: Int = 1200
    /// Boxes narrower than this many pixels are merged.
    public var minimumWidth: Double = 0.5

    public init() {}
}

/// Writes flamegraph SVG documents.
public enum FlameGraphSVG {
    static let frameHeight = 16.0
    static let fontSize = 12.0
    static let charWidth = 0.59 * fontSize
    static let padding = 10.0
    static let top = 60.0
    static let bottom = 30.0

    /// One laid-out box.
    struct Box {
        var label: String
        var module: String
        var tooltip: String
        var fill: String
        var x: Double // fraction of the drawable width
        var width: Double // fraction of the drawable width
        var depth: Int
    }

    /// The SVG document for `tree`.
    /// - Complexity: O(nodes) plus the merged boxes.
    public static func render(_ tree: FlameTree, options: FlameGraphOptions) -> String {
        let root = tree.root
        let total = root.value.value
        var boxes: [Box] = []
        let drawable = Double(options.width) - 2 * padding
        let minimumFraction = options.minimumWidth / drawable
        let maxChange = maximumChange(root)
        if total > 0 {
            layout(root, x: 0, depth: 0, total: total, minimumFraction: minimumFraction, maxChange: maxChange,
                   options: options, into: &boxes)
        }
        let maxDepth = boxes.map(\.depth).max() ?? 0
        let top = options.warning.isEmpty ? Self.top : Self.top + frameHeight
        let height = top + Double(maxDepth + 1) * frameHeight + bottom
        // Whole when it fits, squeezed up to a quarter to fit, else cut (whole in its tooltip).
        let natural = Double(options.warning.count) * charWidth
        let squeeze = natural > drawable && natural * 0.75 <= drawable
            ? " textLength=\"\(Format.fixed(drawable, decimals: 0))\" lengthAdjust=\"spacingAndGlyphs\"" : ""
        let shown = natural > drawable && squeeze.isEmpty ? fit(options.warning, pixels: drawable) : options.warning
        let warning = options.warning.isEmpty ? "" : """
            <text id="warning" x="\(Format.fixed(Double(options.width) / 2, decimals: 0))" y="60"\(squeeze) style="text-anchor:middle;fill:rgb(170,80,0);font-weight:bold">\
            <title>\(escape(options.warning))</title>\(escape(shown))</text>

            """

        var svg = """
        <?xml version="1.0" standalone="no"?>
        <svg version="1.1" width="\(options.width)" height="\(Format.fixed(height, decimals: 0))" viewBox="0 0 \(options.width) \(Format.fixed(height, decimals: 0))" \
        xmlns="http://www.w3.org/2000/svg" onload="init(evt)">
        <style type="text/css">
        text { font-family: ui-monospace, Menlo, Consolas, "DejaVu Sans Mono", monospace; font-size: \(Format.fixed(fontSize, decimals: 0))px; fill: rgb(0,0,0); }
        #title { text-anchor: middle; font-size: 17px; }
        #subtitle { text-anchor: middle; fill: rgb(80,80,80); }
        .button { cursor: pointer; fill: rgb(60,60,160); }
        .button:hover { text-decoration: underline; }
        g.f { cursor: pointer; }
        g.f:hover rect { stroke: rgb(40,40,40); stroke-width: 0.5; }
        g.f text { pointer-events: none; }
        g.parent rect { opacity: 0.55; }
        </style>
        \(SVGScript.elements(SVGScript.flameGraph, config: scriptConfig(options)))
        <rect x="0" y="0" width="100%" height="100%" fill="rgb(250,250,247)"/>
        <text id="title" x="\(Format.fixed(Double(options.width) / 2, decimals: 0))" y="24">\(escape(options.title))</text>
        <text id="subtitle" x="\(Format.fixed(Double(options.width) / 2, decimals: 0))" y="42">\(escape(options.subtitle))</text>
        \(warning)<text id="unzoom" class="button" x="\(Format.fixed(padding, decimals: 0))" y="24" style="opacity:0">Reset zoom</text>
        <text id="search" class="button" x="\(Format.fixed(Double(options.width) - padding, decimals: 0))" y="24" style="text-anchor:end">Search (Ctrl-F)</text>
        <text id="matched" x="\(Format.fixed(Double(options.width) - padding, decimals: 0))" y="\(Format.fixed(height - 10, decimals: 0))" style="text-anchor:end"> </text>
        <text id="details" x="\(Format.fixed(padding, decimals: 0))" y="\(Format.fixed(height - 10, decimals: 0))"> </text>
        <g id="frames">

        """
        for box in boxes {
            let xPixels = padding + box.x * drawable
            let widthPixels = box.width * drawable
            let row = options.inverted ? Double(box.depth) : Double(maxDepth - box.depth)
            let y = top + row * frameHeight
            svg += "<g class=\"f\" data-x=\"\(Format.fixed(box.x, decimals: 9))\" data-w=\"\(Format.fixed(box.width, decimals: 9))\" data-d=\"\(box.depth)\">"
            svg += "<title>\(escape(box.tooltip))</title>"
            svg += "<rect x=\"\(Format.fixed(xPixels, decimals: 2))\" y=\"\(Format.fixed(y, decimals: 1))\" width=\"\(Format.fixed(widthPixels, decimals: 2))\" "
            svg += "height=\"\(Format.fixed(frameHeight - 1, decimals: 1))\" fill=\"\(box.fill)\" data-c=\"\(box.fill)\" rx=\"2\"/>"
            svg += "<text x=\"\(Format.fixed(xPixels + 3, decimals: 2))\" y=\"\(Format.fixed(y + frameHeight - 4.5, decimals: 1))\">"
            svg += "\(escape(fit(box.label, pixels: widthPixels)))</text></g>\n"
        }
        svg += "</g>\n</svg>\n"
        return svg
    }

    private static func layout(_ node: FlameNode, x: Double, depth: Int, total: Double, minimumFraction: Double,
                               maxChange: Double, options: FlameGraphOptions, into boxes: inout [Box]) {
        let width = node.value.value / total
        boxes.append(Box(label: node.frame.name, module: node.frame.module,
                         tooltip: tooltip(node, total: total, options: options),
                         fill: fill(node, maxChange: maxChange, options: options),
                         x: x, width: width, depth: depth))
        let children = node.children.filter { $0.value.value > 0 }.sorted {
            ($0.frame.name, $0.frame.module) < ($1.frame.name, $1.frame.module)
        }
        var small = FlameNode(frame: FlameFrame(name: "", module: ""))
        var smallCount = 0
        var childX = x
        for child in children {
            if child.value.value / total < minimumFraction {
                small.value += child.value
                small.baseline += child.baseline
                small.companion += child.companion
                smallCount += 1
                continue
            }
            layout(child, x: childX, depth: depth + 1, total: total, minimumFraction: minimumFraction,
                   maxChange: maxChange, options: options, into: &boxes)
            childX += child.value.value / total
        }
        if smallCount > 0, small.value.value / total >= minimumFraction {
            small.frame = FlameFrame(name: "[\(smallCount) small frames]", module: "")
            layout(small, x: childX, depth: depth + 1, total: total, minimumFraction: minimumFraction,
                   maxChange: maxChange, options: options, into: &boxes)
        }
    }

    private static func tooltip(_ node: FlameNode, total: Double, options: FlameGraphOptions) -> String {
        var lines = [node.frame.module.isEmpty ? node.frame.name : "\(node.frame.name)  (\(baseName(node.frame.module)))"]
        let share = Format.percent(node.value.value, of: total)
        let margin = options.noiseSigmas * node.value.standardDeviation
        var line = "\(options.formatValue(node.value.value))"
        if margin > 0 { line += " ± \(options.formatValue(margin))" }
        line += ", \(share)"
        if let companion = options.formatCompanion { line += ", \(companion(node.companion))" }
        lines.append(line)
        if options.differential {
            let change = node.change
            let sign = change.value > 0 ? "+" : change.value < 0 ? "−" : "±"
            var diff = "was \(options.formatValue(node.baseline.value)), change \(sign)\(options.formatValue(abs(change.value)))"
            let noise = options.noiseSigmas * change.standardDeviation
            if noise > 0 { diff += " ± \(options.formatValue(noise))" }
            if node.baseline.value > 0 { diff += " (\(change.value >= 0 ? "+" : "−")\(Format.percent(abs(change.value), of: node.baseline.value)))" }
            if isNoise(change, options) { diff += ", within noise" }
            lines.append(diff)
        }
        return lines.joined(separator: "\n")
    }

    private static func isNoise(_ change: Estimate, _ options: FlameGraphOptions) -> Bool {
        abs(change.value) <= options.noiseSigmas * change.standardDeviation || change.value == 0
    }

    /// The largest |change| below the root, which the diff colours scale to.
    private static func maximumChange(_ root: FlameNode) -> Double {
        var best = 0.0
        func visit(_ node: FlameNode) {
            for child in node.children {
                best = max(best, abs(child.change.value))
                visit(child)
            }
        }
        visit(root)
        return best
    }

    private static func fill(_ node: FlameNode, maxChange: Double, options: FlameGraphOptions) -> String {
        if options.differential {
            let change = node.change
            if isNoise(change, options) || maxChange == 0 { return "rgb(222,222,218)" }
            let t = min(1, abs(change.value) / maxChange)
            let fade = Int((215 - 175 * t).rounded())
            return change.value > 0 ? "rgb(250,\(fade),\(fade))" : "rgb(\(fade),\(fade),250)"
        }
        if node.frame.module.isEmpty { return "rgb(205,205,200)" }
        // A memory palette: greens to blues, hue by module, lightness by function.
        let moduleHash = fnv1a(baseName(node.frame.module))
        let nameHash = fnv1a(node.frame.name)
        let hue = 95 + Int(moduleHash % 110)
        let lightness = 58 + Int(nameHash % 16)
        return "hsl(\(hue),45%,\(lightness)%)"
    }

    /// The label cut to what fits in `pixels`, with ".." when cut; empty when nothing useful fits.
    static func fit(_ label: String, pixels: Double) -> String {
        let room = Int((pixels - 6) / charWidth)
        if room < 3 { return "" }
        if label.count <= room { return label }
        return String(label.prefix(room - 2)) + ".."
    }

    static func escape(_ text: String) -> String {
        var out = ""
        out.reserveCapacity(text.utf8.count)
        for c in text.unicodeScalars {
            switch c {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "\u{9}", "\u{A}", "\u{D}": out.unicodeScalars.append(c)
            case _ where c.value < 0x20 || (c.value >= 0xFFFE && c.value <= 0xFFFF): out += "?"
            default: out.unicodeScalars.append(c)
            }
        }
        return out
    }

    static func fnv1a(_ text: String) -> UInt64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in text.utf8 {
            hash ^= UInt64(byte)
            hash &*= 0x100_0000_01b3
        }
        return hash
    }

    /// The document's values for flamegraph.js (its opening comment says what they are).
    private static func scriptConfig(_ options: FlameGraphOptions) -> JSON {
        .object([("width", .int(Int64(options.width))), ("padding", .rounded(padding, decimals: 0)),
                 ("charWidth", .rounded(charWidth, decimals: 3))])
    }
}
