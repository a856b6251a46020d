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
                      Run.self, Start.self, Stop.self, Dump.self, Serve.self]
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
             .libraryNotFound, .cannotCreateDirectory, .cannotWrite, .diffNotExportable, .cannotEncode: 1
        }
    }
}

/// Prints `error` as one line on stderr; the exit code for it.
func fail(_ error: HeapSnapError) -> ExitCode {
    FileHandle.standardError.write(Data(("heapsnap: " + error.description + "\n").utf8))
    return ExitCode(error.exitCode)
}

/// Writes `text` to stdout.
func emit(_ text: String) {
    FileHandle.standardOutput.write(Data(text.utf8))
}

/// Prints one line on stderr.
func note(_ text: String) {
    FileHandle.standardError.write(Data((text + "\n").utf8))
}

let environment = ProcessInfo.processInfo.environment
