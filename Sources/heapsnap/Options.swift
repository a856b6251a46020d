// Options shared by several commands, as ParsableArguments used via @OptionGroup;
// each command parses them into one `ProfileQuery` (HeapSnapKit) and hands the
// executor's result to the output stage (`answer`).

import ArgumentParser
import HeapSnapKit

extension GroupBy: ExpressibleByArgument {}
extension Metric: ExpressibleByArgument {}
extension OutputFormat: ExpressibleByArgument {}
extension Moment: ExpressibleByArgument {}
extension ExportFormat: ExpressibleByArgument {}

/// Which moment of the snapshot argument to read (top, flamegraph, export).
struct MomentOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp(
        "Read the snapshot as written (snapshot) or at the peak it carries (peak); FILE@peak says the same.",
        valueName: "snapshot|peak"))
    var at: Moment = .snapshot

    /// The snapshots `arguments` name (files, `FILE@peak`, directories; `ServiceSelection`), at the peak when `--at peak`.
    func selection(_ arguments: [String], program: ProgramOptions) throws -> ServiceSelection {
        try program.resolve(arguments, moment: at)
    }
}

/// Which program, when files and directories hold several (top, diff, flamegraph, export, timeline).
struct ProgramOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp(
        "With snapshots of several programs: use this one's (its name, as the error lists it, or its executable path).",
        valueName: "name"))
    var program: String?

    /// The service's moment `arguments` stand for (one file: that file), its notes on stderr.
    func resolve(_ arguments: [String], moment: Moment = .snapshot, pick: ServiceSelection.Pick = .newest,
                 quiet: Bool = false) throws -> ServiceSelection {
        do {
            let resolved = try ServiceSelection.resolve(arguments, moment: moment, program: program, pick: pick)
            if !quiet { for line in resolved.notes { note(line) } }
            return resolved
        } catch {
            throw fail(error)
        }
    }
}

/// When to colour output.
enum ColorChoice: String, ExpressibleByArgument, CaseIterable {
    case auto, always, never
}

/// Output format, width and colour (top, diff, info).
struct OutputOptions: ParsableArguments {
    @Option(name: .long, help: "Output format: table, json (see docs/JSON.md) or csv.")
    var format: OutputFormat = .table

    @Option(name: .long, help: "Table width in columns (default: the terminal's, else $COLUMNS, else unlimited).")
    var width: Int?

    @Option(name: .long, help: "Colour: auto (only on a terminal and without NO_COLOR), always, never.")
    var color: ColorChoice = .auto

    func validate() throws {
        if let width, width < 20 { throw ValidationError("--width must be at least 20") }
    }

    var renderOptions: RenderOptions {
        let colored: Bool
        switch color {
        case .auto: colored = Terminal.wantsColor(environment: environment)
        case .always: colored = true
        case .never: colored = false
        }
        return RenderOptions(width: width ?? Terminal.width(environment: environment), color: colored)
    }
}

/// How snapshots are symbolized (top, diff, info).
struct SymbolOptions: ParsableArguments {
    @Flag(name: .long, help: "Keep allocator frames (malloc, operator new, swift_allocObject, …) at the top of stacks.")
    var keepAllocatorFrames = false

    @Option(name: .customLong("allocator-frame"), help: ArgumentHelp(
        "Also trim frames whose function or module matches this glob (repeatable), e.g. 'my_pool_alloc*'.",
        valueName: "glob"))
    var allocatorFrames: [String] = []

    @Flag(name: .long, help: """
        Keep frames of language runtimes and standard libraries (the Python interpreter and stdlib, libc,         C++ headers, Swift's stdlib) instead of skipping to the program's own code.
        """)
    var keepRuntimeFrames = false

    @Option(name: .customLong("debug-dir"), help: ArgumentHelp(
        "Directory with separate debug files under .build-id/ (repeatable; \(FileSystemModuleLocator.systemDebugDirectory) is always searched).",
        valueName: "dir"))
    var debugDirectories: [String] = []

    /// How the executor symbolizes.
    var options: SymbolizeOptions { SymbolizeOptions(debugDirectories: debugDirectories) }

    /// Which frames the question trims.
    var trimming: Trimming {
        Trimming(allocatorFrames: !keepAllocatorFrames, extraAllocatorPatterns: allocatorFrames, runtimeFrames: !keepRuntimeFrames)
    }
}

/// Grouping, metric, filters and limit (top, diff).
struct AggregateOptions: ParsableArguments {
    @Option(name: .long, help: "Group by: line (file:line of the allocation site), function, file, module, traceback (whole stack).")
    var by: GroupBy = .line

    @Flag(name: .long, help: "Count every frame of each stack, not just the allocation site (tracemalloc's cumulative=True).")
    var cumulative = false

    @Option(name: .long, help: "Sort by: inuse-bytes, inuse-objects, alloc-bytes (everything allocated since start), alloc-objects.")
    var metric: Metric = .inuseBytes

    @Option(name: .long, help: "Show at most this many rows (0 for all).")
    var limit: Int = 20

    @OptionGroup var filters: FilterOptions

    func validate() throws {
        if limit < 0 { throw ValidationError("--limit must be 0 or more") }
        if cumulative && by == .traceback { throw ValidationError("--cumulative does not apply to --by traceback") }
    }

    var options: AggregationOptions {
        AggregationOptions(groupBy: by, cumulative: cumulative, metric: metric, limit: limit == 0 ? nil : limit)
    }
}

/// tracemalloc's filters (top, diff, flamegraph, export).
struct FilterOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("Keep only allocations whose site's file or module matches this glob (repeatable).", valueName: "glob"))
    var include: [String] = []

    @Option(name: .long, help: ArgumentHelp("Drop allocations whose site's file or module matches this glob (repeatable).", valueName: "glob"))
    var exclude: [String] = []

    @Flag(name: .long, help: "Apply --include/--exclude to every frame of the stack, not only the allocation site.")
    var allFrames = false

    var filter: ProfileFilter { ProfileFilter(include: include, exclude: exclude, allFrames: allFrames) }
}

/// Answers `query` and renders it as `output`: the whole of what top, diff, flamegraph and export do.
/// Profile warnings go to stderr for outputs whose document has no place for them (flamegraphs, exports).
/// With `perProcess`, a merged table gets a column per process (`Pipeline.splitByProcess`).
func answer(_ query: ProfileQuery, symbols: SymbolOptions, as output: Output, perProcess: Bool = false) throws -> [UInt8] {
    do {
        let pipeline = Pipeline(options: symbols.options, environment: environment)
        var result = try pipeline.run(query)
        if perProcess { result = try pipeline.splitByProcess(result) }
        if case .report = output {} else {
            for warning in result.profile.warnings { note("heapsnap: warning: \(warning)") }
        }
        return try result.render(output)
    } catch {
        throw fail(error)
    }
}

/// A size option (`--rate 16K`), spelled as the HEAPSNAP_* variables spell sizes (`Units.bytes`).
func parseBytes(_ text: String) throws -> UInt64 {
    guard let value = Units.bytes(text) else {
        throw ValidationError("not a size: bytes, with an optional K, M or G (powers of 1024), e.g. 524288 or 512K")
    }
    return value
}

/// A duration option (`--timeout 0.5`), in seconds as HEAPSNAP_INTERVAL spells them (`Units.nanoseconds`).
func parseSeconds(_ text: String) throws -> Double {
    guard let nanoseconds = Units.nanoseconds(seconds: text) else {
        throw ValidationError("not a duration: seconds, decimals allowed, e.g. 10 or 0.5")
    }
    return Double(nanoseconds) / 1e9
}
