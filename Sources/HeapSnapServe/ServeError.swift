// Every failure a request can meet, as one line for the page and an HTTP
// status. Handlers never let anything else escape: a bad file or a refused
// action is a 4xx with `{"error": "..."}`, never a 500 with a trace.

import HeapSnapKit
import HTTPTypes

/// Why a request was refused or failed.
public enum ServeError: Error, Sendable, Equatable, CustomStringConvertible {
    /// A malformed parameter (names the parameter and what it accepts).
    case badRequest(String)
    /// A file outside the served directories, a `..`, an absolute path, or a symlink out.
    case refusedPath(id: String, reason: String)
    /// No such served file.
    case notFound(id: String)
    /// A snapshot file could not be read or is damaged.
    case badSnapshot(HeapSnapError)
    /// A control action failed or was refused (no shim, another user's process, no handler, ...).
    case control(HeapSnapError)
    /// An export that does not apply to this view (pprof of a diff, ...).
    case notExportable(String)

    /// One line for the page: what failed and, where it helps, what to do.
    public var description: String {
        switch self {
        case .badRequest(let message): message
        case .refusedPath(let id, let reason): "\(id): refused: \(reason)"
        case .notFound(let id): "\(id): no such snapshot file in the served directories"
        case .badSnapshot(let error), .control(let error): error.description
        case .notExportable(let message): message
        }
    }

    /// The HTTP status for this failure.
    public var status: HTTPResponse.Status {
        switch self {
        case .badRequest, .notExportable: .badRequest
        case .refusedPath: .forbidden
        case .notFound: .notFound
        case .badSnapshot: .unprocessableContent
        case .control(let error):
            switch error {
            case .noSuchProcess: .notFound
            case .permissionDenied: .forbidden
            case .timedOut: .gatewayTimeout
            default: .conflict
            }
        }
    }
}
