// Memory over time in a snapshot: the peak since sampling started (`PEAK`,
// with the running maximum of `HIGH`) and a series of points taken while
// sampling (`SERS`), docs/FORMAT.md 1.2 and 1.3;
// and how a command names a file's peak (`FILE@peak`, `--at peak`).

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

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

/// Which moment of a snapshot file a command reads: what was in use when the
/// file was written, or at the peak it carries (`PEAK`).
public enum Moment: String, Sendable, CaseIterable {
    /// The snapshot itself (`SMPL`).
    case snapshot
    /// The peak since sampling started (`PEAK`).
    case peak
}

/// A snapshot file and the moment of it to read, as a command line names it:
/// `FILE` or `FILE@peak`.
public struct SnapshotRef: Sendable, Hashable, CustomStringConvertible {
    /// The file.
    public var path: String
    /// The moment of the file.
    public var moment: Moment

    /// The suffix that names a file's peak.
    public static let peakSuffix = "@peak"

    public init(path: String, moment: Moment = .snapshot) {
        self.path = path
        self.moment = moment
    }

    /// `FILE@peak` is the peak of FILE, anything else the file itself. A file
    /// whose own name ends in `@peak` is read as itself when it exists.
    public init(argument: String, fileExists: (String) -> Bool = { access($0, F_OK) == 0 }) {
        if argument.hasSuffix(Self.peakSuffix), argument.count > Self.peakSuffix.count, !fileExists(argument) {
            self.init(path: String(argument.dropLast(Self.peakSuffix.count)), moment: .peak)
        } else {
            self.init(path: argument)
        }
    }

    /// `FILE` or `FILE@peak`.
    public var description: String { moment == .peak ? path + Self.peakSuffix : path }
}

extension Snapshot {
    /// The snapshot as it was at `moment`: for `.peak`, the peak's per-stack
    /// records in place of `records` (stacks, modules and header unchanged).
    /// Throws `noPeak` naming `file` when the file carries no `PEAK`.
    public func at(_ moment: Moment, file: String) throws(HeapSnapError) -> Snapshot {
        guard moment == .peak else { return self }
        guard let peak else { throw .noPeak(file: file) }
        var result = self
        result.records = peak.records
        return result
    }
}
