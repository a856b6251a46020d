// The leak test: per site, is its memory in use growing over time across the
// processes of a service, by more than sampling noise and chance explain,
// and faster than the traffic it serves? Input is reduced to numbers (per
// run, per snapshot, per site: the in-use and allocated estimates), so the
// statistics can be fed synthetic series in tests; LeakFinder builds the
// input from snapshot files.
//
// Alignment. Runs (one process's sampling session each) write snapshots at
// their own moments. The analysis puts them on one grid of moments, spaced
// by the median gap between a run's consecutive snapshots (at most
// `maximumMoments` of them); each snapshot goes to its nearest moment and a
// run keeps its last value until its next snapshot. A site's series is its
// *growth*: at each moment, the sum over runs of (value now − the run's
// value at its first snapshot). So a worker that starts mid-series adds only
// what it gained since it started, and one that exits keeps the growth it
// had (its memory is gone with it, which is no evidence either way); neither
// shows as a jump.
//
// The tests, each one-sided (growth only):
// - trend: Mann-Kendall on the growth series (ties count against growth, see
//   TrendStatistics), and again over the pairs on the same side of its
//   largest single rise only (`steplessTrend`); the larger p counts. A site
//   that rose once and then stayed (a cache filled on the first request) is
//   no trend.
// - sampling: in sampled mode, a sampled block that survives stays in every
//   later snapshot, so successive estimates share their noise and a trend
//   test on them alone calls too many flat sites growing. The total growth
//   of each run (last − first snapshot) is therefore also tested against the
//   variance that difference can have: the blocks live at both ends cancel,
//   what remains is the blocks that came (at most those allocated in
//   between: the alloc estimate's variance grew by that much) and the blocks
//   that went. In the estimated variances: Var(last − first) = var_first −
//   var_last + 2·Var(came) ≤ var_first − var_last + 2·min(var_last,
//   Δvar_alloc), exact for a site that never frees. Exact mode has no
//   sampling noise (variance 0).
// - traffic: the site's bytes in use divided by the service's allocation
//   rate at that moment (bytes allocated per second over the few steps
//   around it, the traffic proxy),
//   tested for trend like the growth. Memory that scales with the work in
//   flight (buffers of the requests being served) rises with traffic and
//   keeps this ratio flat; a leak accumulates and raises it.
// A site *grows* when trend and sampling both say so (the larger of the two
// p-values, an intersection-union test: valid if either test is), and is a
// *leak* when traffic says so too. Both p-values are corrected with Holm's
// method over the sites tested, so the chance that any flat site of a run
// is called growing stays at most 1 − min confidence, whatever their
// dependence (Benjamini-Hochberg would bound only the share of false calls
// among the calls, and a service without a leak would then show one).

/// What one snapshot says about one site.
public struct SiteObservation: Sendable, Hashable {
    /// Estimated bytes in use.
    public var inuse: Estimate
    /// Estimated bytes allocated since sampling started.
    public var alloc: Estimate
    /// Sampled blocks behind `inuse`, and behind `alloc`.
    public var inuseSamples: Int64
    public var allocSamples: Int64

    public init(inuse: Estimate, alloc: Estimate, inuseSamples: Int64, allocSamples: Int64) {
        self.inuse = inuse
        self.alloc = alloc
        self.inuseSamples = inuseSamples
        self.allocSamples = allocSamples
    }

    public static let zero = SiteObservation(inuse: .zero, alloc: .zero, inuseSamples: 0, allocSamples: 0)
}

/// One snapshot of a run, reduced to what the leak test needs.
public struct RunSnapshot: Sendable, Hashable {
    /// When it was taken, ns since the Unix epoch.
    public var timeNanoseconds: UInt64
    /// Bytes the process allocated since sampling started (all sites, before filters).
    public var allocBytes: Double
    /// Per site (an index the caller assigns), what the snapshot says; absent means nothing sampled.
    public var sites: [Int: SiteObservation]

    public init(timeNanoseconds: UInt64, allocBytes: Double, sites: [Int: SiteObservation]) {
        self.timeNanoseconds = timeNanoseconds
        self.allocBytes = allocBytes
        self.sites = sites
    }
}

/// One process's sampling session: its snapshots in time order.
public struct LeakRun: Sendable, Hashable {
    public var snapshots: [RunSnapshot]
    /// Exact mode (`HEAPSNAP_RATE=1`): estimates without sampling noise.
    public var exact: Bool

    public init(snapshots: [RunSnapshot], exact: Bool) {
        self.snapshots = snapshots.sorted { $0.timeNanoseconds < $1.timeNanoseconds }
        self.exact = exact
    }
}

/// What `leaks` calls a site.
public enum LeakVerdict: String, Sendable, Hashable, CaseIterable {
    /// Grows over time beyond sampling noise and chance, faster than the traffic.
    case leak
    /// Grows over time, but in step with the traffic (its bytes per unit of allocation rate are flat).
    case growing
    /// No growth the data can tell from noise.
    case steady
    /// Too few moments or sampled blocks to test.
    case tooFewSamples = "too few samples"
}

/// Settings of the leak test.
public struct LeakOptions: Sendable, Hashable {
    /// Call a site growing (or a leak) when 1 − its Holm-corrected p-value reaches this.
    public var minConfidence: Double = 0.99
    /// Fewer moments than this: every site is `tooFewSamples`.
    public var minimumMoments = 5
    /// In sampled mode, a site with fewer sampled blocks than this (live at its runs' starts plus allocated since) is `tooFewSamples`.
    public var minimumSamples: Int64 = 4
    /// The grid is coarsened to at most this many moments (the tests are O(moments²) per site).
    public var maximumMoments = 200

    public init(minConfidence: Double = 0.99) {
        self.minConfidence = minConfidence
    }
}

/// The growth of one site and the verdict on it.
public struct SiteTrend: Sendable, Hashable {
    /// The caller's site index.
    public var site: Int
    /// Bytes in use at the last moment, summed over the runs still writing then.
    public var inuseNow: Estimate
    /// Growth since each run's first snapshot, summed over runs, at each moment (bytes).
    public var growth: [Double]
    /// Total growth (the sum of each run's last − first) and the bound on its sampling variance.
    public var totalGrowth: Estimate
    /// Theil-Sen slope in bytes per minute, with an interval covering Sen's 95% interval and the sampling noise of the total growth.
    public var perMinute: TrendStatistics.Slope?
    /// Theil-Sen slope of the growth against the service's allocated MiB (bytes kept per MiB allocated); nil when nothing was allocated.
    public var perAllocatedMiB: Double?
    /// One-sided p-values: trend (the larger of the series' and the series without its largest rise),
    /// sampling (total growth against its variance bound), traffic (bytes per allocation rate).
    public var trendP: Double
    public var samplingP: Double
    public var trafficP: Double
    /// max(trend, sampling), and Holm's correction of it over the tested sites.
    public var growthP: Double
    public var growthAdjustedP: Double
    /// max(growth, traffic), and Holm's correction of it over the tested sites.
    public var leakP: Double
    public var leakAdjustedP: Double
    public var verdict: LeakVerdict
    /// Whether the site was tested (in the family Holm corrects over): not `tooFewSamples`, and in use at some snapshot.
    public var tested = false

    /// Confidence that the site grows: 1 − the corrected p-value (of the leak test for a leak).
    public var confidence: Double { 1 - (verdict == .leak ? leakAdjustedP : growthAdjustedP) }
}

/// The result of `LeakAnalysis.analyze`.
public struct LeakAnalysisResult: Sendable, Hashable {
    /// The grid, ns since the Unix epoch.
    public var moments: [UInt64]
    /// Spacing of the grid, ns.
    public var stepNanoseconds: UInt64
    /// Per site with any sample, in site-index order.
    public var sites: [SiteTrend]
    /// Sites tested (not `tooFewSamples`, and in use at some snapshot): the size of the family Holm corrects for.
    public var tested: Int
}

/// The leak test over runs (see the file's opening comment).
public enum LeakAnalysis {
    /// Tests every site that appears in `runs`.
    /// - Complexity: O(sites × moments²) plus O(snapshots × sites).
    public static func analyze(_ runs: [LeakRun], options: LeakOptions = LeakOptions()) -> LeakAnalysisResult {
        let runs = runs.filter { !$0.snapshots.isEmpty }
        guard !runs.isEmpty else { return LeakAnalysisResult(moments: [], stepNanoseconds: 0, sites: [], tested: 0) }
        let (moments, step) = grid(runs, maximum: options.maximumMoments)
        let n = moments.count
        let origin = moments[0]
        func slot(_ time: UInt64) -> Int {
            guard step > 0 else { return 0 }
            return max(0, min(n - 1, Int((Double(time &- origin) / Double(step)).rounded())))
        }
        // Per run: which snapshot stands at each moment (-1 before its first); its first and last slot.
        struct Placed { var index: [Int]; var first: Int; var last: Int }
        let placed: [Placed] = runs.map { run in
            var at = [Int](repeating: -1, count: n)
            for (i, s) in run.snapshots.enumerated() { at[slot(s.timeNanoseconds)] = i }
            var current = -1
            for k in 0..<n {
                if at[k] >= 0 { current = at[k] } else { at[k] = current }
            }
            return Placed(index: at, first: slot(run.snapshots[0].timeNanoseconds), last: slot(run.snapshots.last!.timeNanoseconds))
        }
        let exact = runs.allSatisfy(\.exact)
        let stepMinutes = Double(step) / 60e9
        let minutes = (0..<n).map { Double(moments[$0] &- origin) / 60e9 }

        // The service's cumulative allocated bytes and its allocation rate per moment.
        var allocated = [Double](repeating: 0, count: n)
        for (r, run) in runs.enumerated() {
            let base = run.snapshots[0].allocBytes
            for k in 0..<n where placed[r].index[k] >= 0 {
                allocated[k] += run.snapshots[placed[r].index[k]].allocBytes - base
            }
        }
        // The rate of the step ending at moment k, averaged with the h steps on either side: a one-step rate carries
        // the request rate's jitter straight into the traffic ratio below, and a whole centred window neither lags
        // nor leads a ramp. Moments without a whole window (the first and last h) get 0 and are left out of that test.
        let h = n >= 12 ? 2 : 0
        let rate: [Double] = (0..<n).map { k in
            guard stepMinutes > 0, k - h >= 1, k + h <= n - 1 else { return 0 }
            return (allocated[k + h] - allocated[k - h - 1]) / (Double(2 * h + 1) * stepMinutes * 60)
        }

        var siteIDs = Set<Int>()
        for run in runs { for s in run.snapshots { siteIDs.formUnion(s.sites.keys) } }
        var trends: [SiteTrend] = []
        var family: [Int] = []  // the tested sites, indices into `trends`
        for site in siteIDs.sorted() {
            var growth = [Double](repeating: 0, count: n)
            var level = [Double](repeating: 0, count: n)
            var total = Estimate.zero
            var samples: Int64 = 0
            var now = Estimate.zero
            var held = false
            for (r, run) in runs.enumerated() {
                held = held || run.snapshots.contains { ($0.sites[site]?.inuse.value ?? 0) > 0 }
                let first = run.snapshots[0].sites[site] ?? .zero
                let last = run.snapshots.last!.sites[site] ?? .zero
                for k in 0..<n where placed[r].index[k] >= 0 {
                    let value = run.snapshots[placed[r].index[k]].sites[site]?.inuse.value ?? 0
                    growth[k] += value - first.inuse.value
                    if k <= placed[r].last { level[k] += value }
                }
                let came = max(0, last.alloc.variance - first.alloc.variance)
                let bound = run.exact ? 0 : max(0, first.inuse.variance - last.inuse.variance + 2 * min(last.inuse.variance, came))
                total += Estimate(value: last.inuse.value - first.inuse.value, variance: bound)
                samples += first.inuseSamples + max(0, last.allocSamples - first.allocSamples)
                if placed[r].last >= n - 2 { now += last.inuse }
            }
            var trend = SiteTrend(site: site, inuseNow: now, growth: growth, totalGrowth: total, perMinute: nil, perAllocatedMiB: nil,
                                  trendP: 1, samplingP: 1, trafficP: 1, growthP: 1, growthAdjustedP: 1, leakP: 1, leakAdjustedP: 1,
                                  verdict: .tooFewSamples)
            let span = minutes[n - 1]
            if var slope = TrendStatistics.theilSen(x: minutes, y: growth, z: Confidence.z), span > 0 {
                let noise = Confidence.z * total.standardDeviation / span
                slope.low = min(slope.low, total.value / span - noise)
                slope.high = max(slope.high, total.value / span + noise)
                trend.perMinute = slope
            }
            if allocated[n - 1] > 0 {
                trend.perAllocatedMiB = TrendStatistics.theilSen(x: allocated.map { $0 / 1_048_576 }, y: growth, z: Confidence.z)?.value
            }
            guard n >= options.minimumMoments, exact || samples >= options.minimumSamples else {
                trends.append(trend)
                continue
            }
            guard held else {
                // Allocated but never in use at a snapshot: nothing to grow. Left out of the family, which
                // leaves Holm's bound intact: whether another site was ever in use says nothing about this one's noise.
                trend.verdict = .steady
                trends.append(trend)
                continue
            }
            trend.trendP = max(TrendStatistics.mannKendall(growth).pValue, steplessTrend(growth).pValue)
            if total.variance > 0 {
                trend.samplingP = TrendStatistics.normalUpperTail(total.value / total.standardDeviation)
            } else {
                trend.samplingP = total.value > 0 ? 0 : 1
            }
            let ratio = (1..<n).filter { rate[$0] > 0 }.map { level[$0] / rate[$0] }
            trend.trafficP = TrendStatistics.mannKendall(ratio).pValue
            trend.growthP = max(trend.trendP, trend.samplingP)
            trend.leakP = max(trend.growthP, trend.trafficP)
            trend.tested = true
            family.append(trends.count)
            trends.append(trend)
        }

        // Holm over the tested sites.
        let growthAdjusted = TrendStatistics.holm(family.map { trends[$0].growthP })
        let leakAdjusted = TrendStatistics.holm(family.map { trends[$0].leakP })
        let alpha = 1 - options.minConfidence
        for (i, index) in family.enumerated() {
            trends[index].growthAdjustedP = growthAdjusted[i]
            trends[index].leakAdjustedP = leakAdjusted[i]
            trends[index].verdict = leakAdjusted[i] <= alpha ? .leak : growthAdjusted[i] <= alpha ? .growing : .steady
        }
        return LeakAnalysisResult(moments: moments, stepNanoseconds: step, sites: trends, tested: family.count)
    }

    /// The trend test of `growth` split at its largest rise: Mann-Kendall over the pairs of moments on
    /// the same side of that rise only. A series that rose once and stayed is flat on both sides; a
    /// steady rise rises on both. (Under no trend the split is conservative: the moment before the
    /// largest rise tends to be low and the one after it high, which counts against growth on both sides.)
    static func steplessTrend(_ growth: [Double]) -> TrendStatistics.MannKendall {
        guard growth.count >= 3 else { return TrendStatistics.mannKendall(growth) }
        var at = 1
        for k in 2..<growth.count where growth[k] - growth[k - 1] > growth[at] - growth[at - 1] { at = k }
        let before: ArraySlice<Double> = growth[0..<at], after: ArraySlice<Double> = growth[at..<growth.count]
        return TrendStatistics.mannKendall(segments: [before, after])
    }

    /// The grid: from the first snapshot to the last, spaced by the median gap between a run's
    /// consecutive snapshots (coarser when that would make more than `maximum` moments).
    static func grid(_ runs: [LeakRun], maximum: Int) -> (moments: [UInt64], step: UInt64) {
        let first = runs.map { $0.snapshots[0].timeNanoseconds }.min()!
        let last = runs.map { $0.snapshots.last!.timeNanoseconds }.max()!
        var gaps: [UInt64] = []
        for run in runs where run.snapshots.count >= 2 {
            for i in 1..<run.snapshots.count { gaps.append(run.snapshots[i].timeNanoseconds - run.snapshots[i - 1].timeNanoseconds) }
        }
        gaps.sort()
        guard last > first, let median = gaps.isEmpty ? nil : gaps[gaps.count / 2], median > 0 else { return ([first], 0) }
        var step = median
        var count = Int((Double(last - first) / Double(step)).rounded()) + 1
        if count > maximum {
            count = maximum
            step = (last - first) / UInt64(maximum - 1)
        }
        count = max(count, 2)
        var moments = (0..<count).map { first + UInt64($0) * step }
        moments[count - 1] = max(moments[count - 1], last)
        return (moments, step)
    }
}
