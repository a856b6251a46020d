// `heapsnap start|stop|dump` must never send a signal the target does not
// catch: an uncaught real-time signal terminates it. Real processes under the
// real shim (Support/Programs/leaky.c): a moved signal base, an environment the
// process overwrote, handlers reset behind the shim's back, no shim at all.
// And `heapsnap run --dir` creating its directory.

import Foundation
import Testing
@testable import HeapSnapKit

@Suite struct ControlSafetyTests {
    /// A running `leaky serve [mode]`, killed when released.
    final class Served: @unchecked Sendable {
        let child: ChildProcess
        var pid: Int32 { child.pid }

        init(_ binary: String, mode: String?, preload: Bool = true, env extra: [String: String] = [:]) throws {
            var env = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("HEAPSNAP_") && $0.key != "LD_PRELOAD" }
            if preload { env["LD_PRELOAD"] = Toolbox.preloadLibrary }
            env.merge(extra) { _, new in new }
            // A clean signal mask: test runner threads block signals.
            child = try ChildProcess.spawn(path: binary, arguments: [binary, "serve"] + (mode.map { [$0] } ?? []),
                                           environment: env.map { "\($0.key)=\($0.value)" }, pipeStdout: true)
            var byte: UInt8 = 0
            _ = read(child.stdout, &byte, 1) // up: the pid is printed after the mode's setup
        }

        /// True while the process has neither exited nor died of a signal.
        var isAlive: Bool {
            var status: Int32 = 0
            return waitpid(pid, &status, WNOHANG) == 0
        }

        deinit {
            kill(child.pid, SIGKILL)
            _ = child.wait()
            close(child.stdout)
        }
    }

    static let leaky: String = {
        let dir = (try? Toolbox.temporaryDirectory("control-bin")) ?? NSTemporaryDirectory()
        return (try? EndToEndTests.compileLeaky(dir).binary) ?? dir + "/leaky"
    }()

    static func heapsnap(_ arguments: [String]) throws -> Toolbox.Result {
        try Toolbox.run(Toolbox.heapsnap, arguments)
    }

    static func rt(_ n: Int32) -> Int32 { __libc_current_sigrtmin() + n }

    @Test func aMovedSignalBaseIsReadFromTheProcessAndItSurvives() throws {
        let dir = try Toolbox.temporaryDirectory("control-base")
        let served = try Served(Self.leaky, mode: nil, env: ["HEAPSNAP_SIGNAL_BASE": "5", "HEAPSNAP_DIR": dir,
                                                             "HEAPSNAP_RATE": "32768"])
        let target = try TargetProcess.inspect(pid: served.pid)
        #expect(target.environmentSignalBase == 5)
        #expect(target.environmentDirectory == dir)
        #expect(target.caughtSignals.isSuperset(of: [Self.rt(5), Self.rt(6), Self.rt(7)]))
        #expect(!target.caughtSignals.contains(Self.rt(1)), "RTMIN+1 would have killed it")

        let start = try Self.heapsnap(["start", String(served.pid)])
        #expect(start.status == 0, "\(start.stderr)")
        let dump = try Toolbox.dump([String(served.pid)]) { !$0.records.isEmpty }
        #expect(dump.status == 0, "\(dump.stderr)")
        let stop = try Self.heapsnap(["stop", String(served.pid)])
        #expect(stop.status == 0, "\(stop.stderr)")
        #expect(served.isAlive)
        let paths = [dump, stop].map { $0.stdout.trimmingCharacters(in: .whitespacesAndNewlines) }
        #expect(paths[0] != paths[1])
        for path in paths {
            #expect(path.hasPrefix("\(dir)/heapsnap.\(served.pid)."), "\(path)")
            // Sampling really started: the leak is in the snapshot.
            #expect(try SnapshotReader.read(path: path).records.count > 0)
        }
    }

    @Test func aRewrittenEnvironmentNeedsTheOptionsAndIsRefusedWithoutThem() throws {
        let dir = try Toolbox.temporaryDirectory("control-scrub")
        let served = try Served(Self.leaky, mode: "scrub-environ",
                                env: ["HEAPSNAP_SIGNAL_BASE": "5", "HEAPSNAP_DIR": dir, "HEAPSNAP_RATE": "32768"])
        let target = try TargetProcess.inspect(pid: served.pid)
        #expect(target.environmentSignalBase == nil && target.environmentDirectory == nil)
        #expect(target.caughtSignals.contains(Self.rt(5)))

        // Base 1 assumed: RTMIN+1..3 are not caught, so nothing is sent.
        for command in ["start", "dump", "stop"] {
            let refused = try Self.heapsnap([command, String(served.pid)])
            #expect(refused.status == 1, "\(command)")
            #expect(refused.stderr.split(separator: "\n").count == 1, "\(refused.stderr)")
            #expect(refused.stderr.contains("does not catch SIGRTMIN+"), "\(refused.stderr)")
            #expect(refused.stderr.contains("--signal-base"), "\(refused.stderr)")
            #expect(served.isAlive, "\(command) killed the process")
        }
        // A wrong base by hand is refused as well.
        let wrong = try Self.heapsnap(["dump", "--signal-base", "1", "--dir", dir, String(served.pid)])
        #expect(wrong.status == 1)
        #expect(wrong.stderr.contains("--signal-base 1"), "\(wrong.stderr)")
        #expect(served.isAlive)

        let hand = ["--signal-base", "5", "--dir", dir, String(served.pid)]
        let start = try Self.heapsnap(["start"] + hand)
        #expect(start.status == 0, "\(start.stderr)")
        let dump = try Toolbox.dump(hand) { !$0.records.isEmpty }
        #expect(dump.status == 0, "\(dump.stderr)")
        let path = dump.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(path.hasPrefix("\(dir)/heapsnap.\(served.pid)."), "\(path)")
        #expect(try SnapshotReader.read(path: path).records.count > 0)
        #expect(served.isAlive)
    }

    @Test(arguments: [nil, "1"])
    func handlersResetByARawSyscallAreRefusedAndTheProcessLives(base: String?) throws {
        let dir = try Toolbox.temporaryDirectory("control-reset")
        var env = ["HEAPSNAP_DIR": dir]
        if let base { env["HEAPSNAP_SIGNAL_BASE"] = base }
        let served = try Served(Self.leaky, mode: "raw-reset", env: env)
        let target = try TargetProcess.inspect(pid: served.pid)
        #expect(!target.caughtSignals.contains(Self.rt(1)) && !target.caughtSignals.contains(Self.rt(3)))
        for arguments in [["start"], ["dump"], ["stop"], ["dump", "--signal-base", "1"]] {
            let refused = try Self.heapsnap(arguments + [String(served.pid)])
            #expect(refused.status == 1, "\(arguments)")
            #expect(refused.stderr.contains("process \(served.pid): does not catch SIGRTMIN+"), "\(refused.stderr)")
            #expect(served.isAlive, "\(arguments) killed the process")
        }
        #expect(Toolbox.snapshots(in: dir).isEmpty)
    }

    @Test func aProcessWithoutTheShimIsRefused() throws {
        let served = try Served(Self.leaky, mode: nil, preload: false)
        for command in ["start", "dump", "stop"] {
            let refused = try Self.heapsnap([command, "--signal-base", "1", String(served.pid)])
            #expect(refused.status == 1)
            #expect(refused.stderr.contains("libheapsnap_preload.so is not loaded"), "\(refused.stderr)")
            #expect(served.isAlive, "\(command) killed the process")
        }
    }

    @Test func runCreatesAMissingDirectoryPrivately() throws {
        let parent = try Toolbox.temporaryDirectory("control-run")
        let dir = parent + "/new/snaps"
        let run = try Self.heapsnap(["run", "--rate", "65536", "--dir", dir, "--", Self.leaky, "once"])
        #expect(run.status == 0, "\(run.stderr)")
        var st = stat()
        #expect(stat(dir, &st) == 0)
        #expect(st.st_mode & 0o777 == 0o700)
        #expect(Toolbox.snapshots(in: dir).count == 1)
        // A file in the way is one line naming it, before anything runs.
        let file = parent + "/file"
        FileManager.default.createFile(atPath: file, contents: Data())
        let blocked = try Self.heapsnap(["run", "--dir", file, "--", Self.leaky, "once"])
        #expect(blocked.status == 1)
        #expect(blocked.stderr == "heapsnap: \(file): cannot create the directory: a file of that name exists\n")
    }

    @Test func procParsing() {
        let status = "Name:\tleaky\nSigBlk:\t0000000000000000\nSigIgn:\t0000000000001000\nSigCgt:\t0000000380004002\n"
        // bits 1, 14, 31, 32, 33 -> signals 2 (INT), 15 (TERM), 32, 33, 34
        #expect(TargetProcess.caughtSignals(status: status) == [2, 15, 32, 33, 34])
        #expect(TargetProcess.caughtSignals(status: "Name:\tx\n").isEmpty)
        #expect(TargetProcess.parseSignalBase("5") == 5)
        #expect(TargetProcess.parseSignalBase("0") == 0)
        for bad in ["", "+5", "-1", "5x", "99", "five"] { #expect(TargetProcess.parseSignalBase(bad) == nil, "\(bad)") }
        let env = TargetProcess.parseEnvironment("A=1\0HEAPSNAP_DIR=/x=y\0xxxx\0A=2\0")
        #expect(env == ["A": "1", "HEAPSNAP_DIR": "/x=y"])
    }
}

extension Toolbox {
    /// The snapshot files in `dir`.
    static func snapshots(in dir: String) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []).filter { $0.hasSuffix(".heapsnap") }
    }
}
