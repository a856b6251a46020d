// The executor: read -> pick the moment (the snapshot or its peak) and merge
// several files -> symbolize -> trim allocator and runtime frames -> new minus
// old -> filter, answering a `ProfileQuery` (ProfileQuery.swift) with a
// `ProfileResult` that the output stage renders (Output.swift). Every CLI
// command and every web view request goes through these steps: the CLI calls
// `run`, the web view calls `select` and `profile(of:)` itself (it caches the
// symbolized sides and symbolizes off its request threads) and then
// `ProfileQuery.result`. Tests call the stages directly.

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Settings of the symbolize stage.
public struct SymbolizeOptions: Sendable, Hashable {
    /// Extra directories with `.build-id/xx/yyyy.debug` files (searched before `FileSystemModuleLocator.systemDebugDirectory`).
    public var debugDirectories: [String] = []
    /// Show progress on stderr when symbolizing takes a while and stderr is a terminal.
    public var progress = true

    public init(debugDirectories: [String] = [], progress: Bool = true) {
        self.debugDirectories = debugDirectories
        self.progress = progress
    }
}

/// One side of a question as one snapshot: its files at their moment, merged when several.
public struct SelectedSnapshot: Sendable {
    /// The snapshot (for a peak, the peak's per-stack records in place of the snapshot's).
    public var snapshot: Snapshot
    /// The name its profile carries (`SnapshotSelection.name`).
    public var name: String
    /// At the peak: when it was, ns since the Unix epoch (the latest of several files' peaks); nil otherwise.
    public var peakNanoseconds: UInt64?
    /// Recoverable trouble of the merge (different sampling rates, …).
    public var warnings: [String]
}

/// Reads and symbolizes snapshot files, sharing one symbolizer process and cache across files.
public final class Pipeline {
    /// The options.
    public let options: SymbolizeOptions
    /// The module locator (build-id checks, debug files).
    public let locator: FileSystemModuleLocator
    private let symbolizer: LLVMSymbolizer?

    /// Finds llvm-symbolizer (`LLVMSymbolizer.find`); without one, frames stay `module+0xADDR` with a warning.
    public init(options: SymbolizeOptions = SymbolizeOptions(), environment: [String: String]) {
        self.options = options
        locator = FileSystemModuleLocator(debugDirectories: options.debugDirectories)
        if let path = LLVMSymbolizer.find(environment: environment) {
            let s = LLVMSymbolizer(executable: path, debugDirectories: options.debugDirectories)
            if options.progress, isatty(2) == 1 {
                s.progress = { done, total in
                    let text = done < total ? "\rheapsnap: symbolizing \(done)/\(total) addresses…" : "\r\u{1B}[K"
                    _ = text.withCString { write(2, $0, strlen($0)) }
                }
            }
            symbolizer = s
        } else {
            symbolizer = nil
        }
    }

    /// Reads the snapshot at `path` (throws a one-line error naming the file on bad input).
    public func read(_ path: String) throws(HeapSnapError) -> Snapshot {
        try SnapshotReader.read(path: path)
    }

    /// Answers `query`: reads each file once, takes the moment, merges, symbolizes, then
    /// trims, subtracts and filters (`ProfileQuery.result`).
    public func run(_ query: ProfileQuery) throws(HeapSnapError) -> ProfileResult {
        var cache: [String: Snapshot] = [:]
        func side(_ selection: SnapshotSelection) throws(HeapSnapError) -> Profile {
            var snapshots: [Snapshot] = []
            for path in selection.files {
                if let known = cache[path] {
                    snapshots.append(known)
                } else {
                    let snapshot = try read(path)
                    cache[path] = snapshot
                    snapshots.append(snapshot)
                }
            }
            return profile(of: try Self.select(selection, from: snapshots))
        }
        let new = try side(query.snapshots)
        let base = try query.base.map { (selection) throws(HeapSnapError) in try side(selection) }
        return query.result(new: new, base: base)
    }

    /// `result` with each of its files answered on its own (`ProfileResult.processes`), for per-process
    /// columns; the symbolizer's cache is shared, so each module is symbolized once. A diff is not split.
    public func splitByProcess(_ result: ProfileResult) throws(HeapSnapError) -> ProfileResult {
        guard !result.query.isDiff, result.query.snapshots.files.count > 1 else { return result }
        var split = result
        for file in result.query.snapshots.files {
            var query = result.query
            query.snapshots = SnapshotSelection(files: [file], moment: result.query.snapshots.moment)
            split.processes.append(try run(query))
        }
        return split
    }

    /// The snapshot `selection` stands for, given its files' snapshots in the same order:
    /// each at the selection's moment (throws `noPeak` naming the file when it has none),
    /// merged when there are several.
    public static func select(_ selection: SnapshotSelection, from snapshots: [Snapshot]) throws(HeapSnapError) -> SelectedSnapshot {
        precondition(snapshots.count == selection.files.count && !snapshots.isEmpty, "one snapshot per file of the selection")
        var inputs: [(path: String, snapshot: Snapshot)] = []
        for (path, snapshot) in zip(selection.files, snapshots) {
            inputs.append((path, try snapshot.at(selection.moment, file: path)))
        }
        let peak = selection.moment == .peak ? snapshots.compactMap { $0.peak?.timeNanoseconds }.max() : nil
        if inputs.count == 1 {
            return SelectedSnapshot(snapshot: inputs[0].snapshot, name: selection.name, peakNanoseconds: peak, warnings: [])
        }
        let (merged, warnings) = SnapshotMerge.merge(inputs)
        return SelectedSnapshot(snapshot: merged, name: selection.name, peakNanoseconds: peak, warnings: warnings)
    }

    /// The symbolized (untrimmed) profile of `selected`, remembering its peak and the merge's warnings.
    public func profile(of selected: SelectedSnapshot) -> Profile {
        ProfileSymbolizer(symbolizer: symbolizer, locator: locator).profile(of: selected)
    }

    /// Symbolized and trimmed like every question's sides (the timeline's snapshots).
    public func profile(of snapshot: Snapshot, file: String, trimming: Trimming = Trimming()) -> Profile {
        trimming.apply(ProfileSymbolizer(symbolizer: symbolizer, locator: locator).profile(of: snapshot, file: file))
    }
}

extension ProfileSymbolizer {
    /// The symbolized (untrimmed) profile of one side of a question: named by its selection,
    /// marked as the peak when it is one, with the merge's warnings first.
    public func profile(of selected: SelectedSnapshot) -> Profile {
        var profile = profile(of: selected.snapshot, file: selected.name)
        profile.source.peakNanoseconds = selected.peakNanoseconds
        profile.warnings = selected.warnings + profile.warnings.filter { !selected.warnings.contains($0) }
        return profile
    }
}
