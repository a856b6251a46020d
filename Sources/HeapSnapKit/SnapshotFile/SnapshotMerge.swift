// Merges snapshots of many processes of one program (a fleet, the workers of
// a pre-fork server) into one snapshot that every command reads.
//
// Addresses differ between processes (ASLR), so stacks cannot be matched by
// raw address. Each frame is first rewritten as (module file, address inside
// that file), which is the same in every process that maps the same file;
// the merged snapshot then places each distinct module file at one address
// range and rebuilds its frames there. Stacks equal after that rewrite are
// one stack; their estimates add (values and variances: the processes'
// samples are independent). Symbolization happens later, on read, exactly as
// for any snapshot, so nothing is lost by merging.

/// Combines snapshots into one.
public enum SnapshotMerge {
    /// A module file as every process sees it, wherever it is mapped.
    private struct ModuleKey: Hashable {
        var path: String
        var buildID: [UInt8]
        var vaddr: UInt64
        var fileOffset: UInt64
        var size: UInt64
    }

    /// The merged snapshot of `inputs` (each with the path it was read from).
    /// Warnings (for example, different sampling rates) are returned, not thrown.
    /// - Complexity: O(total frames · log modules).
    public static func merge(_ inputs: [(path: String, snapshot: Snapshot)]) -> (snapshot: Snapshot, warnings: [String]) {
        var warnings: [String] = []
        var modules: [Module] = []
        var moduleIndex: [ModuleKey: Int] = [:]
        var stackIndex: [RawStack: Int] = [:]
        var stacks: [RawStack] = []
        var totals: [(inuse: SampleGroup, alloc: SampleGroup)] = []
        var nextFree: UInt64 = 0
        var python: PythonInfo?
        var functionIndex: [PythonFunction: Int] = [:]

        for (_, snapshot) in inputs {
            // Python functions: one table for all inputs (frames hold indices into it).
            var functionMap: [Int] = []
            if let info = snapshot.python {
                if python == nil { python = PythonInfo(status: info.status, version: info.version, flags: info.flags, note: info.note) }
                if info.status == .frames { python!.status = .frames }
                // Charged where created only if every process had its free lists off.
                if !info.flags.contains(.freeListsOff) { python!.flags.remove(.freeListsOff) }
                // Natives cut below the innermost Python frame, or not walked, if any process's were.
                if info.flags.contains(.nativeInner) { python!.flags.insert(.nativeInner) }
                if info.flags.contains(.nativeNone) { python!.flags.insert(.nativeNone) }
                for function in info.functions {
                    if let known = functionIndex[function] {
                        functionMap.append(known)
                    } else {
                        functionIndex[function] = python!.functions.count
                        functionMap.append(python!.functions.count)
                        python!.functions.append(function)
                    }
                }
            }
            // Place this input's modules in the merged address space.
            let sorted = snapshot.modules.sorted { $0.start < $1.start }
            var placed: [(from: Module, to: Module)] = []
            for module in sorted {
                let key = ModuleKey(path: module.path, buildID: module.buildID, vaddr: module.vaddr,
                                    fileOffset: module.fileOffset, size: module.end - module.start)
                let index: Int
                if let known = moduleIndex[key] {
                    index = known
                } else {
                    var start = module.start
                    if modules.contains(where: { $0.start < module.end && module.start < $0.end }) {
                        start = (nextFree + 0xFFFF) & ~0xFFFF
                    }
                    let size = module.end - module.start
                    modules.append(Module(start: start, end: start + size, fileOffset: module.fileOffset,
                                          vaddr: module.vaddr, buildID: module.buildID, path: module.path))
                    nextFree = max(nextFree, start + size)
                    index = modules.count - 1
                    moduleIndex[key] = index
                }
                placed.append((module, modules[index]))
            }
            func rebase(_ address: UInt64) -> UInt64 {
                if let frame = PythonFrame.decode(address) {
                    return frame.function < functionMap.count
                        ? PythonFrame.encode(function: functionMap[frame.function], line: frame.line) : address
                }
                // Binary search for the mapping holding `address`.
                var low = 0, high = placed.count
                while low < high {
                    let mid = (low + high) / 2
                    if placed[mid].from.end <= address { low = mid + 1 } else { high = mid }
                }
                guard low < placed.count, placed[low].from.contains(address) else { return address }
                return address - placed[low].from.start + placed[low].to.start
            }
            for record in snapshot.records where record.stack < snapshot.stacks.count {
                let raw = snapshot.stacks[record.stack]
                let stack = RawStack(frames: raw.frames.map(rebase), truncated: raw.truncated)
                let i: Int
                if let known = stackIndex[stack] {
                    i = known
                } else {
                    i = stacks.count
                    stackIndex[stack] = i
                    stacks.append(stack)
                    totals.append((.zero, .zero))
                }
                totals[i].inuse = totals[i].inuse + record.inuse
                totals[i].alloc = totals[i].alloc + record.alloc
            }
        }

        var header = SnapshotHeader()
        let headers = inputs.map(\.snapshot.header)
        if let first = headers.first {
            header = first
            header.flags = [.merged]
            header.pid = 0
            header.ppid = 0
            header.seq = 0
            header.session = 0
            header.startNanoseconds = headers.map(\.startNanoseconds).min() ?? 0
            header.timeNanoseconds = headers.map(\.timeNanoseconds).max() ?? 0
            header.samples = headers.reduce(0) { $0 &+ $1.samples }
            header.dropped = headers.reduce(0) { $0 &+ $1.dropped }
            header.truncated = headers.reduce(0) { $0 &+ $1.truncated }
            header.shimBytes = headers.reduce(0) { $0 &+ $1.shimBytes }
            header.maxDepth = headers.map(\.maxDepth).max() ?? 0
            if Set(headers.map(\.executable)).count > 1 {
                header.executable = "(several programs)"
                warnings.append("merging snapshots of different programs: " +
                                Set(headers.map(\.executable)).sorted().joined(separator: ", "))
            }
            if Set(headers.map(\.hostname)).count > 1 { header.hostname = "(several hosts)" }
            let rates = Set(headers.map(\.rate))
            if rates.count > 1 {
                warnings.append("the snapshots were sampled at different rates (\(rates.sorted().map(String.init).joined(separator: ", ")) bytes); " +
                                "estimates still add, the header shows the first")
            }
        }
        var sources: [SnapshotSource] = []
        for (path, snapshot) in inputs {
            if snapshot.sources.isEmpty {
                let h = snapshot.header
                sources.append(SnapshotSource(pid: h.pid, seq: h.seq, timeNanoseconds: h.timeNanoseconds,
                                              hostname: h.hostname, path: path))
            } else {
                sources.append(contentsOf: snapshot.sources) // merging merged files keeps the originals
            }
        }
        let records = totals.indices.map { StackRecord(stack: $0, inuse: totals[$0].inuse, alloc: totals[$0].alloc) }
        return (Snapshot(header: header, modules: modules, stacks: stacks, records: records, sources: sources, python: python), warnings)
    }
}

extension SampleGroup {
    /// Two independent groups together: counts, values and variances add.
    public static func + (a: SampleGroup, b: SampleGroup) -> SampleGroup {
        SampleGroup(samples: a.samples &+ b.samples, bytes: a.bytes + b.bytes, objects: a.objects + b.objects)
    }
}
