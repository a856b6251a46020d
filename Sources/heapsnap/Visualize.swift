// flamegraph, export: parse into a ProfileQuery and an Output (HeapSnapKit draws or writes);
// merge and timeline: read -> merge or build the timeline -> write.

import ArgumentParser
import Foundation
import HeapSnapKit

/// Writes `bytes` to `path` ("-" for stdout), or fails with a one-line error.
func write(_ bytes: [UInt8], to path: String) throws {
    if path == "-" {
        writeAll(1, bytes)
        return
    }
    do {
        try Data(bytes).write(to: URL(fileURLWithPath: path), options: .atomic)
    } catch {
        throw fail(.cannotWrite(file: path, step: "write", reason: (error as NSError).localizedDescription))
    }
}

struct FlameGraph: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "flamegraph",
        abstract: "Draw a memory flamegraph (or, with --diff, a differential one) as an interactive SVG.",
        discussion: """
            The SVG is one self-contained file: hover for bytes, ± (95%), count and
            share; click to zoom; Ctrl-F to search (shows the matched share); Esc
            resets. With --diff OLD the shape is NEW's and colour shows the change:
            red grew, blue shrank, grey is within noise.

            Examples:
              heapsnap flamegraph /tmp/heapsnap.4242.1.heapsnap -o heap.svg
              heapsnap flamegraph --inverted --metric alloc-bytes snap.heapsnap -o sites.svg
              heapsnap flamegraph new.heapsnap --diff old.heapsnap --normalize -o growth.svg
              heapsnap flamegraph snap.heapsnap --at peak -o peak.svg
              heapsnap flamegraph snap.heapsnap --diff snap.heapsnap@peak -o freed.svg   # blue: gone since the peak
            """)

    @Argument(help: "Snapshot files (the newer with --diff; FILE@peak for a peak) or directories; several are merged, the newest of each process.")
    var snapshots: [String]

    @OptionGroup var moment: MomentOptions
    @OptionGroup var program: ProgramOptions

    @Option(name: .long, help: ArgumentHelp("Draw the change from this older snapshot (FILE@peak for its peak) or directory.", valueName: "old"))
    var diff: String?

    @Flag(name: .long, help: "With --diff: scale the old snapshot to the new one's total first.")
    var normalize = false

    @Flag(name: .long, help: "Icicle graph with the allocation sites at the root.")
    var inverted = false

    @Option(name: [.short, .long], help: "Where to write the SVG ('-' for stdout).")
    var output: String

    @Option(name: .long, help: "Image width in pixels.")
    var width = 1200

    @Option(name: .long, help: "Sized by: inuse-bytes, inuse-objects, alloc-bytes (everything allocated since start), alloc-objects.")
    var metric: Metric = .inuseBytes

    @OptionGroup var filters: FilterOptions
    @OptionGroup var symbols: SymbolOptions

    func validate() throws {
        if snapshots.isEmpty { throw ValidationError("name at least one snapshot file or directory") }
        if normalize && diff == nil { throw ValidationError("--normalize needs --diff") }
        if width < 200 || width > 20000 { throw ValidationError("--width must be between 200 and 20000") }
    }

    func run() throws {
        let base = try diff.map { try program.resolve([$0]).selection }
        let query = ProfileQuery(try moment.selection(snapshots, program: program).selection, base: base,
                                 trimming: symbols.trimming, filter: filters.filter, aggregation: AggregationOptions(metric: metric))
        try write(answer(query, symbols: symbols, as: .flamegraph(FlameGraphShape(inverted: inverted, normalize: normalize, width: width))),
                  to: output)
        if output != "-" { note("heapsnap: wrote \(output)") }
    }
}

struct Export: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write a snapshot in a format other tools read: folded, pprof, speedscope, json.",
        discussion: """
            folded      'frame;frame;frame value' lines for flamegraph.pl and inferno (--metric picks the value)
            pprof       gzip-compressed profile.proto with inuse/alloc objects and space, symbolized,
                        for `go tool pprof -top FILE` and `go tool pprof -diff_base OLD NEW`
            speedscope  https://www.speedscope.app file, one profile per metric
            json        the symbolized profile: frames and per-stack estimates with variances (docs/JSON.md)

            Examples:
              heapsnap export snap.heapsnap --format pprof -o heap.pb.gz && go tool pprof -top heap.pb.gz
              heapsnap export snap.heapsnap --format folded --metric alloc-bytes -o heap.folded
              heapsnap export snap.heapsnap --at peak --format pprof -o peak.pb.gz
            """)

    @Argument(help: "Snapshot files (FILE@peak for its peak) or directories; several are merged, the newest snapshot of each process.")
    var snapshots: [String]

    @OptionGroup var moment: MomentOptions
    @OptionGroup var program: ProgramOptions

    @Option(name: .long, help: "folded, pprof, speedscope or json.")
    var format: ExportFormat

    @Option(name: [.short, .long], help: "Where to write ('-' for stdout).")
    var output: String

    @Option(name: .long, help: "The value of folded lines, and speedscope's first profile: inuse-bytes, inuse-objects, alloc-bytes, alloc-objects.")
    var metric: Metric = .inuseBytes

    @OptionGroup var filters: FilterOptions
    @OptionGroup var symbols: SymbolOptions

    func validate() throws {
        if snapshots.isEmpty { throw ValidationError("name at least one snapshot file or directory") }
    }

    func run() throws {
        let query = ProfileQuery(try moment.selection(snapshots, program: program).selection, trimming: symbols.trimming,
                                 filter: filters.filter, aggregation: AggregationOptions(metric: metric))
        try write(answer(query, symbols: symbols, as: .export(format)), to: output)
        if output != "-" { note("heapsnap: wrote \(output)") }
    }
}

struct Merge: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Combine snapshots of many processes of one program into one snapshot.",
        discussion: """
            For a fleet, or the workers of a pre-fork server: stacks are matched by
            module file and offset (addresses differ between processes), estimates
            and their variances add, and the result lists its sources. Every command
            reads the merged file like any other snapshot.

            Example:
              heapsnap merge /tmp/heapsnap.*.0.heapsnap -o fleet.heapsnap && heapsnap top fleet.heapsnap
            """)

    @Argument(help: "The snapshots to merge.")
    var snapshots: [String]

    @Option(name: [.short, .long], help: "The merged snapshot to write.")
    var output: String

    func validate() throws {
        if snapshots.isEmpty { throw ValidationError("name at least one snapshot to merge") }
    }

    func run() throws {
        var inputs: [(path: String, snapshot: Snapshot)] = []
        do {
            for path in snapshots { inputs.append((path, try SnapshotReader.read(path: path))) }
        } catch {
            throw fail(error)
        }
        let (merged, warnings) = SnapshotMerge.merge(inputs)
        for warning in warnings { note("heapsnap: warning: \(warning)") }
        do {
            try SnapshotWriter.write(merged, to: output)
        } catch {
            throw fail(error)
        }
        note("heapsnap: merged \(inputs.count) snapshots (\(merged.stacks.count) stacks) into \(output)")
    }
}

/// Output formats of `timeline`.
enum TimelineFormat: String, ExpressibleByArgument, CaseIterable {
    case svg, csv, json
}

struct TimelineCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "timeline",
        abstract: "Draw memory over time (in use with its 95% band, RSS, the peak, the top sites) as an interactive SVG, or write the numbers.",
        discussion: """
            Points come from the series each snapshot carries (format 1.2), merged per
            process; a process whose files have no series needs several snapshots
            (HEAPSNAP_INTERVAL, or signals), whose totals then form the curve. With
            several snapshots of one process, each is split over the top sites (by
            line, as `top`) and drawn stacked. Several processes of one program are
            drawn one line each; files of different programs are refused (one
            timeline per program). A directory stands for every snapshot of one
            program in it (--program NAME picks one of several). Hover for values.

            Examples:
              heapsnap timeline /tmp/heapsnap.4242.*.heapsnap -o timeline.svg
              heapsnap timeline /tmp/heapsnap.*.heapsnap --top 8 -o workers.svg
              heapsnap timeline snap.heapsnap --format csv -o timeline.csv
              heapsnap timeline /tmp --program gunicorn -o service.svg
            """)

    @Argument(help: "Snapshot files of one program (one or more processes), or directories (every snapshot of one program in them).")
    var snapshots: [String]

    @OptionGroup var program: ProgramOptions

    @Option(name: [.short, .long], help: "Where to write ('-' for stdout).")
    var output: String

    @Option(name: .long, help: "svg (default), csv, or json (docs/JSON.md).")
    var format: TimelineFormat = .svg

    @Option(name: .long, help: "Split snapshots over this many top sites (by line; 0 for none).")
    var top = 5

    @Option(name: .long, help: "Image width in pixels.")
    var width = 1200

    @Option(name: .long, help: "Image height in pixels.")
    var height = 560

    @OptionGroup var symbols: SymbolOptions

    func validate() throws {
        if snapshots.isEmpty { throw ValidationError("name at least one snapshot") }
        if top < 0 { throw ValidationError("--top must be 0 or more") }
        if width < 600 || width > 20000 { throw ValidationError("--width must be between 600 and 20000") }
        if height < 300 || height > 20000 { throw ValidationError("--height must be between 300 and 20000") }
    }

    func run() throws {
        let pipeline = Pipeline(options: symbols.options, environment: environment)
        let timeline: Timeline
        do throws(HeapSnapError) {
            var paths = snapshots
            if snapshots.contains(where: ServiceSelection.isDirectory) {
                let series = try SnapshotSeries.scan(snapshots)
                for problem in series.problems { note("heapsnap: \(problem.description)") }
                paths = try series.program(named: program.program).entries.map(\.path)
            }
            var inputs: [(path: String, snapshot: Snapshot)] = []
            for path in paths where !inputs.contains(where: { $0.path == path }) { inputs.append((path, try pipeline.read(path))) }
            timeline = try TimelineBuilder(options: TimelineOptions(top: top)).build(inputs) {
                pipeline.profile(of: $0, file: $1, trimming: symbols.trimming)
            }
        } catch {
            throw fail(error)
        }
        for warning in timeline.warnings { note("heapsnap: warning: \(warning)") }
        let text: String
        switch format {
        case .svg: text = TimelineSVG.render(timeline, options: TimelineSVGOptions(width: width, height: height))
        case .csv: text = CSVRenderer().render(timeline)
        case .json: text = JSONRenderer().render(timeline)
        }
        try write(Array(text.utf8), to: output)
        if output != "-" { note("heapsnap: wrote \(output)") }
    }
}
