// Machine-readable output, documented in docs/JSON.md. Keys are written in a
// fixed order and numbers in Swift's shortest round-trip form, so the output
// is byte-for-byte deterministic.

/// A JSON value with ordered object keys.
enum JSON {
    case null
    case bool(Bool)
    case int(Int64)
    case number(Double)
    case string(String)
    case array([JSON])
    case object([(String, JSON)])

    func write(into out: inout String, indent: Int) {
        switch self {
        case .null: out += "null"
        case .bool(let b): out += b ? "true" : "false"
        case .int(let i): out += String(i)
        case .number(let d):
            if !d.isFinite { out += "null" }
            else if d == d.rounded(), abs(d) < 1e15 { out += String(Int64(d)) }
            else { out += String(d) }
        case .string(let s): JSON.quote(s, into: &out)
        case .array(let items):
            if items.isEmpty { out += "[]"; return }
            out += "[\n"
            for (i, item) in items.enumerated() {
                out += String(repeating: " ", count: indent + 2)
                item.write(into: &out, indent: indent + 2)
                out += i < items.count - 1 ? ",\n" : "\n"
            }
            out += String(repeating: " ", count: indent) + "]"
        case .object(let fields):
            if fields.isEmpty { out += "{}"; return }
            out += "{\n"
            for (i, (key, value)) in fields.enumerated() {
                out += String(repeating: " ", count: indent + 2)
                JSON.quote(key, into: &out)
                out += ": "
                value.write(into: &out, indent: indent + 2)
                out += i < fields.count - 1 ? ",\n" : "\n"
            }
            out += String(repeating: " ", count: indent) + "}"
        }
    }

    static func quote(_ s: String, into out: inout String) {
        out += "\""
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where scalar.value < 0x20:
                let h = String(scalar.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - h.count) + h
            default: out.unicodeScalars.append(scalar)
            }
        }
        out += "\""
    }

    var text: String {
        var out = ""
        write(into: &out, indent: 0)
        return out + "\n"
    }

    /// The value on one line with no spaces (a script's configuration), without a newline.
    var line: String {
        var out = ""
        writeLine(into: &out)
        return out
    }

    private func writeLine(into out: inout String) {
        switch self {
        case .array(let items):
            out += "["
            for (i, item) in items.enumerated() {
                if i > 0 { out += "," }
                item.writeLine(into: &out)
            }
            out += "]"
        case .object(let fields):
            out += "{"
            for (i, (key, value)) in fields.enumerated() {
                if i > 0 { out += "," }
                JSON.quote(key, into: &out)
                out += ":"
                value.writeLine(into: &out)
            }
            out += "}"
        default:
            write(into: &out, indent: 0)
        }
    }

    /// `value` rounded to `decimals` decimals, so that it prints with at most that many.
    static func rounded(_ value: Double, decimals: Int) -> JSON {
        var scale = 1.0
        for _ in 0..<decimals { scale *= 10 }
        return .number((value * scale).rounded() / scale)
    }
}

/// Renders reports as JSON (schema in docs/JSON.md).
public struct JSONRenderer: Renderer, Sendable {
    public init() {}

    static func estimate(_ e: Estimate) -> JSON {
        .object([("value", .number(e.value)), ("variance", .number(e.variance)),
                 ("error", .number(Confidence.z * e.standardDeviation))])
    }

    static func values(_ v: Values) -> JSON {
        .object([
            ("inuseBytes", estimate(v.inuseBytes)), ("inuseObjects", estimate(v.inuseObjects)),
            ("allocBytes", estimate(v.allocBytes)), ("allocObjects", estimate(v.allocObjects)),
            ("inuseSamples", .int(v.inuseSamples)), ("allocSamples", .int(v.allocSamples)),
        ])
    }

    static func frame(_ f: Frame) -> JSON {
        .object([("function", .string(f.function)), ("file", .string(f.file)), ("line", .int(Int64(f.line))),
                 ("column", .int(Int64(f.column))), ("module", .string(f.module)), ("inlined", .bool(f.inlined))])
    }

    static func source(_ s: ProfileSource) -> JSON {
        let h = s.header
        return .object([
            ("file", .string(s.file)),
            ("formatMinor", .int(Int64(h.formatMinor))),
            ("pid", .int(Int64(h.pid))), ("ppid", .int(Int64(h.ppid))), ("seq", .int(Int64(h.seq))),
            ("session", .int(Int64(h.session))),
            ("flags", .array(Format.flags(h.flags).map(JSON.string))),
            ("startNs", .int(Int64(clamping: h.startNanoseconds))), ("timeNs", .int(Int64(clamping: h.timeNanoseconds))),
            ("atPeakNs", s.peakNanoseconds.map { .int(Int64(clamping: $0)) } ?? .null),
            ("rate", .int(Int64(clamping: h.rate))), ("maxDepth", .int(Int64(h.maxDepth))),
            ("samples", .int(Int64(clamping: h.samples))), ("dropped", .int(Int64(clamping: h.dropped))),
            ("truncated", .int(Int64(clamping: h.truncated))),
            ("shimBytes", .int(Int64(clamping: h.shimBytes))), ("budget", .int(Int64(clamping: h.budget))),
            ("executable", .string(h.executable)), ("hostname", .string(h.hostname)),
            ("commandLine", .array(h.commandLine.map(JSON.string))),
            ("totals", values(s.totals)),
        ])
    }

    public func render(_ report: Report) -> String {
        let metric = report.options.metric
        let rows: [JSON] = report.rows.enumerated().map { i, row in
            var fields: [(String, JSON)] = [
                ("label", .string(row.key.label)),
                ("key", .object([
                    ("file", .string(row.key.file)), ("line", .int(Int64(row.key.line))),
                    ("function", .string(row.key.function)), ("module", .string(row.key.module)),
                ])),
                ("frame", row.frame.map(Self.frame) ?? .null),
            ]
            if report.options.groupBy == .traceback { fields.append(("stack", .array(row.key.stack.map(Self.frame)))) }
            fields.append(("values", Self.values(row.values)))
            if let base = row.base {
                fields.append(("old", Self.values(base)))
                fields.append(("new", Self.values(row.current)))
                fields.append(("withinNoise", .bool(row.isWithinNoise(metric))))
            } else {
                let total = report.total[metric].value
                fields.append(("percent", total == 0 ? .null : .number(100 * row.values[metric].value / total)))
            }
            if let split = report.split { fields.append(("processes", .array(split.cells[i].map(Self.estimate)))) }
            return .object(fields)
        }
        var fields: [(String, JSON)] = [
            ("schema", .string(report.isDiff ? "heapsnap.diff/1" : "heapsnap.top/1")),
            ("snapshot", Self.source(report.source)),
        ]
        if let base = report.base { fields.append(("base", Self.source(base))) }
        fields += [
            ("groupBy", .string(report.options.groupBy.rawValue)),
            ("cumulative", .bool(report.options.cumulative)),
            ("metric", .string(metric.camelName)),
            ("include", .array(report.filter.include.map(JSON.string))),
            ("exclude", .array(report.filter.exclude.map(JSON.string))),
            ("confidence", .object([("z", .number(Confidence.z)), ("level", .string(Confidence.level))])),
            ("total", Self.values(report.total)),
        ]
        if let baseTotal = report.baseTotal {
            fields.append(("oldTotal", Self.values(baseTotal)))
            fields.append(("newTotal", Self.values(report.currentTotal)))
        }
        if let split = report.split {
            func process(_ p: ProcessSplit.Process) -> JSON {
                .object([("pid", .int(Int64(p.pid))), ("file", .string(p.file)), ("timeNs", .int(Int64(clamping: p.timeNanoseconds))),
                         ("total", Self.values(p.total))])
            }
            fields.append(("processes", .object([("columns", .array(split.processes.map(process))),
                                                 ("others", .array(split.others.map(process)))])))
        }
        fields += [
            ("matchedStacks", .int(Int64(report.matchedSamples))),
            ("rows", .array(rows)),
            ("omittedRows", .int(Int64(report.omittedRows))),
            ("warnings", .array(report.warnings.map(JSON.string))),
        ]
        return JSON.object(fields).text
    }

    static func peak(_ memory: MemorySummary) -> JSON {
        guard let p = memory.peak else { return .null }
        return .object([("timeNs", .int(Int64(clamping: p.timeNanoseconds))),
                        ("sinceStartNs", .number(memory.elapsed(p.timeNanoseconds))),
                        ("inuseBytes", estimate(p.inuseBytes)), ("stacks", .int(Int64(p.stacks))),
                        ("copyTimeNs", .int(Int64(clamping: p.copyNanoseconds))), ("copyInuseBytes", estimate(p.copyBytes))])
    }

    static func series(_ memory: MemorySummary) -> JSON {
        guard let s = memory.series else { return .null }
        return .object([("points", .int(Int64(s.points))), ("intervalNs", .int(Int64(clamping: s.intervalNanoseconds))),
                        ("firstNs", .int(Int64(clamping: s.firstNanoseconds))), ("lastNs", .int(Int64(clamping: s.lastNanoseconds))),
                        ("maxInuseBytes", .number(s.maxInuseBytes)),
                        ("maxRssBytes", s.maxRSSBytes > 0 ? .int(Int64(clamping: s.maxRSSBytes)) : .null)])
    }

    public func render(_ info: InfoReport) -> String {
        let modules: [JSON] = info.modules.map { m in
            .object([
                ("path", .string(m.module.path)), ("buildId", .string(m.module.buildIDHex)),
                ("start", .int(Int64(bitPattern: m.module.start))), ("end", .int(Int64(bitPattern: m.module.end))),
                ("fileOffset", .int(Int64(bitPattern: m.module.fileOffset))), ("vaddr", .int(Int64(bitPattern: m.module.vaddr))),
                ("status", .string(m.location.status)),
                ("symbolizedFrom", m.location.objectPath.map(JSON.string) ?? .null),
            ])
        }
        let sources: [JSON] = info.sources.map { s in
            .object([("pid", .int(Int64(s.pid))), ("seq", .int(Int64(s.seq))), ("timeNs", .int(Int64(clamping: s.timeNanoseconds))),
                     ("hostname", .string(s.hostname)), ("path", .string(s.path))])
        }
        return JSON.object([
            ("schema", .string("heapsnap.info/1")),
            ("snapshot", Self.source(info.source)),
            ("stacks", .int(Int64(info.stacks))),
            ("truncatedStacks", .int(Int64(info.truncatedStacks))),
            ("maxStackDepth", .int(Int64(info.maxStackDepth))),
            ("addresses", .int(Int64(info.addresses))),
            ("records", .int(Int64(info.records))),
            ("modules", .array(modules)),
            ("sources", .array(sources)),
            ("python", info.python.map { p in
                .object([("version", .string(p.versionString)), ("pythonFrames", .bool(p.status == .frames)),
                         ("note", .string(p.note)), ("functions", .int(Int64(p.functions.count))),
                         ("pymalloc", .string(p.flags.contains(.wrapped) ? "sampled" : p.flags.contains(.usesMalloc) ? "malloc" : "not seen"))])
            } ?? .null),
            ("peak", Self.peak(info.memory)),
            ("series", Self.series(info.memory)),
            ("retention", info.retention.map { r in
                .object([("keep", .int(Int64(r.keep))), ("kept", .int(Int64(r.kept))),
                         ("written", .int(Int64(clamping: r.written))), ("thinned", .int(Int64(clamping: r.thinned))),
                         ("lost", .int(Int64(clamping: r.lost))), ("oldestSeq", .int(Int64(r.oldestSeq))),
                         ("oldestNs", r.oldestNanoseconds > 0 ? .int(Int64(clamping: r.oldestNanoseconds)) : .null),
                         ("widestGapNs", .int(Int64(clamping: r.widestGapNanoseconds)))])
            } ?? .null),
            ("warnings", .array(info.warnings.map(JSON.string))),
        ]).text
    }
}
