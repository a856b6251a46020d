// The web view and the CLI answer one question with the same bytes: the real
// `heapsnap` binary (run in the directory above the served one, so its paths
// are the server's file ids) against the real server with its real
// symbolizer (`WebServer.state`, as `heapsnap serve` builds it), for plain
// profiles, peaks and diffs, as JSON tables, flamegraphs and exports.

import Foundation
import HeapSnapKit
import HTTPTypes
@testable import HeapSnapServe
import Synchronization
import Testing

@Suite("The web view and the CLI give the same bytes")
struct SameAnswerTests {
    static let older = "0/heapsnap.4242.0.heapsnap"
    static let newer = "0/heapsnap.4242.1.heapsnap"

    /// One question asked both ways: the CLI's arguments and the server's request.
    struct Question: CustomTestStringConvertible, Sendable {
        var cli: [String]
        var uri: String
        var testDescription: String { "heapsnap " + cli.joined(separator: " ") }
    }

    static let questions: [Question] = {
        let (o, n) = (older, newer)
        return [
            // The top table as JSON (the server's default limit is 50).
            Question(cli: ["top", "--format", "json", "--limit", "50", n], uri: "/api/report?f=\(n)"),
            Question(cli: ["top", "--format", "json", "--limit", "50", "--at", "peak", n], uri: "/api/report?f=\(n)&peak=1"),
            Question(cli: ["top", "--format", "json", "--limit", "3", "--by", "traceback", "--metric", "alloc-bytes", n + "@peak"],
                     uri: "/api/report?f=\(n)&peak=1&by=traceback&metric=alloc-bytes&limit=3"),
            Question(cli: ["top", "--format", "json", "--limit", "50", "--by", "function", "--cumulative", "--include", "*server*",
                           "--keep-allocator-frames", n],
                     uri: "/api/report?f=\(n)&by=function&cumulative=1&include=*server*&keepAllocatorFrames=1"),
            // Diffs: two files, and the peak against the end.
            Question(cli: ["diff", "--format", "json", "--limit", "50", o, n], uri: "/api/report?f=\(n)&base=\(o)"),
            Question(cli: ["diff", "--format", "json", "--limit", "50", n + "@peak", n], uri: "/api/report?f=\(n)&basePeak=1"),
            // Flamegraphs: plain, at the peak, a diff, inverted and narrow.
            Question(cli: ["flamegraph", n, "-o", "-"], uri: "/api/flamegraph.svg?f=\(n)"),
            Question(cli: ["flamegraph", "--at", "peak", n, "-o", "-"], uri: "/api/flamegraph.svg?f=\(n)&peak=1"),
            Question(cli: ["flamegraph", n, "--diff", o, "--normalize", "-o", "-"], uri: "/api/flamegraph.svg?f=\(n)&base=\(o)&normalize=1"),
            Question(cli: ["flamegraph", n, "--diff", n + "@peak", "-o", "-"], uri: "/api/flamegraph.svg?f=\(n)&basePeak=1"),
            Question(cli: ["flamegraph", "--inverted", "--metric", "alloc-objects", "--width", "640", n, "-o", "-"],
                     uri: "/api/flamegraph.svg?f=\(n)&inverted=1&metric=alloc-objects&width=640"),
            // Exports, as the page's downloads.
            Question(cli: ["export", "--format", "folded", n, "-o", "-"], uri: "/api/download?format=folded&f=\(n)"),
            Question(cli: ["export", "--format", "folded", "--at", "peak", n, "-o", "-"], uri: "/api/download?format=folded&f=\(n)&peak=1"),
            Question(cli: ["export", "--format", "json", n, "-o", "-"], uri: "/api/download?format=json&f=\(n)"),
            Question(cli: ["export", "--format", "speedscope", "--metric", "alloc-bytes", n + "@peak", "-o", "-"],
                     uri: "/api/download?format=speedscope&f=\(n)&peak=1&metric=alloc-bytes"),
            Question(cli: ["export", "--format", "pprof", n, "-o", "-"], uri: "/api/download?format=pprof&f=\(n)"),
        ]
    }()

    @Test("the same bytes", arguments: questions)
    func sameBytes(_ question: Question) async throws {
        let heapsnap = Self.binDirectory + "/heapsnap"
        try #require(FileManager.default.isExecutableFile(atPath: heapsnap), "the heapsnap executable is built beside the tests: \(heapsnap)")
        let top = try Files.directory("same")
        defer { try? FileManager.default.removeItem(atPath: top) }
        try FileManager.default.createDirectory(atPath: top + "/0", withIntermediateDirectories: true)
        try SnapshotWriter.write(Files.snapshot(pid: 4242, seq: 0, leak: 10_000), to: top + "/" + Self.older)
        try SnapshotWriter.write(Files.snapshot(pid: 4242, seq: 1, leak: 30_000, peak: 50_000), to: top + "/" + Self.newer)

        let cli = try Self.run(heapsnap, question.cli, in: top)
        #expect(cli.status == 0, "\(cli.stderr)")
        #expect(!cli.stdout.isEmpty)

        let server = try await Self.ask(question.uri, serving: top + "/0")
        #expect(server.status == .ok, "\(server.text)")
        let served = Array(server.body.readableBytesView)
        let firstDifference = zip(served, cli.stdout).enumerated().first { $0.element.0 != $0.element.1 }?.offset ?? min(served.count, cli.stdout.count)
        #expect(served == cli.stdout, "\(question.uri): \(served.count) bytes, the CLI's \(cli.stdout.count); first difference at byte \(firstDifference)")
    }

    @Test("leak suspects: the page's answer is heapsnap leaks --format json of the same processes' snapshots")
    func sameLeaks() async throws {
        let heapsnap = Self.binDirectory + "/heapsnap"
        try #require(FileManager.default.isExecutableFile(atPath: heapsnap), "the heapsnap executable is built beside the tests: \(heapsnap)")
        let top = try Files.directory("same-leaks")
        defer { try? FileManager.default.removeItem(atPath: top) }
        try FileManager.default.createDirectory(atPath: top + "/0", withIntermediateDirectories: true)
        // Two workers of one program, eight snapshots each, one site growing by 20 KB a second in each.
        for pid: UInt32 in [4242, 4343] {
            for seq: UInt32 in 0..<8 {
                try SnapshotWriter.write(Files.snapshot(pid: pid, seq: seq, leak: 10_000 + 20_000 * Double(seq)),
                                         to: top + "/0/heapsnap.\(pid).\(seq).heapsnap")
            }
        }
        let cli = try Self.run(heapsnap, ["leaks", "--format", "json", "0"], in: top)
        #expect(cli.status == 0, "\(cli.stderr)")
        let text = String(decoding: cli.stdout, as: UTF8.self)
        #expect(text.contains("\"verdict\": \"leak\"") || text.contains("\"verdict\":\"leak\""), "the growing site is a leak: \(text.prefix(800))")

        let server = try await Self.ask("/api/leaks?g=testhost/4242&g=testhost/4343", serving: top + "/0")
        #expect(server.status == .ok, "\(server.text)")
        #expect(Array(server.body.readableBytesView) == cli.stdout, "\(server.text.prefix(400))")
    }

    @Test("the peak, the end and the diff are different answers (so the comparisons above can fail)")
    func answersDiffer() throws {
        let heapsnap = Self.binDirectory + "/heapsnap"
        try #require(FileManager.default.isExecutableFile(atPath: heapsnap), "the heapsnap executable is built beside the tests: \(heapsnap)")
        let top = try Files.directory("differ")
        defer { try? FileManager.default.removeItem(atPath: top) }
        try FileManager.default.createDirectory(atPath: top + "/0", withIntermediateDirectories: true)
        try SnapshotWriter.write(Files.snapshot(pid: 4242, seq: 0, leak: 10_000), to: top + "/" + Self.older)
        try SnapshotWriter.write(Files.snapshot(pid: 4242, seq: 1, leak: 30_000, peak: 50_000), to: top + "/" + Self.newer)
        let outputs = try Self.questions.prefix(2).map { try Self.run(heapsnap, $0.cli, in: top).stdout }
        let end = String(decoding: outputs[0], as: UTF8.self), peak = String(decoding: outputs[1], as: UTF8.self)
        #expect(end.contains("\"atPeakNs\": null") || end.contains("\"atPeakNs\":null"), "\(end.prefix(600))")
        #expect(!peak.contains("\"atPeakNs\": null") && !peak.contains("\"atPeakNs\":null") && peak.contains("atPeakNs"), "\(peak.prefix(600))")
    }

    /// The real server's answer to `uri` over `directory` (`WebServer.state`, as `heapsnap serve` builds it),
    /// asked again while it is "pending" (`TestClient.view`).
    static func ask(_ uri: String, serving directory: String) async throws -> TestResponse {
        var configuration = ServeConfiguration(directories: [directory])
        configuration.token = TestServer.token
        let state = try WebServer.state(configuration, environment: ProcessInfo.processInfo.environment)
        let answer = Mutex<TestResponse?>(nil)
        try await TestServer.serve(state) { client in
            let headers: HTTPFields = [.cookie: "\(state.cookieName)=\(TestServer.token)"]
            let response = try await client.view(uri, headers: headers)
            answer.withLock { $0 = response }
        }
        return try #require(answer.withLock { $0 })
    }

    /// The directory of the test bundle, where SwiftPM also puts the heapsnap executable.
    static let binDirectory: String = {
        let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? ""
        return (exe as NSString).deletingLastPathComponent
    }()

    /// Runs `path` with `arguments` in `directory`; its status, stdout bytes and stderr.
    static func run(_ path: String, _ arguments: [String], in directory: String) throws -> (status: Int32, stdout: [UInt8], stderr: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = arguments
        process.currentDirectoryURL = URL(fileURLWithPath: directory)
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let stdout = out.fileHandleForReading.readDataToEndOfFile()
        let stderr = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, Array(stdout), String(decoding: stderr, as: UTF8.self))
    }
}
