// A "view" is what the page shows for a selection: one snapshot, a merge of
// several, or the diff of two (or of a peak and a later state). A request
// parses into the CLI's `ProfileQuery` (file ids for paths) and a
// `FlameGraphShape`; the sides come symbolized from the cache (ProfileStore),
// `ProfileQuery.result` does the rest of the question and the output stage
// (`ProfileResult.render`) writes the answer, as for `heapsnap top|diff|flamegraph|export`.

import HeapSnapKit

/// The parameters of a view, as the page sends them (the CLI's options, by the same names).
struct ViewRequest: Sendable, Hashable {
    /// The question, with served file ids as its files.
    var query: ProfileQuery
    /// The flamegraph's shape (inverted, normalize, width).
    var shape = FlameGraphShape()

    /// Parses query parameters: f (repeatable), base (repeatable), peak, basePeak, by, metric,
    /// cumulative, include, exclude (repeatable), allFrames, limit, keepAllocatorFrames,
    /// keepRuntimeFrames, inverted, normalize, width. Throws naming the bad parameter.
    init(query: (String) -> [String]) throws(ServeError) {
        let files = query("f")
        guard !files.isEmpty else { throw .badRequest("name a snapshot with f=ID") }
        guard files.count <= 64 else { throw .badRequest("at most 64 snapshots can be merged") }
        let base = query("base")
        guard base.count <= 64 else { throw .badRequest("at most 64 snapshots can be merged") }
        func flag(_ name: String) throws(ServeError) -> Bool {
            switch query(name).last {
            case nil, "0", "false", "": return false
            case "1", "true", "on": return true
            case let other?: throw .badRequest("\(name)=\(other): give 1 or 0")
            }
        }
        let peak = try flag("peak"), basePeak = try flag("basePeak")
        var aggregation = AggregationOptions(limit: 50)
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
        let filter = ProfileFilter(include: query("include").filter { !$0.isEmpty }, exclude: query("exclude").filter { !$0.isEmpty },
                                   allFrames: try flag("allFrames"))
        let trimming = Trimming(allocatorFrames: !(try flag("keepAllocatorFrames")), runtimeFrames: !(try flag("keepRuntimeFrames")))
        // "peak → now": basePeak without base is the peak of the same files.
        let old: SnapshotSelection? = base.isEmpty && !basePeak ? nil
            : SnapshotSelection(files: base.isEmpty ? files : base, moment: basePeak ? .peak : .snapshot)
        self.query = ProfileQuery(SnapshotSelection(files: files, moment: peak ? .peak : .snapshot), base: old,
                                  trimming: trimming, filter: filter, aggregation: aggregation)
        shape.inverted = try flag("inverted")
        shape.normalize = try flag("normalize")
        if let w = query("width").last {
            guard let value = Int(w), (200...20000).contains(value) else { throw .badRequest("width=\(w): give 200 to 20000") }
            shape.width = value
        }
    }
}

/// The outcome of building a view's profile.
enum ViewProfile: Sendable {
    case ready(ProfileResult)
    case pending(done: Int, total: Int)
}

extension ViewRequest {
    /// The view's answer, or pending while a side is being symbolized.
    func result(directories: ServedDirectories, store: ProfileStore, wait: Duration) async throws(ServeError) -> ViewProfile {
        func resolve(_ selection: SnapshotSelection) throws(ServeError) -> [ServedFile] {
            var files: [ServedFile] = []
            for id in selection.files { files.append(try directories.resolve(id)) }
            return files
        }
        let newSide = (query.snapshots, try resolve(query.snapshots))
        var baseSide: (SnapshotSelection, [ServedFile])?
        if let base = query.base { baseSide = (base, try resolve(base)) }
        func lookup(_ side: (SnapshotSelection, [ServedFile])?) async -> ProfileLookup? {
            guard let side else { return nil }
            return await store.profile(side.0, files: side.1, wait: wait)
        }

        // Start both sides before waiting on either.
        async let newLookup = lookup(newSide)
        async let baseLookup = lookup(baseSide)
        let lookups = await [newLookup, baseLookup]
        var pending: (Int, Int)?
        var profiles: [Profile] = []
        for lookup in lookups.compactMap({ $0 }) {
            switch lookup {
            case .ready(let profile): profiles.append(profile)
            case .pending(let done, let total): pending = (done + (pending?.0 ?? 0), total + (pending?.1 ?? 0))
            case .failed(let error): throw error
            }
        }
        if let pending { return .pending(done: pending.0, total: pending.1) }
        return .ready(query.result(new: profiles[0], base: profiles.count > 1 ? profiles[1] : nil))
    }
}

/// The download formats: the output stage's flamegraph and exports.
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

    /// What the output stage renders for this format.
    func output(_ view: ViewRequest) -> Output {
        switch self {
        case .svg: .flamegraph(view.shape)
        case .pprof: .export(.pprof)
        case .folded: .export(.folded)
        case .json: .export(.json)
        case .speedscope: .export(.speedscope)
        }
    }
}
