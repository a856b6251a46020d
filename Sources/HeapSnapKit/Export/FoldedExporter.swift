// Folded stacks, as flamegraph.pl, inferno and speedscope import them: one
// line per distinct stack, frames root first joined by ';', a space, and the
// value as an integer.

/// Writes the folded-stacks text of a profile.
public enum FoldedExporter {
    /// One line per distinct stack with a non-zero rounded value, sorted by stack.
    /// - Complexity: O(samples × depth + lines · log lines).
    public static func export(_ profile: Profile, metric: Metric) -> String {
        let names = profile.frames.map { frame in
            frame.label.map { c -> Character in c == ";" ? ":" : c.isNewline ? " " : c }
        }
        var totals: [String: Double] = [:]
        for sample in profile.samples where !sample.isBase {
            let stack = sample.frames.reversed().map { String(names[$0]) }.joined(separator: ";")
            totals[stack.isEmpty ? "[no stack]" : stack, default: 0] += sample.values[metric].value
        }
        var out = ""
        for (stack, value) in totals.sorted(by: { $0.key < $1.key }) {
            let rounded = value.rounded()
            guard rounded >= 1, rounded < 9e18 else { continue }
            out += "\(stack) \(Int64(rounded))\n"
        }
        return out
    }
}
