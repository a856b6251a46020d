// The output stage: a `ProfileResult` becomes bytes, as the `top`/`diff`
// table (text, JSON, CSV), an interactive flamegraph (a diff flamegraph for
// a diff), or an export (folded, pprof, speedscope, the profile's JSON). The
// CLI writes them to stdout or a file, the web view answers with them; both
// ask this one switch, so a request and a command line that say the same
// thing get the same bytes.

/// What a flamegraph looks like, beyond the question (`ProfileQuery.aggregation.metric` sizes it).
public struct FlameGraphShape: Sendable, Hashable {
    /// Allocation sites at the root (an icicle).
    public var inverted: Bool
    /// For a diff: scale the old side to the new side's total first.
    public var normalize: Bool
    /// Image width in pixels.
    public var width: Int

    public init(inverted: Bool = false, normalize: Bool = false, width: Int = 1200) {
        self.inverted = inverted
        self.normalize = normalize
        self.width = width
    }
}

/// The formats other tools read.
public enum ExportFormat: String, Sendable, CaseIterable {
    /// `frame;frame;frame value` lines for flamegraph.pl and inferno (the query's metric).
    case folded
    /// gzip-compressed profile.proto with all four sample types.
    case pprof
    /// A speedscope file, one profile per metric, the query's first.
    case speedscope
    /// The symbolized profile (`heapsnap.profile/1`); for a diff, its whole table (`heapsnap.diff/1`).
    case json
}

/// One rendering of a result.
public enum Output: Sendable, Hashable {
    /// The `top` or `diff` table in `format` (the query's grouping, metric and limit).
    case report(OutputFormat, RenderOptions = RenderOptions())
    /// The interactive flamegraph SVG (differential for a diff).
    case flamegraph(FlameGraphShape = FlameGraphShape())
    /// An export.
    case export(ExportFormat)
}

extension ProfileResult {
    /// The bytes of this result as `output`. A diff cannot be exported as folded or pprof
    /// (`diffNotExportable`); its JSON export is its whole table (no row limit).
    public func render(_ output: Output) throws(HeapSnapError) -> [UInt8] {
        switch output {
        case .report(let format, let options):
            return Array(format.renderer(options).render(report).utf8)
        case .flamegraph(let shape):
            let builder = FlameGraphBuilder(metric: query.aggregation.metric, inverted: shape.inverted,
                                            normalize: shape.normalize && profile.isDiff)
            let tree = builder.tree(profile)
            var options = builder.options(for: profile, tree: tree)
            options.width = shape.width
            return Array(FlameGraphSVG.render(tree, options: options).utf8)
        case .export(.folded):
            guard !profile.isDiff else {
                throw .diffNotExportable(format: "folded", instead: "export each snapshot's folded file, or the diff's SVG or JSON")
            }
            return Array(FoldedExporter.export(profile, metric: query.aggregation.metric).utf8)
        case .export(.pprof):
            return try PprofExporter.export(profile)
        case .export(.speedscope):
            return try SpeedscopeExporter.export(profile, first: query.aggregation.metric)
        case .export(.json):
            guard profile.isDiff else { return try ProfileJSONExporter.export(profile) }
            var whole = self
            whole.query.aggregation.limit = nil
            return Array(JSONRenderer().render(whole.report).utf8)
        }
    }
}
