// `heapsnap timeline --format json`: the numbers of a timeline
// (`heapsnap.timeline/1`, documented in docs/JSON.md).

extension JSONRenderer {
    /// The timeline as a `heapsnap.timeline/1` document.
    public func render(_ timeline: Timeline) -> String {
        func seconds(_ ns: UInt64) -> JSON { .number((timeline.seconds(ns) * 1e6).rounded() / 1e6) }
        let sites: [JSON] = timeline.sites.map { site in
            .object([
                ("label", .string(site.label)),
                ("key", .object([("file", .string(site.key.file)), ("line", .int(Int64(site.key.line))),
                                 ("function", .string(site.key.function)), ("module", .string(site.key.module))])),
                ("frame", site.frame.map(Self.frame) ?? .null),
            ])
        }
        let processes: [JSON] = timeline.processes.map { p in
            let points: [JSON] = p.points.map { point in
                .object([
                    ("timeNs", .int(Int64(clamping: point.timeNanoseconds))), ("seconds", seconds(point.timeNanoseconds)),
                    ("inuseBytes", Self.estimate(point.inuseBytes)), ("allocBytes", .number(point.allocBytes)),
                    ("rssBytes", point.rssBytes > 0 ? .int(Int64(clamping: point.rssBytes)) : .null),
                ])
            }
            let snapshots: [JSON] = p.snapshots.map { s in
                .object([
                    ("file", .string(s.file)), ("seq", .int(Int64(s.seq))), ("flags", .array(Format.flags(s.flags).map(JSON.string))),
                    ("timeNs", .int(Int64(clamping: s.timeNanoseconds))), ("seconds", seconds(s.timeNanoseconds)),
                    ("inuseBytes", Self.estimate(s.inuseBytes)), ("allocBytes", Self.estimate(s.allocBytes)),
                    ("sites", .array(s.sites.map(Self.estimate))),
                    ("otherSites", s.sites.isEmpty ? .null : Self.estimate(s.other)),
                ])
            }
            let peak: JSON = p.peak.map { peak in
                .object([
                    ("timeNs", .int(Int64(clamping: peak.timeNanoseconds))), ("seconds", seconds(peak.timeNanoseconds)),
                    ("inuseBytes", Self.estimate(peak.inuseBytes)),
                    ("source", .string(peak.file == nil ? "series" : "PEAK")), ("file", peak.file.map(JSON.string) ?? .null),
                    ("sites", .array(peak.sites.map(Self.estimate))),
                    ("otherSites", peak.sites.isEmpty ? .null : Self.estimate(peak.other)),
                ])
            } ?? .null
            return .object([
                ("pid", .int(Int64(p.pid))), ("hostname", .string(p.hostname)), ("executable", .string(p.executable)),
                ("commandLine", .array(p.commandLine.map(JSON.string))), ("label", .string(p.label)),
                ("startNs", .int(Int64(clamping: p.startNanoseconds))), ("intervalNs", .int(Int64(clamping: p.intervalNanoseconds))),
                ("pointsFrom", .string(p.pointsFromSnapshots ? "snapshots" : "series")),
                ("maxRssBytes", p.maxRSSBytes > 0 ? .int(Int64(clamping: p.maxRSSBytes)) : .null),
                ("peak", peak), ("points", .array(points)), ("snapshots", .array(snapshots)),
            ])
        }
        return JSON.object([
            ("schema", .string("heapsnap.timeline/1")),
            ("originNs", .int(Int64(clamping: timeline.originNanoseconds))),
            ("confidence", .object([("z", .number(Confidence.z)), ("level", .string(Confidence.level))])),
            ("groupBy", .string(GroupBy.line.rawValue)),
            ("sites", .array(sites)),
            ("processes", .array(processes)),
            ("warnings", .array(timeline.warnings.map(JSON.string))),
        ]).text
    }
}
