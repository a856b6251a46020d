// The `heapsnap` command: parses arguments, calls HeapSnapKit, maps errors to
// exit codes (2 for bad input, with one line naming the file). No analysis
// logic lives here.

import ArgumentParser
import Foundation
import HeapSnapKit

@main
struct Heapsnap: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "heapsnap",
        abstract: "Sampling heap profiler for Linux processes: read snapshots, find what holds memory and what grew.",
        discussion: """
            Typical session:
              heapsnap run -- ./server --port 8080     # profile a command from its start
              heapsnap dump $(pidof server)             # snapshot a running, preloaded process
              heapsnap top /tmp/heapsnap.4242.0.heapsnap
              heapsnap diff /tmp/heapsnap.4242.0.heapsnap /tmp/heapsnap.4242.1.heapsnap
              heapsnap serve --dir /tmp                 # the web view: processes, timelines, flamegraphs, diffs

            Every size is an estimate from samples; ± is its 95% interval (1.96 σ).
            Exit status: 0 ok, 1 process-control, write or export failure, 2 bad input file,
            64 usage, 127 a command `run` cannot start.
            """,
        subcommands: [Top.self, Diff.self, Info.self, FlameGraph.self, TimelineCommand.self, Export.self, Merge.self,
                      Leaks.self, Run.self, Attach.self, Detach.self, Start.self, Stop.self, Dump.self, Serve.self]
    )
}

extension HeapSnapError {
    /// The exit status for this failure: 2 for a bad input file or usage, 127
    /// for a command that cannot be started (as shells do), 1 for everything
    /// else (process control, writing, exporting).
    var exitCode: Int32 {
        switch self {
        case .unreadable, .notASnapshot, .unsupportedVersion, .corrupt, .noCommand, .noPeak, .noSeries, .differentPrograms,
             .noSnapshots, .severalPrograms, .noSuchProgram: 2
        case .cannotRun: 127
        case .noSuchProcess, .permissionDenied, .notProfiled, .signalNotCaught, .exitedBeforeSnapshot, .timedOut,
             .libraryNotFound, .cannotCreateDirectory, .cannotWrite, .diffNotExportable, .cannotEncode, .attachFailed: 1
        }
    }
}

/// Prints `error` as one line on stderr; the exit code for it.
func fail(_ error: HeapSnapError) -> ExitCode {
    writeAll(2, Array(("heapsnap: " + error.description + "\n").utf8))
    return ExitCode(error.exitCode)
}

/// Writes `text` to stdout.
func emit(_ text: String) {
    writeAll(1, Array(text.utf8))
}

/// Prints one line on stderr.
func note(_ text: String) {
    writeAll(2, Array((text + "\n").utf8))
}

/// Writes all of `bytes` to `fd`. A reader that went away (`heapsnap top … | head`) ends the
/// command as a closed pipe ends any Unix filter: quietly, by SIGPIPE (not a crash in FileHandle).
func writeAll(_ fd: Int32, _ bytes: [UInt8]) {
    var offset = 0
    while offset < bytes.count {
        let n = bytes[offset...].withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        if n > 0 {
            offset += n
        } else if n < 0 && errno == EINTR {
            continue
        } else if n < 0 && errno == EPIPE {
            signal(SIGPIPE, SIG_DFL)
            raise(SIGPIPE)
            exit(141)
        } else {
            return                          // stdout closed or full disk: nothing more can be said
        }
    }
}

let environment = ProcessInfo.processInfo.environment
