// One side of a question from several files and directories: the service's
// moment. Arguments are scanned as a `SnapshotSeries`; of one program (the
// only one, or `--program NAME`), each process's run contributes its newest
// snapshot, and those are merged like `heapsnap merge`. A run found in a
// directory whose newest snapshot is older than the service's newest by more
// than a slack (three times the median gap between the last two snapshots of
// the runs, at least 60 s) is a process that exited or stopped long before
// the others and is left out; a run with a file named as an argument is
// always used. What is passed over is said in one note line each: stale processes, and named
// files that were not the newest of their process (a directory's older snapshots are its history).
// One plain file argument is that file, exactly as before.

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// The snapshots several arguments stand for, and what was passed over on the way.
public struct ServiceSelection: Sendable {
    /// The files at their moment (one newest snapshot per process), named for the table's header.
    public var selection: SnapshotSelection
    /// The processes used, one file each, in the order of `selection.files`.
    public var processes: [SnapshotSeries.Entry]
    /// Lines for stderr: unusable files, older snapshots passed over, stale processes left out.
    public var notes: [String]

    /// The smallest slack allowed between a process's newest snapshot and the service's.
    public static let minimumSlackNanoseconds: UInt64 = 60_000_000_000
    /// The slack in gaps between periodic snapshots.
    public static let slackGaps: UInt64 = 3

    /// Which snapshot of each run: its newest (the service now) or its first (when sampling started).
    public enum Pick: Sendable { case newest, first }

    /// Resolves `arguments` (files, `FILE@peak`, directories). `moment` applies to every file;
    /// an argument ending in `@peak` reads every file at its peak.
    /// Throws for an argument that cannot be read, no usable snapshot, or several programs without `program`.
    public static func resolve(_ arguments: [String], moment: Moment = .snapshot, program name: String? = nil,
                               pick: Pick = .newest) throws(HeapSnapError) -> ServiceSelection {
        let refs = arguments.map { SnapshotRef(argument: $0) }
        let moment: Moment = moment == .peak || refs.contains { $0.moment == .peak } ? .peak : .snapshot
        let paths = refs.map(\.path)
        if paths.count == 1, !isDirectory(paths[0]), pick == .newest {
            return ServiceSelection(selection: SnapshotSelection(files: paths, moment: moment), processes: [], notes: [])
        }
        let series = try SnapshotSeries.scan(paths)
        var notes = series.problems.map { "heapsnap: \($0.description)" }
        let program = try series.program(named: name)
        let named = Set(paths.filter { !isDirectory($0) })

        var runs = program.runs
        let newestTime = runs.map { $0.entries.last!.header.timeNanoseconds }.max() ?? 0
        let slack = slackNanoseconds(runs)
        let stale = runs.filter { run in
            !run.entries.contains { named.contains($0.path) } && run.entries.last!.header.timeNanoseconds + slack < newestTime
        }
        if !stale.isEmpty {
            runs.removeAll { run in stale.contains(run) }
            let list = stale.map { "pid \($0.pid) (\($0.entries.last!.path))" }.joined(separator: ", ")
            notes.append("heapsnap: note: left out \(stale.count) process\(stale.count == 1 ? "" : "es") whose newest snapshot is more than "
                         + "\(Format.duration(nanoseconds: Double(slack))) older than the service's newest (exited or stopped): \(list); name their files to include them")
        }

        let chosen = runs.map { pick == .newest ? $0.entries.last! : $0.entries.first! }
        // Older snapshots found in a directory are passed over as a matter of course (periodic ones
        // pile up there); only files the user named and that were not used are worth a note.
        let passed = runs.flatMap { run in run.entries.filter { $0 != (pick == .newest ? run.entries.last! : run.entries.first!) } }
            .filter { named.contains($0.path) }
        if !passed.isEmpty && pick == .newest {
            notes.append("heapsnap: note: used the newest snapshot of each process; passed over \(passed.count) older named: "
                         + passed.map(\.path).joined(separator: ", "))
        }
        var selection = SnapshotSelection(files: chosen.map(\.path), moment: moment)
        if chosen.count > 1 {
            let which = pick == .newest ? "newest" : "first"
            selection.title = "\(chosen.count) processes of \(program.name) merged, the \(which) snapshot of each (\(paths.joined(separator: " ")))"
        }
        return ServiceSelection(selection: selection, processes: chosen, notes: notes)
    }

    /// How much older than the service's newest snapshot a process's newest may be:
    /// `slackGaps` times the median gap between the last two snapshots of the runs, at least a minute.
    static func slackNanoseconds(_ runs: [SnapshotSeries.Run]) -> UInt64 {
        let gaps = runs.compactMap { run -> UInt64? in
            guard run.entries.count >= 2 else { return nil }
            let (a, b) = (run.entries[run.entries.count - 2].header.timeNanoseconds, run.entries.last!.header.timeNanoseconds)
            return b > a ? b - a : 0
        }.sorted()
        let median = gaps.isEmpty ? 0 : gaps[gaps.count / 2]
        return max(minimumSlackNanoseconds, slackGaps * median)
    }

    /// Whether `path` is a directory (following symlinks).
    public static func isDirectory(_ path: String) -> Bool {
        var st = stat()
        return stat(path, &st) == 0 && st.st_mode & S_IFMT == S_IFDIR
    }
}
