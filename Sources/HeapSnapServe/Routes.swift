// The HTTP surface of `heapsnap serve`.
//
//   GET  /                      the page (index.html with the token for its POSTs), /app.js, /app.css
//   GET  /api/state             snapshots grouped by process, processes, symbolization in flight (the page polls it)
//   GET  /api/snapshots         the groups only;  GET /api/processes  the processes only
//   GET  /api/report            the top table of a view, or the diff table (JSON as `heapsnap top|diff --format json`)
//   GET  /api/flamegraph.svg    the interactive flamegraph of a view (FlameGraphSVG)
//   GET  /api/download          a view as svg, pprof, folded, json or speedscope, as an attachment
//   GET  /api/leaks             leak suspects of processes (g=HOST/PID, repeatable): `heapsnap leaks --format json` of their snapshots
//   POST /api/processes/PID/ACTION   start, snapshot or stop (X-Heapsnap-Token header required)
//
// Every request carries the token: ?token= once (the answer sets an HttpOnly,
// SameSite=Strict cookie), then the cookie. A POST must also carry it in the
// X-Heapsnap-Token header, which only the page (served to holders of the
// token) knows, and its Origin, when sent, must be this server. Handlers
// catch every error and answer one line: `{"error": "..."}`.

import Foundation
import HeapSnapKit
import HTTPTypes
import Hummingbird

/// Everything the handlers share.
public struct ServeState: Sendable {
    /// The access token (64 hex digits unless a test sets one).
    let token: String
    /// The cookie holding the token: its name carries a per-server id, so two servers on one host keep their own.
    let cookieName: String
    let directories: ServedDirectories
    let catalog: SnapshotCatalog
    let store: ProfileStore
    let processes: ProcessTable
    /// Leak suspects of a service (`heapsnap leaks` over its processes' snapshots).
    let leaks: LeakSuspects
    /// How long a view request waits for symbolization before answering "pending".
    let wait: Duration

    init(token: String, directories: ServedDirectories, store: ProfileStore, processes: ProcessTable,
         leaks: LeakSuspects = LeakSuspects(environment: [:]), wait: Duration = .seconds(2)) {
        self.token = token
        cookieName = "heapsnap_" + String(token.utf8.reduce(UInt32(2166136261)) { ($0 ^ UInt32($1)) &* 16777619 }, radix: 36)
        self.directories = directories
        catalog = SnapshotCatalog(directories: directories)
        self.store = store
        self.processes = processes
        self.leaks = leaks
        self.wait = wait
    }

    /// A new random token: 32 bytes from the system's generator, as hex.
    static func randomToken() -> String {
        var generator = SystemRandomNumberGenerator()
        return (0..<32).map { _ in String(format: "%02x", UInt8.random(in: 0...255, using: &generator)) }.joined()
    }

    /// Compares without an early exit, so timing does not reveal a prefix.
    func isToken(_ candidate: some StringProtocol) -> Bool {
        let a = Array(token.utf8), b = Array(candidate.utf8)
        guard a.count == b.count else { return false }
        return zip(a, b).reduce(UInt8(0)) { $0 | ($1.0 ^ $1.1) } == 0
    }
}

extension HTTPField.Name {
    static let heapsnapToken = HTTPField.Name("X-Heapsnap-Token")!
    static let referrerPolicy = HTTPField.Name("Referrer-Policy")!
}

/// Checks the token on every request and adds the security headers to every answer.
struct TokenMiddleware<Context: RequestContext>: RouterMiddleware {
    let state: ServeState

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let queryToken = request.uri.queryParameters["token"]
        let fromQuery = queryToken.map { state.isToken($0) } ?? false
        let fromCookie = request.cookies[state.cookieName].map { state.isToken($0.value) } ?? false
        var response: Response
        if request.method == .post {
            let header = request.headers[.heapsnapToken].map { state.isToken($0) } ?? false
            let host = request.head.authority ?? ""
            let origin = request.headers[.origin]
            if !header {
                response = Respond.error(.forbidden, "a POST needs the token in the X-Heapsnap-Token header (use the page's buttons)")
            } else if let origin, origin != "http://" + host {
                response = Respond.error(.forbidden, "cross-origin POST refused (Origin \(origin))")
            } else {
                response = try await next(request, context)
            }
        } else if !(fromQuery || fromCookie) {
            response = Respond.error(.unauthorized, queryToken == nil
                ? "open the URL that `heapsnap serve` printed (it carries ?token=...)"
                : "wrong token: open the URL that `heapsnap serve` printed")
        } else if fromQuery, request.uri.path == "/" {
            // Trade the token in the address bar for the cookie.
            response = Response(status: .seeOther, headers: [.location: "/"])
        } else {
            response = try await next(request, context)
        }
        if fromQuery {
            response.setCookie(Cookie(name: state.cookieName, value: state.token, path: "/", httpOnly: true, sameSite: .strict))
        }
        response.headers[.xContentTypeOptions] = "nosniff"
        response.headers[.referrerPolicy] = "no-referrer"
        response.headers[.cacheControl] = "no-store"
        if response.headers[.contentSecurityPolicy] == nil {
            response.headers[.contentSecurityPolicy] = "default-src 'none'; frame-ancestors 'none'"
        }
        return response
    }
}

/// Building answers.
enum Respond {
    static let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return encoder
    }()

    static func bytes(_ bytes: [UInt8], type: String, status: HTTPResponse.Status = .ok, headers: HTTPFields = [:]) -> Response {
        var fields = headers
        fields[.contentType] = type
        return Response(status: status, headers: fields, body: ResponseBody(byteBuffer: ByteBuffer(bytes: bytes)))
    }

    static func text(_ text: String, type: String, status: HTTPResponse.Status = .ok, headers: HTTPFields = [:]) -> Response {
        bytes(Array(text.utf8), type: type, status: status, headers: headers)
    }

    static func json(_ value: some Encodable, status: HTTPResponse.Status = .ok) -> Response {
        guard let data = try? encoder.encode(value) else { return error(.internalServerError, "cannot encode the answer") }
        return bytes(Array(data), type: "application/json", status: status)
    }

    static func error(_ status: HTTPResponse.Status, _ message: String) -> Response {
        json(["error": message.split(separator: "\n").first.map(String.init) ?? ""], status: status)
    }

    static func error(_ error: ServeError) -> Response { self.error(error.status, error.description) }

    static func pending(done: Int, total: Int) -> Response {
        struct Pending: Encodable { var pending = true, done: Int, total: Int }
        return json(Pending(done: done, total: total), status: .accepted)
    }
}

/// The router of `heapsnap serve`.
func makeRouter(_ state: ServeState) -> Router<BasicRequestContext> {
    let router = Router()
    router.add(middleware: TokenMiddleware(state: state))

    router.get("/") { _, _ in
        let page = Assets.page.replacingOccurrences(of: "{{TOKEN}}", with: state.token)
        return Respond.text(page, type: "text/html; charset=utf-8", headers: [.contentSecurityPolicy: Assets.pagePolicy])
    }
    router.get("/app.js") { _, _ in Respond.text(Assets.script, type: "text/javascript; charset=utf-8") }
    router.get("/app.css") { _, _ in Respond.text(Assets.style, type: "text/css; charset=utf-8") }

    router.get("/api/snapshots") { _, _ in
        Respond.json(SnapshotsAnswer(directories: state.directories.roots, groups: await state.catalog.groups()))
    }
    router.get("/api/processes") { _, _ in
        let summaries = await state.catalog.summaries()
        return Respond.json(["processes": await state.processes.list(snapshots: summaries)])
    }
    router.get("/api/state") { _, _ in
        let summaries = await state.catalog.summaries()
        let activity = await state.store.activity()
        return Respond.json(StateAnswer(directories: state.directories.roots, groups: SnapshotCatalog.group(summaries),
                                        processes: await state.processes.list(snapshots: summaries),
                                        symbolizing: activity.map { SymbolizingJob(done: $0.done, total: $0.total) }))
    }

    router.get("/api/report") { request, _ in
        await view(request, state) { (_: ViewRequest, result: ProfileResult) throws(ServeError) -> Response in
            Respond.bytes(try render(result, .report(.json)), type: "application/json")
        }
    }
    // The page asks for these once the table is ready (the profile is cached by then); a
    // download or a link opened by hand waits for symbolization instead of answering "pending".
    router.get("/api/flamegraph.svg") { request, _ in
        await view(request, state, wait: .seconds(60)) { (view: ViewRequest, result: ProfileResult) throws(ServeError) -> Response in
            Respond.bytes(try render(result, .flamegraph(view.shape)), type: "image/svg+xml",
                         headers: [.contentSecurityPolicy: "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; frame-ancestors 'self'"])
        }
    }
    router.get("/api/download") { request, _ in
        let name = request.uri.queryParameters["format"].map(String.init) ?? ""
        guard let format = DownloadFormat(rawValue: name) else {
            return Respond.error(.badRequest("format=\(name): give one of \(DownloadFormat.allCases.map(\.rawValue).joined(separator: ", "))"))
        }
        return await view(request, state, wait: .seconds(60)) { (view: ViewRequest, result: ProfileResult) throws(ServeError) -> Response in
            let bytes = try render(result, format.output(view))
            let file = downloadName(result.profile) + "." + format.fileExtension
            return Respond.bytes(bytes, type: format.contentType, headers: [.contentDisposition: "attachment; filename=\"\(file)\""])
        }
    }

    router.get("/api/leaks") { request, _ in
        do throws(ServeError) {
            let parameters = request.uri.queryParameters
            let leaks = try LeaksRequest { name in parameters[values: Substring(name)].map(String.init) }
            let groups = await state.catalog.groups()
            var paths: [String] = []
            for key in leaks.groups {
                guard let group = groups.first(where: { $0.key == key }), key != "unreadable", !key.hasPrefix("merged/") else {
                    throw .badRequest("g=\(key): no such process among the snapshots (give HOST/PID)")
                }
                for summary in group.snapshots where summary.error == nil {
                    paths.append(try state.directories.resolve(summary.id).path)
                }
            }
            return Respond.bytes(try await state.leaks.report(paths: paths, leaks), type: "application/json")
        } catch {
            return Respond.error(error)
        }
    }

    router.post("/api/processes/:pid/:action") { request, context in
        guard let pid = context.parameters.get("pid", as: Int32.self) else { return Respond.error(.badRequest("not a process id")) }
        let action: ControlAction
        switch context.parameters.get("action") {
        case "start": action = .start
        case "snapshot", "dump": action = .dump
        case "stop": action = .stop
        default: return Respond.error(.badRequest("unknown action: give start, snapshot or stop"))
        }
        do throws(ServeError) {
            let snapshot = try await state.processes.perform(action, pid: pid)
            let message = switch action {
            case .start: "sampling started in process \(pid)"
            case .dump: "process \(pid) wrote \(snapshot ?? "a snapshot")"
            case .stop: "sampling stopped in process \(pid); it wrote \(snapshot ?? "a final snapshot")"
            }
            return Respond.json(ActionAnswer(ok: true, message: message, snapshot: snapshot))
        } catch {
            return Respond.error(error)
        }
    }
    return router
}

/// Parses the view in `request`, answers its question, and responds with `body`, "pending", or the error.
private func view(_ request: Request, _ state: ServeState, wait: Duration? = nil,
                  _ body: (ViewRequest, ProfileResult) throws(ServeError) -> Response) async -> Response {
    let parameters = request.uri.queryParameters
    do throws(ServeError) {
        let view = try ViewRequest { name in parameters[values: Substring(name)].map(String.init) }
        switch try await view.result(directories: state.directories, store: state.store, wait: max(wait ?? state.wait, state.wait)) {
        case .pending(let done, let total): return Respond.pending(done: done, total: total)
        case .ready(let result): return try body(view, result)
        }
    } catch {
        return Respond.error(error)
    }
}

/// The output stage's bytes; what it refuses (pprof of a diff, …) is a one-line 400.
private func render(_ result: ProfileResult, _ output: Output) throws(ServeError) -> [UInt8] {
    do throws(HeapSnapError) {
        return try result.render(output)
    } catch {
        throw .notExportable(error.description)
    }
}

/// "heapsnap-PID-SEQ", "heapsnap-merged", or for a diff "heapsnap-PID-SEQ-vs-SEQ" (or "-vs-PID-SEQ").
private func downloadName(_ profile: Profile) -> String {
    func label(_ h: SnapshotHeader) -> String { h.flags.contains(.merged) ? "merged" : "\(h.pid)-\(h.seq)" }
    let h = profile.source.header
    var name = "heapsnap-" + label(h)
    if let base = profile.base?.header {
        name += "-vs-" + (base.pid == h.pid && !base.flags.contains(.merged) ? "\(base.seq)" : label(base))
    }
    return name
}

struct SnapshotsAnswer: Encodable {
    var directories: [String]
    var groups: [ProcessGroup]
}

struct SymbolizingJob: Encodable {
    var done: Int
    var total: Int
}

struct StateAnswer: Encodable {
    var directories: [String]
    var groups: [ProcessGroup]
    var processes: [ProfiledProcess]
    var symbolizing: [SymbolizingJob]
}

struct ActionAnswer: Encodable {
    var ok: Bool
    var message: String
    var snapshot: String?
}
