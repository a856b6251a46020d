// `heapsnap serve`: wires the served directories, the symbolizer, the
// caches and the router into a Hummingbird application, and announces the
// URL (with its token) once the socket is bound.

#if canImport(Glibc)
import Glibc
#endif
import HeapSnapKit
import Hummingbird
import Logging

/// The settings of `heapsnap serve`.
public struct ServeConfiguration: Sendable {
    /// Directories whose `*.heapsnap` files are served (and nothing else).
    public var directories: [String]
    /// The address to bind: 127.0.0.1 unless exposed on purpose.
    public var host: String = "127.0.0.1"
    /// The port; 0 picks a free one.
    public var port: Int = 8090
    /// The access token; nil makes a random one.
    public var token: String? = nil
    /// Extra directories with separate debug files under .build-id/.
    public var debugDirectories: [String] = []

    /// Serves `directories` on `host`:`port` with a random token.
    public init(directories: [String], host: String = "127.0.0.1", port: Int = 8090) {
        self.directories = directories
        self.host = host
        self.port = port
    }
}

/// Runs the web view.
public enum WebServer {
    /// The shared state for `configuration`, with the real symbolizer (found as the CLI finds it).
    public static func state(_ configuration: ServeConfiguration, environment: [String: String]) throws(ServeError) -> ServeState {
        let directories = try ServedDirectories(configuration.directories)
        let symbolizer = LLVMSymbolizer.find(environment: environment).map {
            LLVMSymbolizer(executable: $0, debugDirectories: configuration.debugDirectories)
        }
        let store = ProfileStore(directories: directories, symbolizer: symbolizer,
                                 locator: FileSystemModuleLocator(debugDirectories: configuration.debugDirectories))
        return ServeState(token: configuration.token ?? ServeState.randomToken(), directories: directories, store: store,
                          processes: ProcessTable(directories: directories),
                          leaks: LeakSuspects(environment: environment, debugDirectories: configuration.debugDirectories))
    }

    /// Serves until SIGINT or SIGTERM; `announce` gets the URL with the token once listening.
    public static func run(_ state: ServeState, host: String, port: Int, announce: @escaping @Sendable (String) -> Void) async throws {
        try await application(state, host: host, port: port, announce: announce).runService()
    }

    /// The web view as an application (a service): `run` serves it until SIGINT or SIGTERM; the tests
    /// run it in a service group of their own, which takes no signals, and shut it down gracefully.
    static func application(_ state: ServeState, host: String, port: Int,
                            announce: @escaping @Sendable (String) -> Void) -> some ApplicationProtocol {
        var logger = Logger(label: "heapsnap.serve")
        logger.logLevel = .error
        return Application(
            router: makeRouter(state),
            configuration: ApplicationConfiguration(address: .hostname(host, port: port), serverName: nil),
            onServerRunning: { channel in
                let bound = channel.localAddress?.port ?? port
                let shown = host == "0.0.0.0" || host == "::" ? localHostName() : host.contains(":") ? "[\(host)]" : host
                announce("http://\(shown):\(bound)/?token=\(state.token)")
            },
            logger: logger
        )
    }

    static func localHostName() -> String {
        var buffer = [CChar](repeating: 0, count: 256)
        guard gethostname(&buffer, buffer.count - 1) == 0 else { return "localhost" }
        return String(cString: buffer)
    }
}
