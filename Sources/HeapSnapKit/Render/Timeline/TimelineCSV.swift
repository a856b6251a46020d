// `heapsnap timeline --format csv`: one line per point, snapshot and peak,
// for spreadsheets; bytes are rounded to whole bytes. Site columns (one per top site, then the rest) are
// filled on snapshot lines and on the peak's line (when it was split).

extension CSVRenderer {
    /// The timeline as CSV: `kind` is `point`, `snapshot` or `peak`.
    public func render(_ timeline: Timeline) -> String {
        var header = ["pid", "command", "kind", "time_ns", "seconds", "inuse_bytes", "inuse_bytes_err", "alloc_bytes", "rss_bytes", "file"]
        header += timeline.sites.map(\.label)
        if !timeline.sites.isEmpty { header.append("other_sites") }
        var lines = [header.map(Self.field).joined(separator: ",")]
        func err(_ e: Estimate) -> String { Self.number((Confidence.z * e.standardDeviation).rounded()) }
        func seconds(_ ns: UInt64) -> String { Format.fixed(timeline.seconds(ns), decimals: 6) }
        let blanks = [String](repeating: "", count: timeline.sites.isEmpty ? 0 : timeline.sites.count + 1)
        for p in timeline.processes {
            let command = Format.commandLine(p.commandLine)
            var rows: [(UInt64, Int, [String])] = []
            for point in p.points {
                rows.append((point.timeNanoseconds, 0, [String(p.pid), command, "point", String(point.timeNanoseconds), seconds(point.timeNanoseconds),
                                                        Self.number(point.inuseBytes.value.rounded()), err(point.inuseBytes), Self.number(point.allocBytes.rounded()),
                                                        point.rssBytes > 0 ? String(point.rssBytes) : "", ""] + blanks))
            }
            for s in p.snapshots {
                var cells = [String(p.pid), command, "snapshot", String(s.timeNanoseconds), seconds(s.timeNanoseconds),
                             Self.number(s.inuseBytes.value.rounded()), err(s.inuseBytes), Self.number(s.allocBytes.value.rounded()), "", s.file]
                cells += s.sites.isEmpty ? blanks : s.sites.map { Self.number($0.value.rounded()) } + [Self.number(s.other.value.rounded())]
                rows.append((s.timeNanoseconds, 1, cells))
            }
            if let peak = p.peak {
                let sites = peak.sites.isEmpty ? blanks : peak.sites.map { Self.number($0.value.rounded()) } + [Self.number(peak.other.value.rounded())]
                rows.append((peak.timeNanoseconds, 2, [String(p.pid), command, "peak", String(peak.timeNanoseconds), seconds(peak.timeNanoseconds),
                                                       Self.number(peak.inuseBytes.value.rounded()), err(peak.inuseBytes), "", "", peak.file ?? ""] + sites))
            }
            rows.sort { ($0.0, $0.1) < ($1.0, $1.1) }
            lines += rows.map { $0.2.map(Self.field).joined(separator: ",") }
        }
        return lines.joined(separator: "\n") + "\n"
    }
}
