// Snapshot files with known contents, a symbolizer that needs no binaries,
// a server over them on 127.0.0.1 (the real one, at a free port), and a
// small HTTP/1.1 client that talks to it (NIO's HTTP/1 pipeline, no TLS).

import Foundation
import HeapSnapKit
import HeapSnapTestSupport
@testable import HeapSnapServe
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import NIOHTTP1
import NIOHTTPTypes
import NIOHTTPTypesHTTP1
import NIOPosix
import ServiceLifecycle
import Synchronization

/// Names addresses by range (ELF address of the module): 0x1000-0x1fff leak_cache, 0x2000-0x2fff parse_request, else main.
/// With a gate, every call waits until the test opens it (`open()`): a job stays
/// in flight for as long as a test needs, however slow the machine.
final class RangeSymbolizer: AddressSymbolizer, @unchecked Sendable {
    let gate: DispatchSemaphore?
    let calls = Mutex(0)

    init(gated: Bool = false) { gate = gated ? DispatchSemaphore(value: 0) : nil }

    /// Lets every waiting and later call through.
    func open() { gate?.signal() }

    func symbolize(_ requests: [SymbolRequest]) -> [[SymbolizedFrame]] {
        calls.withLock { $0 += 1 }
        if let gate {
            _ = gate.wait(timeout: .now() + 120)
            gate.signal()               // and the next one
        }
        return requests.map { request in
            switch request.address {
            case 0x1000..<0x2000: [SymbolizedFrame(function: "leak_cache", file: "/src/app/cache.c", line: 42)]
            case 0x2000..<0x3000: [SymbolizedFrame(function: "parse_request", file: "/src/app/http.c", line: 7)]
            default: [SymbolizedFrame(function: "main", file: "/src/app/main.c", line: 3)]
            }
        }
    }
}

/// Trusts every module's path.
struct TrustingLocator: ModuleLocator {
    func locate(_ module: Module) -> ModuleLocation { ModuleLocation(objectPath: module.path, status: "ok") }
}

enum Files {
    static let module = Module(start: 0x5555_0000_0000, end: 0x5555_0001_0000, fileOffset: 0, vaddr: 0,
                               buildID: [1, 2, 3], path: "/srv/app/bin/server")

    /// A snapshot of pid `pid`: `leak` bytes held by leak_cache, 1000 by parse_request (exact mode, so no noise).
    static func snapshot(pid: UInt32, seq: UInt32, leak: Double, final: Bool = false, peak: Double? = nil) -> Snapshot {
        var header = SnapshotHeader()
        header.pid = pid
        header.seq = seq
        header.rate = 1
        header.startNanoseconds = 1_700_000_000_000_000_000
        header.timeNanoseconds = header.startNanoseconds + UInt64(seq + 1) * 1_000_000_000
        header.flags = final ? [.exact, .final] : [.exact]
        header.executable = "/srv/app/bin/server"
        header.hostname = "testhost"
        header.commandLine = ["server", "--port", "8080"]
        let base = module.start
        let stacks = [RawStack(frames: [base + 0x1101, base + 0x3101]), RawStack(frames: [base + 0x2101, base + 0x3101])]
        func group(_ bytes: Double) -> SampleGroup {
            SampleGroup(samples: 4, bytes: Estimate(value: bytes), objects: Estimate(value: 4))
        }
        let records = [StackRecord(stack: 0, inuse: group(leak), alloc: group(leak * 2)),
                       StackRecord(stack: 1, inuse: group(1000), alloc: group(5000))]
        var snapshot = Snapshot(header: header, modules: [module], stacks: stacks, records: records)
        if let peak {
            snapshot.peak = Peak(timeNanoseconds: header.timeNanoseconds - 500_000_000, inuseBytes: Estimate(value: peak + 1000),
                                 records: [StackRecord(stack: 0, inuse: group(peak), alloc: group(peak)),
                                           StackRecord(stack: 1, inuse: group(1000), alloc: group(1000))])
        }
        if peak != nil {
            // What retention had thinned, in newer files: 9 periodic snapshots written, 4 kept.
            snapshot.retention = Retention(keep: 4, kept: 4, written: 9, thinned: 5, lost: 0, oldestSeq: 0,
                                           oldestNanoseconds: header.startNanoseconds, widestGapNanoseconds: 4_000_000_000)
            // The timeline record of newer files: three points while sampling.
            snapshot.series = Series(intervalNanoseconds: 250_000_000, points: (0..<3).map { i in
                SeriesPoint(timeNanoseconds: header.startNanoseconds + UInt64(i) * 250_000_000,
                            inuseBytes: Estimate(value: 1000 + Double(i) * 10_000), allocBytes: 2000 + Double(i) * 20_000,
                            rssBytes: 4 << 20)
            })
        }
        return snapshot
    }

    /// A fresh directory.
    static func directory(_ tag: String) throws -> String {
        let path = NSTemporaryDirectory() + "heapsnap-serve-\(tag)-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }
}

/// A server over a directory with two snapshots of pid 4242 (leak 10 KB -> 30 KB), one of pid 4343, and a corrupt file.
struct TestServer {
    static let token = String(repeating: "ab", count: 32)
    let directory: String
    let state: ServeState
    let symbolizer: RangeSymbolizer

    init(tag: String, gated: Bool = false, wait: Duration = .seconds(5)) throws {
        directory = try Files.directory(tag)
        try SnapshotWriter.write(Files.snapshot(pid: 4242, seq: 0, leak: 10_000), to: directory + "/heapsnap.4242.0.heapsnap")
        try SnapshotWriter.write(Files.snapshot(pid: 4242, seq: 1, leak: 30_000, peak: 50_000), to: directory + "/heapsnap.4242.1.heapsnap")
        try SnapshotWriter.write(Files.snapshot(pid: 4343, seq: 0, leak: 20_000), to: directory + "/heapsnap.4343.0.heapsnap")
        try Data("not a snapshot at all\n".utf8).write(to: URL(fileURLWithPath: directory + "/heapsnap.9.0.heapsnap"))
        symbolizer = RangeSymbolizer(gated: gated)
        let directories = try ServedDirectories([directory])
        state = ServeState(token: Self.token, directories: directories,
                           store: ProfileStore(directories: directories, symbolizer: symbolizer, locator: TrustingLocator()),
                           processes: ProcessTable(directories: directories, timeout: 60), wait: wait)
    }

    /// Runs `body` with a client of this server, listening on 127.0.0.1 at a free port as
    /// `heapsnap serve --port 0` does; the server shuts down gracefully when `body` returns.
    func test(_ body: @Sendable (TestClient) async throws -> Void) async throws {
        try await Self.serve(state, body)
        try? FileManager.default.removeItem(atPath: directory)
    }

    /// Runs `body` with a client of a server with `state` on 127.0.0.1 at a free port.
    static func serve(_ state: ServeState, _ body: @Sendable (TestClient) async throws -> Void) async throws {
        let (announced, announce) = AsyncStream.makeStream(of: String.self)
        let app = WebServer.application(state, host: "127.0.0.1", port: 0) { announce.yield($0) }
        // A group that takes no signals (runService() would): SIGINT and SIGTERM stay the test process's own.
        let server = ServiceGroup(configuration: .init(services: [app], logger: Logger(label: "heapsnap.serve.test") { _ in
            SwiftLogNoOpLogHandler()
        }))
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                defer { announce.finish() }
                try await server.run()
            }
            var urls = announced.makeAsyncIterator()
            guard let url = await urls.next() else {
                try await group.waitForAll()
                throw ServeTestError("the server stopped before it listened")
            }
            var failure: (any Error)?
            do { try await body(try TestClient(url: url)) } catch { failure = error }
            await server.triggerGracefulShutdown()
            try await group.waitForAll()
            if let failure { throw failure }
        }
    }

    /// The cookie header the page would send.
    var cookie: HTTPFields { [.cookie: "\(state.cookieName)=\(Self.token)"] }
    /// The headers of the page's POSTs.
    var postHeaders: HTTPFields { [.cookie: "\(state.cookieName)=\(Self.token)", .heapsnapToken: Self.token] }
}

/// An HTTP/1.1 client over plain TCP: a connection per request (so requests sent together are
/// served together), the answer read to its end, then the connection closed. Redirects are not followed.
struct TestClient: Sendable {
    let host: String
    let port: Int

    /// The server that `url` (as `heapsnap serve` prints it) names.
    init(url: String) throws {
        guard let components = URLComponents(string: url), let host = components.host, let port = components.port else {
            throw ServeTestError("\(url): not a server's URL")
        }
        self.host = host
        self.port = port
    }

    /// Sends one request with `headers` (and Host) and no body; the whole answer.
    func execute(uri: String, method: HTTPRequest.Method, headers: HTTPFields = [:]) async throws -> TestResponse {
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connect(host: host, port: port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHTTPClientHandlers()
                    try channel.pipeline.syncOperations.addHandler(HTTP1ToHTTPClientCodec())
                    return try NIOAsyncChannel<HTTPResponsePart, HTTPRequestPart>(wrappingChannelSynchronously: channel)
                }
            }
        let request = HTTPRequest(method: method, scheme: nil, authority: "\(host):\(port)", path: uri, headerFields: headers)
        return try await channel.executeThenClose { inbound, outbound in
            try await outbound.write(.head(request))
            try await outbound.write(.end(nil))
            var head: HTTPResponse?
            var body = ByteBuffer()
            for try await part in inbound {
                switch part {
                case .head(let response): head = response.status.kind == .informational ? nil : response
                case .body(let chunk): body.writeImmutableBuffer(chunk)
                case .end: if let head { return TestResponse(head: head, body: body) }
                }
            }
            throw ServeTestError("\(method) \(uri): the connection closed before the whole answer")
        }
    }

    /// GET `uri` as the page does: asked again while the server answers "pending" (202: symbolizing a
    /// file outlasted the server's wait, as on a busy machine), for up to two minutes; the other answer.
    func view(_ uri: String, headers: HTTPFields) async throws -> TestResponse {
        var response: TestResponse?
        try await Wait.poll(timeout: 120, every: 0.2) {
            response = try await execute(uri: uri, method: .get, headers: headers)
            return response?.status != .accepted
        }
        return response!
    }
}

/// An answer: status, headers and the whole body.
struct TestResponse {
    var head: HTTPResponse
    var body: ByteBuffer

    var status: HTTPResponse.Status { head.status }
    var headers: HTTPFields { head.headerFields }
    var text: String { String(buffer: body) }
    /// The body as a JSON object (empty when it is not one).
    var json: [String: Any] { (try? JSONSerialization.jsonObject(with: Data(text.utf8))) as? [String: Any] ?? [:] }
}

/// The test server or its client failed (not the server's answer, which the tests check).
struct ServeTestError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// Percent-encodes a query value.
func q(_ value: String) -> String {
    value.addingPercentEncoding(withAllowedCharacters: .alphanumerics.union(CharacterSet(charactersIn: "-._~"))) ?? value
}
