// The statistics `leaks` tests growth with, as plain functions on arrays:
// the Mann-Kendall trend test, the Theil-Sen slope with Sen's interval, the
// normal tail, and Holm's step-down correction for many tests. Nothing here
// knows about snapshots; LeakAnalysis feeds it series.
//
// The trend test is Mann-Kendall's S with one change: pairs of equal values
// count *against* growth (S' = pairs up − pairs down − ties) instead of not
// at all. A series that is flat except for one jump then has most of its
// pairs tied and is not called a trend, and S' > z·σ(S) is exactly the
// condition for the lower end of Sen's interval of the Theil-Sen slope to be
// above zero. With no ties (real-valued noise) it is the usual test.

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Trend tests and multiple-testing corrections (pure functions).
public enum TrendStatistics {
    /// P(Z ≥ z) for a standard normal Z.
    public static func normalUpperTail(_ z: Double) -> Double {
        0.5 * erfc(z / 2.0.squareRoot())
    }

    /// The result of a one-sided Mann-Kendall test for an increasing trend.
    public struct MannKendall: Sendable, Hashable {
        /// Pairs (i < j) with y[j] > y[i], minus pairs with y[j] < y[i], minus tied pairs.
        public var s: Int
        /// The variance of Mann-Kendall's S under no trend, corrected for ties.
        public var variance: Double
        /// P(S' this large or larger | no trend), normal approximation with continuity correction; 1 when undefined.
        public var pValue: Double
    }

    /// One-sided Mann-Kendall test of `y` (in time order) for growth, ties counted against growth.
    /// - Complexity: O(n²).
    public static func mannKendall(_ y: [Double]) -> MannKendall {
        mannKendall(segments: [y[...]])
    }

    /// Mann-Kendall over pairs within each segment only (the seasonal Kendall test with the segments
    /// as seasons): S and its variance are the sums of the segments' own. Split at a jump, a series
    /// that only jumped shows no trend, and one that rises steadily still does.
    /// - Complexity: O(Σ segment²).
    public static func mannKendall(segments: [ArraySlice<Double>]) -> MannKendall {
        var s = 0
        var variance = 0.0
        for segment in segments {
            let y = Array(segment)
            let n = y.count
            guard n >= 2 else { continue }
            for i in 0..<n - 1 {
                for j in i + 1..<n {
                    s += y[j] > y[i] ? 1 : -1  // a tie counts as against
                }
            }
            // Tie correction of Var(S): Σ t(t−1)(2t+5) over groups of equal values.
            let sorted = y.sorted()
            var ties = 0.0
            var run = 1
            for k in 1...n {
                if k < n, sorted[k] == sorted[k - 1] {
                    run += 1
                    continue
                }
                if run > 1 { ties += Double(run * (run - 1) * (2 * run + 5)) }
                run = 1
            }
            variance += (Double(n * (n - 1) * (2 * n + 5)) - ties) / 18
        }
        let count = segments.reduce(0) { $0 + $1.count }
        guard count >= 3, variance > 0, s > 0 else { return MannKendall(s: s, variance: variance, pValue: 1) }
        return MannKendall(s: s, variance: variance, pValue: normalUpperTail((Double(s) - 1) / variance.squareRoot()))
    }

    /// A Theil-Sen slope with its interval.
    public struct Slope: Sendable, Hashable {
        /// The median of the pairwise slopes.
        public var value: Double
        /// Sen's interval at the given z (order statistics of the pairwise slopes).
        public var low: Double
        public var high: Double
    }

    /// The Theil-Sen slope of `y` against `x` (pairs with equal x are skipped) with Sen's
    /// interval at `z` standard deviations of Mann-Kendall's S; nil with fewer than two distinct x.
    /// - Complexity: O(n² log n).
    public static func theilSen(x: [Double], y: [Double], z: Double) -> Slope? {
        precondition(x.count == y.count)
        var slopes: [Double] = []
        slopes.reserveCapacity(x.count * (x.count - 1) / 2)
        for i in 0..<x.count {
            for j in i + 1..<x.count where x[j] != x[i] {
                slopes.append((y[j] - y[i]) / (x[j] - x[i]))
            }
        }
        guard !slopes.isEmpty else { return nil }
        slopes.sort()
        let count = slopes.count
        let median = count % 2 == 1 ? slopes[count / 2] : (slopes[count / 2 - 1] + slopes[count / 2]) / 2
        let c = z * mannKendall(y).variance.squareRoot()
        let lower = Int(((Double(count) - c) / 2).rounded()) - 1
        let upper = Int(((Double(count) + c) / 2).rounded())
        return Slope(value: median, low: slopes[max(0, min(count - 1, lower))], high: slopes[max(0, min(count - 1, upper))])
    }

    /// Holm's step-down adjusted p-values: rejecting where the adjusted value ≤ α keeps the
    /// chance of *any* false rejection among the family at most α, however the tests depend on each other.
    /// - Complexity: O(m log m).
    public static func holm(_ p: [Double]) -> [Double] {
        let m = p.count
        let order = p.indices.sorted { p[$0] != p[$1] ? p[$0] < p[$1] : $0 < $1 }
        var adjusted = [Double](repeating: 1, count: m)
        var running = 0.0
        for (rank, index) in order.enumerated() {
            running = max(running, min(1, Double(m - rank) * p[index]))
            adjusted[index] = running
        }
        return adjusted
    }
}
