// top, diff, info: parse into a ProfileQuery; HeapSnapKit's executor and output stage do the rest.

import ArgumentParser
import HeapSnapKit

struct Top: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show which code holds the most memory in a snapshot (tracemalloc's statistics).",
        discussion: """
            Examples:
              heapsnap top /tmp/heapsnap.4242.0.heapsnap
              heapsnap top --by function --metric alloc-bytes --limit 10 snap.heapsnap
              heapsnap top --by traceback --include '*/src/*' snap.heapsnap
              heapsnap top --format json snap.heapsnap > top.json
              heapsnap top --at peak snap.heapsnap          # what was in use at the peak (also: snap.heapsnap@peak)
            """)

    @Argument(help: "The snapshot file (FILE@peak for its peak).")
    var snapshot: String

    @OptionGroup var moment: MomentOptions
    @OptionGroup var aggregate: AggregateOptions
    @OptionGroup var symbols: SymbolOptions
    @OptionGroup var output: OutputOptions

    func run() throws {
        let query = ProfileQuery(moment.selection(snapshot), trimming: symbols.trimming, filter: aggregate.filters.filter,
                                 aggregation: aggregate.options)
        try write(answer(query, symbols: symbols, as: .report(output.format, output.renderOptions)), to: "-")
    }
}

struct Diff: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show what changed between two snapshots, biggest change first (tracemalloc's compare_to).",
        discussion: """
            Rows are new − old, sorted by the size of the change; '~' marks a change
            within the 95% noise band of the two estimates. Either side may be a
            file's peak, FILE@peak. The snapshots may come
            from different processes of the same program (rows are matched by
            source location, not address).

            Examples:
              heapsnap diff /tmp/heapsnap.4242.0.heapsnap /tmp/heapsnap.4242.3.heapsnap
              heapsnap diff --by function --metric inuse-objects old.heapsnap new.heapsnap
              heapsnap diff snap.heapsnap@peak snap.heapsnap   # what was alive at the peak that is gone now
            """)

    @Argument(help: "The older snapshot (FILE@peak for its peak).")
    var old: String
    @Argument(help: "The newer snapshot (FILE@peak for its peak).")
    var new: String

    @OptionGroup var aggregate: AggregateOptions
    @OptionGroup var symbols: SymbolOptions
    @OptionGroup var output: OutputOptions

    func run() throws {
        let query = ProfileQuery(SnapshotSelection(SnapshotRef(argument: new)), base: SnapshotSelection(SnapshotRef(argument: old)),
                                 trimming: symbols.trimming, filter: aggregate.filters.filter, aggregation: aggregate.options)
        try write(answer(query, symbols: symbols, as: .report(output.format, output.renderOptions)), to: "-")
    }
}

struct Info: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show a snapshot's process, counters, modules with build-ids, and warnings.",
        discussion: """
            Each module's status tells whether this host can symbolize it: ok (file
            with the same build-id), debug file (found by build-id), missing, or
            build-id mismatch (frames will show as module+0xADDR).

            Examples:
              heapsnap info /tmp/heapsnap.4242.0.heapsnap
              heapsnap info --format json snap.heapsnap
            """)

    @Argument(help: "The snapshot file.")
    var snapshot: String

    @Option(name: .customLong("debug-dir"), help: ArgumentHelp("Directory with separate debug files under .build-id/ (repeatable).", valueName: "dir"))
    var debugDirectories: [String] = []

    @OptionGroup var output: OutputOptions

    func run() throws {
        do {
            let data = try SnapshotReader.read(path: snapshot)
            let locator = FileSystemModuleLocator(debugDirectories: debugDirectories)
            let info = InfoReport(snapshot: data, file: snapshot, locator: locator)
            emit(output.format.renderer(output.renderOptions).render(info))
        } catch {
            throw fail(error)
        }
    }
}
