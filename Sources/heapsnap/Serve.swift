// serve: the web view over snapshot directories (all in HeapSnapServe).

import ArgumentParser
import Foundation
import HeapSnapKit
import HeapSnapServe

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Serve a web page: profiled processes with Start/Snapshot/Stop, snapshots with timelines, tables, flamegraphs, diffs.",
        discussion: """
            Prints one line with the URL and a random access token; every request
            needs that token (the page keeps it in a cookie). Only *.heapsnap files
            under the --dir directories are read. Binds 127.0.0.1 unless --listen
            says otherwise (the token is still required). Stop with Ctrl-C.

            Examples:
              heapsnap serve                           # $HEAPSNAP_DIR or /tmp, port 8090
              heapsnap serve --dir /var/tmp/snaps --port 0    # any free port
              heapsnap serve --dir snaps --listen 0.0.0.0     # other hosts too, with the token
            """)

    @Option(name: .long, help: ArgumentHelp("A directory of snapshots to serve (repeatable; default $HEAPSNAP_DIR, else /tmp).", valueName: "dir"))
    var dir: [String] = []

    @Option(name: .long, help: "The port (0 picks a free one).")
    var port: Int = 8090

    @Option(name: .long, help: ArgumentHelp("The address to bind.", valueName: "addr"))
    var listen: String = "127.0.0.1"

    @Option(name: .customLong("debug-dir"), help: ArgumentHelp("Directory with separate debug files under .build-id/ (repeatable).", valueName: "dir"))
    var debugDirectories: [String] = []

    func validate() throws {
        if !(0...65535).contains(port) { throw ValidationError("--port must be 0 to 65535") }
        if listen.isEmpty { throw ValidationError("--listen needs an address, e.g. 127.0.0.1 or 0.0.0.0") }
    }

    func run() async throws {
        var configuration = ServeConfiguration(directories: dir.isEmpty ? [environment["HEAPSNAP_DIR"].flatMap { $0.isEmpty ? nil : $0 } ?? "/tmp"] : dir,
                                               host: listen, port: port)
        configuration.debugDirectories = debugDirectories
        let state: ServeState
        do {
            state = try WebServer.state(configuration, environment: environment)
        } catch {
            note("heapsnap: \(error.description)")
            throw ExitCode(2)
        }
        do {
            try await WebServer.run(state, host: listen, port: port) { url in
                emit("heapsnap: serving \(url)\n")
            }
        } catch {
            note("heapsnap: cannot serve on \(listen):\(port): \(error) (give another --port, or 0 for any free one)")
            throw ExitCode(1)
        }
    }
}
