// The pipeline spelled out: read -> (pick the moment: the snapshot or its
// peak) -> symbolize -> trim allocator and runtime frames -> filter ->
// aggregate -> render. Every command goes through `profile` (or `diff`), so
// each composes the same stages; top and diff add `report`. The CLI calls
// these; tests call the stages directly.

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Settings of the read and symbolize stages.
public struct SymbolizeOptions: Sendable, Hashable {
    /// Trim allocator frames from the top of stacks.
    public var trimAllocatorFrames = true
    /// Extra allocator-frame globs, added to the defaults.
    public var extraAllocatorPatterns: [String] = []
    /// Skip frames of language runtimes and standard libraries (`RuntimeFrames`).
    public var trimRuntimeFrames = true
    /// Extra directories with `.build-id/xx/yyyy.debug` files (searched before `FileSystemModuleLocator.systemDebugDirectory`).
    public var debugDirectories: [String] = []
    /// Show progress on stderr when symbolizing takes a while and stderr is a terminal.
    public var progress = true

    public init(trimAllocatorFrames: Bool = true, extraAllocatorPatterns: [String] = [], trimRuntimeFrames: Bool = true,
                debugDirectories: [String] = [], progress: Bool = true) {
        self.trimAllocatorFrames = trimAllocatorFrames
        self.trimRuntimeFrames = trimRuntimeFrames
        self.extraAllocatorPatterns = extraAllocatorPatterns
        self.debugDirectories = debugDirectories
        self.progress = progress
    }

    /// The allocator frames these options trim (none when trimming is off).
    public var allocatorFrames: AllocatorFrames {
        AllocatorFrames(patterns: trimAllocatorFrames ? AllocatorFrames.defaultPatterns + extraAllocatorPatterns : [])
    }
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

    /// Symbolizes `snapshot`, trims allocator frames and, unless asked not to, runtime frames.
    public func profile(of snapshot: Snapshot, file: String) -> Profile {
        let profile = ProfileSymbolizer(symbolizer: symbolizer, locator: locator).profile(of: snapshot, file: file)
        let trimmed = options.allocatorFrames.trim(profile)
        return options.trimRuntimeFrames ? RuntimeFrames().trim(trimmed) : trimmed
    }

    /// Symbolized and trimmed like `profile(of:file:)`, at `moment` of the file:
    /// for `.peak` the peak's per-stack values, the source remembering when the
    /// peak was (throws `noPeak` naming `file` when there is none).
    public func profile(of snapshot: Snapshot, file: String, at moment: Moment) throws(HeapSnapError) -> Profile {
        var result = profile(of: try snapshot.at(moment, file: file), file: file)
        if moment == .peak { result.source.peakNanoseconds = snapshot.peak?.timeNanoseconds }
        return result
    }

    /// Reads, symbolizes, trims and filters the snapshot `ref` names (a file, or its peak).
    public func profile(_ ref: SnapshotRef, filter: ProfileFilter = ProfileFilter()) throws(HeapSnapError) -> Profile {
        filter.apply(try profile(of: try read(ref.path), file: ref.path, at: ref.moment))
    }

    /// Reads, symbolizes, trims and filters the snapshot at `path`.
    public func profile(path: String, filter: ProfileFilter = ProfileFilter()) throws(HeapSnapError) -> Profile {
        try profile(SnapshotRef(path: path), filter: filter)
    }

    /// `new - old` of two snapshots (either may be a file's peak), filtered.
    /// A file named on both sides (`FILE@peak` against `FILE`) is read once.
    public func diff(old: SnapshotRef, new: SnapshotRef, filter: ProfileFilter = ProfileFilter()) throws(HeapSnapError) -> Profile {
        let oldSnapshot = try read(old.path)
        let newSnapshot = new.path == old.path ? oldSnapshot : try read(new.path)
        let newProfile = try profile(of: newSnapshot, file: new.path, at: new.moment)
        return filter.apply(newProfile.subtracting(try profile(of: oldSnapshot, file: old.path, at: old.moment)))
    }

    /// `new - old` of two snapshot files, filtered.
    public func diff(old: String, new: String, filter: ProfileFilter = ProfileFilter()) throws(HeapSnapError) -> Profile {
        try diff(old: SnapshotRef(path: old), new: SnapshotRef(path: new), filter: filter)
    }

    /// The `top` table of `ref`, or with `old` the `diff` table of `old` → `ref`.
    public func report(_ ref: SnapshotRef, comparedTo old: SnapshotRef? = nil, filter: ProfileFilter = ProfileFilter(),
                       options: AggregationOptions = AggregationOptions()) throws(HeapSnapError) -> Report {
        let profile: Profile
        if let old {
            profile = try diff(old: old, new: ref, filter: filter)
        } else {
            profile = try self.profile(ref, filter: filter)
        }
        return Aggregator(options: options).aggregate(profile)
    }

    /// The `top` table of `path`, or with `old` the `diff` table of `old` → `path`.
    public func report(_ path: String, comparedTo old: String? = nil, filter: ProfileFilter = ProfileFilter(),
                       options: AggregationOptions = AggregationOptions()) throws(HeapSnapError) -> Report {
        try report(SnapshotRef(path: path), comparedTo: old.map { SnapshotRef(path: $0) }, filter: filter, options: options)
    }
}
