// The peak and the series of one snapshot in a few numbers, for `info` and
// for the lines `run` prints when the program exits.

/// A snapshot's totals, its peak and its series, summarised.
public struct MemorySummary: Sendable, Hashable {
    /// The peak (`HIGH` and `PEAK`), summarised.
    public struct PeakSummary: Sendable, Hashable {
        /// When the estimate was highest, ns since the Unix epoch.
        public var timeNanoseconds: UInt64
        /// The highest estimate of bytes in use (`Peak.highest`).
        public var inuseBytes: Estimate
        /// When the per-stack copy that `--at peak` reads was taken, and its total
        /// (the same as the two above in files without `HIGH`).
        public var copyNanoseconds: UInt64
        public var copyBytes: Estimate
        /// Stacks with live samples in the copy.
        public var stacks: Int
    }

    /// The series (`SERS`), summarised.
    public struct SeriesSummary: Sendable, Hashable {
        public var points: Int
        /// The spacing the shim aimed at, ns.
        public var intervalNanoseconds: UInt64
        /// First and last point, ns since the Unix epoch (0 without points).
        public var firstNanoseconds: UInt64
        public var lastNanoseconds: UInt64
        /// The largest RSS of the points, bytes; 0 when unknown.
        public var maxRSSBytes: UInt64
        /// The largest in-use estimate of the points.
        public var maxInuseBytes: Double
    }

    /// When sampling started and when the snapshot was taken, ns since the Unix epoch.
    public var startNanoseconds: UInt64
    public var timeNanoseconds: UInt64
    /// In use and allocated at snapshot time (every stack).
    public var inuseBytes: Estimate
    public var allocBytes: Estimate
    public var peak: PeakSummary?
    public var series: SeriesSummary?

    /// - Complexity: O(records + points).
    public init(_ snapshot: Snapshot) {
        startNanoseconds = snapshot.header.startNanoseconds
        timeNanoseconds = snapshot.header.timeNanoseconds
        var inuse = Estimate.zero, alloc = Estimate.zero
        for record in snapshot.records {
            inuse += record.inuse.bytes
            alloc += record.alloc.bytes
        }
        inuseBytes = inuse
        allocBytes = alloc
        peak = snapshot.peak.map {
            PeakSummary(timeNanoseconds: $0.highest.timeNanoseconds, inuseBytes: $0.highest.inuseBytes,
                        copyNanoseconds: $0.timeNanoseconds, copyBytes: $0.inuseBytes, stacks: $0.records.count)
        }
        series = snapshot.series.map { s in
            SeriesSummary(points: s.points.count, intervalNanoseconds: s.intervalNanoseconds,
                          firstNanoseconds: s.points.first?.timeNanoseconds ?? 0, lastNanoseconds: s.points.last?.timeNanoseconds ?? 0,
                          maxRSSBytes: s.points.map(\.rssBytes).max() ?? 0, maxInuseBytes: s.points.map(\.inuseBytes.value).max() ?? 0)
        }
    }

    /// ns after sampling started (0 when before).
    public func elapsed(_ nanoseconds: UInt64) -> Double {
        nanoseconds >= startNanoseconds ? Double(nanoseconds - startNanoseconds) : 0
    }
}
