/// Every failure the tool reports. Each message names the file (or process)
/// and what is wrong, on one line. The executable maps each case to its exit
/// status in one place (Sources/heapsnap/Heapsnap.swift).
public enum HeapSnapError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The file could not be opened or read.
    case unreadable(file: String, reason: String)
    /// The file is not a heapsnap snapshot at all.
    case notASnapshot(file: String)
    /// A snapshot of a format version this tool does not read.
    case unsupportedVersion(file: String, major: UInt16)
    /// The file is a snapshot but is damaged or truncated.
    case corrupt(file: String, reason: String)
    /// No process has this id.
    case noSuchProcess(pid: Int32)
    /// The process exists but belongs to another user.
    case permissionDenied(pid: Int32)
    /// The process does not have the preload library mapped (per /proc/PID/maps).
    case notProfiled(pid: Int32)
    /// The process has no handler for the signal we would send; nothing was sent
    /// (an uncaught real-time signal terminates the process).
    case signalNotCaught(pid: Int32, signal: Int32, rtOffset: Int32, base: Int32, origin: SignalBaseOrigin)
    /// The process exited after the signal, without writing a snapshot.
    case exitedBeforeSnapshot(pid: Int32, directory: String)
    /// A directory could not be created.
    case cannotCreateDirectory(path: String, reason: String)
    /// The process did not write the expected snapshot in time.
    case timedOut(pid: Int32, seconds: Double, directory: String)
    /// The preload library could not be found.
    case libraryNotFound(searched: [String])
    /// A file could not be written (`step` says which part of writing failed).
    case cannotWrite(file: String, step: String, reason: String)
    /// A command could not be started.
    case cannotRun(program: String, reason: String)
    /// `heapsnap run` was given no command.
    case noCommand
    /// An export format that takes one snapshot was given a diff.
    case diffNotExportable(format: String, instead: String)
    /// An exporter could not encode its document.
    case cannotEncode(format: String, reason: String)
    /// `--at peak` or `FILE@peak` on a file without a `PEAK` record.
    case noPeak(file: String)
    /// A timeline of a process with one snapshot and no series (`SERS`) in it.
    case noSeries(file: String, pid: UInt32)
    /// A timeline of files of different programs.
    case differentPrograms(file: String, program: String, expected: String, firstFile: String)
    /// Files and directories with no usable snapshot in them.
    case noSnapshots(arguments: [String])
    /// Snapshots of several programs where one was expected (each: name, processes, a file).
    case severalPrograms([String])
    /// `--program NAME` names none of the programs found.
    case noSuchProgram(name: String, programs: [String])
    /// `heapsnap attach` refused, or found no safe point, or failed inside the process; the
    /// reason names the process and what to do. The process was left as it was.
    case attachFailed(pid: Int32, reason: String)

    public var description: String {
        switch self {
        case .unreadable(let file, let reason): "\(file): cannot read: \(reason)"
        case .notASnapshot(let file): "\(file): not a heapsnap snapshot (wrong magic number)"
        case .unsupportedVersion(let file, let major):
            "\(file): snapshot format version \(major) is not supported (this heapsnap reads version 1); use a newer heapsnap"
        case .corrupt(let file, let reason): "\(file): corrupt snapshot: \(reason)"
        case .noSuchProcess(let pid): "process \(pid): no such process"
        case .permissionDenied(let pid):
            "process \(pid): permission denied (it belongs to another user; run heapsnap as that user or as root)"
        case .notProfiled(let pid):
            "process \(pid): libheapsnap_preload.so is not loaded (not in /proc/\(pid)/maps); start it with `heapsnap run` or LD_PRELOAD"
        case .signalNotCaught(let pid, let signal, let rtOffset, let base, let origin):
            "process \(pid): does not catch SIGRTMIN+\(rtOffset) (signal \(signal)), so it was not sent (it would terminate the process); "
                + {
                    switch origin {
                    case .option: "is --signal-base \(base) its HEAPSNAP_SIGNAL_BASE?"
                    case .environment:
                        "/proc/\(pid)/environ says HEAPSNAP_SIGNAL_BASE=\(base) but the program removed the handler; give --signal-base if the base differs"
                    case .assumedDefault:
                        "no HEAPSNAP_SIGNAL_BASE in /proc/\(pid)/environ (the process may have rewritten it), base 1 assumed; give --signal-base N and --dir DIR"
                    }
                }()
        case .exitedBeforeSnapshot(let pid, let directory): "process \(pid): exited before writing a snapshot to \(directory)"
        case .cannotCreateDirectory(let path, let reason): "\(path): cannot create the directory: \(reason)"
        case .timedOut(let pid, let seconds, let directory):
            "process \(pid): no new snapshot in \(directory) after \(seconds) s (is HEAPSNAP_DIR different, or the process stopped?); try --dir or --timeout"
        case .libraryNotFound(let searched):
            "libheapsnap_preload.so not found (looked at \(searched.joined(separator: ", "))); set HEAPSNAP_LIB to its path"
        case .cannotWrite(let file, let step, let reason): "\(file): cannot write (\(step)): \(reason)"
        case .cannotRun(let program, let reason): "\(program): cannot run: \(reason)"
        case .noCommand: "heapsnap run: no command given; put it after --, e.g. heapsnap run -- ./server"
        case .diffNotExportable(let format, let instead): "\(format) export takes one snapshot, not a diff; \(instead)"
        case .cannotEncode(let format, let reason): "cannot encode the \(format) document: \(reason)"
        case .noPeak(let file):
            "\(file): no peak: the file has no peak record (PEAK, format 1.2, written by a shim that tracks the peak while sampling); read the snapshot itself, without --at peak or @peak"
        case .noSeries(let file, let pid):
            "\(file): no memory series in this snapshot (the SERS record of format 1.2) and no other snapshot of process \(pid) to form one; give several snapshots of the process (HEAPSNAP_INTERVAL writes them)"
        case .differentPrograms(let file, let program, let expected, let firstFile):
            "\(file): a snapshot of \(program), but the timeline is of \(expected) (\(firstFile)); draw one timeline per program"
        case .noSnapshots(let arguments):
            "\(arguments.joined(separator: " ")): no usable heapsnap snapshot (*.heapsnap) found"
        case .severalPrograms(let programs):
            "snapshots of \(programs.count) programs: \(programs.joined(separator: "; ")); pick one with --program NAME"
        case .noSuchProgram(let name, let programs):
            "--program \(name): no snapshots of that program (found: \(programs.joined(separator: ", ")))"
        case .attachFailed(_, let reason): reason
        }
    }
}

/// Where the signal base used for a process came from (for error messages).
public enum SignalBaseOrigin: Sendable, Equatable {
    /// Given by hand (`--signal-base`).
    case option
    /// HEAPSNAP_SIGNAL_BASE in /proc/PID/environ.
    case environment
    /// Not found anywhere: the shim's default, 1.
    case assumedDefault
}
