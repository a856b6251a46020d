// The page in a real browser: Debian's headless Chromium, driven over its
// DevTools protocol by Browser/drive_page.py (stdlib Python, no WebSocket:
// --remote-debugging-pipe). It runs a preloaded program and `heapsnap serve`,
// presses the page's buttons and checks the DOM; see the script's docstring.
// HEAPSNAP_SCREENSHOTS=DIR keeps its screenshots (the README's are in docs/).

import Foundation
import Testing

@Suite("serve: in Chromium")
struct BrowserTests {
    static let chromium: String? = ["/usr/bin/chromium", "/usr/bin/chromium-browser"].first { (path: String) in access(path, X_OK) == 0 }
    static let here = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
    static let root = here.deletingLastPathComponent().deletingLastPathComponent()

    @Test("start, snapshot, see it appear, open its flamegraph, diff, stop — in headless Chromium",
          .enabled(if: chromium != nil, "chromium is not installed (Scripts/test installs Debian's chromium)"),
          .enabled(if: ServeAPITests.preloadLibrary != nil, "needs libheapsnap_preload.so (HEAPSNAP_LIB or beside the tests)"),
          .timeLimit(.minutes(3)))
    func page() throws {
        let exe = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")
        let heapsnap = URL(fileURLWithPath: exe).deletingLastPathComponent().appendingPathComponent("heapsnap").path
        var arguments = [Self.here.appendingPathComponent("Browser/drive_page.py").path,
                         "--heapsnap", heapsnap, "--lib", ServeAPITests.preloadLibrary!,
                         "--program", Self.root.appendingPathComponent("Scripts/demo-app.c").path]
        if let dir = ProcessInfo.processInfo.environment["HEAPSNAP_SCREENSHOTS"], !dir.isEmpty {
            arguments += ["--screenshots", dir]
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        process.arguments = arguments
        let output = Pipe()
        process.standardOutput = output
        process.standardError = output
        try process.run()
        let log = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        #expect(process.terminationStatus == 0, "\(log)")
        #expect(log.contains("all checks passed"), "\(log)")
    }
}
