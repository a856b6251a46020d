// What `heapsnap info` shows: a snapshot's header and counters, its modules
// with their build-ids and whether this host has matching files, and warnings.

/// One module as `info` lists it.
public struct ModuleInfo: Sendable, Hashable {
    /// The mapping from the snapshot.
    public var module: Module
    /// What the locator found for it.
    public var location: ModuleLocation
}

/// Everything `heapsnap info` reports about one snapshot.
public struct InfoReport: Sendable, Hashable {
    /// The snapshot's file, header, modules and totals.
    public var source: ProfileSource
    /// Number of distinct stacks, of `SMPL` entries, and of distinct frame addresses.
    public var stacks: Int
    public var records: Int
    public var addresses: Int
    /// Stacks cut at the frame limit.
    public var truncatedStacks: Int
    /// The deepest stack.
    public var maxStackDepth: Int
    /// Modules in address order, with their status on this host.
    public var modules: [ModuleInfo]
    /// Merged snapshots: where the parts came from.
    public var sources: [SnapshotSource]
    /// The process's Python interpreter, as the shim saw it (its `functions` as in the file); nil without Python.
    public var python: PythonInfo?
    /// The snapshot's totals, peak and series.
    public var memory: MemorySummary
    /// What the shim's retention (`HEAPSNAP_KEEP`) had thinned of the process's periodic snapshots; nil without.
    public var retention: Retention?
    /// Problems worth a look: dropped samples, missing modules, mismatched build-ids, an interpreter without Python frames.
    public var warnings: [String]

    /// Builds the report; `locator` checks each module against this host.
    ///
    /// - Complexity: O(stacks × depth) plus one build-id read per module file.
    public init(snapshot: Snapshot, file: String, locator: any ModuleLocator) {
        var totals = Values.zero
        for record in snapshot.records { totals += Values(record) }
        source = ProfileSource(file: file, header: snapshot.header, modules: snapshot.modules, totals: totals)
        stacks = snapshot.stacks.count
        records = snapshot.records.count
        var distinct = Set<UInt64>()
        for stack in snapshot.stacks { distinct.formUnion(stack.frames) }
        addresses = distinct.count
        truncatedStacks = snapshot.stacks.count { $0.truncated }
        maxStackDepth = snapshot.stacks.map(\.frames.count).max() ?? 0
        modules = snapshot.modules.sorted { $0.start < $1.start }.map { ModuleInfo(module: $0, location: locator.locate($0)) }
        sources = snapshot.sources
        python = snapshot.python
        memory = MemorySummary(snapshot)
        retention = snapshot.retention
        var warnings: [String] = []
        if let python = snapshot.python, python.status == .unsupported {
            warnings.append("\(python.note): stacks hold the interpreter's native frames, not Python's")
        }
        if let warning = snapshot.python?.reuseWarning { warnings.append(warning) }
        let h = snapshot.header
        if let warning = h.droppedWarning { warnings.append(warning) }
        if h.truncated > 0 {
            warnings.append("\(h.truncated) samples had stacks deeper than \(h.maxDepth) frames, cut at the outer end (raise HEAPSNAP_MAX_DEPTH)")
        }
        for info in modules {
            if let warning = info.location.warning, !warnings.contains(warning) { warnings.append(warning) }
        }
        self.warnings = warnings
    }
}
