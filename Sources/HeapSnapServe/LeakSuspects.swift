// The web view's leak suspects: `heapsnap leaks` over every snapshot of the
// processes the page names (the workers of one service). The files go through
// the CLI's own steps — SnapshotSeries, LeakFinder, the JSON renderer — so the
// page shows the bytes `heapsnap leaks --format json` prints for those files.
// LeakFinder symbolizes through a Pipeline of its own, kept for the server's
// life on one serial queue, so a second look at a growing series only
// symbolizes the addresses it has not seen.

import Dispatch
import HeapSnapKit

/// The parameters of a leaks request, as the page sends them (the CLI's options, by the same names).
struct LeaksRequest: Sendable, Hashable {
    /// Process group keys ("host/pid"): every snapshot of each is read.
    var groups: [String]
    var groupBy: GroupBy = .line
    var options = LeakOptions()

    /// Parses g (repeatable), by and minConfidence. Throws naming the bad parameter.
    init(query: (String) -> [String]) throws(ServeError) {
        groups = query("g")
        guard !groups.isEmpty else { throw .badRequest("name the processes with g=HOST/PID") }
        guard groups.count <= 256 else { throw .badRequest("at most 256 processes at once") }
        if let by = query("by").last {
            guard let value = GroupBy(rawValue: by), value != .traceback else {
                throw .badRequest("by=\(by): give one of line, function, file, module")
            }
            groupBy = value
        }
        if let text = query("minConfidence").last {
            guard let value = Double(text), (0.5...0.999999).contains(value) else {
                throw .badRequest("minConfidence=\(text): give a number from 0.5 to 0.999999")
            }
            options.minConfidence = value
        }
    }
}

/// Answers leaks requests one at a time, off the server's threads.
final class LeakSuspects: @unchecked Sendable {
    private let queue = DispatchQueue(label: "heapsnap.leaks")
    private let environment: [String: String]
    private let debugDirectories: [String]
    // Touched only on `queue`.
    private var pipeline: Pipeline?

    init(environment: [String: String], debugDirectories: [String] = []) {
        self.environment = environment
        self.debugDirectories = debugDirectories
    }

    /// `heapsnap leaks --format json` of `paths` (snapshot files of one program) with `request`'s options.
    func report(paths: [String], _ request: LeaksRequest) async throws(ServeError) -> [UInt8] {
        let result: Result<[UInt8], ServeError> = await withCheckedContinuation { continuation in
            queue.async { [self] in
                if pipeline == nil {
                    pipeline = Pipeline(options: SymbolizeOptions(debugDirectories: debugDirectories, progress: false),
                                        environment: environment)
                }
                do throws(HeapSnapError) {
                    let series = try SnapshotSeries.scan(paths)
                    let finder = LeakFinder(pipeline: pipeline!, groupBy: request.groupBy, options: request.options)
                    let report = finder.report(try series.program(named: nil))
                    continuation.resume(returning: .success(Array(JSONRenderer().render(report).utf8)))
                } catch {
                    continuation.resume(returning: .failure(.badSnapshot(error)))
                }
            }
        }
        return try result.get()
    }
}
