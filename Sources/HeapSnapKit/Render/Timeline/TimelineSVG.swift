// Renders a `Timeline` as one self-contained interactive SVG, in the look of
// the flamegraphs (same fonts, background, title and details line; embedded
// script, no network): bytes in use over time with its 95% band, RSS as a
// dashed line on the same axis, the peak marked, snapshots as ticks on the
// time axis and, for one process with several snapshots, its top sites
// stacked. Hovering shows the values at the nearest point (and snapshot):
// timeline.js beside this file, embedded as it is (SVGScript).
//
// Output is deterministic: fixed layout, fixed palettes, fixed precision.

extension TimelineProcess {
    /// "pid 4242 server --port 8080": how the picture, the CSV and the JSON name the process.
    public var label: String {
        let command = commandLine.isEmpty ? baseName(executable) : Format.commandLine([baseName(commandLine[0])] + commandLine.dropFirst())
        return "pid \(pid) \(command)"
    }
}

/// How to draw a timeline.
public struct TimelineSVGOptions: Sendable, Hashable {
    /// Image width in pixels.
    public var width: Int = 1200
    /// Image height in pixels.
    public var height: Int = 560
    /// First line of the title.
    public var title: String = "Memory over time"

    public init(width: Int = 1200, height: Int = 560, title: String = "Memory over time") {
        self.width = width
        self.height = height
        self.title = title
    }
}

/// Writes timeline SVG documents.
public enum TimelineSVG {
    /// The plot area's margins.
    static let left = 84.0, right = 24.0, top = 70.0, bottom = 84.0
    /// Width of the legend column on the right.
    static let legendWidth = 270.0

    /// Colours of processes (line; band and RSS use the same hue).
    static let processColors = [(40, 90, 170), (30, 130, 90), (130, 70, 160), (20, 130, 150), (150, 100, 40), (90, 90, 90)]
    /// Colours of stacked sites; "other" is grey.
    static let siteColors = ["hsl(150,42%,72%)", "hsl(200,55%,76%)", "hsl(45,75%,72%)", "hsl(270,35%,78%)",
                             "hsl(100,40%,70%)", "hsl(180,35%,68%)", "hsl(320,35%,80%)", "hsl(25,60%,76%)"]
    static let otherColor = "rgb(218,218,212)"
    static let rssColor = (215, 120, 30)
    static let peakColor = "rgb(200,40,40)"

    static func rgb(_ c: (Int, Int, Int), _ alpha: Double? = nil) -> String {
        alpha.map { "rgba(\(c.0),\(c.1),\(c.2),\(Format.fixed($0, decimals: 2)))" } ?? "rgb(\(c.0),\(c.1),\(c.2))"
    }

    /// The plot's scales: seconds and bytes to pixels.
    struct Scale {
        var x0: Double, x1: Double, y0: Double, y1: Double // pixels: left, right, top, bottom
        var tMax: Double, yMax: Double
        /// The bytes between two ticks of the vertical axis (`yMax` is a multiple of it).
        var yStep: Double
        func x(_ t: Double) -> Double { x0 + (tMax > 0 ? t / tMax : 0) * (x1 - x0) }
        func y(_ v: Double) -> Double { y1 - (yMax > 0 ? max(0, v) / yMax : 0) * (y1 - y0) }
    }

    /// The scale `render` uses for `timeline` (tests locate marks with it).
    static func scale(_ timeline: Timeline, options: TimelineSVGOptions) -> Scale {
        var tMax = 0.0, yMax = 0.0
        for p in timeline.processes {
            for point in p.points {
                tMax = max(tMax, timeline.seconds(point.timeNanoseconds))
                yMax = max(yMax, point.inuseBytes.value + Confidence.z * point.inuseBytes.standardDeviation, Double(point.rssBytes))
            }
            for s in p.snapshots {
                tMax = max(tMax, timeline.seconds(s.timeNanoseconds))
                yMax = max(yMax, s.inuseBytes.value)
            }
            if let peak = p.peak {
                tMax = max(tMax, timeline.seconds(peak.timeNanoseconds))
                yMax = max(yMax, peak.inuseBytes.value + Confidence.z * peak.inuseBytes.standardDeviation)
            }
        }
        let yStep = niceBytesStep(yMax * 1.05)
        let tStep = niceSecondsStep(tMax)
        let width = Double(options.width), height = Double(options.height)
        return Scale(x0: left, x1: width - legendWidth - right, y0: top, y1: height - bottom,
                     tMax: tMax > 0 ? tMax : tStep, yMax: max(yStep, (yMax * 1.05 / yStep).rounded(.up) * yStep), yStep: yStep)
    }

    /// A step of 1, 2 or 5 × 10ⁿ of a binary unit (B, KiB, MiB, GiB …) giving about 5 ticks up to `maximum`.
    static func niceBytesStep(_ maximum: Double) -> Double {
        var unit = 1.0
        while maximum / unit >= 1024, unit < 1e18 { unit *= 1024 }
        return unit * niceStep(max(maximum, 1) / unit, ticks: 5)
    }

    /// A step of 1, 2 or 5 × 10ⁿ seconds giving about 8 ticks up to `maximum`.
    static func niceSecondsStep(_ maximum: Double) -> Double {
        niceStep(maximum > 0 ? maximum : 1, ticks: 8)
    }

    static func niceStep(_ maximum: Double, ticks: Double) -> Double {
        let raw = maximum / ticks
        var magnitude = 1.0
        while magnitude * 10 <= raw { magnitude *= 10 }
        while magnitude > raw { magnitude /= 10 }
        for m in [1.0, 2, 2.5, 5, 10] where magnitude * m >= raw { return magnitude * m }
        return magnitude * 10
    }

    /// A tick of the bytes axis without trailing zeros: "5 MiB", "2.5 MiB", "0 B".
    static func tickBytes(_ value: Double) -> String {
        var text = Format.bytes(value)
        guard let space = text.firstIndex(of: " "), text[..<space].contains(".") else { return text }
        var number = String(text[..<space])
        while number.hasSuffix("0") { number.removeLast() }
        if number.hasSuffix(".") { number.removeLast() }
        text = number + text[space...]
        return text
    }

    /// "12 s", "1.5 s", "2 min 30 s".
    static func secondsLabel(_ t: Double, step: Double) -> String {
        if step >= 60, t >= 60 {
            let m = Int((t / 60).rounded(.down)), s = Int(t.rounded()) - 60 * m
            return s == 0 ? "\(m) min" : "\(m) min \(s) s"
        }
        let decimals = step >= 1 ? 0 : step >= 0.1 ? 1 : step >= 0.01 ? 2 : 3
        return Format.fixed(t, decimals: decimals) + " s"
    }

    /// Seconds for labels and tooltips: "3.20 s".
    static func seconds(_ t: Double) -> String {
        t < 60 ? Format.fixed(t, decimals: 2) + " s" : Format.duration(nanoseconds: t * 1e9)
    }

    static func pm(_ e: Estimate) -> String {
        let margin = Confidence.z * e.standardDeviation
        return margin > 0 ? " ± " + Format.bytes(margin) : ""
    }

    /// The subtitle: process (or count), when sampling started, span, peak, max RSS.
    static func subtitle(_ timeline: Timeline) -> String {
        guard let first = timeline.processes.first else { return "no points" }
        let program = SnapshotHeader.programName(executable: first.executable, commandLine: first.commandLine)
        var parts: [String] = []
        if timeline.processes.count == 1 {
            parts.append("\(program) [\(first.pid)]" + (first.hostname.isEmpty ? "" : " on \(first.hostname)"))
        } else {
            parts.append("\(program): \(timeline.processes.count) processes")
        }
        parts.append("from " + Format.time(nanoseconds: timeline.originNanoseconds))
        let points = timeline.processes.reduce(0) { $0 + $1.points.count }
        let end = timeline.processes.flatMap(\.points).map(\.timeNanoseconds).max() ?? timeline.originNanoseconds
        parts.append("\(points) points over \(seconds(timeline.seconds(end)))")
        if let peak = timeline.processes.compactMap(\.peak).max(by: { $0.inuseBytes.value < $1.inuseBytes.value }) {
            parts.append("peak \(Format.bytes(peak.inuseBytes.value))\(pm(peak.inuseBytes)) at \(seconds(timeline.seconds(peak.timeNanoseconds)))")
        }
        let rss = timeline.processes.map(\.maxRSSBytes).max() ?? 0
        if rss > 0 { parts.append("max RSS \(Format.bytes(Double(rss)))") }
        return parts.joined(separator: " · ")
    }

    /// A column of the stacked sites: a snapshot or the peak.
    struct Column {
        var seconds: Double
        var name: String
        var sites: [Estimate]
        var other: Estimate
    }

    /// The columns the sites are stacked from: the snapshots and, when it was split by site, the peak, in time order.
    static func columns(_ timeline: Timeline) -> [Column] {
        guard drawsSites(timeline) else { return [] }
        let process = timeline.processes[0]
        var columns = process.snapshots.map {
            Column(seconds: timeline.seconds($0.timeNanoseconds), name: "snapshot #\($0.seq)", sites: $0.sites, other: $0.other)
        }
        if let peak = process.peak, !peak.sites.isEmpty {
            columns.append(Column(seconds: timeline.seconds(peak.timeNanoseconds), name: "the peak", sites: peak.sites, other: peak.other))
        }
        return columns.enumerated().sorted { ($0.element.seconds, $0.offset) < ($1.element.seconds, $1.offset) }.map(\.element)
    }

    /// Whether the sites are drawn stacked: one process with several snapshots and at least one site.
    static func drawsSites(_ timeline: Timeline) -> Bool {
        timeline.processes.count == 1 && timeline.processes[0].snapshots.count >= 2 && !timeline.sites.isEmpty
    }

    /// The SVG document for `timeline`.
    /// - Complexity: O(points + snapshots × sites).
    public static func render(_ timeline: Timeline, options: TimelineSVGOptions = TimelineSVGOptions()) -> String {
        let s = scale(timeline, options: options)
        let f = { (v: Double) in Format.fixed(v, decimals: 1) }
        let width = options.width, height = options.height
        let center = Format.fixed(Double(width) / 2, decimals: 0)
        var svg = """
        <?xml version="1.0" standalone="no"?>
        <svg version="1.1" width="\(width)" height="\(height)" viewBox="0 0 \(width) \(height)" \
        xmlns="http://www.w3.org/2000/svg" onload="init(evt)">
        <style type="text/css">
        text { font-family: ui-monospace, Menlo, Consolas, "DejaVu Sans Mono", monospace; font-size: 12px; fill: rgb(0,0,0); }
        #title { text-anchor: middle; font-size: 17px; }
        #subtitle { text-anchor: middle; fill: rgb(80,80,80); }
        .axis text { fill: rgb(90,90,90); font-size: 11px; }
        .grid { stroke: rgb(226,226,220); stroke-width: 1; }
        .frame { fill: none; stroke: rgb(170,170,165); stroke-width: 1; }
        .legend text { font-size: 11.5px; }
        .legend .head { font-weight: bold; }
        .snap { cursor: help; }
        .peak text { paint-order: stroke; stroke: rgb(250,250,247); stroke-width: 3px; stroke-linejoin: round; }
        .site:hover { stroke: rgb(60,60,60); stroke-width: 0.8; }
        #hover line { stroke: rgb(60,60,60); stroke-width: 0.8; stroke-dasharray: 3 3; }
        </style>
        \(SVGScript.elements(SVGScript.timeline, config: scriptConfig(timeline, scale: s)))
        <rect x="0" y="0" width="100%" height="100%" fill="rgb(250,250,247)"/>
        <text id="title" x="\(center)" y="24">\(FlameGraphSVG.escape(options.title))</text>
        <text id="subtitle" x="\(center)" y="42">\(FlameGraphSVG.escape(subtitle(timeline)))</text>

        """

        // Grid and axes.
        svg += "<g class=\"axis\">\n"
        let yStep = s.yStep
        var tick = 0.0
        while tick <= s.yMax + yStep / 1000 {
            let y = s.y(tick)
            svg += "<line class=\"grid\" x1=\"\(f(s.x0))\" y1=\"\(f(y))\" x2=\"\(f(s.x1))\" y2=\"\(f(y))\"/>"
            svg += "<text x=\"\(f(s.x0 - 8))\" y=\"\(f(y + 4))\" style=\"text-anchor:end\">\(tickBytes(tick))</text>\n"
            tick += yStep
        }
        let tStep = niceSecondsStep(s.tMax)
        tick = 0
        while tick <= s.tMax + tStep / 1000 {
            let x = s.x(tick)
            svg += "<line class=\"grid\" x1=\"\(f(x))\" y1=\"\(f(s.y0))\" x2=\"\(f(x))\" y2=\"\(f(s.y1))\"/>"
            svg += "<text x=\"\(f(x))\" y=\"\(f(s.y1 + 18))\" style=\"text-anchor:middle\">\(secondsLabel(tick, step: tStep))</text>\n"
            tick += tStep
        }
        svg += "<text x=\"\(f((s.x0 + s.x1) / 2))\" y=\"\(f(s.y1 + 38))\" style=\"text-anchor:middle\">time since sampling started</text>\n"
        svg += "</g>\n"

        // Stacked sites.
        let sites = drawsSites(timeline)
        let columns = columns(timeline)
        if sites {
            let layers = timeline.sites.indices.map { Optional($0) } + [nil]
            var below = [Double](repeating: 0, count: columns.count)
            svg += "<g id=\"sites\">\n"
            for (n, layer) in layers.enumerated() {
                let values = columns.map { column in layer.map { column.sites[$0].value } ?? column.other.value }
                let above = zip(below, values).map { $0 + $1 }
                var points: [String] = []
                for (i, column) in columns.enumerated() {
                    points.append("\(f(s.x(column.seconds))),\(f(s.y(above[i])))")
                }
                for (i, column) in columns.enumerated().reversed() {
                    points.append("\(f(s.x(column.seconds))),\(f(s.y(below[i])))")
                }
                let label = layer.map { timeline.sites[$0].label } ?? "other sites"
                let color = layer.map { siteColors[$0 % siteColors.count] } ?? otherColor
                let largest = values.max() ?? 0
                svg += "<polygon class=\"site\" data-site=\"\(n)\" points=\"\(points.joined(separator: " "))\" fill=\"\(color)\" fill-opacity=\"0.85\">"
                svg += "<title>\(FlameGraphSVG.escape(label))\nup to \(Format.bytes(largest)) in use</title></polygon>\n"
                below = above
            }
            svg += "</g>\n"
        }

        // Per process: band, RSS, in use, peak, snapshot ticks.
        for (i, process) in timeline.processes.enumerated() {
            let color = processColors[i % processColors.count]
            let many = timeline.processes.count > 1
            let pts = process.points
            svg += "<g class=\"process\" id=\"process-\(i)\">\n"
            if pts.contains(where: { $0.inuseBytes.variance > 0 }) {
                var band: [String] = []
                for p in pts {
                    band.append("\(f(s.x(timeline.seconds(p.timeNanoseconds)))),\(f(s.y(p.inuseBytes.value + Confidence.z * p.inuseBytes.standardDeviation)))")
                }
                for p in pts.reversed() {
                    band.append("\(f(s.x(timeline.seconds(p.timeNanoseconds)))),\(f(s.y(p.inuseBytes.value - Confidence.z * p.inuseBytes.standardDeviation)))")
                }
                svg += "<polygon class=\"band\" points=\"\(band.joined(separator: " "))\" fill=\"\(rgb(color, sites ? 0.22 : 0.16))\" stroke=\"none\"/>\n"
            }
            let rss = pts.filter { $0.rssBytes > 0 }
            if rss.count >= 1 {
                let line = rss.map { "\(f(s.x(timeline.seconds($0.timeNanoseconds)))),\(f(s.y(Double($0.rssBytes))))" }.joined(separator: " ")
                svg += "<polyline class=\"rss\" points=\"\(line)\" fill=\"none\" stroke=\"\(rgb(many ? color : rssColor))\" stroke-width=\"1.6\" stroke-dasharray=\"6 3\"/>\n"
            }
            let inuse = pts.map { "\(f(s.x(timeline.seconds($0.timeNanoseconds)))),\(f(s.y($0.inuseBytes.value)))" }.joined(separator: " ")
            svg += "<polyline class=\"inuse\" points=\"\(inuse)\" fill=\"none\" stroke=\"\(rgb(color))\" stroke-width=\"2\" stroke-linejoin=\"round\"/>\n"
            for snap in process.snapshots {
                let x = s.x(timeline.seconds(snap.timeNanoseconds))
                let flags = Format.flags(snap.flags)
                svg += "<g class=\"snap\"><title>\(FlameGraphSVG.escape("snapshot #\(snap.seq)\(flags.isEmpty ? "" : " [" + flags.joined(separator: ", ") + "]") at \(seconds(timeline.seconds(snap.timeNanoseconds))): \(Format.bytes(snap.inuseBytes.value))\(pm(snap.inuseBytes)) in use\n\(snap.file)"))</title>"
                svg += "<path d=\"M\(f(x)),\(f(s.y1 - 7)) l-4,7 l8,0 z\" fill=\"\(rgb(color))\"/></g>\n"
            }
            if let peak = process.peak {
                let t = timeline.seconds(peak.timeNanoseconds)
                let x = s.x(t), y = s.y(peak.inuseBytes.value)
                let text = "peak \(Format.bytes(peak.inuseBytes.value))\(pm(peak.inuseBytes)) at \(seconds(t))"
                let anchorEnd = x > s.x1 - Double(text.count) * 7.2 - 12
                let ty = y - 10 < s.y0 + 12 ? y + 18 : y - 10
                let peakColor = many ? rgb(color) : Self.peakColor
                svg += "<g class=\"peak\" id=\"peak-\(i)\" data-t=\"\(Format.fixed(t, decimals: 3))\" data-bytes=\"\(Format.fixed(peak.inuseBytes.value, decimals: 0))\">"
                svg += "<title>\(FlameGraphSVG.escape(text + (peak.file.map { "\nheapsnap top \($0)@peak" } ?? "\nthe highest point (no PEAK record)")))</title>"
                svg += "<line x1=\"\(f(x))\" y1=\"\(f(s.y0))\" x2=\"\(f(x))\" y2=\"\(f(s.y1))\" stroke=\"\(peakColor)\" stroke-width=\"1\" stroke-dasharray=\"4 3\"/>"
                svg += "<circle cx=\"\(f(x))\" cy=\"\(f(y))\" r=\"4.5\" fill=\"\(peakColor)\" stroke=\"white\" stroke-width=\"1.5\"/>"
                svg += "<text x=\"\(f(anchorEnd ? x - 8 : x + 8))\" y=\"\(f(ty))\" style=\"text-anchor:\(anchorEnd ? "end" : "start"); fill:\(peakColor)\">\(FlameGraphSVG.escape(text))</text></g>\n"
            }
            svg += "</g>\n"
        }
        svg += "<rect class=\"frame\" x=\"\(f(s.x0))\" y=\"\(f(s.y0))\" width=\"\(f(s.x1 - s.x0))\" height=\"\(f(s.y1 - s.y0))\"/>\n"

        // Legend.
        let lx = s.x1 + 22, textX = lx + 26
        var ly = s.y0 + 4
        svg += "<g class=\"legend\">\n"
        func entry(_ swatch: String, _ label: String, _ title: String? = nil) {
            svg += "<g transform=\"translate(\(f(lx)),\(f(ly)))\">\(swatch)</g>"
            svg += "<text x=\"\(f(textX))\" y=\"\(f(ly + 4))\">\(title.map { "<title>\(FlameGraphSVG.escape($0))</title>" } ?? "")\(FlameGraphSVG.escape(fit(label, pixels: Double(options.width) - textX - 8)))</text>\n"
            ly += 18
        }
        for (i, process) in timeline.processes.enumerated() {
            let color = processColors[i % processColors.count]
            if timeline.processes.count > 1 {
                svg += "<text class=\"head\" x=\"\(f(lx))\" y=\"\(f(ly + 4))\"><title>\(FlameGraphSVG.escape(process.label))</title>\(FlameGraphSVG.escape(fit(process.label, pixels: Double(options.width) - lx - 8)))</text>\n"
                ly += 18
            }
            entry("<rect x=\"0\" y=\"-5\" width=\"20\" height=\"10\" fill=\"\(rgb(color, 0.2))\"/><line x1=\"0\" y1=\"0\" x2=\"20\" y2=\"0\" stroke=\"\(rgb(color))\" stroke-width=\"2\"/>",
                  process.pointsFromSnapshots ? "in use (snapshots) ± 95%" : "in use ± 95%")
            if process.maxRSSBytes > 0 {
                entry("<line x1=\"0\" y1=\"0\" x2=\"20\" y2=\"0\" stroke=\"\(rgb(timeline.processes.count > 1 ? color : rssColor))\" stroke-width=\"1.6\" stroke-dasharray=\"6 3\"/>",
                      "RSS (max \(Format.bytes(Double(process.maxRSSBytes))))")
            }
            if let peak = process.peak {
                let peakColor = timeline.processes.count > 1 ? rgb(color) : Self.peakColor
                entry("<circle cx=\"10\" cy=\"0\" r=\"4.5\" fill=\"\(peakColor)\"/>", peak.file == nil ? "highest point" : "peak")
            }
            if !process.snapshots.isEmpty {
                entry("<path d=\"M10,-4 l-4,7 l8,0 z\" fill=\"\(rgb(color))\"/>", "\(process.snapshots.count) snapshot\(process.snapshots.count == 1 ? "" : "s")")
            }
            ly += 6
        }
        if sites {
            ly += 4
            svg += "<text class=\"head\" x=\"\(f(lx))\" y=\"\(f(ly + 4))\">top \(timeline.sites.count) sites (by line)</text>\n"
            ly += 18
            for (n, site) in timeline.sites.enumerated() {
                let short = site.frame.map { site.key.line > 0 ? "\(baseName(site.key.file)):\(site.key.line) \($0.function)" : site.label } ?? site.label
                entry("<rect x=\"0\" y=\"-6\" width=\"20\" height=\"12\" fill=\"\(siteColors[n % siteColors.count])\"/>", short, site.label)
            }
            entry("<rect x=\"0\" y=\"-6\" width=\"20\" height=\"12\" fill=\"\(otherColor)\"/>", "other sites")
        }
        svg += "</g>\n"

        // Hover: a crosshair, a dot per process, and two lines of details.
        svg += "<g id=\"hover\" style=\"display:none\"><line id=\"cross\" x1=\"0\" y1=\"\(f(s.y0))\" x2=\"0\" y2=\"\(f(s.y1))\"/>"
        for (i, _) in timeline.processes.enumerated() {
            svg += "<circle class=\"dot\" r=\"3.5\" cx=\"0\" cy=\"0\" fill=\"\(rgb(processColors[i % processColors.count]))\" stroke=\"white\" stroke-width=\"1\"/>"
        }
        svg += "</g>\n"
        svg += "<rect id=\"hit\" x=\"\(f(s.x0))\" y=\"\(f(s.y0))\" width=\"\(f(s.x1 - s.x0))\" height=\"\(f(s.y1 - s.y0))\" fill=\"transparent\"/>\n"
        svg += "<text id=\"details\" x=\"\(f(s.x0))\" y=\"\(height - 22)\"> </text>\n"
        svg += "<text id=\"details2\" x=\"\(f(s.x0))\" y=\"\(height - 6)\" style=\"fill:rgb(80,80,80)\"> </text>\n"
        svg += "</svg>\n"
        return svg
    }

    /// `label` cut at the front (paths keep their ends) to fit `pixels` at 11.5 px.
    static func fit(_ label: String, pixels: Double) -> String {
        let room = Int(pixels / (0.59 * 11.5))
        if label.count <= room || room < 4 { return label }
        return "…" + String(label.suffix(room - 1))
    }

    /// The document's values for timeline.js (its opening comment says what they are).
    private static func scriptConfig(_ timeline: Timeline, scale s: Scale) -> JSON {
        let bytes = { (v: Double) in JSON.rounded(v, decimals: 0) }
        let seconds = { (v: Double) in JSON.rounded(v, decimals: 4) }
        let processes = timeline.processes.map { p in
            JSON.object([("label", .string(p.label)), ("points", .array(p.points.map { point in
                .array([seconds(timeline.seconds(point.timeNanoseconds)), bytes(point.inuseBytes.value),
                        bytes(Confidence.z * point.inuseBytes.standardDeviation), bytes(point.allocBytes),
                        .int(Int64(clamping: point.rssBytes))])
            }))])
        }
        let snapshots = columns(timeline).map { column in
            JSON.array([seconds(column.seconds), .string(column.name), .array(column.sites.map { bytes($0.value) }),
                        bytes(column.other.value)])
        }
        let sites = drawsSites(timeline) ? timeline.sites.map { JSON.string($0.label) } : []
        return .object([
            ("x0", .rounded(s.x0, decimals: 1)), ("x1", .rounded(s.x1, decimals: 1)),
            ("y0", .rounded(s.y0, decimals: 1)), ("y1", .rounded(s.y1, decimals: 1)),
            ("tMax", seconds(s.tMax)), ("yMax", bytes(s.yMax)),
            ("processes", .array(processes)), ("sites", .array(sites)), ("snapshots", .array(snapshots)),
        ])
    }
}
