// The human table: a header about the process and the sampling, then one row
// per group with right-aligned numbers and a location column that takes the
// rest of the terminal's width (paths are cut at the front, where they are
// least informative). Colour marks growth (red), shrinkage (green) and
// changes within noise (dim) in diffs; it is off unless asked for.

/// Renders reports as aligned text tables.
public struct TableRenderer: Renderer, Sendable {
    /// Width and colour.
    public var options: RenderOptions

    public init(options: RenderOptions = RenderOptions()) {
        self.options = options
    }

    private func paint(_ s: String, _ code: String) -> String {
        options.color && !s.isEmpty ? "\u{1B}[\(code)m\(s)\u{1B}[0m" : s
    }

    private struct Column {
        var title: String
        var right = true
        var cells: [String] = []
        var colors: [String] = []
    }

    // MARK: top and diff

    public func render(_ report: Report) -> String {
        var out = ""
        out += header(report)
        // Dropped samples make every figure below low: said under the header, before the rows.
        let dropped = ProfileSource.droppedWarnings(report.source, base: report.base)
        for warning in dropped { out += paint("warning: " + warning, "33") + "\n" }
        if let split = report.split { out += processes(split, metric: report.options.metric) }
        let metric = report.options.metric
        let bytesMetric = metric.bytesMetric, objectsMetric = metric.objectsMetric
        let estimated = report.source.header.rate > 1 || (report.base?.header.rate ?? 0) > 1
        let kind = metric.isInuse ? "in use" : "allocated"

        var columns: [Column] = []
        var size = Column(title: "Size"), err = Column(title: "±"), count = Column(title: "Count")
        var average = Column(title: "Average"), percent = Column(title: "%"), cumulative = Column(title: "Cum%")
        var sizeDiff = Column(title: "Δ Size"), countDiff = Column(title: "Δ Count"), noise = Column(title: "", right: false)
        var running = 0.0
        let total = report.total[metric].value
        for row in report.rows {
            let current = row.current
            size.cells.append(Format.bytes(current[bytesMetric].value))
            count.cells.append(Format.count(current[objectsMetric].value))
            let objects = current[objectsMetric].value
            average.cells.append(objects >= 0.5 ? Format.bytes(current[bytesMetric].value / objects) : "")
            if report.isDiff {
                let delta = row.values
                let quiet = row.isWithinNoise(metric)
                let color = quiet ? "2" : (delta[metric].value > 0 ? "31" : delta[metric].value < 0 ? "32" : "")
                sizeDiff.cells.append(Format.bytes(delta[bytesMetric].value, signed: true))
                sizeDiff.colors.append(color)
                countDiff.cells.append(Format.count(delta[objectsMetric].value, signed: true))
                countDiff.colors.append(color)
                err.cells.append("±" + errorText(delta[metric], metric))
                noise.cells.append(quiet ? "~" : "")
            } else {
                err.cells.append("±" + errorText(row.values[metric], metric))
                let v = row.values[metric].value
                running += v
                percent.cells.append(Format.percent(v, of: total))
                cumulative.cells.append(report.options.cumulative ? "" : Format.percent(running, of: total))
            }
        }
        if report.isDiff {
            columns = [size, sizeDiff] + (estimated ? [err] : []) + [count, countDiff] + (estimated ? [noise] : [])
        } else {
            columns = [size] + (estimated ? [err] : []) + [count, average, percent] + (report.options.cumulative ? [] : [cumulative])
        }
        if let split = report.split {
            for (c, title) in split.titles.enumerated() {
                var column = Column(title: title)
                column.cells = split.cells.map { metric == bytesMetric ? Format.bytes($0[c].value) : Format.count($0[c].value) }
                columns.append(column)
            }
        }
        let locationTitle = report.options.groupBy == .traceback ? "Allocation site (stack below)" : title(report.options.groupBy)
        var locations: [String] = []
        for row in report.rows { locations.append(location(row, report.options.groupBy)) }

        // Lay out; on a narrow terminal drop the least useful columns first.
        func widthsOf(_ columns: [Column]) -> [Int] { columns.map { c in max(c.title.count, c.cells.map(\.count).max() ?? 0) } }
        var widths = widthsOf(columns)
        for droppable in ["Cum%", "Average", "Δ Count", "Count"] {
            guard let width = options.width, widths.reduce(0, +) + 2 * columns.count + 16 > width,
                  let i = columns.firstIndex(where: { $0.title == droppable }) else { continue }
            columns.remove(at: i)
            widths = widthsOf(columns)
        }
        let fixed = widths.reduce(0, +) + 2 * columns.count
        let locationWidth = options.width.map { max(16, $0 - fixed) }
        var line = ""
        for (c, w) in zip(columns, widths) { line += Format.pad(c.title, w, right: c.right) + "  " }
        line += locationTitle
        out += "\n" + paint(trimTrailing(line), "1") + "\n"
        for (i, row) in report.rows.enumerated() {
            var text = ""
            for (c, w) in zip(columns, widths) {
                let cell = Format.pad(c.cells[i], w, right: c.right)
                let color = i < c.colors.count ? c.colors[i] : ""
                text += (color.isEmpty ? cell : paint(cell, color)) + "  "
            }
            text += fitLocation(locations[i], locationWidth)
            out += trimTrailing(text) + "\n"
            if report.options.groupBy == .traceback {
                let indent = String(repeating: " ", count: 4)
                for frame in row.key.stack {
                    let text = frameText(frame)
                    out += indent + paint(fitLocation(text, options.width.map { max(16, $0 - 4) }), "2") + "\n"
                }
            }
        }
        if report.rows.isEmpty { out += "(no allocations match)\n" }
        if report.omittedRows > 0 {
            out += "… \(report.omittedRows) more \(report.omittedRows == 1 ? "row" : "rows") (--limit)\n"
        }
        if report.isDiff, estimated {
            out += "~ marks a change within the \(Confidence.level) noise band (±\(Confidence.z)σ)\n"
        } else if estimated {
            out += "± is the \(Confidence.level) interval (±\(Confidence.z)σ) of each estimate of \(metric.isBytes ? "bytes" : "objects") \(kind)\n"
        }
        for warning in report.warnings where !dropped.contains(warning) { out += paint("warning: " + warning, "33") + "\n" }
        return out
    }

    private func title(_ groupBy: GroupBy) -> String {
        switch groupBy {
        case .line: "Line"
        case .function: "Function"
        case .file: "File"
        case .module: "Module"
        case .traceback: "Stack"
        }
    }

    private func errorText(_ e: Estimate, _ metric: Metric) -> String {
        let margin = Confidence.z * e.standardDeviation
        return metric.isBytes ? Format.bytes(margin) : Format.count(margin)
    }

    private func location(_ row: Row, _ groupBy: GroupBy) -> String {
        switch groupBy {
        case .line:
            if let frame = row.frame, row.key.line > 0 { return row.key.label + "  " + frame.function }
            return row.key.label + (row.frame.map { $0.module.isEmpty ? "" : "  (" + $0.moduleName + ")" } ?? "")
        case .function:
            return row.key.label + (row.frame.map { $0.moduleName.isEmpty ? "" : "  (" + $0.moduleName + ")" } ?? "")
        case .file, .module:
            return row.key.label
        case .traceback:
            return row.key.label + (row.key.stack.first.map { $0.hasSourceLocation ? "  " + $0.function : "" } ?? "")
        }
    }

    private func frameText(_ frame: Frame) -> String {
        var s = frame.hasSourceLocation ? "\(frame.file):\(frame.line)  \(frame.function)" : frame.function
        if frame.inlined { s += " (inlined)" }
        if !frame.hasSourceLocation, !frame.module.isEmpty, !frame.function.hasPrefix(frame.moduleName + "+") {
            s += "  (" + frame.moduleName + ")"
        }
        return s
    }

    /// Fits "label  detail": drop the detail first, then cut the label's front.
    private func fitLocation(_ text: String, _ width: Int?) -> String {
        guard let width, text.count > width else { return text }
        if let split = text.range(of: "  ") {
            let label = String(text[..<split.lowerBound])
            if label.count + 3 <= width { return Format.fit(text, width, keepEnd: false) }
            return Format.fit(label, width, keepEnd: true)
        }
        return Format.fit(text, width, keepEnd: true)
    }

    private func trimTrailing(_ s: String) -> String {
        var s = s
        while s.last == " " { s.removeLast() }
        return s
    }

    private func header(_ report: Report) -> String {
        var out = ""
        let metric = report.options.metric
        if let base = report.base {
            out += paint("heapsnap diff", "1") + "  \(name(base)) → \(name(report.source))\n"
            out += "old: " + processLine(base) + "\n"
            out += "new: " + processLine(report.source) + "\n"
            out += "old: " + samplingLine(base) + "\n"
            out += "new: " + samplingLine(report.source) + "\n"
            let old = report.baseTotal ?? .zero, new = report.currentTotal
            out += "in use: \(Format.bytes(old.inuseBytes.value)) → \(Format.bytes(new.inuseBytes.value)) (\(Format.bytes(report.total.inuseBytes.value, signed: true))), "
                + "\(Format.count(old.inuseObjects.value)) → \(Format.count(new.inuseObjects.value)) allocations\n"
            out += "allocated: \(Format.bytes(old.allocBytes.value)) → \(Format.bytes(new.allocBytes.value)) (\(Format.bytes(report.total.allocBytes.value, signed: true)))\n"
        } else {
            out += paint("heapsnap top", "1") + "  \(name(report.source))\n"
            out += processLine(report.source) + "\n"
            out += samplingLine(report.source) + "\n"
            let t = report.total
            let estimated = report.source.header.rate > 1
            func pm(_ e: Estimate, bytes: Bool) -> String {
                estimated ? " ±" + (bytes ? Format.bytes(Confidence.z * e.standardDeviation) : Format.count(Confidence.z * e.standardDeviation)) : ""
            }
            out += (report.source.peakNanoseconds == nil ? "in use: " : "in use at the peak: ")
                + "\(Format.bytes(t.inuseBytes.value))\(pm(t.inuseBytes, bytes: true)) in \(Format.count(t.inuseObjects.value)) allocations; "
                + (report.source.peakNanoseconds == nil ? "allocated since start: " : "allocated by then: ") + "\(Format.bytes(t.allocBytes.value))\(pm(t.allocBytes, bytes: true)) in \(Format.count(t.allocObjects.value)) allocations\n"
        }
        var how = "by \(report.options.groupBy.rawValue)\(report.options.cumulative ? " (cumulative)" : ""), \(report.isDiff ? "sorted by |Δ \(metric.rawValue)|" : "sorted by \(metric.rawValue)")"
        if !report.filter.include.isEmpty { how += ", include \(report.filter.include.joined(separator: " "))" }
        if !report.filter.exclude.isEmpty { how += ", exclude \(report.filter.exclude.joined(separator: " "))" }
        if report.matchedSamples != report.allSamples { how += "; \(report.matchedSamples) of \(report.allSamples) stacks match the filters" }
        out += how + "\n"
        return out
    }

    /// One line per merged process: its column, snapshot time, total of the metric and file.
    private func processes(_ split: ProcessSplit, metric: Metric) -> String {
        var out = "processes (\(metric.rawValue)):\n"
        for p in split.processes + split.others {
            let value = p.total[metric].value
            let amount = metric == metric.bytesMetric ? Format.bytes(value) : Format.count(value)
            let column = split.others.contains(p) ? "others" : "pid \(p.pid)"
            out += "  pid \(p.pid)\(column == "others" ? " (others)" : "")  \(Format.time(nanoseconds: p.timeNanoseconds))  \(amount)  \(p.file)\n"
        }
        return out
    }

    private func processLine(_ source: ProfileSource) -> String {
        let h = source.header
        var s = h.flags.contains(.merged) ? "merged snapshot (heapsnap info lists its sources)" : "pid \(h.pid)"
        if !h.hostname.isEmpty { s += " on \(h.hostname)" }
        let command = h.commandLine.isEmpty ? h.executable : Format.commandLine(h.commandLine)
        if !command.isEmpty { s += ": \(command)" }
        return s
    }

    /// `FILE`, or `FILE@peak` for a file's peak.
    private func name(_ source: ProfileSource) -> String {
        source.peakNanoseconds == nil ? source.file : source.file + SnapshotRef.peakSuffix
    }

    private func samplingLine(_ source: ProfileSource) -> String {
        let h = source.header
        var s: String
        if let peak = source.peakNanoseconds {
            let elapsed = peak >= h.startNanoseconds ? Double(peak - h.startNanoseconds) : 0
            s = "the peak at \(Format.time(nanoseconds: peak)), \(Format.duration(nanoseconds: elapsed)) after start (as of snapshot #\(h.seq))"
        } else {
            let elapsed = h.timeNanoseconds >= h.startNanoseconds ? Double(h.timeNanoseconds - h.startNanoseconds) : 0
            s = "snapshot #\(h.seq) at \(Format.time(nanoseconds: h.timeNanoseconds)), \(Format.duration(nanoseconds: elapsed)) after start"
        }
        let flags = Format.flags(h.flags)
        if !flags.isEmpty { s += " [\(flags.joined(separator: ", "))]" }
        s += "; " + (h.rate <= 1 ? "exact (every allocation)" : "rate \(Format.bytes(Double(h.rate)))")
        s += ", \(Format.grouped(h.samples)) samples"
        if h.dropped > 0 { s += ", " + paint("\(Format.grouped(h.dropped)) dropped", "33") }
        else { s += ", 0 dropped" }
        if h.truncated > 0 { s += ", \(Format.grouped(h.truncated)) truncated stacks" }
        return s
    }

    // MARK: info

    /// `info`'s lines for the peak and the series (none when the file has neither).
    static func memoryFields(_ m: MemorySummary, estimated: Bool) -> [(String, String)] {
        var fields: [(String, String)] = []
        func pm(_ e: Estimate) -> String { estimated ? " ±" + Format.bytes(Confidence.z * e.standardDeviation) : "" }
        if let peak = m.peak {
            var text = "\(Format.bytes(peak.inuseBytes.value))\(pm(peak.inuseBytes)) in use at \(Format.time(nanoseconds: peak.timeNanoseconds)) "
                + "(\(Format.duration(nanoseconds: m.elapsed(peak.timeNanoseconds))) after start), "
            if peak.copyNanoseconds == peak.timeNanoseconds && peak.copyBytes == peak.inuseBytes {
                text += "\(peak.stacks) stacks; --at peak reads it"
            } else {
                // The copy --at peak reads was taken when the estimate passed a step, up to max(5%, 2 x rate) below.
                text += "--at peak reads \(peak.stacks) stacks copied at \(Format.duration(nanoseconds: m.elapsed(peak.copyNanoseconds))) "
                    + "(\(Format.bytes(peak.copyBytes.value))\(pm(peak.copyBytes)))"
            }
            fields.append(("peak", text))
        }
        if let series = m.series {
            var text = "\(series.points) points"
            if series.points > 0 {
                text += " from \(Format.duration(nanoseconds: m.elapsed(series.firstNanoseconds))) to \(Format.duration(nanoseconds: m.elapsed(series.lastNanoseconds))) after start"
            }
            text += ", every \(Format.duration(nanoseconds: Double(series.intervalNanoseconds)))"
            text += series.maxRSSBytes > 0 ? ", max RSS \(Format.bytes(Double(series.maxRSSBytes)))" : ", RSS unknown"
            fields.append(("series", text + "; heapsnap timeline draws it"))
        }
        return fields
    }

    /// What `heapsnap run` prints about the at-exit snapshot `file`: its peak and its totals.
    public func renderExitSummary(_ m: MemorySummary, file: String, estimated: Bool) -> [String] {
        func pm(_ e: Estimate) -> String { estimated ? " ±" + Format.bytes(Confidence.z * e.standardDeviation) : "" }
        var lines: [String] = []
        if let peak = m.peak {
            lines.append("peak: \(Format.bytes(peak.inuseBytes.value))\(pm(peak.inuseBytes)) in use, \(Format.duration(nanoseconds: m.elapsed(peak.timeNanoseconds))) after start "
                + "(heapsnap top \(file)@peak)")
        }
        lines.append("at exit: \(Format.bytes(m.inuseBytes.value))\(pm(m.inuseBytes)) in use, \(Format.bytes(m.allocBytes.value))\(pm(m.allocBytes)) allocated since start "
            + "(\(Format.duration(nanoseconds: m.elapsed(m.timeNanoseconds))))")
        return lines
    }

    public func render(_ info: InfoReport) -> String {
        let h = info.source.header
        var out = ""
        var fields: [(String, String)] = [
            ("file", info.source.file),
            ("format", "1.\(h.formatMinor)"),
            ("process", "pid \(h.pid), parent \(h.ppid)" + (h.hostname.isEmpty ? "" : ", host \(h.hostname)")),
            ("executable", h.executable),
            ("command", Format.commandLine(h.commandLine)),
            ("snapshot", "#\(h.seq) of session \(h.session)" + (Format.flags(h.flags).isEmpty ? "" : " [\(Format.flags(h.flags).joined(separator: ", "))]")),
            ("started", Format.time(nanoseconds: h.startNanoseconds)),
            ("taken", Format.time(nanoseconds: h.timeNanoseconds)
                + " (\(Format.duration(nanoseconds: h.timeNanoseconds >= h.startNanoseconds ? Double(h.timeNanoseconds - h.startNanoseconds) : 0)) after start)"),
            ("sampling", h.rate <= 1 ? "exact (every allocation)" : "one sample per \(Format.bytes(Double(h.rate))) on average (rate \(h.rate))"),
            ("max depth", "\(h.maxDepth) frames"),
            ("samples", "\(Format.grouped(h.samples)) sampled, \(Format.grouped(h.dropped)) dropped, \(Format.grouped(h.truncated)) truncated"),
            ("shim memory", "\(Format.bytes(Double(h.shimBytes))) of a \(Format.bytes(Double(h.budget))) budget"),
            ("stacks", "\(Format.grouped(UInt64(info.stacks))) distinct (\(info.truncatedStacks) truncated, deepest \(info.maxStackDepth) frames), \(Format.grouped(UInt64(info.addresses))) distinct addresses, \(info.records) sample entries"),
        ]
        if let python = info.python {
            fields.append(("python", Format.python(python)))
        }
        let t = info.source.totals
        let estimated = h.rate > 1
        func pm(_ e: Estimate) -> String { estimated ? " ±" + Format.bytes(Confidence.z * e.standardDeviation) : "" }
        fields.append(("in use", "\(Format.bytes(t.inuseBytes.value))\(pm(t.inuseBytes)) in \(Format.count(t.inuseObjects.value)) allocations (\(t.inuseSamples) samples)"))
        fields.append(("allocated", "\(Format.bytes(t.allocBytes.value))\(pm(t.allocBytes)) in \(Format.count(t.allocObjects.value)) allocations (\(t.allocSamples) samples)"))
        fields += Self.memoryFields(info.memory, estimated: estimated)
        if let retention = info.retention {
            fields.append(("retention", Format.retention(retention, at: h.timeNanoseconds)))
        }
        let keyWidth = fields.map(\.0.count).max() ?? 0
        for (key, value) in fields { out += paint(Format.pad(key, keyWidth, right: false), "1") + "  " + value + "\n" }

        out += "\n" + paint("modules (\(info.modules.count))", "1") + "\n"
        let statusWidth = max(6, info.modules.map(\.location.status.count).max() ?? 0)
        for m in info.modules {
            let range = "0x" + hex(m.module.start) + "-0x" + hex(m.module.end)
            let id = m.module.buildIDHex.isEmpty ? "(no build-id)" : m.module.buildIDHex
            let status = Format.pad(m.location.status, statusWidth, right: false)
            let color = m.location.status == "ok" || m.location.status == "debug file" || m.location.status == "no file" ? "32" : "33"
            var line = "  " + paint(status, color) + "  " + m.module.path + "  " + id + "  " + range
            if let width = options.width, line.count > width, !options.color { line = Format.fit(line, width, keepEnd: false) }
            out += line + "\n"
        }
        if !info.sources.isEmpty {
            out += "\n" + paint("merged from (\(info.sources.count))", "1") + "\n"
            for s in info.sources { out += "  pid \(s.pid) #\(s.seq) \(Format.time(nanoseconds: s.timeNanoseconds)) \(s.hostname) \(s.path)\n" }
        }
        if !info.warnings.isEmpty {
            out += "\n"
            for warning in info.warnings { out += paint("warning: " + warning, "33") + "\n" }
        }
        return out
    }
}
