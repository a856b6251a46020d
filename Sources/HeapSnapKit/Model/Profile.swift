// The symbolized profile: the one data model every later stage works on.
//
// A `Profile` is what a snapshot says once its addresses have names: a table
// of distinct frames, and samples whose stacks index into that table. Values
// use pprof's sample-type names. A diff is `new - old` in this same model
// (the old side's samples are added negated and labelled `base`), so the
// aggregator and every renderer handle a diff without special cases beyond
// showing the old side's values when they exist.

/// One source-level frame. Inlined calls are frames of their own, flagged `inlined`.
///
/// A frame that could not be symbolized has an empty `file`, a `line` of 0,
/// and a `function` of the form `module+0xADDR` (the ELF address), which is
/// the same in every process of the same binary, so diffs across processes
/// still match frames up.
public struct Frame: Sendable, Hashable, Comparable {
    /// Demangled function name, or `module+0xADDR` when unknown.
    public var function: String
    /// Source file path as recorded in the debug info; empty when unknown.
    public var file: String
    /// Source line; 0 when unknown.
    public var line: Int
    /// Source column; 0 when unknown.
    public var column: Int
    /// Path of the module (executable or shared library) holding the code.
    public var module: String
    /// The frame is an inlined call inside the next (outer) frame.
    public var inlined: Bool

    public init(function: String, file: String = "", line: Int = 0, column: Int = 0, module: String = "", inlined: Bool = false) {
        self.function = function
        self.file = file
        self.line = line
        self.column = column
        self.module = module
        self.inlined = inlined
    }

    /// Whether the frame has a source location.
    public var hasSourceLocation: Bool { !file.isEmpty && line > 0 }

    /// The module's file name without its directory.
    public var moduleName: String { baseName(module) }

    /// `file:line` when known, else the function (`module+0xADDR` for unknown code).
    public var location: String { hasSourceLocation ? "\(file):\(line)" : function }

    /// The name flamegraphs and exports draw the frame with; inlined calls are marked.
    public var label: String { inlined ? "\(function) [inlined]" : function }

    public static func < (a: Frame, b: Frame) -> Bool {
        (a.file, a.line, a.column, a.function, a.module, a.inlined ? 1 : 0)
            < (b.file, b.line, b.column, b.function, b.module, b.inlined ? 1 : 0)
    }
}

/// What a sample stands for, in pprof's value names. Every estimate carries
/// its variance; sample counts are the raw numbers of sampled allocations.
///
/// Values add; `negated()` is how an old snapshot enters a diff.
public struct Values: Sendable, Hashable {
    /// Estimated bytes still allocated at snapshot time.
    public var inuseBytes: Estimate
    /// Estimated allocations still live at snapshot time.
    public var inuseObjects: Estimate
    /// Estimated bytes allocated since sampling started (live or freed).
    public var allocBytes: Estimate
    /// Estimated allocations since sampling started (live or freed).
    public var allocObjects: Estimate
    /// Sampled allocations behind the in-use estimates (negative on a diff's old side).
    public var inuseSamples: Int64
    /// Sampled allocations behind the alloc estimates (negative on a diff's old side).
    public var allocSamples: Int64

    public init(inuseBytes: Estimate = .zero, inuseObjects: Estimate = .zero, allocBytes: Estimate = .zero,
                allocObjects: Estimate = .zero, inuseSamples: Int64 = 0, allocSamples: Int64 = 0) {
        self.inuseBytes = inuseBytes
        self.inuseObjects = inuseObjects
        self.allocBytes = allocBytes
        self.allocObjects = allocObjects
        self.inuseSamples = inuseSamples
        self.allocSamples = allocSamples
    }

    /// The values of one `SMPL` entry.
    public init(_ record: StackRecord) {
        self.init(inuseBytes: record.inuse.bytes, inuseObjects: record.inuse.objects,
                  allocBytes: record.alloc.bytes, allocObjects: record.alloc.objects,
                  inuseSamples: Int64(clamping: record.inuse.samples), allocSamples: Int64(clamping: record.alloc.samples))
    }

    public static let zero = Values()

    /// The estimate a metric reads.
    public subscript(metric: Metric) -> Estimate {
        switch metric {
        case .inuseBytes: inuseBytes
        case .inuseObjects: inuseObjects
        case .allocBytes: allocBytes
        case .allocObjects: allocObjects
        }
    }

    /// The sample count behind a metric.
    public func samples(_ metric: Metric) -> Int64 {
        metric.isInuse ? inuseSamples : allocSamples
    }

    /// Values and sample counts negated; variances unchanged (pprof's `Scale(-1)`).
    public func negated() -> Values {
        Values(inuseBytes: inuseBytes.scaled(by: -1), inuseObjects: inuseObjects.scaled(by: -1),
               allocBytes: allocBytes.scaled(by: -1), allocObjects: allocObjects.scaled(by: -1),
               inuseSamples: -inuseSamples, allocSamples: -allocSamples)
    }

    public static func + (a: Values, b: Values) -> Values {
        Values(inuseBytes: a.inuseBytes + b.inuseBytes, inuseObjects: a.inuseObjects + b.inuseObjects,
               allocBytes: a.allocBytes + b.allocBytes, allocObjects: a.allocObjects + b.allocObjects,
               inuseSamples: a.inuseSamples &+ b.inuseSamples, allocSamples: a.allocSamples &+ b.allocSamples)
    }

    public static func += (a: inout Values, b: Values) { a = a + b }
}

/// The four sampled quantities (pprof's sample types).
public enum Metric: String, Sendable, CaseIterable, Codable {
    case inuseBytes = "inuse-bytes"
    case inuseObjects = "inuse-objects"
    case allocBytes = "alloc-bytes"
    case allocObjects = "alloc-objects"

    /// Whether the metric counts live memory (else everything allocated since start).
    public var isInuse: Bool { self == .inuseBytes || self == .inuseObjects }
    /// Whether the metric counts bytes (else allocations).
    public var isBytes: Bool { self == .inuseBytes || self == .allocBytes }
    /// The bytes metric of the same kind (in use or allocated).
    public var bytesMetric: Metric { isInuse ? .inuseBytes : .allocBytes }
    /// The objects metric of the same kind.
    public var objectsMetric: Metric { isInuse ? .inuseObjects : .allocObjects }
    /// pprof's camel-case name (`inuseBytes`), used in JSON.
    public var camelName: String {
        switch self {
        case .inuseBytes: "inuseBytes"
        case .inuseObjects: "inuseObjects"
        case .allocBytes: "allocBytes"
        case .allocObjects: "allocObjects"
        }
    }
}

/// One stack and what it stands for.
public struct Sample: Sendable, Hashable {
    /// Indices into `Profile.frames`, innermost (the allocation site) first.
    public var frames: [Int]
    /// The estimates.
    public var values: Values
    /// The stack was cut at the process's frame limit.
    public var truncated: Bool
    /// The sample comes from the old side of a diff (its values are negated).
    public var isBase: Bool

    public init(frames: [Int], values: Values, truncated: Bool = false, isBase: Bool = false) {
        self.frames = frames
        self.values = values
        self.truncated = truncated
        self.isBase = isBase
    }
}

/// Where a profile came from: the snapshot's header, file name and modules.
public struct ProfileSource: Sendable, Hashable {
    /// The file the snapshot was read from (or a name given by the caller).
    public var file: String
    /// The snapshot's `PROC` record.
    public var header: SnapshotHeader
    /// The snapshot's executable mappings.
    public var modules: [Module]
    /// The totals the samples add up to (what `top`'s percentages divide by).
    public var totals: Values
    /// When the profile is the file's peak (`--at peak`, `FILE@peak`): when the peak was, ns since the Unix epoch; nil for the snapshot itself.
    public var peakNanoseconds: UInt64?

    public init(file: String, header: SnapshotHeader, modules: [Module], totals: Values, peakNanoseconds: UInt64? = nil) {
        self.file = file
        self.header = header
        self.modules = modules
        self.totals = totals
        self.peakNanoseconds = peakNanoseconds
    }

    /// When the profile's values were taken: the peak's time, else the snapshot's.
    public var momentNanoseconds: UInt64 { peakNanoseconds ?? header.timeNanoseconds }

    /// The dropped-samples warning of each side that dropped (`SnapshotHeader.droppedWarning`),
    /// old side first; in a diff each starts with "old: " or "new: ", as the table's header lines do.
    public static func droppedWarnings(_ source: ProfileSource, base: ProfileSource?) -> [String] {
        guard let base else { return source.header.droppedWarning.map { [$0] } ?? [] }
        return [("old: ", base), ("new: ", source)].compactMap { side, s in s.header.droppedWarning.map { side + $0 } }
    }
}

/// A symbolized profile: distinct frames, samples indexing them, and where it came from.
///
/// For a diff, `base` is the old side and `samples` holds the new side's
/// samples plus the old side's negated ones (`isBase`), so any sum over
/// samples is `new - old`.
public struct Profile: Sendable, Hashable {
    /// Distinct frames; samples refer to them by index.
    public var frames: [Frame]
    /// The samples, in snapshot order.
    public var samples: [Sample]
    /// The snapshot this profile describes (the new one, for a diff).
    public var source: ProfileSource
    /// The old snapshot of a diff; nil for a plain profile.
    public var base: ProfileSource?
    /// Recoverable trouble met while building the profile (one line each).
    public var warnings: [String]
    /// Set by the filter stage (`ProfileFilter`); nil when nothing was filtered.
    public var filtering: Filtering? = nil

    public init(frames: [Frame], samples: [Sample], source: ProfileSource, base: ProfileSource? = nil, warnings: [String] = []) {
        self.frames = frames
        self.samples = samples
        self.source = source
        self.base = base
        self.warnings = warnings
    }

    /// Whether this profile is `new - old`.
    public var isDiff: Bool { base != nil }

    /// The dropped-samples warnings of its sides (`ProfileSource.droppedWarnings`).
    public var droppedWarnings: [String] { ProfileSource.droppedWarnings(source, base: base) }

    /// `self - old`: this profile's samples plus `old`'s samples negated and
    /// labelled `isBase`, over one merged frame table.
    ///
    /// - Complexity: O(frames + samples × depth) of both profiles.
    public func subtracting(_ old: Profile) -> Profile {
        var frames = self.frames
        var index = [Frame: Int](minimumCapacity: frames.count + old.frames.count)
        for (i, frame) in frames.enumerated() { index[frame] = i }
        let remap: [Int] = old.frames.map { frame in
            if let i = index[frame] { return i }
            frames.append(frame)
            index[frame] = frames.count - 1
            return frames.count - 1
        }
        var samples = self.samples
        samples.reserveCapacity(self.samples.count + old.samples.count)
        for sample in old.samples {
            samples.append(Sample(frames: sample.frames.map { remap[$0] }, values: sample.values.negated(),
                                  truncated: sample.truncated, isBase: !sample.isBase))
        }
        var warnings = self.warnings
        for warning in old.warnings where !warnings.contains(warning) { warnings.append(warning) }
        return Profile(frames: frames, samples: samples, source: source, base: old.source, warnings: warnings)
    }
}
