// End to end with the real shim: `heapsnap run` a program, `start`/`dump`/
// `stop` a live one, and `diff` two snapshots of a leaking process. Needs
// libheapsnap_preload.so beside the heapsnap executable (any `swift build`).

import Foundation
import Testing
@testable import HeapSnapKit

@Suite(.serialized)
struct EndToEndTests {
    static func compileLeaky(_ dir: String) throws -> (binary: String, source: String) {
        let source = dir + "/leaky.c", binary = dir + "/leaky"
        try FileManager.default.copyItem(atPath: Toolbox.programs + "/leaky.c", toPath: source)
        let cc = try Toolbox.run("/usr/bin/gcc", ["-g", "-O1", "-fno-builtin", "-fno-omit-frame-pointer", "-o", binary, source])
        #expect(cc.status == 0, "\(cc.stderr)")
        return (binary, source)
    }

    static func topRows(_ arguments: [String]) throws -> [[String: Any]] {
        let result = try Toolbox.run(Toolbox.heapsnap, arguments + ["--format", "json"])
        #expect(result.status == 0, "\(result.stderr)")
        let json = try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any]
        return json?["rows"] as? [[String: Any]] ?? []
    }

    /// The bytes in use that a snapshot estimates (its records' sum, before symbolization).
    static func inuseBytes(_ snapshot: Snapshot) -> Double { snapshot.records.reduce(0) { $0 + $1.inuse.bytes.value } }

    @Test func runThenTopNamesTheBiggestSiteFirst() throws {
        let dir = try Toolbox.temporaryDirectory("e2e-run")
        let (binary, source) = try Self.compileLeaky(dir)
        let run = try Toolbox.run(Toolbox.heapsnap, ["run", "--rate", "65536", "--dir", dir, "--", binary, "once"])
        #expect(run.status == 0, "\(run.stderr)")
        let written = run.stderr.split(separator: "\n").filter { $0.hasPrefix("heapsnap: wrote ") }
            .map { String($0.dropFirst("heapsnap: wrote ".count)) }
        #expect(written.count == 1, "\(run.stderr)")
        let snapshot = try #require(written.first)
        let rows = try Self.topRows(["top", snapshot])
        let first = try #require(rows.first)
        let bigSite = "\(source):\(try Toolbox.line(of: "// BIG_SITE", in: source))"
        #expect(first["label"] as? String == bigSite, "\(first["label"] ?? "none")")
        // 48 MiB live at the big site, estimated within a generous band.
        let inuse = ((first["values"] as? [String: Any])?["inuseBytes"] as? [String: Any])?["value"] as? Double ?? 0
        #expect(inuse > 40 * 1_048_576 && inuse < 56 * 1_048_576, "estimated \(inuse)")

        // The command's exit status is ours.
        let failing = try Toolbox.run(Toolbox.heapsnap, ["run", "--dir", dir, "--", binary, "nonsense"])
        #expect(failing.status == 2)
    }

    /// A launcher (pyenv's shims are shell scripts) runs the program among small helpers: the
    /// summary is the program's, the process that allocated the most, not the last one to exit.
    @Test func runSummarizesTheBusiestProcessBehindALauncher() throws {
        let dir = try Toolbox.temporaryDirectory("e2e-launcher")
        let (binary, _) = try Self.compileLeaky(dir)
        let run = try Toolbox.run(Toolbox.heapsnap, ["run", "--rate", "65536", "--dir", dir, "--",
                                                     "/bin/sh", "-c", "/bin/true; \(binary) once; /bin/echo done"])
        #expect(run.status == 0, "\(run.stderr)")
        let written = run.stderr.split(separator: "\n").filter { $0.hasPrefix("heapsnap: wrote ") }
        #expect(written.count >= 3, "\(run.stderr)")
        let named = run.stderr.split(separator: "\n").first { $0.contains("processes wrote at-exit snapshots") }
        #expect(named?.contains("(\(binary) once)") == true, "\(run.stderr)")
        // leaky's 48 MiB live at exit, not /bin/echo's nothing.
        let atExit = try #require(run.stderr.split(separator: "\n").first { $0.hasPrefix("heapsnap: at exit: ") })
        let mib = Double(atExit.dropFirst("heapsnap: at exit: ".count).split(separator: " ").first ?? "") ?? 0
        #expect(atExit.contains("MiB") && mib > 40 && mib < 56, "\(atExit)")
    }

    @Test func startDumpStopOnALiveProcessAndDiffShowsTheLeak() throws {
        let dir = try Toolbox.temporaryDirectory("e2e-live")
        let (binary, source) = try Self.compileLeaky(dir)
        var env = ProcessInfo.processInfo.environment
        env["LD_PRELOAD"] = Toolbox.preloadLibrary
        env["HEAPSNAP_DIR"] = dir
        env["HEAPSNAP_RATE"] = "32768"
        env.removeValue(forKey: "HEAPSNAP_START")
        // Spawned with a clean signal mask: test runner threads block signals,
        // and a child inheriting that mask would never see the control signals.
        let child = try ChildProcess.spawn(path: binary, arguments: [binary, "serve"],
                                           environment: env.map { "\($0.key)=\($0.value)" }, pipeStdout: true)
        defer {
            kill(child.pid, SIGKILL)
            _ = child.wait()
            close(child.stdout)
        }
        let pid = String(child.pid)
        // Wait until the program is up (it prints its pid).
        var byte: UInt8 = 0
        _ = read(child.stdout, &byte, 1)

        let start = try Toolbox.run(Toolbox.heapsnap, ["start", pid])
        #expect(start.status == 0, "\(start.stderr)")
        // Once sampling has started; then once the leak has grown by 64 of its blocks (4 MiB; the fixed
        // 0.8 s pause this replaces gave at most 10 MiB on a quiet machine, less on a busy one).
        var before = 0.0
        let dump1 = try Toolbox.dump([pid]) { before = Self.inuseBytes($0); return !$0.records.isEmpty }
        #expect(dump1.status == 0, "\(dump1.stderr)")
        let dump2 = try Toolbox.dump([pid]) { Self.inuseBytes($0) - before >= 4 * 1_048_576 }
        #expect(dump2.status == 0, "\(dump2.stderr)")
        let stop = try Toolbox.run(Toolbox.heapsnap, ["stop", pid])
        #expect(stop.status == 0, "\(stop.stderr)")
        let paths = [dump1, dump2, stop].map { $0.stdout.trimmingCharacters(in: .whitespacesAndNewlines) }
        #expect(Set(paths).count == 3)
        for path in paths { #expect(FileManager.default.fileExists(atPath: path), "\(path)") }
        #expect(paths.allSatisfy { $0.hasPrefix(dir + "/heapsnap.\(pid).") })

        let rows = try Self.topRows(["diff", paths[0], paths[1]])
        let first = try #require(rows.first)
        #expect(first["label"] as? String == "\(source):\(try Toolbox.line(of: "// LEAK_SITE", in: source))")
        #expect(first["withinNoise"] as? Bool == false)
        let change = ((first["values"] as? [String: Any])?["inuseBytes"] as? [String: Any])?["value"] as? Double ?? 0
        #expect(change > 0)
        // The churning site holds nothing live: never above the leak in the diff.
        let churn = "\(source):\(try Toolbox.line(of: "// CHURN_SITE", in: source))"
        #expect(rows.firstIndex { $0["label"] as? String == churn } ?? Int.max > 0)
    }
}
