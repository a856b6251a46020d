// The call tree a flamegraph draws: stacks merged frame by frame from the
// root, each node holding the sum of what passes through it.
//
// For a differential flamegraph the tree holds both sides: `value` is the new
// side (it gives the shape) and `baseline` the old side, so a node's change is
// `value - baseline` and its noise is the two variances added.

/// What a flamegraph box is: its label and the module that colours it.
public struct FlameFrame: Sendable, Hashable {
    public var name: String
    public var module: String

    public init(name: String, module: String) {
        self.name = name
        self.module = module
    }
}

/// One node of the merged call tree.
public struct FlameNode: Sendable {
    public var frame: FlameFrame
    /// The drawn metric (new side for a diff).
    public var value: Estimate = .zero
    /// The companion count shown in tooltips (objects for a bytes metric, bytes for objects).
    public var companion: Double = 0
    /// The old side of a diff (zero otherwise).
    public var baseline: Estimate = .zero
    /// Children in first-insertion order; sorted by name when laid out.
    public var children: [FlameNode] = []
    fileprivate var childIndex: [FlameFrame: Int] = [:]

    public init(frame: FlameFrame) {
        self.frame = frame
    }

    /// `value - baseline`, with both variances.
    public var change: Estimate { value - baseline }
}

/// A call tree built from stacks.
public struct FlameTree: Sendable {
    public private(set) var root = FlameNode(frame: FlameFrame(name: "all", module: ""))

    public init() {}

    /// Adds a stack, given root first (`main` before the allocation site).
    /// - Complexity: O(depth).
    public mutating func add(rootFirst frames: [FlameFrame], value: Estimate, companion: Double = 0,
                             baseline: Estimate = .zero) {
        Self.add(&root, frames[...], value, companion, baseline)
    }

    private static func add(_ node: inout FlameNode, _ rest: ArraySlice<FlameFrame>, _ value: Estimate,
                            _ companion: Double, _ baseline: Estimate) {
        node.value += value
        node.companion += companion
        node.baseline += baseline
        guard let next = rest.first else { return }
        let i: Int
        if let known = node.childIndex[next] {
            i = known
        } else {
            i = node.children.count
            node.childIndex[next] = i
            node.children.append(FlameNode(frame: next))
        }
        add(&node.children[i], rest.dropFirst(), value, companion, baseline)
    }
}
