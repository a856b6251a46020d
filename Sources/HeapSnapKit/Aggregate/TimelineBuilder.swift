// The timeline stage: snapshot files in, memory over time out. Files are
// grouped by process (host and pid); each process's points come from the
// series its files carry (SERS, merged and de-duplicated by time), or, when
// none has one, from the totals of its snapshots. Its peak is the highest
// PEAK record among its files (else the highest point). When a process has
// several snapshots (HEAPSNAP_INTERVAL, or signals), each snapshot's in-use
// bytes, and the peak's, are split over the top sites (grouped by line, as
// `top` does) and the rest.
//
// One timeline is of one program: files of another executable are rejected,
// since their sites and curves do not compare. Several processes of that
// program (workers, a fleet, runs one after another) are drawn side by side.

/// The top sites of a timeline, and what is done with them.
public struct TimelineOptions: Sendable, Hashable {
    /// How many sites to split the snapshots over (0: none).
    public var top: Int = 5

    public init(top: Int = 5) {
        self.top = top
    }
}

/// Builds a `Timeline` from snapshot files.
public struct TimelineBuilder: Sendable {
    public var options: TimelineOptions

    public init(options: TimelineOptions = TimelineOptions()) {
        self.options = options
    }

    /// The program a snapshot is of: its executable (else argv[0]).
    static func program(_ header: SnapshotHeader) -> String {
        header.executable.isEmpty ? (header.commandLine.first ?? "?") : header.executable
    }

    /// The timeline of `inputs` (path and contents of each file). `profile`
    /// symbolizes and trims a snapshot (`Pipeline.profile(of:file:)`); it is
    /// called only for processes with several snapshots, to split them by site.
    ///
    /// Throws `differentPrograms` for a file of another executable than the
    /// first, and `noSeries` for a process with one snapshot and no series.
    /// - Complexity: O(points log points) plus one symbolized profile per snapshot of processes with several.
    public func build(_ inputs: [(path: String, snapshot: Snapshot)],
                      profile: (Snapshot, String) -> Profile) throws(HeapSnapError) -> Timeline {
        guard let first = inputs.first else { return Timeline(originNanoseconds: 0, processes: [], sites: [], warnings: []) }
        let program = Self.program(first.snapshot.header)
        for input in inputs where Self.program(input.snapshot.header) != program {
            throw .differentPrograms(file: input.path, program: Self.program(input.snapshot.header), expected: program, firstFile: first.path)
        }

        // Group by process, keeping the order of first appearance.
        struct Key: Hashable { var hostname: String; var pid: UInt32 }
        var order: [Key] = []
        var groups: [Key: [(path: String, snapshot: Snapshot)]] = [:]
        for input in inputs {
            let key = Key(hostname: input.snapshot.header.hostname, pid: input.snapshot.header.pid)
            if groups[key] == nil { order.append(key) }
            groups[key, default: []].append(input)
        }

        // The file holding each process's highest PEAK.
        var peakFile: [Key: (path: String, snapshot: Snapshot, peak: Peak)] = [:]
        for key in order {
            for (path, snapshot) in groups[key]! {
                guard let p = snapshot.peak, p.highest.inuseBytes.value > (peakFile[key]?.peak.highest.inuseBytes.value ?? -1) else { continue }
                peakFile[key] = (path, snapshot, p)
            }
        }

        // Per-site values of processes with several snapshots (and of their peaks), by file (`FILE@peak` for a peak).
        var warnings: [String] = []
        var siteValues: [String: [GroupKey: Row]] = [:]
        var best: [GroupKey: (value: Double, row: Row)] = [:]
        let aggregator = Aggregator(options: AggregationOptions(groupBy: .line))
        func split(_ snapshot: Snapshot, _ path: String, as id: String) {
            let p = profile(snapshot, path)
            for warning in p.warnings where !warnings.contains(warning) { warnings.append(warning) }
            var rows: [GroupKey: Row] = [:]
            for row in aggregator.aggregate(p).rows {
                rows[row.key] = row
                let value = row.values.inuseBytes.value
                if value > (best[row.key]?.value ?? 0) { best[row.key] = (value, row) }
            }
            siteValues[id] = rows
        }
        if options.top > 0 {
            for key in order where groups[key]!.count >= 2 {
                for input in groups[key]! { split(input.snapshot, input.path, as: input.path) }
                if let (path, snapshot, peak) = peakFile[key] {
                    var atPeak = snapshot
                    atPeak.records = peak.records
                    split(atPeak, path, as: path + SnapshotRef.peakSuffix)
                }
            }
        }
        let top = best.sorted { a, b in
            a.value.value != b.value.value ? a.value.value > b.value.value : a.value.row.key.label < b.value.row.key.label
        }.prefix(options.top)
        let sites = top.map { TimelineSite(label: $0.value.row.key.label, key: $0.key, frame: $0.value.row.frame) }
        /// `inuse` split over the sites and the rest, by the rows of `id`; nil when it was not split.
        func values(_ id: String, inuse: Estimate) -> (sites: [Estimate], other: Estimate)? {
            guard let rows = siteValues[id] else { return nil }
            let values = sites.map { rows[$0.key]?.values.inuseBytes ?? .zero }
            let sum = values.reduce(0) { $0 + $1.value }
            var rest = Estimate.zero
            for (site, row) in rows where !sites.contains(where: { $0.key == site }) { rest += row.values.inuseBytes }
            return (values, Estimate(value: max(0, inuse.value - sum), variance: rest.variance))
        }

        var processes: [TimelineProcess] = []
        for key in order {
            let files = groups[key]!.sorted { ($0.snapshot.header.timeNanoseconds, $0.path) < ($1.snapshot.header.timeNanoseconds, $1.path) }
            let last = files.last!.snapshot.header
            var snapshots: [TimelineSnapshot] = []
            for (path, snapshot) in files {
                var inuse = Estimate.zero, alloc = Estimate.zero
                for record in snapshot.records {
                    inuse += record.inuse.bytes
                    alloc += record.alloc.bytes
                }
                let split = values(path, inuse: inuse) ?? ([], inuse)
                let (values, other) = split
                snapshots.append(TimelineSnapshot(file: path, seq: snapshot.header.seq, flags: snapshot.header.flags,
                                                  timeNanoseconds: snapshot.header.timeNanoseconds, inuseBytes: inuse,
                                                  allocBytes: alloc, sites: values, other: other))
            }

            // Points: every file's series, merged by time; else the snapshots' totals.
            var byTime: [UInt64: SeriesPoint] = [:]
            var interval: UInt64 = 0
            for (_, snapshot) in files {
                guard let series = snapshot.series else { continue }
                interval = series.intervalNanoseconds
                for point in series.points { byTime[point.timeNanoseconds] = point }
            }
            var points = byTime.values.sorted { $0.timeNanoseconds < $1.timeNanoseconds }
            let fromSnapshots = points.isEmpty
            if fromSnapshots {
                guard files.count >= 2 else { throw .noSeries(file: files[0].path, pid: key.pid) }
                points = snapshots.map {
                    SeriesPoint(timeNanoseconds: $0.timeNanoseconds, inuseBytes: $0.inuseBytes, allocBytes: $0.allocBytes.value, rssBytes: 0)
                }
            }

            // The peak: the highest PEAK record, else the highest point.
            var peak: TimelinePeak?
            if let (path, _, p) = peakFile[key] {
                peak = TimelinePeak(timeNanoseconds: p.highest.timeNanoseconds, inuseBytes: p.highest.inuseBytes, file: path)
                if let split = values(path + SnapshotRef.peakSuffix, inuse: p.inuseBytes) {
                    peak?.sites = split.sites
                    peak?.other = split.other
                }
            }
            if peak == nil, let highest = points.max(by: { $0.inuseBytes.value < $1.inuseBytes.value }) {
                peak = TimelinePeak(timeNanoseconds: highest.timeNanoseconds, inuseBytes: highest.inuseBytes, file: nil)
            }

            processes.append(TimelineProcess(
                pid: key.pid, hostname: key.hostname, executable: last.executable, commandLine: last.commandLine,
                startNanoseconds: files.map(\.snapshot.header.startNanoseconds).min() ?? 0,
                intervalNanoseconds: fromSnapshots ? 0 : interval, points: points, pointsFromSnapshots: fromSnapshots,
                peak: peak, snapshots: snapshots))
        }
        processes.sort { ($0.points.first?.timeNanoseconds ?? 0, $0.pid) < ($1.points.first?.timeNanoseconds ?? 0, $1.pid) }
        let origin = processes.map { p in min(p.startNanoseconds, p.points.first?.timeNanoseconds ?? p.startNanoseconds) }.min() ?? 0
        return Timeline(originNanoseconds: origin, processes: processes, sites: sites, warnings: warnings)
    }
}
