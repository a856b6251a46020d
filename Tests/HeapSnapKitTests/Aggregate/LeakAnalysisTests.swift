// The leak test on synthetic series whose truth is known: a simulator of the
// shim's byte sampling (each block is sampled with p = 1 − exp(−size/rate)
// and weighs size/p; a sampled block stays in every snapshot until it is
// freed), seeded so every run sees the same numbers.

import Foundation
import Testing
@testable import HeapSnapKit

/// Draws for the simulated series, from the fuzzer's SplitMix64 (SnapshotReaderTests), so every run is the same.
extension SplitMix64 {
    mutating func uniform() -> Double { Double(next() >> 11) / Double(1 << 53) }
    mutating func normal() -> Double {
        let u = max(uniform(), 1e-300), v = uniform()
        return (-2 * Foundation.log(u)).squareRoot() * cos(2 * Double.pi * v)
    }
    /// A Poisson draw (Knuth's method; means up to a few hundred).
    mutating func poisson(_ mean: Double) -> Int {
        if mean > 200 { return max(0, Int((mean + mean.squareRoot() * normal()).rounded())) }
        let limit = Foundation.exp(-mean)
        var k = 0, p = uniform()
        while p > limit { k += 1; p *= uniform() }
        return k
    }
}

/// One site under the shim's sampling: blocks of `size` bytes, `perStep` of them allocated each step,
/// each living `lifetime` steps (nil: never freed). Sampling starts at step `start`.
struct SimulatedSite {
    var size: Double
    var rate: Double
    var live: [(death: Int?, weight: Double, variance: Double)] = []
    var alloc = Estimate.zero
    var allocSamples: Int64 = 0

    var p: Double { 1 - Foundation.exp(-size / rate) }

    /// Allocates `count` blocks at `step`: the sampled ones (Poisson, with p small) join the live set.
    mutating func allocate(_ count: Int, at step: Int, lifetime: (inout SplitMix64) -> Int?, rng: inout SplitMix64) {
        let sampled = rng.poisson(Double(count) * p)
        let weight = size / p, variance = weight * weight * (1 - p)
        for _ in 0..<sampled {
            live.append((lifetime(&rng).map { step + $0 }, weight, variance))
            alloc += Estimate(value: weight, variance: variance)
            allocSamples += 1
        }
    }

    /// What a snapshot at `step` says (blocks due to die by then are freed).
    mutating func observe(at step: Int) -> SiteObservation {
        live.removeAll { $0.death.map { $0 <= step } ?? false }
        var inuse = Estimate.zero
        for block in live { inuse += Estimate(value: block.weight, variance: block.variance) }
        return SiteObservation(inuse: inuse, alloc: alloc, inuseSamples: Int64(live.count), allocSamples: allocSamples)
    }
}

/// Snapshots one second apart, starting at `origin` seconds.
func time(_ step: Int, origin: Double = 1_000) -> UInt64 { UInt64((origin + Double(step)) * 1e9) }

/// One run with one site observed at `steps` steps, values given in exact mode.
func exactRun(_ values: [Double], allocPerStep: Double = 1e6, origin: Double = 1_000) -> LeakRun {
    LeakRun(snapshots: values.enumerated().map { step, value in
        RunSnapshot(timeNanoseconds: time(step, origin: origin), allocBytes: Double(step + 1) * allocPerStep,
                    sites: [0: SiteObservation(inuse: Estimate(value: value), alloc: Estimate(value: Double(step + 1) * allocPerStep),
                                               inuseSamples: 1, allocSamples: Int64(step + 1))])
    }, exact: true)
}

/// A flat sampled site in steady state: blocks living 50 steps on average, sampled since long before the series.
func flatSampledRun(rng: inout SplitMix64, steps: Int = 20, sites: Int = 1) -> LeakRun {
    var simulated = (0..<sites).map { _ in SimulatedSite(size: 1000, rate: 524_288) }
    var snapshots: [RunSnapshot] = []
    let lifetime: (inout SplitMix64) -> Int? = { rng in 1 + Int(-50 * Foundation.log(max(rng.uniform(), 1e-12))) }
    for step in -200..<steps {
        for i in simulated.indices { simulated[i].allocate(2000, at: step, lifetime: lifetime, rng: &rng) }
        guard step >= 0 else { continue }
        var observed: [Int: SiteObservation] = [:]
        for i in simulated.indices { observed[i] = simulated[i].observe(at: step) }
        snapshots.append(RunSnapshot(timeNanoseconds: time(step), allocBytes: Double(step + 201) * 2e6 * Double(sites), sites: observed))
    }
    return LeakRun(snapshots: snapshots, exact: false)
}

@Suite struct LeakAnalysisTests {
    @Test func mannKendallAndTheilSenOnKnownSeries() throws {
        // A strictly increasing series: every pair up, S = n(n−1)/2.
        let up = TrendStatistics.mannKendall((0..<10).map(Double.init))
        #expect(up.s == 45)
        #expect(up.variance == 125)  // 10·9·25/18
        #expect(abs(up.pValue - TrendStatistics.normalUpperTail(44 / 125.0.squareRoot())) < 1e-15)
        #expect(TrendStatistics.mannKendall((0..<10).map { -Double($0) }).pValue == 1)
        // Ties count against growth: a flat series is no trend, and neither is one step.
        #expect(TrendStatistics.mannKendall([Double](repeating: 3, count: 10)).pValue == 1)
        #expect(TrendStatistics.mannKendall([0, 0, 0, 0, 0, 5, 5, 5, 5, 5]).pValue > 0.3)
        // Split at the largest rise: a step is flat on both sides, a line rises on both (S = 3 + 3, Var = 2 · 3·2·11/18).
        #expect(LeakAnalysis.steplessTrend([1, 1, 1, 9, 9, 9]).pValue == 1)
        let line = LeakAnalysis.steplessTrend([0, 1, 2, 4, 5, 6])
        #expect(line.s == 6)
        #expect(abs(line.variance - 2 * 66.0 / 18) < 1e-12)
        // y = 3x + 2 with one outlier: the Theil-Sen slope ignores it.
        let x = (0..<11).map(Double.init)
        var y = x.map { 3 * $0 + 2 }
        y[5] = 1000
        let slope = try #require(TrendStatistics.theilSen(x: x, y: y, z: 1.96))
        #expect(slope.value == 3)
        #expect(slope.low <= 3 && slope.high >= 3)
        #expect(TrendStatistics.normalUpperTail(1.96) > 0.0249 && TrendStatistics.normalUpperTail(1.96) < 0.0251)
    }

    @Test func holmAdjustsStepDown() {
        // Sorted p: 0.01, 0.02, 0.03, 0.5 with m = 4: 0.04, 0.06, 0.06 (monotone), 0.5.
        let adjusted = TrendStatistics.holm([0.03, 0.5, 0.01, 0.02])
        let expected = [0.06, 0.5, 0.04, 0.06]
        for (a, e) in zip(adjusted, expected) { #expect(abs(a - e) < 1e-12) }
    }

    @Test func findsALinearSampledLeakWithItsRate() throws {
        var rng = SplitMix64(seed: 1)
        // Four workers, each leaking 500 blocks of 1000 B per second (never freed), sampled at 512 KiB
        // from their start; workers 3 and 4 start 5 s late and worker 2 dies at 15 s.
        var runs: [LeakRun] = []
        for worker in 0..<4 {
            var leak = SimulatedSite(size: 1000, rate: 524_288)
            let first = worker >= 2 ? 5 : 0, last = worker == 1 ? 15 : 19
            var snapshots: [RunSnapshot] = []
            for step in first...last {
                leak.allocate(500, at: step, lifetime: { _ in nil }, rng: &rng)
                snapshots.append(RunSnapshot(timeNanoseconds: time(step) + UInt64(worker) * 100_000_000,
                                             allocBytes: Double(step - first + 1) * 4e6, sites: [0: leak.observe(at: step)]))
            }
            runs.append(LeakRun(snapshots: snapshots, exact: false))
        }
        let result = LeakAnalysis.analyze(runs)
        let site = try #require(result.sites.first)
        #expect(site.verdict == .leak)
        #expect(site.confidence >= 0.99)
        // True growth: 500 kB/s per live worker; 2 live for 5 s, 4 for 10 s, 3 for 4 s: 2·5+4·10+3·4 = 62 worker-seconds
        // over 19 s, about 1.63 MB/s on average = 97.9 MB/min. The interval must hold it.
        let perMinute = try #require(site.perMinute)
        let truth = 62 * 500_000.0 / 19 * 60
        #expect(perMinute.low <= truth && truth <= perMinute.high, "interval \(perMinute.low)..\(perMinute.high) misses \(truth)")
        #expect(perMinute.value > truth * 0.7 && perMinute.value < truth * 1.3)
        #expect(result.moments.count == 20)
    }

    @Test func flatExactSeriesWithNoiseIsFlaggedAtMostAtTheStatedRate() {
        var rng = SplitMix64(seed: 2)
        var flagged = 0
        let trials = 2000
        for _ in 0..<trials {
            let values = (0..<20).map { _ in 10e6 + 1e5 * rng.normal() }
            let site = LeakAnalysis.analyze([exactRun(values)], options: LeakOptions(minConfidence: 0.95)).sites[0]
            if site.verdict != .steady { flagged += 1 }
        }
        // At 95%, one site: at most 5% expected (binomial σ ≈ 0.5%).
        #expect(Double(flagged) / Double(trials) <= 0.065, "\(flagged) of \(trials) flat series flagged")
    }

    @Test func persistentSampledBlocksDoNotInflateFalsePositives() {
        // A flat site whose sampled blocks live ~50 snapshots: successive estimates share most of their
        // samples, so the series wanders like a random walk. A trend test on the levels alone calls it
        // growing far more often than 5%; the test on the sampled blocks that came and went does not.
        var rng = SplitMix64(seed: 3)
        var flagged = 0, naive = 0
        let trials = 400
        for _ in 0..<trials {
            let run = flatSampledRun(rng: &rng)
            let site = LeakAnalysis.analyze([run], options: LeakOptions(minConfidence: 0.95)).sites[0]
            if site.verdict != .steady && site.verdict != .tooFewSamples { flagged += 1 }
            let levels = run.snapshots.map { $0.sites[0]!.inuse.value }
            if TrendStatistics.mannKendall(levels).pValue <= 0.05 { naive += 1 }
        }
        #expect(Double(flagged) / Double(trials) <= 0.065, "\(flagged) of \(trials) flat sampled sites flagged")
        #expect(Double(naive) / Double(trials) >= 0.12, "the simulation should show why: naive Mann-Kendall flagged only \(naive)")
    }

    @Test func aStepIsNotATrend() {
        // Exact: 10 MB, then 20 MB from moment 8 on (a cache filled once).
        let step = (0..<20).map { $0 < 8 ? 10e6 : 20e6 }
        #expect(LeakAnalysis.analyze([exactRun(step)]).sites[0].verdict == .steady)
        // With noise on both sides, over many series: flagged at most at about the stated rate.
        var rng = SplitMix64(seed: 4)
        var flagged = 0
        for trial in 0..<500 {
            let at = 3 + trial % 14
            let values = (0..<20).map { ($0 < at ? 10e6 : 20e6) + 1e5 * rng.normal() }
            if LeakAnalysis.analyze([exactRun(values)], options: LeakOptions(minConfidence: 0.95)).sites[0].verdict != .steady { flagged += 1 }
        }
        #expect(flagged <= 35, "\(flagged) of 500 noisy steps flagged")
        // The same rise spread over the series is found.
        let ramp = (0..<20).map { 10e6 + 10e6 * Double($0) / 19 + 1e5 * rng.normal() }
        #expect(LeakAnalysis.analyze([exactRun(ramp)]).sites[0].verdict == .leak)
    }

    @Test func holmKeepsAThousandFlatSitesQuiet() {
        // 20 services of 1000 flat sites each (exact mode, noisy): at 95% family-wise, a service
        // shows a false suspect in at most about 1 in 20; without the correction most would show some.
        var rng = SplitMix64(seed: 5)
        var noisyFamilies = 0, uncorrectedFamilies = 0
        for _ in 0..<20 {
            var snapshots: [RunSnapshot] = []
            for step in 0..<20 {
                var sites: [Int: SiteObservation] = [:]
                for site in 0..<1000 {
                    sites[site] = SiteObservation(inuse: Estimate(value: 1e6 + 1e4 * rng.normal()), alloc: Estimate(value: Double(step) * 1e6),
                                                  inuseSamples: 1, allocSamples: Int64(step))
                }
                snapshots.append(RunSnapshot(timeNanoseconds: time(step), allocBytes: Double(step + 1) * 1e9, sites: sites))
            }
            let result = LeakAnalysis.analyze([LeakRun(snapshots: snapshots, exact: true)], options: LeakOptions(minConfidence: 0.95))
            #expect(result.tested == 1000)
            if result.sites.contains(where: { $0.verdict != .steady }) { noisyFamilies += 1 }
            if result.sites.contains(where: { $0.growthP <= 0.05 }) { uncorrectedFamilies += 1 }
        }
        #expect(noisyFamilies <= 3, "\(noisyFamilies) of 20 services had a false suspect")
        #expect(uncorrectedFamilies >= 10, "without the correction only \(uncorrectedFamilies) of 20 services would show a false suspect")
    }

    @Test func growthThatFollowsTrafficIsGrowingNotLeak() throws {
        // Traffic ramps from 1 to 3 MB allocated per second. Site 0 holds what is in flight (0.1 s of
        // traffic's worth of bytes): it rises with the ramp. Site 1 keeps 1% of every byte allocated.
        var snapshots: [RunSnapshot] = []
        var allocated = 0.0
        for step in 0..<20 {
            let rate = 1e6 + 2e6 * Double(step) / 19
            allocated += rate
            let inFlight = 0.1 * rate
            let kept = 0.01 * allocated
            snapshots.append(RunSnapshot(timeNanoseconds: time(step), allocBytes: allocated, sites: [
                0: SiteObservation(inuse: Estimate(value: inFlight), alloc: Estimate(value: allocated / 2), inuseSamples: 1, allocSamples: 1),
                1: SiteObservation(inuse: Estimate(value: kept), alloc: Estimate(value: allocated / 2), inuseSamples: 1, allocSamples: 1),
            ]))
        }
        let result = LeakAnalysis.analyze([LeakRun(snapshots: snapshots, exact: true)])
        let inFlight = try #require(result.sites.first { $0.site == 0 })
        let kept = try #require(result.sites.first { $0.site == 1 })
        #expect(inFlight.verdict == .growing)
        #expect(kept.verdict == .leak)
        // Bytes kept per allocated MiB: 1% of 1 MiB.
        let perMiB = try #require(kept.perAllocatedMiB)
        #expect(abs(perMiB - 0.01 * 1_048_576) < 1)
    }

    @Test func tooFewMomentsOrSamples() {
        #expect(LeakAnalysis.analyze([exactRun([1, 2, 3, 4])]).sites[0].verdict == .tooFewSamples)
        // Sampled, two samples in all: nothing to say.
        let obs = SiteObservation(inuse: Estimate(value: 5e5, variance: 2.5e11), alloc: Estimate(value: 5e5, variance: 2.5e11),
                                  inuseSamples: 1, allocSamples: 1)
        let run = LeakRun(snapshots: (0..<20).map { step in
            RunSnapshot(timeNanoseconds: time(step), allocBytes: 1e6 * Double(step + 1), sites: [0: step < 10 ? .zero : obs])
        }, exact: false)
        #expect(LeakAnalysis.analyze([run]).sites[0].verdict == .tooFewSamples)
    }
}
