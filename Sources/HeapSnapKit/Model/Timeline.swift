// Memory over time in a snapshot: the peak since sampling started (`PEAK`)
// and a series of points taken while sampling (`SERS`), docs/FORMAT.md 1.2.

/// The moment the estimated bytes in use were highest since sampling started,
/// with the in-use estimates per stack at that moment (the `PEAK` record).
public struct Peak: Sendable, Hashable {
    /// When the peak was taken, ns since the Unix epoch.
    public var timeNanoseconds: UInt64
    /// Estimated bytes in use at the peak (the sum of `records`' in-use bytes).
    public var inuseBytes: Estimate
    /// Per stack (index into `Snapshot.stacks`): the sampled allocations live at the peak.
    /// `alloc` is what had been allocated from that stack by then.
    public var records: [StackRecord]

    public init(timeNanoseconds: UInt64, inuseBytes: Estimate, records: [StackRecord]) {
        self.timeNanoseconds = timeNanoseconds
        self.inuseBytes = inuseBytes
        self.records = records
    }
}

/// One point of the series the shim records while sampling (a `SERS` entry).
public struct SeriesPoint: Sendable, Hashable {
    /// When, ns since the Unix epoch.
    public var timeNanoseconds: UInt64
    /// Estimated bytes in use, with its variance.
    public var inuseBytes: Estimate
    /// Estimated bytes allocated since sampling started.
    public var allocBytes: Double
    /// The process's resident set size (`/proc/self/statm`), bytes; 0 when unknown.
    public var rssBytes: UInt64

    public init(timeNanoseconds: UInt64, inuseBytes: Estimate, allocBytes: Double, rssBytes: UInt64) {
        self.timeNanoseconds = timeNanoseconds
        self.inuseBytes = inuseBytes
        self.allocBytes = allocBytes
        self.rssBytes = rssBytes
    }
}

/// The series of a snapshot (`SERS`): points in time order.
public struct Series: Sendable, Hashable {
    /// The spacing the shim aimed at, ns (points are thinned evenly when its ring fills).
    public var intervalNanoseconds: UInt64
    public var points: [SeriesPoint]

    public init(intervalNanoseconds: UInt64, points: [SeriesPoint]) {
        self.intervalNanoseconds = intervalNanoseconds
        self.points = points
    }
}
