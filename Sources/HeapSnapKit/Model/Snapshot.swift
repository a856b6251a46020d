// The raw snapshot: what one file says, before symbolization.
//
// These types mirror docs/FORMAT.md record by record. `SnapshotReader` builds
// them, `SnapshotWriter` writes them, and every later stage starts from them.

/// One sampled quantity: an unbiased estimate and the estimated variance of
/// that estimate.
///
/// Estimates from independent samples add (values and variances add). A
/// difference `a - b` subtracts values and *adds* variances, so a diff carries
/// the noise of both sides.
public struct Estimate: Sendable, Hashable {
    /// The estimated total (bytes or objects).
    public var value: Double
    /// The estimated variance of `value`.
    public var variance: Double

    public init(value: Double = 0, variance: Double = 0) {
        self.value = value
        self.variance = variance
    }

    public static let zero = Estimate()

    /// One standard deviation of the estimate.
    public var standardDeviation: Double { variance.squareRoot() }

    public static func + (a: Estimate, b: Estimate) -> Estimate {
        Estimate(value: a.value + b.value, variance: a.variance + b.variance)
    }

    public static func - (a: Estimate, b: Estimate) -> Estimate {
        Estimate(value: a.value - b.value, variance: a.variance + b.variance)
    }

    public static func += (a: inout Estimate, b: Estimate) { a = a + b }

    /// Scales the estimate by `k` (variance by `k²`).
    public func scaled(by k: Double) -> Estimate {
        Estimate(value: value * k, variance: variance * k * k)
    }
}

/// A group of sampled allocations (FORMAT.md "group"): how many were sampled
/// and what they stand for.
public struct SampleGroup: Sendable, Hashable {
    /// Sampled allocations behind the estimates.
    public var samples: UInt64
    /// Estimated bytes.
    public var bytes: Estimate
    /// Estimated number of allocations.
    public var objects: Estimate

    public init(samples: UInt64 = 0, bytes: Estimate = .zero, objects: Estimate = .zero) {
        self.samples = samples
        self.bytes = bytes
        self.objects = objects
    }

    public static let zero = SampleGroup()
}

/// Process identity and counters (the `PROC` record).
public struct SnapshotHeader: Sendable, Hashable {
    /// `PROC.flags` bits.
    public struct Flags: OptionSet, Sendable, Hashable {
        public let rawValue: UInt32
        public init(rawValue: UInt32) { self.rawValue = rawValue }
        public static let exact = Flags(rawValue: 1 << 0)
        public static let final = Flags(rawValue: 1 << 1)
        public static let atExit = Flags(rawValue: 1 << 2)
        public static let periodic = Flags(rawValue: 1 << 3)
        public static let merged = Flags(rawValue: 1 << 4)
    }

    public var formatMinor: UInt16 = 0
    public var pid: UInt32 = 0
    public var ppid: UInt32 = 0
    public var seq: UInt32 = 0
    public var flags: Flags = []
    /// When sampling started, ns since the Unix epoch.
    public var startNanoseconds: UInt64 = 0
    /// When the snapshot was taken, ns since the Unix epoch.
    public var timeNanoseconds: UInt64 = 0
    /// Mean bytes between samples; 1 in exact mode.
    public var rate: UInt64 = 0
    public var maxDepth: UInt32 = 0
    public var session: UInt32 = 0
    public var samples: UInt64 = 0
    public var dropped: UInt64 = 0
    public var truncated: UInt64 = 0
    public var shimBytes: UInt64 = 0
    public var budget: UInt64 = 0
    public var executable: String = ""
    public var hostname: String = ""
    /// The process arguments (argv), split at NUL.
    public var commandLine: [String] = []

    public init() {}
}

extension SnapshotHeader {
    /// The program's name as people call it: argv[0]'s file name (up to a space:
    /// servers such as redis rewrite it into a process title), else the
    /// executable's. `redis-server`, where the executable is the
    /// `redis-check-rdb` it links to.
    public var programName: String {
        Self.programName(executable: executable, commandLine: commandLine)
    }

    static func programName(executable: String, commandLine: [String]) -> String {
        if let first = commandLine.first?.split(separator: " ").first, !first.isEmpty {
            return baseName(String(first))
        }
        return executable.isEmpty ? "?" : baseName(executable)
    }
}

/// One executable mapping (a `MODS` entry).
public struct Module: Sendable, Hashable {
    public var start: UInt64
    public var end: UInt64
    public var fileOffset: UInt64
    public var vaddr: UInt64
    /// Raw ELF build-id bytes; empty when the file had none.
    public var buildID: [UInt8]
    public var path: String

    public init(start: UInt64, end: UInt64, fileOffset: UInt64, vaddr: UInt64, buildID: [UInt8], path: String) {
        self.start = start
        self.end = end
        self.fileOffset = fileOffset
        self.vaddr = vaddr
        self.buildID = buildID
        self.path = path
    }

    /// The build-id as lowercase hex, as `file` and `/usr/lib/debug/.build-id` spell it.
    public var buildIDHex: String { hex(buildID) }

    public func contains(_ address: UInt64) -> Bool { address >= start && address < end }

    /// The address to give a symbolizer for the runtime `address` (FORMAT.md, MODS).
    public func elfAddress(of address: UInt64) -> UInt64 { address &- start &+ vaddr }
}

/// A captured call stack (a `STKS` entry): runtime return addresses, innermost first.
public struct RawStack: Sendable, Hashable {
    public var frames: [UInt64]
    /// The real stack was deeper than `maxDepth`.
    public var truncated: Bool

    public init(frames: [UInt64], truncated: Bool = false) {
        self.frames = frames
        self.truncated = truncated
    }
}

/// The estimates for one stack (a `SMPL` entry).
public struct StackRecord: Sendable, Hashable {
    /// Index into `Snapshot.stacks`.
    public var stack: Int
    /// Sampled allocations still live at snapshot time.
    public var inuse: SampleGroup
    /// Sampled allocations since sampling started, live or freed.
    public var alloc: SampleGroup

    public init(stack: Int, inuse: SampleGroup, alloc: SampleGroup) {
        self.stack = stack
        self.inuse = inuse
        self.alloc = alloc
    }
}

/// One source of a merged snapshot (a `SRCS` entry).
public struct SnapshotSource: Sendable, Hashable {
    public var pid: UInt32
    public var seq: UInt32
    public var timeNanoseconds: UInt64
    public var hostname: String
    public var path: String

    public init(pid: UInt32, seq: UInt32, timeNanoseconds: UInt64, hostname: String, path: String) {
        self.pid = pid
        self.seq = seq
        self.timeNanoseconds = timeNanoseconds
        self.hostname = hostname
        self.path = path
    }
}

/// What the shim's retention (`HEAPSNAP_KEEP`) had done when a snapshot was written: the `THIN`
/// record of docs/FORMAT.md. Counts are of the writing process's periodic snapshots.
public struct Retention: Sendable, Hashable {
    /// The bound, `HEAPSNAP_KEEP`; 0 keeps every periodic snapshot.
    public var keep: UInt32
    /// Periodic snapshots of the process on disk once this file was written (this one included when periodic).
    public var kept: UInt32
    /// Periodic snapshots the process wrote.
    public var written: UInt64
    /// Of them, deleted by thinning to keep the bound.
    public var thinned: UInt64
    /// Of them, gone or replaced before thinning reached them (not deleted by the shim).
    public var lost: UInt64
    /// The oldest kept periodic snapshot's sequence number and time (0 when unknown).
    public var oldestSeq: UInt32
    public var oldestNanoseconds: UInt64
    /// The widest spacing between two kept neighbours (the oldest ones: spacing grows with age).
    public var widestGapNanoseconds: UInt64

    public init(keep: UInt32, kept: UInt32, written: UInt64, thinned: UInt64, lost: UInt64, oldestSeq: UInt32,
                oldestNanoseconds: UInt64, widestGapNanoseconds: UInt64) {
        self.keep = keep
        self.kept = kept
        self.written = written
        self.thinned = thinned
        self.lost = lost
        self.oldestSeq = oldestSeq
        self.oldestNanoseconds = oldestNanoseconds
        self.widestGapNanoseconds = widestGapNanoseconds
    }
}

/// A whole snapshot file, as written.
public struct Snapshot: Sendable, Hashable {
    public var header: SnapshotHeader
    public var modules: [Module]
    public var stacks: [RawStack]
    public var records: [StackRecord]
    /// Non-empty only for merged snapshots.
    public var sources: [SnapshotSource]
    /// The process's Python interpreter and the functions its Python frames name; nil without Python.
    public var python: PythonInfo?
    /// The peak since sampling started, per stack; nil when the file has none (before format 1.2).
    public var peak: Peak?
    /// Memory over time while sampling; nil when the file has none.
    public var series: Series?
    /// What retention had thinned; nil when the file has no `THIN` record (no periodic snapshots, before 1.4).
    public var retention: Retention?

    public init(header: SnapshotHeader = SnapshotHeader(), modules: [Module] = [], stacks: [RawStack] = [],
                records: [StackRecord] = [], sources: [SnapshotSource] = [], python: PythonInfo? = nil,
                peak: Peak? = nil, series: Series? = nil, retention: Retention? = nil) {
        self.header = header
        self.modules = modules
        self.stacks = stacks
        self.records = records
        self.sources = sources
        self.python = python
        self.peak = peak
        self.series = series
        self.retention = retention
    }
}
