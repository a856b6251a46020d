// `heapsnap leaks`: snapshot files of one program in, leak suspects out.
// Each file goes through the same stages as `top` (read, symbolize, trim
// allocator and runtime frames, filter, group by line), so a site here is a
// row there; the pipeline's symbolizer caches every (module, address) it has
// named, so a module is symbolized once across all the files. The sites'
// values per run then go to LeakAnalysis.

/// A site `leaks` reports on: a `top` row's key, and the test's answer.
public struct LeakSite: Sendable, Hashable {
    /// `file:line` (or function, file, module, per `groupBy`).
    public var label: String
    public var key: GroupKey
    /// A representative frame (the row's, in the newest snapshot that has the site).
    public var frame: Frame?
    public var trend: SiteTrend
}

/// One run (process sampling session) the report read.
public struct LeakProcess: Sendable, Hashable {
    public var pid: UInt32
    public var hostname: String
    public var commandLine: [String]
    public var snapshots: Int
    /// Its first and last snapshot, ns since the Unix epoch.
    public var firstNanoseconds: UInt64
    public var lastNanoseconds: UInt64
}

/// What `heapsnap leaks` prints.
public struct LeakReport: Sendable, Hashable {
    /// The program's name and executable.
    public var program: String
    public var executable: String
    public var processes: [LeakProcess]
    /// Grid moments, ns since the Unix epoch, and their spacing.
    public var moments: [UInt64]
    public var stepNanoseconds: UInt64
    /// Sampling rates of the runs (1 is exact mode), distinct, ascending.
    public var rates: [UInt64]
    public var groupBy: GroupBy
    public var options: LeakOptions
    /// The filter applied to every snapshot.
    public var filter: ProfileFilter
    /// Sites tested (the family Holm corrects over).
    public var tested: Int
    /// Every site with a sample, sorted: leaks, growing, steady, too few samples; within each, by growth per minute.
    public var sites: [LeakSite]
    /// Symbolization trouble, one line each.
    public var warnings: [String]
}

/// Builds a `LeakReport` from a program's snapshot files.
public struct LeakFinder {
    public var pipeline: Pipeline
    public var filter: ProfileFilter
    public var groupBy: GroupBy
    public var options: LeakOptions

    public init(pipeline: Pipeline, filter: ProfileFilter = ProfileFilter(), groupBy: GroupBy = .line, options: LeakOptions = LeakOptions()) {
        self.pipeline = pipeline
        self.filter = filter
        self.groupBy = groupBy
        self.options = options
    }

    /// The report on `program`'s runs. A file that fails to read (damaged further on than its header) is left out and given to `skipped`.
    /// - Complexity: one read, symbolization (cached per address) and aggregation per file, then `LeakAnalysis.analyze`.
    public func report(_ program: SnapshotSeries.Program, skipped: (HeapSnapError) -> Void = { _ in }) -> LeakReport {
        var siteIndex: [GroupKey: Int] = [:]
        var keys: [GroupKey] = []
        var frames: [Int: Frame] = [:]
        var warnings: [String] = []
        var runs: [LeakRun] = []
        var processes: [LeakProcess] = []
        var rates = Set<UInt64>()
        // Rows by allocated bytes: a site that allocated but held nothing at this moment still has a row, with the
        // allocation counts the sampling test needs.
        let aggregator = Aggregator(options: AggregationOptions(groupBy: groupBy, metric: .allocBytes))
        for run in program.runs {
            var snapshots: [RunSnapshot] = []
            var exact = true
            for entry in run.entries {
                let snapshot: Snapshot
                do {
                    snapshot = try pipeline.read(entry.path)
                } catch {
                    skipped(error)
                    continue
                }
                let profile = filter.apply(pipeline.profile(of: snapshot, file: entry.path))
                for warning in profile.warnings where !warnings.contains(warning) { warnings.append(warning) }
                var sites: [Int: SiteObservation] = [:]
                for row in aggregator.aggregate(profile).rows {
                    let index: Int
                    if let known = siteIndex[row.key] {
                        index = known
                    } else {
                        index = keys.count
                        siteIndex[row.key] = index
                        keys.append(row.key)
                    }
                    if let frame = row.frame { frames[index] = frame }
                    sites[index] = SiteObservation(inuse: row.values.inuseBytes, alloc: row.values.allocBytes,
                                                   inuseSamples: row.values.inuseSamples, allocSamples: row.values.allocSamples)
                }
                exact = exact && snapshot.header.flags.contains(.exact)
                rates.insert(snapshot.header.rate)
                snapshots.append(RunSnapshot(timeNanoseconds: snapshot.header.timeNanoseconds,
                                             allocBytes: profile.source.totals.allocBytes.value, sites: sites))
            }
            guard !snapshots.isEmpty else { continue }
            runs.append(LeakRun(snapshots: snapshots, exact: exact))
            let last = run.entries.last!.header
            processes.append(LeakProcess(pid: run.pid, hostname: run.hostname, commandLine: last.commandLine, snapshots: snapshots.count,
                                         firstNanoseconds: snapshots.first!.timeNanoseconds, lastNanoseconds: snapshots.last!.timeNanoseconds))
        }
        let result = LeakAnalysis.analyze(runs, options: options)
        let rank: [LeakVerdict: Int] = [.leak: 0, .growing: 1, .steady: 2, .tooFewSamples: 3]
        var sites = result.sites.map { trend in
            LeakSite(label: keys[trend.site].label, key: keys[trend.site], frame: frames[trend.site], trend: trend)
        }
        sites.sort { a, b in
            let (ra, rb) = (rank[a.trend.verdict]!, rank[b.trend.verdict]!)
            if ra != rb { return ra < rb }
            let (ga, gb) = (a.trend.perMinute?.value ?? 0, b.trend.perMinute?.value ?? 0)
            if ga != gb { return ga > gb }
            if a.trend.inuseNow.value != b.trend.inuseNow.value { return a.trend.inuseNow.value > b.trend.inuseNow.value }
            return GroupKey.ordered(a.key, b.key)
        }
        return LeakReport(program: program.name, executable: program.executable, processes: processes, moments: result.moments,
                          stepNanoseconds: result.stepNanoseconds, rates: rates.sorted(), groupBy: groupBy, options: options,
                          filter: filter, tested: result.tested, sites: sites, warnings: warnings)
    }
}
