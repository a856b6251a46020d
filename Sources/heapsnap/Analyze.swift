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
              heapsnap top /tmp                             # a service: the newest snapshot of each process, merged
              heapsnap top --per-process /tmp               # … with a column per process
            """)

    @Argument(help: "Snapshot files (FILE@peak for its peak) or directories; several are merged, the newest snapshot of each process.")
    var snapshots: [String]

    @OptionGroup var moment: MomentOptions
    @OptionGroup var program: ProgramOptions

    @Flag(name: .long, help: "With several processes merged: a column per process (at most 8, the rest as 'others') and a line about each.")
    var perProcess = false

    @OptionGroup var aggregate: AggregateOptions
    @OptionGroup var symbols: SymbolOptions
    @OptionGroup var output: OutputOptions

    func validate() throws {
        if snapshots.isEmpty { throw ValidationError("name at least one snapshot file or directory") }
    }

    func run() throws {
        let query = ProfileQuery(try moment.selection(snapshots, program: program).selection, trimming: symbols.trimming, filter: aggregate.filters.filter,
                                 aggregation: aggregate.options)
        try write(answer(query, symbols: symbols, as: .report(output.format, output.renderOptions), perProcess: perProcess), to: "-")
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
            source location, not address). Each side may be a directory (the
            service at that moment: the newest snapshot of each process, merged);
            one directory alone compares each process's first snapshot with its
            newest, what the service grew since sampling started.

            Examples:
              heapsnap diff /tmp/heapsnap.4242.0.heapsnap /tmp/heapsnap.4242.3.heapsnap
              heapsnap diff --by function --metric inuse-objects old.heapsnap new.heapsnap
              heapsnap diff snap.heapsnap@peak snap.heapsnap   # what was alive at the peak that is gone now
              heapsnap diff /tmp/before /tmp/after             # a service at two moments
              heapsnap diff /tmp                               # a service since sampling started
            """)

    @Argument(help: "OLD NEW: two snapshots (FILE@peak for a peak) or directories; or one directory.")
    var sides: [String]

    @OptionGroup var program: ProgramOptions

    @OptionGroup var aggregate: AggregateOptions
    @OptionGroup var symbols: SymbolOptions
    @OptionGroup var output: OutputOptions

    func validate() throws {
        if sides.count > 2 || sides.isEmpty { throw ValidationError("give two snapshots or directories (OLD NEW), or one directory") }
        if sides.count == 1, !ServiceSelection.isDirectory(sides[0]) {
            throw ValidationError("\(sides[0]): one argument must be a directory (its processes' first snapshots against their newest); else give OLD NEW")
        }
    }

    func run() throws {
        let (old, new) = sides.count == 2
            ? (try program.resolve([sides[0]]), try program.resolve([sides[1]]))
            : (try program.resolve(sides, pick: .first), try program.resolve(sides, quiet: true))
        let query = ProfileQuery(new.selection, base: old.selection,
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
