// The page the server sends is the files in Sources/HeapSnapServe/Assets, byte
// for byte (the page with its token put in): what editors and `node --check`
// read is what the browser runs.

import Foundation
import NIOCore
import Testing

@Suite("serve: the page's files")
struct PageFilesTests {
    static let assets = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Sources/HeapSnapServe/Assets")

    @Test("/, /app.css and /app.js are index.html (with the token), app.css and app.js")
    func servedAsOnDisk() async throws {
        let server = try TestServer(tag: "files")
        try await server.test { client in
            for (uri, file) in [("/", "index.html"), ("/app.css", "app.css"), ("/app.js", "app.js")] {
                var expected = try String(contentsOf: Self.assets.appendingPathComponent(file), encoding: .utf8)
                if file == "index.html" {
                    #expect(expected.contains("content=\"{{TOKEN}}\""))
                    expected = expected.replacingOccurrences(of: "{{TOKEN}}", with: TestServer.token)
                }
                let response = try await client.execute(uri: uri, method: .get, headers: server.cookie)
                #expect(response.status == .ok, "\(uri)")
                #expect(Array(response.body.readableBytesView) == Array(expected.utf8), "\(uri) is not \(file)")
            }
        }
    }
}
