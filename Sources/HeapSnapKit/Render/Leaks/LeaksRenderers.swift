// `heapsnap leaks`: the suspects as a table, and as `heapsnap.leaks/1` JSON
// (docs/JSON.md). Both show the same rows in the same order (LeakFinder
// sorts them); the table cuts to `limit` rows, JSON keeps every site.

extension TableRenderer {
    /// The suspects table: a header (what was read, how it was tested), then one line per site, at most `limit` (nil: all).
    public func render(_ report: LeakReport, limit: Int?) -> String {
        var out = ""
        let processes = report.processes.count
        let span = Double((report.moments.last ?? 0) &- (report.moments.first ?? 0))
        let rates = report.rates.map { $0 == 1 ? "exact" : "sampled at " + Format.bytes(Double($0)) }.joined(separator: ", ")
        out += "leak suspects in \(report.program): \(processes) process\(processes == 1 ? "" : "es"), \(report.moments.count) moment\(report.moments.count == 1 ? "" : "s")"
        out += report.stepNanoseconds > 0 ? " \(Format.duration(nanoseconds: Double(report.stepNanoseconds))) apart over \(Format.duration(nanoseconds: span))" : ""
        out += rates.isEmpty ? "\n" : ", \(rates)\n"
        var counts: [LeakVerdict: Int] = [:]
        for site in report.sites { counts[site.trend.verdict, default: 0] += 1 }
        out += "\(report.sites.count) sites: " + LeakVerdict.allCases.map { "\(counts[$0] ?? 0) \($0.rawValue)" }.joined(separator: ", ")
        out += " (\(report.tested) held memory and were tested; Holm-corrected, growing at confidence ≥ \(Self.percent(report.options.minConfidence)))\n"
        if report.moments.count < report.options.minimumMoments {
            out += "too few moments to test (\(report.moments.count), at least \(report.options.minimumMoments)): write more snapshots (HEAPSNAP_INTERVAL)\n"
        }
        out += "\n"

        let shown = limit.map { Array(report.sites.prefix($0)) } ?? report.sites
        let header = ["In use now", "Growth/min", "95% interval", "Per alloc MiB", "Confidence", "Verdict", "Site"]
        var rows: [[String]] = []
        for site in shown {
            let t = site.trend
            let perMinute = t.perMinute.map { Format.bytes($0.value, signed: true) } ?? "-"
            let interval = t.perMinute.map { Format.bytes($0.low, signed: true) + " .. " + Format.bytes($0.high, signed: true) } ?? "-"
            let perMiB = t.perAllocatedMiB.map { Format.bytes($0, signed: true) } ?? "-"
            let confidence = t.tested ? Self.confidence(t.confidence) : "-"
            var label = site.label
            if site.key.file != "", let function = site.frame?.function, !function.isEmpty { label += "  " + function }
            rows.append([Format.bytes(t.inuseNow.value), perMinute, interval, perMiB, confidence, t.verdict.rawValue, label])
        }
        var widths = header.map(\.count)
        for row in rows { for (i, cell) in row.enumerated() { widths[i] = max(widths[i], cell.count) } }
        func line(_ cells: [String]) -> String {
            var text = ""
            for (i, cell) in cells.enumerated() {
                text += i == cells.count - 1 ? cell : Format.pad(cell, widths[i], right: i < 5) + "  "
            }
            if let width = options.width, text.count > width { text = Format.fit(text, width, keepEnd: false) }
            return text + "\n"
        }
        out += line(header)
        for row in rows { out += line(row) }
        if shown.count < report.sites.count { out += "… \(report.sites.count - shown.count) more sites (--limit 0 for all)\n" }
        for warning in report.warnings { out += "warning: \(warning)\n" }
        return out
    }

    /// `99.5%`, `>99.99%`.
    static func confidence(_ c: Double) -> String {
        c > 0.9999 ? ">99.99%" : percent(c)
    }

    static func percent(_ c: Double) -> String {
        let text = Format.fixed(100 * c, decimals: 2)
        var trimmed = text
        while trimmed.hasSuffix("0") { trimmed.removeLast() }
        if trimmed.hasSuffix(".") { trimmed.removeLast() }
        return trimmed + "%"
    }
}

extension JSONRenderer {
    /// The report as a `heapsnap.leaks/1` document.
    public func render(_ report: LeakReport) -> String {
        let origin = report.moments.first ?? 0
        let processes: [JSON] = report.processes.map { p in
            .object([("pid", .int(Int64(p.pid))), ("hostname", .string(p.hostname)), ("commandLine", .array(p.commandLine.map(JSON.string))),
                     ("snapshots", .int(Int64(p.snapshots))), ("firstNs", .int(Int64(clamping: p.firstNanoseconds))),
                     ("lastNs", .int(Int64(clamping: p.lastNanoseconds)))])
        }
        let sites: [JSON] = report.sites.map { site in
            let t = site.trend
            return .object([
                ("label", .string(site.label)),
                ("key", .object([("file", .string(site.key.file)), ("line", .int(Int64(site.key.line))),
                                 ("function", .string(site.key.function)), ("module", .string(site.key.module))])),
                ("frame", site.frame.map(Self.frame) ?? .null),
                ("verdict", .string(t.verdict.rawValue)),
                ("tested", .bool(t.tested)),
                ("confidence", t.tested ? .number(t.confidence) : .null),
                ("inuseNow", Self.estimate(t.inuseNow)),
                ("growth", Self.estimate(t.totalGrowth)),
                ("growthPerMinute", t.perMinute.map { .object([("value", .number($0.value)), ("low", .number($0.low)), ("high", .number($0.high))]) } ?? .null),
                ("growthPerAllocatedMiB", t.perAllocatedMiB.map(JSON.number) ?? .null),
                ("pValues", !t.tested ? .null : .object([
                    ("trend", .number(t.trendP)), ("sampling", .number(t.samplingP)), ("traffic", .number(t.trafficP)),
                    ("growth", .number(t.growthP)), ("growthAdjusted", .number(t.growthAdjustedP)),
                    ("leak", .number(t.leakP)), ("leakAdjusted", .number(t.leakAdjustedP)),
                ])),
                ("series", .array(t.growth.map(JSON.number))),
            ])
        }
        return JSON.object([
            ("schema", .string("heapsnap.leaks/1")),
            ("program", .string(report.program)),
            ("executable", .string(report.executable)),
            ("processes", .array(processes)),
            ("moments", .object([
                ("firstNs", .int(Int64(clamping: origin))), ("stepNs", .int(Int64(clamping: report.stepNanoseconds))),
                ("seconds", .array(report.moments.map { .number((Double($0 &- origin) / 1e3).rounded() / 1e6) })),
            ])),
            ("rates", .array(report.rates.map { .int(Int64(clamping: $0)) })),
            ("groupBy", .string(report.groupBy.rawValue)),
            ("include", .array(report.filter.include.map(JSON.string))),
            ("exclude", .array(report.filter.exclude.map(JSON.string))),
            ("test", .object([
                ("minConfidence", .number(report.options.minConfidence)), ("correction", .string("holm")),
                ("tested", .int(Int64(report.tested))), ("confidence", .object([("z", .number(Confidence.z)), ("level", .string(Confidence.level))])),
            ])),
            ("sites", .array(sites)),
            ("warnings", .array(report.warnings.map(JSON.string))),
        ]).text
    }
}
