// The aggregate stage: groups a profile's samples by line, function, file,
// module or whole stack (tracemalloc's `Snapshot.statistics` and
// `compare_to`), optionally counting every frame (`cumulative`), sorted
// deterministically and cut to a limit. Filtering happens before, in its own
// stage (ProfileFilter).

/// How the confidence intervals are drawn: ± `z` standard deviations.
public enum Confidence {
    /// 1.96 σ: a 95% interval under the normal approximation.
    public static let z = 1.96
    /// The level `z` stands for, for headers and docs.
    public static let level = "95%"
}

/// Options of the aggregate stage.
public struct AggregationOptions: Sendable, Hashable {
    /// The grouping.
    public var groupBy: GroupBy = .line
    /// Count a sample under every distinct key found in its stack, not just the allocation site's.
    public var cumulative = false
    /// The value rows are sorted by and percentages are of.
    public var metric: Metric = .inuseBytes
    /// At most this many rows; nil for all.
    public var limit: Int? = nil

    public init(groupBy: GroupBy = .line, cumulative: Bool = false, metric: Metric = .inuseBytes, limit: Int? = nil) {
        self.groupBy = groupBy
        self.cumulative = cumulative
        self.metric = metric
        self.limit = limit
    }
}

/// One line of a `top` or `diff` table.
public struct Row: Sendable, Hashable {
    /// What the row groups.
    public var key: GroupKey
    /// A frame standing for the row (the smallest contributing frame), for
    /// showing the function of a line or the module of a function.
    public var frame: Frame?
    /// Sum over the row's samples: for a diff, new − old.
    public var values: Values
    /// For a diff, the old side's values (positive); nil otherwise.
    public var base: Values?

    public init(key: GroupKey, frame: Frame?, values: Values, base: Values? = nil) {
        self.key = key
        self.frame = frame
        self.values = values
        self.base = base
    }

    /// The new side's values (for a plain profile, `values`).
    public var current: Values { base.map { values + $0 } ?? values }

    /// Whether the row's change of `metric` is within ±`Confidence.z` σ of zero.
    public func isWithinNoise(_ metric: Metric) -> Bool {
        let e = values[metric]
        return abs(e.value) <= Confidence.z * e.standardDeviation
    }
}

/// The aggregated result the renderers show.
public struct Report: Sendable, Hashable {
    /// How it was aggregated.
    public var options: AggregationOptions
    /// The filter the profile went through (keeps everything when none).
    public var filter: ProfileFilter
    /// The snapshot (the new one, for a diff).
    public var source: ProfileSource
    /// The old snapshot of a diff.
    public var base: ProfileSource?
    /// The rows, sorted, at most `options.limit`.
    public var rows: [Row]
    /// Rows left out by the limit.
    public var omittedRows: Int
    /// Sum over all samples that passed the filters (new − old for a diff); the base of percentages.
    public var total: Values
    /// For a diff, the old side's total over the filtered samples.
    public var baseTotal: Values?
    /// Samples that passed the filters, and all samples (both sides of a diff).
    public var matchedSamples: Int
    public var allSamples: Int
    /// Recoverable trouble met on the way (symbolization warnings and the like).
    public var warnings: [String]
    /// How the rows split across the processes merged (`top --per-process`); nil otherwise.
    public var split: ProcessSplit? = nil

    /// Whether this report is a diff.
    public var isDiff: Bool { base != nil }
    /// The new side's total.
    public var currentTotal: Values { baseTotal.map { total + $0 } ?? total }
}

/// The aggregator (see `AggregationOptions`): groups, sorts and limits a profile's samples.
public struct Aggregator: Sendable {
    /// The options.
    public var options: AggregationOptions

    public init(options: AggregationOptions = AggregationOptions()) {
        self.options = options
    }

    /// - Complexity: O(samples × depth) with `cumulative`, else O(samples), plus a sort of the groups.
    public func aggregate(_ profile: Profile) -> Report {
        struct Accumulator {
            var frame: Frame?
            var values = Values.zero
            var base = Values.zero
        }
        var groups: [GroupKey: Accumulator] = [:]
        var total = Values.zero, baseTotal = Values.zero
        let unknown = Frame(function: "<no stack>")

        func add(_ key: GroupKey, _ frame: Frame?, _ sample: Sample) {
            var acc = groups[key] ?? Accumulator()
            if let frame, acc.frame.map({ frame < $0 }) ?? true { acc.frame = frame }
            acc.values += sample.values
            if sample.isBase { acc.base += sample.values.negated() }
            groups[key] = acc
        }

        for sample in profile.samples {
            total += sample.values
            if sample.isBase { baseTotal += sample.values.negated() }
            let frames = sample.frames.isEmpty ? [unknown] : sample.frames.map { profile.frames[$0] }
            switch options.groupBy {
            case .traceback:
                add(GroupKey(stack: frames), frames[0], sample)
            case _ where options.cumulative:
                var seen = Set<GroupKey>()
                for frame in frames {
                    let key = GroupKey(frame, by: options.groupBy)
                    if seen.insert(key).inserted { add(key, frame, sample) }
                }
            default:
                add(GroupKey(frames[0], by: options.groupBy), frames[0], sample)
            }
        }

        let metric = options.metric
        let isDiff = profile.isDiff
        var rows = groups.map { key, acc in
            Row(key: key, frame: acc.frame, values: acc.values, base: isDiff ? acc.base : nil)
        }
        // Groups with nothing to show for the metric (freed memory under an in-use metric, unchanged in a diff).
        rows.removeAll { row in
            row.values[metric].value == 0 && row.current[metric].value == 0 && row.values.samples(metric) == 0
                && (row.base?[metric].value ?? 0) == 0
        }
        rows.sort { a, b in
            let va = a.values[metric].value, vb = b.values[metric].value
            if isDiff {
                if abs(va) != abs(vb) { return abs(va) > abs(vb) }
                let ca = a.current[metric].value, cb = b.current[metric].value
                if ca != cb { return ca > cb }
            }
            if va != vb { return va > vb }
            let other = metric.isBytes ? metric.objectsMetric : metric.bytesMetric
            if a.values[other].value != b.values[other].value { return a.values[other].value > b.values[other].value }
            return GroupKey.ordered(a.key, b.key)
        }
        var omitted = 0
        if let limit = options.limit, limit >= 0, rows.count > limit {
            omitted = rows.count - limit
            rows.removeLast(omitted)
        }
        return Report(options: options, filter: profile.filtering?.filter ?? ProfileFilter(), source: profile.source,
                      base: profile.base, rows: rows, omittedRows: omitted, total: total,
                      baseTotal: isDiff ? baseTotal : nil, matchedSamples: profile.samples.count,
                      allSamples: profile.filtering?.samplesBefore ?? profile.samples.count, warnings: profile.warnings)
    }
}
