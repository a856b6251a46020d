// The question every front end asks, as one value: which snapshots (one file
// or several merged, each as written or at its peak), against which base,
// trimmed, filtered and grouped how. The CLI's subcommands and the web
// view's requests only parse into a `ProfileQuery`; `Pipeline.run` answers
// it with a `ProfileResult`, and `ProfileResult.render` (Output.swift) writes
// that as a table, JSON, CSV, a flamegraph or an export. pprof's driver and
// its -http UI share one report generator the same way.

/// One side of a question: snapshot files, each read at `moment`. Several
/// files are merged into one profile (`SnapshotMerge`, as `heapsnap merge`).
public struct SnapshotSelection: Sendable, Hashable, CustomStringConvertible {
    /// The files, in the order given (at least one).
    public var files: [String]
    /// The moment of every file: as written, or at the peak it carries.
    public var moment: Moment
    /// What the side is called in place of its files (a service's merged moment, `ServiceSelection`).
    public var title: String?

    public init(files: [String], moment: Moment = .snapshot, title: String? = nil) {
        self.files = files
        self.moment = moment
        self.title = title
    }

    /// One file at the moment `ref` names (`FILE` or `FILE@peak`).
    public init(_ ref: SnapshotRef) {
        self.init(files: [ref.path], moment: ref.moment)
    }

    /// The name profiles of this side carry: its title, the file, or "merge of A, B"
    /// (the moment is not part of it: a profile at the peak says so itself).
    public var name: String {
        title ?? (files.count == 1 ? files[0] : "merge of " + files.joined(separator: ", "))
    }

    /// `FILE`, `FILE@peak`, or the merge's name, with `@peak` at the peak.
    public var description: String { moment == .peak ? name + SnapshotRef.peakSuffix : name }
}

/// Which profile, shaped how: what `heapsnap top|diff|flamegraph|export` and
/// the web view's report, flamegraph and download requests all parse into.
public struct ProfileQuery: Sendable, Hashable {
    /// The profile asked about (the new side of a diff).
    public var snapshots: SnapshotSelection
    /// The old side of a diff: the answer is `snapshots − base`; nil for one profile.
    public var base: SnapshotSelection?
    /// Frames cut from the top of stacks (runtime frames stay with `groupBy == .traceback`).
    public var trimming: Trimming
    /// tracemalloc's include/exclude filter, after trimming and the diff.
    public var filter: ProfileFilter
    /// Grouping, cumulative, metric and row limit of the table; the metric also sizes flamegraphs
    /// and is the value of folded exports and speedscope's first profile.
    public var aggregation: AggregationOptions

    public init(_ snapshots: SnapshotSelection, base: SnapshotSelection? = nil, trimming: Trimming = Trimming(),
                filter: ProfileFilter = ProfileFilter(), aggregation: AggregationOptions = AggregationOptions()) {
        self.snapshots = snapshots
        self.base = base
        self.trimming = trimming
        self.filter = filter
        self.aggregation = aggregation
    }

    /// Whether the answer is `new − old`.
    public var isDiff: Bool { base != nil }

    /// The trimming applied: the traceback view always shows the whole stack, so it keeps runtime frames.
    public var effectiveTrimming: Trimming {
        var result = trimming
        if aggregation.groupBy == .traceback { result.runtimeFrames = false }
        return result
    }

    /// The last stages, once each side is a symbolized profile (`Pipeline.profile(of:)`):
    /// trim each side, subtract the base, filter. A side whose snapshot dropped samples puts its
    /// warning first among the profile's warnings, so every output of the answer says it.
    /// - Complexity: O(samples × depth) of both sides.
    public func result(new: Profile, base old: Profile?) -> ProfileResult {
        let trimming = effectiveTrimming
        var profile = trimming.apply(new)
        if let old { profile = profile.subtracting(trimming.apply(old)) }
        let dropped = profile.droppedWarnings
        profile.warnings = dropped + profile.warnings.filter { !dropped.contains($0) }
        return ProfileResult(query: self, profile: filter.apply(profile))
    }
}

/// The answer to a `ProfileQuery`: the profile trimmed, subtracted and filtered, ready for the output stage.
public struct ProfileResult: Sendable {
    /// The question.
    public var query: ProfileQuery
    /// The profile (`new − old` for a diff).
    public var profile: Profile
    /// Each merged process's own result, for the table's per-process columns (`Pipeline.splitByProcess`); empty otherwise.
    public var processes: [ProfileResult] = []

    public init(query: ProfileQuery, profile: Profile) {
        self.query = query
        self.profile = profile
    }

    /// The `top` (or, for a diff, `diff`) table: `profile` aggregated as the query says,
    /// with a column per process when `processes` is set.
    public var report: Report {
        var report = Aggregator(options: query.aggregation).aggregate(profile)
        guard !processes.isEmpty else { return report }
        var whole = query.aggregation
        whole.limit = nil
        let each = processes.map { result in
            let header = result.profile.source.header
            let own = Aggregator(options: whole).aggregate(result.profile)
            let process = ProcessSplit.Process(pid: header.pid, file: result.profile.source.file,
                                               timeNanoseconds: result.profile.source.momentNanoseconds, total: own.total)
            return (process: process, report: own)
        }
        report.split = ProcessSplit(report: report, processes: each)
        return report
    }
}
