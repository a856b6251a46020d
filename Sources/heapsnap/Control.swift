// run, start, stop, dump: process control through the shim's environment and signals.

import ArgumentParser
import HeapSnapKit

struct Run: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run a command with heapsnap preloaded, sampling from the start and writing a snapshot at exit.",
        discussion: """
            The library is found beside this executable or at $HEAPSNAP_LIB. Signals
            sent to heapsnap are forwarded to the command; heapsnap exits with the
            command's status (128+N if it died of signal N) and prints, on stderr,
            the path of every snapshot written while it ran.

            Examples:
              heapsnap run -- ./server --port 8080
              heapsnap run --rate 65536 --dir /var/tmp/snaps -- python3 app.py
              heapsnap run --no-start -- ./batch-job    # then: heapsnap start PID
            """)

    @OptionGroup var sampling: SamplingOptions

    @Option(name: .long, help: "Directory for snapshots (HEAPSNAP_DIR; default $HEAPSNAP_DIR or /tmp); created (mode 0700) when missing.")
    var dir: String?

    @Flag(name: .long, help: "Do not start sampling at launch; start it later with `heapsnap start PID`.")
    var noStart = false

    @Argument(parsing: .postTerminator, help: "The command and its arguments, after --.")
    var command: [String] = []

    /// The command without the `--` separator.
    var argv: [String] { command.first == "--" ? Array(command.dropFirst()) : command }

    func validate() throws {
        if argv.isEmpty { throw ValidationError("give the command to run after --, e.g. heapsnap run -- ./server") }
    }

    func run() throws {
        do {
            let library = try Launcher.findLibrary(environment: environment)
            let launcher = Launcher(library: library, rate: sampling.rate, directory: dir, startSampling: !noStart,
                                    nativeFrames: sampling.native)
            let outcome = try launcher.run(argv, environment: environment)
            for path in outcome.snapshots { note("heapsnap: wrote \(path)") }
            if outcome.snapshots.isEmpty { note("heapsnap: no snapshot was written") }
            summarize(outcome.snapshots)
            if outcome.status != 0 { throw ExitCode(outcome.status) }
        } catch let error as HeapSnapError {
            throw fail(error)
        }
    }
}

extension Run {
    /// Prints the peak and the totals of an at-exit snapshot (else the last one) when it carries a peak,
    /// and, whether or not it does, the warning when that snapshot dropped samples (its figures are low).
    /// When several processes wrote one (a launcher such as pyenv's shims, or a program that forks),
    /// the summary is the process that allocated the most, named with its pid and command.
    /// A file that cannot be read is left to the commands that read it.
    func summarize(_ snapshots: [String]) {
        var candidates: [(path: String, snapshot: Snapshot)] = []
        for path in snapshots {
            if let snapshot = try? SnapshotReader.read(path: path) { candidates.append((path, snapshot)) }
        }
        let atExit = candidates.filter { $0.snapshot.header.flags.contains(.atExit) }
        let busiest = atExit.max { MemorySummary($0.snapshot).allocBytes.value < MemorySummary($1.snapshot).allocBytes.value }
        guard let chosen = busiest ?? candidates.last else { return }
        if chosen.snapshot.peak != nil {
            if Set(atExit.map { $0.snapshot.header.pid }).count > 1 {
                let command = chosen.snapshot.header.commandLine.joined(separator: " ")
                note("heapsnap: \(atExit.count) processes wrote at-exit snapshots; below, pid \(chosen.snapshot.header.pid) (\(command)), which allocated the most")
            }
            let lines = TableRenderer().renderExitSummary(MemorySummary(chosen.snapshot), file: chosen.path, estimated: chosen.snapshot.header.rate > 1)
            for line in lines { note("heapsnap: " + line) }
        }
        if let warning = chosen.snapshot.header.droppedWarning { note("heapsnap: warning: " + warning) }
    }
}

/// The process ids and the waiting options of start/stop/dump.
struct ControlOptions: ParsableArguments {
    @Argument(help: "Process ids of processes running with libheapsnap_preload.so.")
    var pids: [Int32] = []

    @Option(name: .long, help: ArgumentHelp(
        "A process and all its descendants (from /proc); processes of the tree without the shim are skipped. Repeatable.",
        valueName: "pid"))
    var tree: [Int32] = []

    @Option(name: .long, help: "Where the processes write snapshots (default: HEAPSNAP_DIR in each /proc/PID/environ, else /tmp).")
    var dir: String?

    @Option(name: .long, help: ArgumentHelp(
        "The processes' HEAPSNAP_SIGNAL_BASE (default: from each /proc/PID/environ, else 1); for processes that rewrite their environment.",
        valueName: "n"))
    var signalBase: Int32?

    @Option(name: .long, help: "Seconds to wait for the snapshots (all of them, after the last signal), as HEAPSNAP_INTERVAL spells them (10, 0.5).", transform: parseSeconds)
    var timeout: Double = 10

    func validate() throws {
        if pids.isEmpty && tree.isEmpty { throw ValidationError("give one or more process ids, or --tree PID") }
        if (pids + tree).contains(where: { $0 <= 0 }) { throw ValidationError("a process id must be positive") }
        if timeout <= 0 { throw ValidationError("--timeout must be positive") }
        if let signalBase, !ControlAction.signalBases.contains(signalBase) {
            throw ValidationError("--signal-base must be \(ControlAction.signalBases.lowerBound) to \(ControlAction.signalBases.upperBound)")
        }
    }

    /// The named processes, then each tree's members not named already; and each tree's members.
    func targets() -> (targets: [ControlTarget], trees: [(root: Int32, members: Set<Int32>)]) {
        var targets = pids.map { ControlTarget(pid: $0) }
        var seen = Set(pids)
        var trees: [(root: Int32, members: Set<Int32>)] = []
        for root in tree {
            let members = ProcessTree.members(of: root)
            trees.append((root, Set(members)))
            for pid in members where seen.insert(pid).inserted {
                targets.append(ControlTarget(pid: pid, fromTree: true))
            }
        }
        return (targets, trees)
    }

    /// One line per target: a snapshot's path on stdout, anything else on stderr. Exit status 1
    /// when any named process or any tree member with the shim was refused, or a tree had none.
    func perform(_ action: ControlAction) throws {
        let controller = ProcessController(directory: dir, signalBase: signalBase, timeout: timeout)
        let (targets, trees) = targets()
        let outcomes = controller.perform(action, targets: targets)
        for outcome in outcomes {
            let pid = outcome.target.pid
            switch outcome.result {
            case .started: note("heapsnap: sampling started in process \(pid)")
            case .wrote(let path): emit(path + "\n")
            case .refused(let error): note("heapsnap: " + error.description)
            case .skipped(let reason):
                let command = outcome.target.command.isEmpty ? "" : " (\(outcome.target.command))"
                note("heapsnap: process \(pid)\(command): skipped: \(reason)")
            case .waiting: break
            }
        }
        var failed = outcomes.contains(where: \.isRefused)
        for (root, members) in trees where !outcomes.contains(where: { members.contains($0.target.pid) && !$0.isSkipped }) {
            note("heapsnap: process \(root): no process of its tree has libheapsnap_preload.so loaded")
            failed = true
        }
        if failed { throw ExitCode(1) }
    }
}

/// How start/stop/dump choose and check the signal, for their --help.
let controlDiscussion = """
    The signal base and snapshot directory are read from each process's
    /proc/PID/environ (HEAPSNAP_SIGNAL_BASE, HEAPSNAP_DIR); give --signal-base
    and --dir when the process rewrote it (redis does). Nothing is sent unless
    the process has libheapsnap_preload.so mapped and a handler for that exact
    signal (SigCgt in /proc/PID/status): an uncaught real-time signal would
    terminate it.

    Several processes: give several pids, or --tree PID for a process and its
    descendants (a pre-fork server's master and workers). Each process gets the
    same checks and one line: a snapshot's path on stdout; "sampling started",
    a refusal or, for a tree member without the shim, "skipped" on stderr. One
    refused process does not stop the others. A worker forked later by a
    sampling master samples from its start (a fork child of a sampling process
    does), so one `start --tree` on the master covers recycled workers too.

    Exit status: 0 when every named process and every tree member with the
    shim did it; 1 when any was refused (not there, not ours, no shim when
    named, signal not caught, no snapshot in time) or a tree had no process
    with the shim; 64 for bad arguments.


    """

struct Start: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Start sampling in running processes that have heapsnap preloaded (sends SIGRTMIN+base, base 1 by default).",
        discussion: controlDiscussion + "Examples:\n  heapsnap start $(pidof server)\n  heapsnap start --tree $(pgrep -o gunicorn)")
    @OptionGroup var control: ControlOptions
    func run() throws { try control.perform(.start) }
}

struct Stop: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Stop sampling and write a final snapshot (sends SIGRTMIN+base+1); prints each path.",
        discussion: controlDiscussion + "Examples:\n  heapsnap stop $(pidof server)\n  heapsnap stop --tree $(pgrep -o gunicorn)")
    @OptionGroup var control: ControlOptions
    func run() throws { try control.perform(.stop) }
}

struct Dump: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write a snapshot and keep sampling (sends SIGRTMIN+base+2); prints each path.",
        discussion: controlDiscussion + "Example:\n  heapsnap dump $(pidof server)\n  heapsnap top $(heapsnap dump $(pidof server))")
    @OptionGroup var control: ControlOptions
    func run() throws { try control.perform(.dump) }
}

struct Attach: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Load heapsnap into a running process started without it, and start sampling (no gdb needed).",
        discussion: """
            The process is traced (ptrace) until one of its threads enters malloc, free,
            calloc or realloc: there, holding no allocator or loader lock, it loads
            libheapsnap_preload.so and returns to exactly where it was (registers, signal
            mask, pending signals; a stopped process stays stopped). The library then
            routes the process's allocation functions to itself. From then on `dump`,
            `stop`, `start` and `detach` work on the process as on a preloaded one.
            A process that has the library already (preloaded, or attached before) is
            only started, through its signal.

            Refused, with nothing touched: another user's process, kernel.yama.ptrace_scope
            forbidding it, a statically linked program, a process under seccomp or traced
            by a debugger, and a process that calls none of those functions within
            --timeout (it is left running as it was).

            Examples:
              heapsnap attach 4242
              heapsnap attach --rate 64K --dir /var/tmp/snaps 4242
              heapsnap dump 4242; heapsnap detach 4242
            """)

    @Argument(help: "The process id.")
    var pid: Int32

    @OptionGroup var sampling: SamplingOptions

    @Option(name: .long, help: "Directory for snapshots, as the process sees it (default /tmp); created (mode 0700) when missing.")
    var dir: String?

    @Option(name: .long, help: ArgumentHelp("The signal base the library uses (HEAPSNAP_SIGNAL_BASE, default 1): move it if the process uses SIGRTMIN+1..3.",
                                            valueName: "n"))
    var signalBase: Int32?

    @Flag(name: .long, help: "Load the library but do not start sampling; start it later with `heapsnap start PID`.")
    var noStart = false

    @Option(name: .long, help: "Seconds to wait for the process to enter an allocation function.", transform: parseSeconds)
    var timeout: Double = 5

    func validate() throws {
        if pid <= 0 { throw ValidationError("a process id must be positive") }
        if timeout <= 0 { throw ValidationError("--timeout must be positive") }
        if let signalBase, !ControlAction.signalBases.contains(signalBase) {
            throw ValidationError("--signal-base must be \(ControlAction.signalBases.lowerBound) to \(ControlAction.signalBases.upperBound)")
        }
    }

    func run() throws {
        do throws(HeapSnapError) {
            let library = try Launcher.findLibrary(environment: environment)
            let request = AttachRequest(pid: pid, library: library, rate: sampling.rate, directory: dir, signalBase: signalBase,
                                        startSampling: !noStart, timeout: timeout, nativeFrames: sampling.native)
            let report = try Attacher.attach(request)
            let what = noStart ? "loaded, not sampling (heapsnap start \(pid))" : "sampling"
            if report.loadedNow {
                let ms = { (s: Double) in String(format: "%.1f ms", s * 1000) }
                note("heapsnap: attached to process \(pid) in \(ms(report.seconds)) (safe point after \(ms(report.safePointSeconds)), "
                     + "\(report.threads) thread\(report.threads == 1 ? "" : "s")\(report.wasStopped ? ", left stopped" : "")): \(what); snapshots in \(report.directory)")
            } else {
                note("heapsnap: process \(pid) has libheapsnap_preload.so already: \(noStart ? "left as it is" : "sampling started through its signal"); "
                     + "snapshots in \(report.directory)")
            }
        } catch {
            throw fail(error)
        }
    }
}

struct Detach: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write the final snapshot of an attached process and restore its allocation functions (the library stays loaded, idle).",
        discussion: controlDiscussion + "Example:\n  heapsnap detach 4242")
    @OptionGroup var control: ControlOptions
    func run() throws {
        let attached = control.pids.map { AttachedSettings.read(pid: $0) != nil }
        try control.perform(.stop)
        for (pid, attached) in zip(control.pids, attached) {
            note(attached ? "heapsnap: detached from process \(pid): allocation functions restored, library loaded and idle"
                          : "heapsnap: process \(pid): sampling stopped (its library was preloaded, not attached: it stays in place)")
        }
    }
}

extension NativeFrames: ExpressibleByArgument {}

/// How `run` and `attach` sample: the rate and, for Python, which native frames.
struct SamplingOptions: ParsableArguments {
    @Option(name: .long, help: "Mean bytes between samples, as HEAPSNAP_RATE spells it (65536, 64K, 1M; 1 records every allocation).",
            transform: parseBytes)
    var rate: UInt64?

    @Option(name: .long, help: ArgumentHelp("Native frames on threads running Python (HEAPSNAP_NATIVE): all, inner (only those below the innermost Python frame; cheaper) or none (Python frames only, as tracemalloc records them; cheapest).",
                                            valueName: "all|inner|none"))
    var native: NativeFrames?

    func validate() throws {
        if let rate, rate == 0 { throw ValidationError("--rate must be at least 1") }
    }
}
