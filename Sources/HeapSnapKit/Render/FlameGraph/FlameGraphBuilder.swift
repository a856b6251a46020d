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

    /// The label a frame is drawn with; inlined calls are marked.
    public static func label(_ frame: Frame) -> String {
        frame.inlined ? "\(frame.function) [inlined]" : frame.function
    }

    /// The call tree of the samples of `profile` that `include` accepts.
    /// - Complexity: O(samples × depth).
    public func tree(_ profile: Profile, including include: (Sample) -> Bool = { _ in true }) -> FlameTree {
        let companionMetric = metric.isBytes ? metric.objectsMetric : metric.bytesMetric
        var scale = 1.0
        if normalize, profile.isDiff {
            var new = 0.0, old = 0.0
            for sample in profile.samples where include(sample) {
                if sample.isBase { old -= sample.values[metric].value } else { new += sample.values[metric].value }
            }
            if old > 0 { scale = new / old }
        }
        let labels = profile.frames.map { FlameFrame(name: Self.label($0), module: $0.module) }
        var tree = FlameTree()
        for sample in profile.samples where include(sample) {
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
}
