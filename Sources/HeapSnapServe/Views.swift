// A "view" is what the page shows for a selection: one snapshot, a merge of
// several, or the diff of two (or of a peak and a later state), through the
// same stages as the CLI: symbolized profile (cached) -> trim allocator and
// runtime frames -> new minus old -> filter -> aggregate or draw or export.

import HeapSnapKit

/// The parameters of a view, as the page sends them (the CLI's options, by the same names).
struct ViewRequest: Sendable, Hashable {
    /// Snapshot ids; several are merged.
    var files: [String]
    /// The old side of a diff (ids; several are merged); empty for no diff unless `basePeak`.
    var base: [String] = []
    /// The new side is the files' peak.
    var peak = false
    /// The old side is the peak of `base` (or, without `base`, of `files`): "peak → now".
    var basePeak = false
    var aggregation = AggregationOptions(limit: 50)
    var filter = ProfileFilter()
    var keepAllocatorFrames = false
    var keepRuntimeFrames = false
    var inverted = false
    var normalize = false
    var width = 1200

    init(files: [String]) { self.files = files }

    /// Whether the view is new minus old.
    var isDiff: Bool { !base.isEmpty || basePeak }

    /// Parses query parameters: f (repeatable), base (repeatable), peak, basePeak, by, metric,
    /// cumulative, include, exclude (repeatable), allFrames, limit, keepAllocatorFrames,
    /// keepRuntimeFrames, inverted, normalize, width. Throws naming the bad parameter.
    init(query: (String) -> [String]) throws(ServeError) {
        files = query("f")
        guard !files.isEmpty else { throw .badRequest("name a snapshot with f=ID") }
        guard files.count <= 64 else { throw .badRequest("at most 64 snapshots can be merged") }
        base = query("base")
        guard base.count <= 64 else { throw .badRequest("at most 64 snapshots can be merged") }
        func flag(_ name: String) throws(ServeError) -> Bool {
            switch query(name).last {
            case nil, "0", "false", "": return false
            case "1", "true", "on": return true
            case let other?: throw .badRequest("\(name)=\(other): give 1 or 0")
            }
        }
        peak = try flag("peak")
        basePeak = try flag("basePeak")
        if let by = query("by").last {
            guard let value = GroupBy(rawValue: by) else {
                throw .badRequest("by=\(by): give one of \(GroupBy.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            aggregation.groupBy = value
        }
        if let metric = query("metric").last {
            guard let value = Metric(rawValue: metric) else {
                throw .badRequest("metric=\(metric): give one of \(Metric.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            aggregation.metric = value
        }
        aggregation.cumulative = try flag("cumulative")
        if aggregation.cumulative && aggregation.groupBy == .traceback {
            throw .badRequest("cumulative does not apply to by=traceback")
        }
        if let limit = query("limit").last {
            guard let value = Int(limit), (0...100_000).contains(value) else { throw .badRequest("limit=\(limit): give 0 (all) to 100000") }
            aggregation.limit = value == 0 ? nil : value
        }
        filter = ProfileFilter(include: query("include").filter { !$0.isEmpty }, exclude: query("exclude").filter { !$0.isEmpty },
                               allFrames: try flag("allFrames"))
        keepAllocatorFrames = try flag("keepAllocatorFrames")
        keepRuntimeFrames = try flag("keepRuntimeFrames")
        inverted = try flag("inverted")
        normalize = try flag("normalize")
        if let w = query("width").last {
            guard let value = Int(w), (200...20000).contains(value) else { throw .badRequest("width=\(w): give 200 to 20000") }
            width = value
        }
    }

    /// The trimming stages of this view (`heapsnap top --by traceback` keeps runtime frames too).
    func trim(_ profile: Profile) -> Profile {
        let allocator = AllocatorFrames(patterns: keepAllocatorFrames ? [] : AllocatorFrames.defaultPatterns)
        let trimmed = allocator.trim(profile)
        return keepRuntimeFrames || aggregation.groupBy == .traceback ? trimmed : RuntimeFrames().trim(trimmed)
    }
}

/// The outcome of building a view's profile.
enum ViewProfile: Sendable {
    case ready(Profile)
    case pending(done: Int, total: Int)
}

extension ViewRequest {
    /// The view's filtered profile (a diff when `isDiff`), or pending while a side is being symbolized.
    func profile(directories: ServedDirectories, store: ProfileStore, wait: Duration) async throws(ServeError) -> ViewProfile {
        var newFiles: [ServedFile] = []
        for id in files { newFiles.append(try directories.resolve(id)) }
        var baseFiles: [ServedFile] = []
        for id in base { baseFiles.append(try directories.resolve(id)) }
        if basePeak, baseFiles.isEmpty { baseFiles = newFiles }

        // Start both sides before waiting on either.
        async let newLookup = store.profile(newFiles, peak: peak, wait: wait)
        async let baseLookup: ProfileLookup? = isDiff ? store.profile(baseFiles, peak: basePeak, wait: wait) : nil
        let (newSide, baseSide) = await (newLookup, baseLookup)
        var pending: (Int, Int)?
        var profiles: [Profile] = []
        for lookup in [newSide, baseSide].compactMap({ $0 }) {
            switch lookup {
            case .ready(let profile): profiles.append(profile)
            case .pending(let done, let total): pending = (done + (pending?.0 ?? 0), total + (pending?.1 ?? 0))
            case .failed(let error): throw error
            }
        }
        if let pending { return .pending(done: pending.0, total: pending.1) }
        var profile = trim(profiles[0])
        if profiles.count > 1 { profile = profile.subtracting(trim(profiles[1])) }
        return .ready(filter.apply(profile))
    }

    /// The flamegraph SVG of `profile` (this view's profile).
    func flamegraph(_ profile: Profile) -> String {
        let builder = FlameGraphBuilder(metric: aggregation.metric, inverted: inverted, normalize: normalize && profile.isDiff)
        let tree = builder.tree(profile)
        var options = builder.options(for: profile, tree: tree)
        options.width = width
        return FlameGraphSVG.render(tree, options: options)
    }
}

/// The download formats.
enum DownloadFormat: String, Sendable, CaseIterable {
    case svg, pprof, folded, json, speedscope

    /// The file name extension and content type.
    var fileExtension: String {
        switch self {
        case .svg: "svg"
        case .pprof: "pb.gz"
        case .folded: "folded"
        case .json, .speedscope: "json"
        }
    }

    var contentType: String {
        switch self {
        case .svg: "image/svg+xml"
        case .pprof: "application/octet-stream"
        case .folded: "text/plain; charset=utf-8"
        case .json, .speedscope: "application/json"
        }
    }

    /// The bytes of `profile` (the view's) in this format; a diff exports as SVG or as the diff table's JSON.
    func export(_ profile: Profile, view: ViewRequest) throws(ServeError) -> [UInt8] {
        do throws(HeapSnapError) {
            switch self {
            case .svg: return Array(view.flamegraph(profile).utf8)
            case .pprof: return try PprofExporter.export(profile)
            case .folded:
                guard !profile.isDiff else {
                    throw HeapSnapError.diffNotExportable(format: "folded", instead: "download each snapshot's folded file, or the diff's SVG or JSON")
                }
                return Array(FoldedExporter.export(profile, metric: view.aggregation.metric).utf8)
            case .speedscope: return try SpeedscopeExporter.export(profile, first: view.aggregation.metric)
            case .json:
                if profile.isDiff {
                    var options = view.aggregation
                    options.limit = nil
                    return Array(JSONRenderer().render(Aggregator(options: options).aggregate(profile)).utf8)
                }
                return try ProfileJSONExporter.export(profile)
            }
        } catch {
            throw .notExportable(error.description)
        }
    }
}
