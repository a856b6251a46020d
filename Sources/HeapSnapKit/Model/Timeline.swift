// Memory over time. In one snapshot: the peak since sampling started
// (`PEAK`, with the running maximum of `HIGH`) and a series of points taken
// while sampling (`SERS`), docs/FORMAT.md 1.2 and 1.3. Across the files of a
// program: the `Timeline` that TimelineBuilder assembles and the timeline
// renderers draw (`heapsnap.timeline/1` in docs/JSON.md).

/// The moment the estimated bytes in use were highest since sampling started,
/// with the in-use estimates per stack at that moment (the `PEAK` record), and
/// the running maximum of the estimate itself (the `HIGH` record).
///
/// The shim copies the per-stack values on the allocating thread each time the
/// estimate passes the last copy by max(5%, 2 × rate), so `records` (and
/// `inuseBytes`, their sum) may lag the maximum by up to that; `high` is the
/// maximum itself, tracked separately, which `run`, `info` and the timeline print.
public struct Peak: Sendable, Hashable {
    /// When the copy was taken, ns since the Unix epoch.
    public var timeNanoseconds: UInt64
    /// Estimated bytes in use in the copy (the sum of `records`' in-use bytes).
    public var inuseBytes: Estimate
    /// Per stack (index into `Snapshot.stacks`): the sampled allocations live at the peak.
    /// `alloc` is what had been allocated from that stack by then.
    public var records: [StackRecord]
    /// The running maximum of the estimate (`HIGH`, format 1.3); nil in older files.
    public var high: HighWater?

    public init(timeNanoseconds: UInt64, inuseBytes: Estimate, records: [StackRecord], high: HighWater? = nil) {
        self.timeNanoseconds = timeNanoseconds
        self.inuseBytes = inuseBytes
        self.records = records
        self.high = high
    }

    /// The peak total and its time as reports print them: the running maximum when the
    /// file carries it (never below the copy's own total), else the copy's total and time.
    public var highest: HighWater {
        guard let high, high.inuseBytes.value >= inuseBytes.value else {
            return HighWater(timeNanoseconds: timeNanoseconds, inuseBytes: inuseBytes)
        }
        return high
    }
}

/// The highest the estimate of bytes in use reached since sampling started (a `HIGH` record).
public struct HighWater: Sendable, Hashable {
    /// When, ns since the Unix epoch.
    public var timeNanoseconds: UInt64
    /// The estimate then, with its variance.
    public var inuseBytes: Estimate

    public init(timeNanoseconds: UInt64, inuseBytes: Estimate) {
        self.timeNanoseconds = timeNanoseconds
        self.inuseBytes = inuseBytes
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

/// A site the timeline splits in-use bytes over: a `top --by line` row.
public struct TimelineSite: Sendable, Hashable {
    /// `file:line`, or the function (`module+0xADDR`) when the line is unknown.
    public var label: String
    /// The grouping key (file, line, function, module).
    public var key: GroupKey
    /// A representative frame of the site.
    public var frame: Frame?
}

/// One snapshot file of a process, with its in-use bytes split over the timeline's sites.
public struct TimelineSnapshot: Sendable, Hashable {
    public var file: String
    public var seq: UInt32
    public var flags: SnapshotHeader.Flags
    /// When the snapshot was taken, ns since the Unix epoch.
    public var timeNanoseconds: UInt64
    /// Bytes in use (all stacks, before trimming or filters).
    public var inuseBytes: Estimate
    /// Bytes allocated since sampling started.
    public var allocBytes: Estimate
    /// In-use bytes per `Timeline.sites` entry, same order; empty when the timeline has no sites.
    public var sites: [Estimate]
    /// In-use bytes of every other site (`inuseBytes` − the sites).
    public var other: Estimate
}

/// The peak of a process as the timeline marks it.
public struct TimelinePeak: Sendable, Hashable {
    /// When, ns since the Unix epoch (for a `PEAK` record, when the estimate was highest: `Peak.highest`).
    public var timeNanoseconds: UInt64
    /// Estimated bytes in use then (the running maximum, for a `PEAK` record).
    public var inuseBytes: Estimate
    /// The file whose `PEAK` record it is; nil when it is the highest point of the series (no file had a `PEAK`).
    public var file: String?
    /// In-use bytes per `Timeline.sites` entry at the peak (the per-stack copy of `PEAK`, which may lag the
    /// maximum by up to max(5%, 2 × rate)), same order; empty when the timeline has no sites or the peak is
    /// not a `PEAK` record.
    public var sites: [Estimate] = []
    /// In-use bytes of every other site in that copy.
    public var other: Estimate = .zero
}

/// Memory over time of one process.
public struct TimelineProcess: Sendable, Hashable {
    public var pid: UInt32
    public var hostname: String
    public var executable: String
    public var commandLine: [String]
    /// The earliest sampling start among its files, ns since the Unix epoch.
    public var startNanoseconds: UInt64
    /// The spacing its shim aimed at (the last file's), ns; 0 when the points come from snapshots.
    public var intervalNanoseconds: UInt64
    /// The points, in time order.
    public var points: [SeriesPoint]
    /// Whether `points` are the snapshots' totals (no file had a series; RSS unknown).
    public var pointsFromSnapshots: Bool
    /// The peak; nil only when there are no points.
    public var peak: TimelinePeak?
    /// Its snapshot files in time order.
    public var snapshots: [TimelineSnapshot]

    /// The largest RSS of its points, bytes (0 when unknown).
    public var maxRSSBytes: UInt64 { points.map(\.rssBytes).max() ?? 0 }
}

/// Memory over time of one program: its processes and, when snapshots give per-site values, its top sites.
public struct Timeline: Sendable, Hashable {
    /// Time zero of the picture: the earliest sampling start, ns since the Unix epoch.
    public var originNanoseconds: UInt64
    /// Processes in order of their first point (then pid).
    public var processes: [TimelineProcess]
    /// The top sites by their largest in-use bytes in any snapshot; empty when no process has several snapshots.
    public var sites: [TimelineSite]
    /// Recoverable trouble (symbolization), one line each.
    public var warnings: [String]

    /// Seconds from `originNanoseconds`.
    public func seconds(_ nanoseconds: UInt64) -> Double {
        nanoseconds >= originNanoseconds ? Double(nanoseconds - originNanoseconds) / 1e9 : -Double(originNanoseconds - nanoseconds) / 1e9
    }
}
