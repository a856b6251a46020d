// Builds the `FlameTree` of a profile for one metric: plain, inverted
// (allocation sites at the root), or differential (shape from the new side,
// the old side as baseline).

/// Turns a profile's samples into a call tree.
public struct FlameGraphBuilder: Sendable {
    /// The value that sizes the boxes.
    public var metric: Metric
    /// Allocation sites at the root (an icicle read from the allocation up).
    public var inverted: Bool
    /// For a diff: scale the old side so its total equals the new side's first.
    public var normalize: Bool

    public init(metric: Metric = .inuseBytes, inverted: Bool = false, normalize: Bool = false) {
        self.metric = metric
        self.inverted = inverted
        self.normalize = normalize
    }

    /// The call tree of the samples of `profile` (filter it first with `ProfileFilter`).
    /// - Complexity: O(samples × depth).
    public func tree(_ profile: Profile) -> FlameTree {
        let companionMetric = metric.isBytes ? metric.objectsMetric : metric.bytesMetric
        var scale = 1.0
        if normalize, profile.isDiff {
            var new = 0.0, old = 0.0
            for sample in profile.samples {
                if sample.isBase { old -= sample.values[metric].value } else { new += sample.values[metric].value }
            }
            if old > 0 { scale = new / old }
        }
        let labels = profile.frames.map { FlameFrame(name: $0.label, module: $0.module) }
        var tree = FlameTree()
        for sample in profile.samples {
            var frames = sample.frames.map { labels[$0] }
            if !inverted { frames.reverse() }
            if sample.isBase {
                tree.add(rootFirst: frames, value: .zero, baseline: sample.values[metric].scaled(by: -scale))
            } else {
                tree.add(rootFirst: frames, value: sample.values[metric], companion: sample.values[companionMetric].value)
            }
        }
        return tree
    }

    /// Drawing options for `tree` (built by `tree(profile)`): the title names
    /// the metric, the subtitle the process, time, total (or change) with its
    /// 95% interval, and the sampling rate; values are formatted for the metric.
    public func options(for profile: Profile, tree: FlameTree) -> FlameGraphOptions {
        var options = FlameGraphOptions()
        options.inverted = inverted
        options.differential = profile.isDiff
        if metric.isBytes {
            options.formatValue = { @Sendable in Format.bytes($0) }
            options.formatCompanion = { @Sendable in Format.count($0) + " objects" }
        } else {
            options.formatValue = { @Sendable in Format.count($0) }
            options.formatCompanion = { @Sendable in Format.bytes($0) }
        }
        let atPeak = profile.source.peakNanoseconds != nil && !profile.isDiff
        options.title = (profile.isDiff ? "Memory growth: " : atPeak ? "Memory at the peak: " : "Memory: ") + metric.rawValue.split(separator: "-").joined(separator: " ")
            + (inverted ? " by allocation site" : "")
        options.subtitle = subtitle(profile, tree: tree)
        options.warning = profile.droppedWarnings.map { "warning: " + $0 }.joined(separator: " · ")
        return options
    }

    /// "peak at TIME" or the snapshot's time.
    private func moment(_ source: ProfileSource) -> String {
        if let peak = source.peakNanoseconds { return "peak at " + Format.time(nanoseconds: peak) }
        return Format.time(nanoseconds: source.header.timeNanoseconds)
    }

    /// "program [pid] on host · time · total ± interval · sampling", or for a diff "old → new (change ± interval)".
    func subtitle(_ profile: Profile, tree: FlameTree) -> String {
        let h = profile.source.header
        let program = h.programName
        let format: (Double) -> String = metric.isBytes ? { Format.bytes($0) } : { Format.count($0) }
        var parts = ["\(program) [\(h.pid)] on \(h.hostname)"]
        if let base = profile.base, base.peakNanoseconds != nil || profile.source.peakNanoseconds != nil {
            parts.append("\(moment(base)) → \(moment(profile.source))")
        } else {
            parts.append(moment(profile.source))
        }
        if profile.isDiff {
            let change = tree.root.change
            parts.append("\(format(tree.root.baseline.value)) → \(format(tree.root.value.value)) "
                + "(\(change.value >= 0 ? "+" : "")\(format(change.value)) ± \(format(Confidence.z * change.standardDeviation)))")
        } else {
            parts.append("total \(format(tree.root.value.value)) ± \(format(Confidence.z * tree.root.value.standardDeviation))")
        }
        parts.append(h.rate == 1 ? "exact" : "sampled every \(Format.bytes(Double(h.rate)))")
        return parts.joined(separator: " · ")
    }
}
