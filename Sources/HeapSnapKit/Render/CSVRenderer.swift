// Comma-separated values (RFC 4180): one header line, one line per row, every
// value and its 95% error bar in its own column, for spreadsheets and scripts.

/// Renders reports as CSV.
public struct CSVRenderer: Renderer, Sendable {
    public init() {}

    static func field(_ s: String) -> String {
        s.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" }) ? "\"" + s.replacingAll("\"", "\"\"") + "\"" : s
    }

    static func number(_ d: Double) -> String {
        guard d.isFinite else { return "" }
        if d == d.rounded(), abs(d) < 1e15 { return String(Int64(d)) }
        return String(d)
    }

    static let valueColumns = ["inuse_bytes", "inuse_bytes_err", "inuse_objects", "inuse_objects_err",
                               "alloc_bytes", "alloc_bytes_err", "alloc_objects", "alloc_objects_err",
                               "inuse_samples", "alloc_samples"]

    static func values(_ v: Values) -> [String] {
        func e(_ x: Estimate) -> [String] { [number(x.value), number(Confidence.z * x.standardDeviation)] }
        return e(v.inuseBytes) + e(v.inuseObjects) + e(v.allocBytes) + e(v.allocObjects) + [String(v.inuseSamples), String(v.allocSamples)]
    }

    static func frameText(_ f: Frame) -> String {
        (f.hasSourceLocation ? "\(f.function) \(f.file):\(f.line)" : f.function) + (f.inlined ? " (inlined)" : "")
    }

    public func render(_ report: Report) -> String {
        var header = ["label", "file", "line", "function", "module"]
        if report.isDiff {
            header += Self.valueColumns.map { "diff_" + $0 } + Self.valueColumns.map { "old_" + $0 } + Self.valueColumns.map { "new_" + $0 } + ["within_noise"]
        } else {
            header += Self.valueColumns + ["percent"]
        }
        let metric = report.options.metric
        if let split = report.split {
            header += split.processes.map { "pid_\($0.pid)_\(metric.rawValue.replacingAll("-", "_"))" }
                + (split.others.isEmpty ? [] : ["others_\(metric.rawValue.replacingAll("-", "_"))"])
        }
        if report.options.groupBy == .traceback { header.append("stack") }
        var lines = [header.joined(separator: ",")]
        for (i, row) in report.rows.enumerated() {
            let frame = row.frame
            var cells = [row.key.label, frame?.file ?? "", frame.map { String($0.line) } ?? "", frame?.function ?? "", frame?.module ?? ""]
            if let base = row.base {
                cells += Self.values(row.values) + Self.values(base) + Self.values(row.current) + [row.isWithinNoise(metric) ? "true" : "false"]
            } else {
                let total = report.total[metric].value
                cells += Self.values(row.values) + [total == 0 ? "" : Format.fixed(100 * row.values[metric].value / total, decimals: 3)]
            }
            if let split = report.split { cells += split.cells[i].map { Self.number($0.value) } }
            if report.options.groupBy == .traceback { cells.append(row.key.stack.map(Self.frameText).joined(separator: ";")) }
            lines.append(cells.map(Self.field).joined(separator: ","))
        }
        return lines.joined(separator: "\n") + "\n"
    }

    public func render(_ info: InfoReport) -> String {
        var lines = ["path,build_id,start,end,file_offset,vaddr,status"]
        for m in info.modules {
            lines.append([m.module.path, m.module.buildIDHex, "0x" + hex(m.module.start), "0x" + hex(m.module.end),
                          "0x" + hex(m.module.fileOffset), "0x" + hex(m.module.vaddr), m.location.status].map(Self.field).joined(separator: ","))
        }
        return lines.joined(separator: "\n") + "\n"
    }
}
