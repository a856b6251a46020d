// A real service: gunicorn with 4 sync workers serving
// Tests/Programs/flask_service.py (one handler that leaks a record per
// request into a module-level list, one that only churns), from a virtual
// environment with pinned gunicorn and Flask (Scripts/lib.sh
// `ensure_service_venv`, which Scripts/test runs; cached in
// .build/service-venv). Tests/Programs/flask_service_run.py preloads the
// shim, starts the master and its workers with `heapsnap start --tree`
// (snapshots every second), drives 18 s of load on 127.0.0.1 and stops them
// with `heapsnap stop --tree`; `heapsnap leaks` and `heapsnap top` then read
// the directory.
// Without the venv the tests fail and say how to make it.

import Foundation
import HeapSnapKit
import Testing

enum FlaskService {
    /// The virtual environment: $HEAPSNAP_SERVICE_VENV (Scripts/test sets it), else .build/service-venv.
    static var venv: String {
        ProcessInfo.processInfo.environment["HEAPSNAP_SERVICE_VENV"].flatMap { $0.isEmpty ? nil : $0 }
            ?? Shim.packageRoot + "/.build/service-venv"
    }

    struct Run {
        var directory: Scratch
        var master: Int32
        var workers: [Int32]
        /// The processes `start --tree MASTER` and `stop --tree MASTER` reached.
        var started: Set<Int32>
        var stopped: Set<Int32>
        var requests: Int
        /// `heapsnap leaks DIR --format json`, parsed.
        var leaks: [String: Any]
        var sites: [[String: Any]] { leaks["sites"] as? [[String: Any]] ?? [] }
    }

    /// Runs the service (with or without its leak) and `heapsnap leaks` over its snapshots.
    static func run(leak: Bool) throws -> Run {
        let reason = ProcessInfo.processInfo.environment["HEAPSNAP_SERVICE_VENV_ERROR"] ?? "run Scripts/test, or `source Scripts/lib.sh; ensure_service_venv`"
        try #require(FileManager.default.isExecutableFile(atPath: venv + "/bin/gunicorn"),
                     "no virtual environment with gunicorn and Flask at \(venv): \(reason)")
        let heapsnap = heapsnapTool()
        try #require(FileManager.default.isExecutableFile(atPath: heapsnap), "\(heapsnap) is missing: build it (Scripts/test)")
        let scratch = try Scratch()
        var arguments = [Shim.packageRoot + "/Tests/Programs/flask_service_run.py", "--venv", venv, "--heapsnap", heapsnap,
                         "--lib", Shim.library, "--dir", scratch.path, "--seconds", "18"]
        if !leak { arguments.append("--no-leak") }
        let driver = try runCommand(venv + "/bin/python", arguments)
        try #require(driver.status == 0, "flask_service_run.py failed: \(driver.stderr)")
        let summary = try #require(try JSONSerialization.jsonObject(with: Data(driver.stdout.utf8)) as? [String: Any])
        let workers = (summary["workers"] as? [Int] ?? []).map(Int32.init)
        let leaks = try runCommand(heapsnap, ["leaks", scratch.path, "--format", "json"])
        try #require(leaks.status == 0, "heapsnap leaks failed: \(leaks.stderr)")
        let report = try #require(try JSONSerialization.jsonObject(with: Data(leaks.stdout.utf8)) as? [String: Any])
        let pids = { (key: String) in Set((summary[key] as? [Int] ?? []).map(Int32.init)) }
        return Run(directory: scratch, master: Int32(summary["master"] as? Int ?? 0), workers: workers,
                   started: pids("started"), stopped: pids("stopped"), requests: summary["ok"] as? Int ?? 0, leaks: report)
    }

    /// Runs a command to its end from a clean signal state (Background, as from a shell): with the mask
    /// of the test thread, which blocks SIGTERM, gunicorn's master never saw the driver's SIGTERM and was
    /// killed only after the driver's 30 s wait.
    static func runCommand(_ path: String, _ arguments: [String]) throws -> (status: Int32, stdout: String, stderr: String) {
        let r = try Background.run(path, arguments, preload: false, timeout: 300)
        return (r.status, r.stdout, r.stderr)
    }

    /// The line of `marker` in Tests/Programs/flask_service.py.
    static func line(of marker: String) throws -> Int {
        let text = try String(contentsOfFile: Shim.packageRoot + "/Tests/Programs/flask_service.py", encoding: .utf8)
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        return try #require(lines.firstIndex { $0.contains("# " + marker) }) + 1
    }

    static func isApp(_ site: [String: Any], line: Int) -> Bool {
        let key = site["key"] as? [String: Any] ?? [:]
        return (key["file"] as? String ?? "").hasSuffix("flask_service.py") && key["line"] as? Int == line
    }
}

@Suite(.serialized) struct FlaskServiceTests {
    @Test("gunicorn, 4 workers: leaks names the leaking line first and nothing in the churning handler")
    func leakingServiceIsFound() throws {
        let run = try FlaskService.run(leak: true)
        #expect(run.workers.count == 4)
        #expect(run.requests > 200, "only \(run.requests) requests were served")
        // Every worker wrote snapshots, and leaks read each of them.
        let files = try SnapshotSeries.scan([run.directory.path])
        for worker in run.workers {
            let count = files.programs.flatMap(\.runs).filter { $0.pid == UInt32(worker) }.reduce(0) { $0 + $1.entries.count }
            #expect(count >= 5, "worker \(worker) wrote \(count) snapshots")
        }
        // start --tree and stop --tree on the master reached it and every worker.
        #expect(run.started == Set(run.workers + [run.master]), "start --tree reached \(run.started.sorted()), workers \(run.workers), master \(run.master)")
        #expect(run.stopped == Set(run.workers + [run.master]), "stop --tree wrote the final snapshots of \(run.stopped.sorted())")
        let processes = (run.leaks["processes"] as? [[String: Any]] ?? []).compactMap { $0["pid"] as? Int }
        #expect(Set(processes) == Set((run.workers + [run.master]).map(Int.init)))

        let leakLine = try FlaskService.line(of: "LEAK-SITE"), churnLine = try FlaskService.line(of: "CHURN-SITE")
        // top over the directory: the newest snapshot of the master and of each worker, merged; the leak holds the most.
        let top = try FlaskService.runCommand(heapsnapTool(), ["top", run.directory.path, "--limit", "3"])
        #expect(top.status == 0, "\(top.stderr)")
        #expect(top.stdout.hasPrefix("heapsnap top  \(run.workers.count + 1) processes of gunicorn merged, the newest snapshot of each"),
                "\(top.stdout.prefix(300))")
        let firstRow = top.stdout.split(separator: "\n").first { $0.contains("flask_service.py:") } ?? ""
        #expect(firstRow.contains("flask_service.py:\(leakLine)"), "top's first row of the app: \(firstRow)")
        let first = try #require(run.sites.first)
        #expect(FlaskService.isApp(first, line: leakLine), "first site: \(first["label"] ?? "?") (\(first["verdict"] ?? "?"))")
        // "leak" says it grows faster than the traffic (a trend in its bytes per unit of allocation
        // rate); with the whole suite running beside it the service's traffic comes in bursts, and
        // that trend may not reach 95% when the growth does (once in seven full runs on 2 cores,
        // 2026-12-07: 214 s for this test against 22 s alone). Either way it is the one suspect.
        #expect(["leak", "growing"].contains(first["verdict"] as? String ?? ""), "\(first["verdict"] ?? "?")")
        let churn = run.sites.filter { FlaskService.isApp($0, line: churnLine) }
        #expect(!churn.isEmpty, "the churning line was never sampled")
        for site in churn { #expect(site["verdict"] as? String == "steady" || site["verdict"] as? String == "too few samples") }
        // Nothing else is a suspect: the leak is its record (LEAK-SITE) and the list it grows (LEAK-LIST).
        let listLine = try FlaskService.line(of: "LEAK-LIST")
        let others = run.sites.filter { site in
            ["leak", "growing"].contains(site["verdict"] as? String ?? "") && !FlaskService.isApp(site, line: leakLine) && !FlaskService.isApp(site, line: listLine)
        }
        #expect(others.isEmpty, "other suspects: \(others.map { "\($0["label"] ?? "?") \($0["verdict"] ?? "?")" })")
    }

    @Test("gunicorn, 4 workers, without the leak: no suspect")
    func controlServiceHasNoSuspect() throws {
        let run = try FlaskService.run(leak: false)
        #expect(run.workers.count == 4)
        #expect(run.requests > 200, "only \(run.requests) requests were served")
        let suspects = run.sites.filter { ["leak", "growing"].contains($0["verdict"] as? String ?? "") }
        #expect(suspects.isEmpty, "suspects: \(suspects.map { "\($0["label"] ?? "?") \($0["verdict"] ?? "?")" })")
        // The test had something to judge: sites in use were tested, the churning line among them when it was caught in flight.
        #expect((run.leaks["test"] as? [String: Any])?["tested"] as? Int ?? 0 >= 3)
        let churn = run.sites.filter { FlaskService.isApp($0, line: (try? FlaskService.line(of: "CHURN-SITE")) ?? 0) }
        #expect(!churn.isEmpty, "the churning line was never sampled")
    }
}
