// leaks: snapshot files and directories -> SnapshotSeries -> one program ->
// LeakFinder (the pipeline of `top` per file, then the growth tests) -> table or JSON.

import ArgumentParser
import HeapSnapKit

/// Output formats of `leaks`.
enum LeaksFormat: String, ExpressibleByArgument, CaseIterable {
    case table, json
}

struct Leaks: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Find the code whose memory keeps growing, from snapshots taken over time (of one process or of all the workers of a service).",
        discussion: """
            Reads every *.heapsnap file of the directories and the files named (HEAPSNAP_INTERVAL writes
            them periodically), groups them by process, and for every site (a `top` row) tests whether
            the bytes it holds grow over time, summed over the processes of the program. Verdicts:
              leak             grows beyond sampling noise and chance, and faster than the traffic
              growing          grows, but in step with the traffic (its bytes per unit of allocation rate are flat)
              steady           no growth the data can tell from noise
              too few samples  too few moments or sampled blocks to say
            Growth/min is a Theil-Sen slope; its interval covers the scatter of the points and the
            sampling noise. Confidence is 1 − the Holm-corrected p-value: with the default 99%, a
            service without a leak shows a suspect in at most 1 run in 100. Per alloc MiB is the growth
            per MiB the program allocated (per unit of work). Memory held longer than the series spans
            (a cache that keeps entries for an hour) looks like a leak until the series is longer.
            Snapshots of several programs are refused unless --program picks one.

            Examples:
              heapsnap leaks /tmp
              heapsnap leaks /var/tmp/snaps --program gunicorn --limit 5
              heapsnap leaks /tmp/heapsnap.4242.*.heapsnap --format json > leaks.json
            """)

    @Argument(help: "Snapshot files and directories (a directory: its *.heapsnap files).")
    var paths: [String]

    @Option(name: .long, help: "The program to test when the snapshots are of several (its name as shown, or its executable).")
    var program: String?

    @Option(name: .long, help: "Call a site growing or a leak when 1 − its Holm-corrected p-value reaches this (0.5-0.999999).")
    var minConfidence = 0.99

    @Option(name: .long, help: "Group by: line (default), function, file, module.")
    var by: GroupBy = .line

    @Option(name: .long, help: "Show at most this many rows (0 for all; JSON has every site).")
    var limit = 20

    @Option(name: .long, help: "table or json (docs/JSON.md).")
    var format: LeaksFormat = .table

    @Option(name: .long, help: "Table width in columns (default: the terminal's, else $COLUMNS, else unlimited).")
    var width: Int?

    @OptionGroup var filters: FilterOptions
    @OptionGroup var symbols: SymbolOptions

    func validate() throws {
        if paths.isEmpty { throw ValidationError("name at least one snapshot file or directory") }
        if !(0.5...0.999999).contains(minConfidence) { throw ValidationError("--min-confidence must be between 0.5 and 0.999999") }
        if by == .traceback { throw ValidationError("--by traceback does not apply to leaks (group by line, function, file or module)") }
        if limit < 0 { throw ValidationError("--limit must be 0 or more") }
        if let width, width < 20 { throw ValidationError("--width must be at least 20") }
    }

    func run() throws {
        let pipeline = Pipeline(options: symbols.options, environment: environment)
        let report: LeakReport
        do {
            let series = try SnapshotSeries.scan(paths)
            for problem in series.problems { note("heapsnap: skipped \(problem.description)") }
            let chosen = try series.program(named: program)
            let finder = LeakFinder(pipeline: pipeline, filter: filters.filter, groupBy: by,
                                    options: LeakOptions(minConfidence: minConfidence))
            report = finder.report(chosen) { note("heapsnap: skipped \($0.description)") }
        } catch {
            throw fail(error)
        }
        switch format {
        case .table:
            let renderer = TableRenderer(options: RenderOptions(width: width ?? Terminal.width(environment: environment)))
            emit(renderer.render(report, limit: limit == 0 ? nil : limit))
        case .json:
            emit(JSONRenderer().render(report))
        }
    }
}
