// heapsnap serve's HTTP API, asked over HTTP on 127.0.0.1: the token and
// cookie, listings, tables, flamegraphs, downloads, diffs, merges, peaks,
// slow symbolization, and the refusals (no token, wrong token, path
// traversal, POST without the token, a process without the shim).

import Foundation
import HeapSnapKit
import HeapSnapTestSupport
@testable import HeapSnapServe
import Hummingbird
import Testing

@Suite("serve: API")
struct ServeAPITests {
    static let newer = "0/heapsnap.4242.1.heapsnap"
    static let older = "0/heapsnap.4242.0.heapsnap"
    static let other = "0/heapsnap.4343.0.heapsnap"

    @Test("no token, a wrong token: 401 with one line; the right one in the query trades for a strict HttpOnly cookie")
    func token() async throws {
        let server = try TestServer(tag: "token")
        try await server.test { client in
            for uri in ["/", "/api/state", "/app.js", "/api/report?f=\(Self.newer)"] {
                let response = try await client.execute(uri: uri, method: .get)
                #expect(response.status == .unauthorized, "\(uri)")
                #expect((response.json["error"] as? String)?.contains("heapsnap serve") == true, "\(response.text)")
                #expect(!response.text.contains("\n") || response.text.split(separator: "\n").count == 1)
            }
            let wrong = try await client.execute(uri: "/api/state?token=\(String(repeating: "cd", count: 32))", method: .get)
            #expect(wrong.status == .unauthorized)
            #expect((wrong.json["error"] as? String)?.hasPrefix("wrong token") == true)
            let wrongCookie = try await client.execute(uri: "/api/state", method: .get, headers: [.cookie: "\(server.state.cookieName)=nope"])
            #expect(wrongCookie.status == .unauthorized)

            let first = try await client.execute(uri: "/?token=\(TestServer.token)", method: .get)
            #expect(first.status == .seeOther)
            #expect(first.headers[.location] == "/")
            let setCookie = try #require(first.headers[.setCookie])
            #expect(setCookie.hasPrefix("\(server.state.cookieName)=\(TestServer.token)"))
            #expect(setCookie.contains("HttpOnly"))
            #expect(setCookie.contains("SameSite=Strict"))

            let page = try await client.execute(uri: "/", method: .get, headers: server.cookie)
            #expect(page.status == .ok)
            #expect(page.headers[.contentType]?.hasPrefix("text/html") == true)
            #expect(page.text.contains("<meta name=\"heapsnap-token\" content=\"\(TestServer.token)\">"))
            #expect(page.headers[.contentSecurityPolicy]?.contains("script-src 'self'") == true)
            #expect(page.headers[.contentSecurityPolicy]?.contains("connect-src 'self'") == true)
            let script = try await client.execute(uri: "/app.js", method: .get, headers: server.cookie)
            #expect(script.status == .ok && script.text.contains("X-Heapsnap-Token"))
            for asset in [page.text, script.text] {
                let urls = asset.replacingOccurrences(of: "http://www.w3.org/2000/svg", with: "")
                #expect(!urls.contains("http://") && !urls.contains("https://") && !urls.contains("//cdn"), "the page loads nothing from elsewhere")
            }
        }
    }

    @Test("the state lists snapshots grouped by process, oldest first, and an unreadable file as one line")
    func listing() async throws {
        let server = try TestServer(tag: "list")
        try await server.test { client in
            let response = try await client.execute(uri: "/api/state", method: .get, headers: server.cookie)
            #expect(response.status == .ok)
            let groups = try #require(response.json["groups"] as? [[String: Any]])
            #expect(groups.map { $0["key"] as? String } == ["testhost/4242", "testhost/4343", "unreadable"])
            let snapshots = try #require(groups[0]["snapshots"] as? [[String: Any]])
            #expect(snapshots.map { $0["id"] as? String } == [Self.older, Self.newer])
            #expect(snapshots.map { $0["inuseBytes"] as? Double } == [11_000, 31_000])
            #expect((snapshots[1]["peak"] as? [String: Any])?["inuseBytes"] as? Double == 51_000)
            // What retention thinned, as `info` says it (the older file has no THIN record).
            #expect(snapshots[0]["retention"] == nil)
            let retention = try #require(snapshots[1]["retention"] as? String)
            #expect(retention == ("HEAPSNAP_KEEP=4: 4 of 9 periodic snapshots kept, 5 thinned; the oldest kept #0, 2.00 s before this one; spacing grows with age, up to 4.00 s"), "\(retention)")
            #expect(groups[0]["program"] as? String == "server")
            let series = try #require(groups[0]["series"] as? [[String: Any]], "the timeline record of the newest file")
            #expect(series.map { $0["inuseBytes"] as? Double } == [1000, 11_000, 21_000])
            #expect(series.first?["rssBytes"] as? Double == Double(4 << 20))
            #expect((groups[1]["series"] as? [Any])?.isEmpty == true)
            let bad = try #require((groups[2]["snapshots"] as? [[String: Any]])?.first)
            #expect(bad["error"] as? String == "0/heapsnap.9.0.heapsnap: not a heapsnap snapshot (wrong magic number)")
            #expect(response.json["processes"] is [Any])
        }
    }

    @Test("top table and diff table as heapsnap top|diff --format json, with the CLI's options")
    func tables() async throws {
        let server = try TestServer(tag: "tables")
        try await server.test { client in
            let top = try await client.view("/api/report?f=\(Self.newer)&by=function", headers: server.cookie)
            #expect(top.status == .ok, "\(top.text)")
            #expect(top.json["schema"] as? String == "heapsnap.top/1")
            let rows = try #require(top.json["rows"] as? [[String: Any]])
            #expect(rows.map { $0["label"] as? String } == ["leak_cache", "parse_request"])

            let diff = try await client.view("/api/report?f=\(Self.newer)&base=\(Self.older)", headers: server.cookie)
            #expect(diff.json["schema"] as? String == "heapsnap.diff/1")
            let first = try #require((diff.json["rows"] as? [[String: Any]])?.first)
            #expect(first["label"] as? String == "/src/app/cache.c:42")
            #expect(((first["values"] as? [String: Any])?["inuseBytes"] as? [String: Any])?["value"] as? Double == 20_000)

            let filtered = try await client.execute(uri: "/api/report?f=\(Self.newer)&include=\(q("*/http.c"))&metric=alloc-bytes",
                                                    method: .get, headers: server.cookie)
            #expect((filtered.json["rows"] as? [[String: Any]])?.map { $0["label"] as? String } == ["/src/app/http.c:7"])
            #expect(filtered.json["metric"] as? String == "allocBytes")

            let bad = try await client.view("/api/report?f=\(Self.newer)&by=traceback&cumulative=1", headers: server.cookie)
            #expect(bad.status == .badRequest)
            #expect(bad.json["error"] as? String == "cumulative does not apply to by=traceback")
            let metric = try await client.view("/api/report?f=\(Self.newer)&metric=rss", headers: server.cookie)
            #expect(metric.status == .badRequest)
        }
    }

    @Test("merging two processes adds them up; peak -> now is the change since the peak")
    func mergeAndPeak() async throws {
        let server = try TestServer(tag: "merge")
        try await server.test { client in
            let merged = try await client.view("/api/report?f=\(Self.newer)&f=\(Self.other)", headers: server.cookie)
            #expect(merged.status == .ok, "\(merged.text)")
            let total = (merged.json["total"] as? [String: Any])?["inuseBytes"] as? [String: Any]
            #expect(total?["value"] as? Double == 52_000.0)

            let peak = try await client.view("/api/report?f=\(Self.newer)&basePeak=1", headers: server.cookie)
            #expect(peak.json["schema"] as? String == "heapsnap.diff/1", "\(peak.text)")
            let change = ((peak.json["total"] as? [String: Any])?["inuseBytes"] as? [String: Any])?["value"] as? Double
            #expect(change == -20_000.0, "31,000 now minus 51,000 at the peak")

            let noPeak = try await client.view("/api/report?f=\(Self.older)&basePeak=1", headers: server.cookie)
            #expect(noPeak.status == .badRequest)
            #expect((noPeak.json["error"] as? String)?.contains("has no peak record") == true)
        }
    }

    @Test("flamegraph SVG and downloads: svg, pprof, folded, json, speedscope; pprof of a diff is one line")
    func flamegraphAndDownloads() async throws {
        let server = try TestServer(tag: "flame")
        try await server.test { client in
            let svg = try await client.view("/api/flamegraph.svg?f=\(Self.newer)&width=800", headers: server.cookie)
            #expect(svg.status == .ok)
            #expect(svg.headers[.contentType] == "image/svg+xml")
            #expect(svg.text.contains("<svg") && svg.text.contains("leak_cache") && svg.text.contains("width=\"800\""))
            #expect(svg.headers[.contentSecurityPolicy]?.contains("frame-ancestors 'self'") == true)

            let diff = try await client.view("/api/flamegraph.svg?f=\(Self.newer)&base=\(Self.older)", headers: server.cookie)
            #expect(diff.text.contains("Memory growth"))

            for (format, check) in [("svg", "<svg"), ("folded", "main;leak_cache 30000"), ("json", "heapsnap.profile"),
                                    ("speedscope", "speedscope")] {
                let file = try await client.execute(uri: "/api/download?format=\(format)&f=\(Self.newer)", method: .get, headers: server.cookie)
                #expect(file.status == .ok, "\(format): \(file.text)")
                #expect(file.text.contains(check), "\(format)")
                #expect(file.headers[.contentDisposition]?.hasPrefix("attachment; filename=\"heapsnap-4242-1.") == true)
            }
            let pprof = try await client.execute(uri: "/api/download?format=pprof&f=\(Self.newer)", method: .get, headers: server.cookie)
            #expect(Array(pprof.body.readableBytesView.prefix(2)) == [0x1F, 0x8B])
            let diffJSON = try await client.execute(uri: "/api/download?format=json&f=\(Self.newer)&base=\(Self.older)", method: .get, headers: server.cookie)
            #expect(diffJSON.json["schema"] as? String == "heapsnap.diff/1")
            let refused = try await client.execute(uri: "/api/download?format=pprof&f=\(Self.newer)&base=\(Self.older)", method: .get, headers: server.cookie)
            #expect(refused.status == .badRequest)
            #expect((refused.json["error"] as? String)?.contains("pprof export takes one snapshot") == true)
            let unknown = try await client.execute(uri: "/api/download?format=png&f=\(Self.newer)", method: .get, headers: server.cookie)
            #expect(unknown.status == .badRequest)
        }
    }

    @Test("a corrupt file is a one-line 422, never a 500")
    func corrupt() async throws {
        let server = try TestServer(tag: "corrupt")
        let good = try Data(contentsOf: URL(fileURLWithPath: server.directory + "/heapsnap.4242.1.heapsnap"))
        try good.prefix(good.count / 2).write(to: URL(fileURLWithPath: server.directory + "/heapsnap.4242.7.heapsnap"))
        try await server.test { client in
            for path in ["/api/report", "/api/flamegraph.svg", "/api/download"] {
                for file in ["0/heapsnap.9.0.heapsnap", "0/heapsnap.4242.7.heapsnap"] {
                    let response = try await client.execute(uri: "\(path)?format=svg&f=\(file)", method: .get, headers: server.cookie)
                    #expect(response.status == .unprocessableContent, "\(path) \(file)")
                    let error = try #require(response.json["error"] as? String)
                    #expect(error.hasPrefix(file + ": "))
                    #expect(!error.contains("\n"))
                }
            }
        }
    }

    @Test("path traversal, absolute paths, symlinks out and other files are refused",
          arguments: ["0/../heapsnap.4242.1.heapsnap", "0/./heapsnap.4242.1.heapsnap", "/etc/passwd", "0//etc/passwd",
                      "0/sub/../../../etc/passwd.heapsnap", "1/heapsnap.4242.1.heapsnap", "-1/x.heapsnap", "0/notes.txt",
                      "0/escape.heapsnap", "0/outside/heapsnap.1.0.heapsnap", "x/heapsnap.4242.1.heapsnap", "0/%2e%2e/etc/passwd"])
    func traversal(id: String) async throws {
        let server = try TestServer(tag: "traversal")
        let outside = try Files.directory("outside")
        try SnapshotWriter.write(Files.snapshot(pid: 1, seq: 0, leak: 1), to: outside + "/heapsnap.1.0.heapsnap")
        try FileManager.default.createSymbolicLink(atPath: server.directory + "/escape.heapsnap", withDestinationPath: outside + "/heapsnap.1.0.heapsnap")
        try FileManager.default.createSymbolicLink(atPath: server.directory + "/outside", withDestinationPath: outside)
        try Data("secret".utf8).write(to: URL(fileURLWithPath: server.directory + "/notes.txt"))
        try await server.test { client in
            for path in ["/api/report", "/api/flamegraph.svg", "/api/download?format=folded&x=1"] {
                let separator = path.contains("?") ? "&" : "?"
                let response = try await client.execute(uri: "\(path)\(separator)f=\(q(id))", method: .get, headers: server.cookie)
                #expect(response.status == .forbidden, "\(path) \(id): \(response.status) \(response.text)")
                #expect((response.json["error"] as? String)?.contains("refused") == true)
                let base = try await client.execute(uri: "\(path)\(separator)f=\(Self.newer)&base=\(q(id))", method: .get, headers: server.cookie)
                #expect(base.status == .forbidden)
            }
            let listing = try await client.execute(uri: "/api/state", method: .get, headers: server.cookie)
            #expect(!listing.text.contains("escape.heapsnap") && !listing.text.contains("outside/"))
        }
        try? FileManager.default.removeItem(atPath: outside)
    }

    @Test("symbolization is done once per file for many requests at once; a slow one answers 'pending' with progress")
    func concurrencyAndPending() async throws {
        let server = try TestServer(tag: "pending", gated: true, wait: .milliseconds(50))
        try await server.test { client in
            let first = try await client.execute(uri: "/api/report?f=\(Self.newer)", method: .get, headers: server.cookie)
            #expect(first.status == .accepted)
            #expect(first.json["pending"] as? Bool == true)
            let state = try await client.execute(uri: "/api/state", method: .get, headers: server.cookie)
            #expect((state.json["symbolizing"] as? [Any])?.count == 1, "the page shows the job in flight")
            server.symbolizer.open()
            var statuses: [HTTPResponse.Status] = []
            try await Wait.poll(every: 0.1) {
                statuses = try await withThrowingTaskGroup(of: HTTPResponse.Status.self) { group in
                    for _ in 0..<8 {
                        group.addTask {
                            try await client.execute(uri: "/api/report?f=\(Self.newer)", method: .get, headers: server.cookie).status
                        }
                    }
                    return try await group.reduce(into: []) { $0.append($1) }
                }
                return statuses.allSatisfy { $0 == .ok }
            }
            #expect(statuses == Array(repeating: .ok, count: 8))
            #expect(server.symbolizer.calls.withLock { $0 } == 1)
            // A changed file is a new stamp: symbolized again.
            try SnapshotWriter.write(Files.snapshot(pid: 4242, seq: 1, leak: 90_000), to: server.directory + "/heapsnap.4242.1.heapsnap")
            var total: Double?
            try await Wait.poll(every: 0.1) {
                let response = try await client.execute(uri: "/api/report?f=\(Self.newer)", method: .get, headers: server.cookie)
                guard response.status == .ok else { return false }
                total = ((response.json["total"] as? [String: Any])?["inuseBytes"] as? [String: Any])?["value"] as? Double
                return true
            }
            #expect(total == 91_000)
        }
    }

    @Test("POST needs the token in its header: cookie or query alone, GET, and a foreign Origin are refused")
    func postNeedsToken() async throws {
        let server = try TestServer(tag: "post")
        try await server.test { client in
            let pid = getpid()
            let bare = try await client.execute(uri: "/api/processes/\(pid)/start", method: .post)
            #expect(bare.status == .forbidden)
            let cookieOnly = try await client.execute(uri: "/api/processes/\(pid)/start", method: .post, headers: server.cookie)
            #expect(cookieOnly.status == .forbidden)
            #expect((cookieOnly.json["error"] as? String)?.contains("X-Heapsnap-Token") == true)
            let queryOnly = try await client.execute(uri: "/api/processes/\(pid)/start?token=\(TestServer.token)", method: .post)
            #expect(queryOnly.status == .forbidden)
            let get = try await client.execute(uri: "/api/processes/\(pid)/start", method: .get, headers: server.cookie)
            #expect(get.status != .ok)
            var foreign = server.postHeaders
            foreign[.origin] = "http://evil.example"
            let crossSite = try await client.execute(uri: "/api/processes/\(pid)/start", method: .post, headers: foreign)
            #expect(crossSite.status == .forbidden)
            #expect((crossSite.json["error"] as? String)?.contains("cross-origin") == true)
        }
    }

    @Test("a process without the shim is refused and left alone; unknown pids and actions are one line")
    func processWithoutShim() async throws {
        let server = try TestServer(tag: "noshim")
        // Lives until the test kills it: on two cores the parallel suites can hold this test back for tens of
        // seconds. SIGKILL, because a child of the test process inherits a mask that blocks SIGTERM (terminate()).
        let sleeper = Process()
        sleeper.executableURL = URL(fileURLWithPath: "/bin/sleep")
        sleeper.arguments = ["3600"]
        sleeper.standardOutput = FileHandle.nullDevice   // never the test's own pipes, which swift test reads to the end
        sleeper.standardError = FileHandle.nullDevice
        try sleeper.run()
        defer { kill(sleeper.processIdentifier, SIGKILL); sleeper.waitUntilExit() }
        let pid = sleeper.processIdentifier
        try await server.test { client in
            for action in ["start", "snapshot", "stop"] {
                let response = try await client.execute(uri: "/api/processes/\(pid)/\(action)", method: .post, headers: server.postHeaders)
                #expect(response.status == .conflict, "\(action): \(response.text)")
                #expect(response.json["error"] as? String
                    == "process \(pid): libheapsnap_preload.so is not loaded (not in /proc/\(pid)/maps); start it with `heapsnap run` or LD_PRELOAD")
            }
            let list = try await client.execute(uri: "/api/processes", method: .get, headers: server.cookie)
            #expect(!((list.json["processes"] as? [[String: Any]]) ?? []).contains { $0["pid"] as? Int == Int(pid) })
            let gone = try await client.execute(uri: "/api/processes/999999999/start", method: .post, headers: server.postHeaders)
            #expect(gone.status == .notFound)
            let action = try await client.execute(uri: "/api/processes/\(pid)/kill", method: .post, headers: server.postHeaders)
            #expect(action.status == .badRequest)
        }
        #expect(sleeper.isRunning, "nothing was sent to the process")
    }

    @Test("a preloaded process: listed idle, Start -> sampling, Snapshot now writes a file that is listed, Stop -> idle",
          .enabled(if: ServeAPITests.preloadLibrary != nil, "needs libheapsnap_preload.so (HEAPSNAP_LIB or beside the tests)"))
    func controlPreloadedProcess() async throws {
        let server = try TestServer(tag: "control")
        let target = Process()
        target.executableURL = URL(fileURLWithPath: "/bin/sleep")
        target.arguments = ["3600"]
        target.standardOutput = FileHandle.nullDevice
        target.standardError = FileHandle.nullDevice
        target.environment = ["LD_PRELOAD": try #require(Self.preloadLibrary), "HEAPSNAP_DIR": server.directory, "PATH": "/usr/bin:/bin"]
        try target.run()
        defer { kill(target.processIdentifier, SIGKILL); target.waitUntilExit() }
        let pid = target.processIdentifier
        try await server.test { client in
            func process() async throws -> [String: Any]? {
                let list = try await client.execute(uri: "/api/processes", method: .get, headers: server.cookie)
                return ((list.json["processes"] as? [[String: Any]]) ?? []).first { $0["pid"] as? Int == Int(pid) }
            }
            var listed: [String: Any]?
            try await Wait.poll(every: 0.1) {
                listed = try await process()
                return listed != nil
            }
            let idle = try #require(listed)
            #expect(idle["state"] as? String == "idle")
            #expect(idle["directoryServed"] as? Bool == true)
            #expect(idle["controllable"] as? Bool == true)
            #expect(idle["snapshots"] as? Int == 0)

            let start = try await client.execute(uri: "/api/processes/\(pid)/start", method: .post, headers: server.postHeaders)
            #expect(start.status == .ok, "\(start.text)")
            #expect(try await process()?["state"] as? String == "sampling")

            let dump = try await client.execute(uri: "/api/processes/\(pid)/snapshot", method: .post, headers: server.postHeaders)
            #expect(dump.status == .ok, "\(dump.text)")
            let id = try #require(dump.json["snapshot"] as? String)
            #expect(id == "0/heapsnap.\(pid).0.heapsnap")
            let state = try await client.execute(uri: "/api/state", method: .get, headers: server.cookie)
            #expect(state.text.contains("\"\(id)\""))
            let sampling = try #require(try await process())
            #expect(sampling["snapshots"] as? Int == 1)
            #expect(sampling["state"] as? String == "sampling")

            let stop = try await client.execute(uri: "/api/processes/\(pid)/stop", method: .post, headers: server.postHeaders)
            #expect(stop.status == .ok, "\(stop.text)")
            let stopped = try #require(try await process())
            #expect(stopped["state"] as? String == "idle")
            #expect(stopped["snapshots"] as? Int == 2)
            let report = try await client.execute(uri: "/api/report?f=\(q(id))", method: .get, headers: server.cookie)
            #expect(report.status == .ok || report.status == .accepted, "\(report.text)")
        }
        #expect(target.isRunning)
    }

    /// libheapsnap_preload.so: $HEAPSNAP_LIB (Scripts/test sets it), else beside the test bundle.
    static let preloadLibrary: String? = {
        if let path = ProcessInfo.processInfo.environment["HEAPSNAP_LIB"], access(path, R_OK) == 0 { return path }
        let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? ""
        let beside = (exe as NSString).deletingLastPathComponent + "/libheapsnap_preload.so"
        return access(beside, R_OK) == 0 ? beside : nil
    }()
}
