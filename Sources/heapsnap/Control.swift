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

    @Option(name: .long, help: "Mean bytes between samples (HEAPSNAP_RATE; 1 records every allocation).")
    var rate: UInt64?

    @Option(name: .long, help: "Directory for snapshots (HEAPSNAP_DIR; default $HEAPSNAP_DIR or /tmp).")
    var dir: String?

    @Flag(name: .long, help: "Do not start sampling at launch; start it later with `heapsnap start PID`.")
    var noStart = false

    @Argument(parsing: .captureForPassthrough, help: "The command and its arguments (after --).")
    var command: [String] = []

    /// The command without the `--` separator.
    var argv: [String] { command.first == "--" ? Array(command.dropFirst()) : command }

    func validate() throws {
        if argv.isEmpty { throw ValidationError("give the command to run after --, e.g. heapsnap run -- ./server") }
        if let rate, rate == 0 { throw ValidationError("--rate must be at least 1") }
    }

    func run() throws {
        do {
            let library = try Launcher.findLibrary(environment: environment)
            let launcher = Launcher(library: library, rate: rate, directory: dir, startSampling: !noStart)
            let outcome = try launcher.run(argv, environment: environment)
            for path in outcome.snapshots { note("heapsnap: wrote \(path)") }
            if outcome.snapshots.isEmpty { note("heapsnap: no snapshot was written") }
            if outcome.status != 0 { throw ExitCode(outcome.status) }
        } catch let error as HeapSnapError {
            if case .failed(let message) = error, message.contains("cannot run") { throw fail(error, code: 127) }
            throw fail(error, code: 1)
        }
    }
}

/// The process id argument and the waiting options of start/stop/dump.
struct ControlOptions: ParsableArguments {
    @Argument(help: "The process id of a process running with libheapsnap_preload.so.")
    var pid: Int32

    @Option(name: .long, help: "Where the process writes snapshots (default: its HEAPSNAP_DIR, else /tmp).")
    var dir: String?

    @Option(name: .long, help: "Seconds to wait for the snapshot.")
    var timeout: Double = 10

    func validate() throws {
        if pid <= 0 { throw ValidationError("the process id must be positive") }
        if timeout <= 0 { throw ValidationError("--timeout must be positive") }
    }

    func perform(_ action: ControlAction) throws {
        do {
            let controller = ProcessController(directory: dir, timeout: timeout)
            if let path = try controller.perform(action, pid: pid) {
                emit(path + "\n")
            } else {
                note("heapsnap: sampling started in process \(pid)")
            }
        } catch {
            throw fail(error, code: 1)
        }
    }
}

struct Start: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Start sampling in a running process that has heapsnap preloaded (sends SIGRTMIN+1).",
        discussion: "Example:\n  heapsnap start $(pidof server)")
    @OptionGroup var control: ControlOptions
    func run() throws { try control.perform(.start) }
}

struct Stop: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Stop sampling and write a final snapshot (sends SIGRTMIN+2); prints its path.",
        discussion: "Example:\n  heapsnap stop $(pidof server)")
    @OptionGroup var control: ControlOptions
    func run() throws { try control.perform(.stop) }
}

struct Dump: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write a snapshot and keep sampling (sends SIGRTMIN+3); prints its path.",
        discussion: "Example:\n  heapsnap dump $(pidof server)\n  heapsnap top $(heapsnap dump $(pidof server))")
    @OptionGroup var control: ControlOptions
    func run() throws { try control.perform(.dump) }
}
