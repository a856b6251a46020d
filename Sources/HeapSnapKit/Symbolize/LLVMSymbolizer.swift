// `llvm-symbolizer` as one long-lived child process. Requests go in as
// `"path" 0xADDR` lines (a writer thread feeds stdin so neither pipe can fill
// up and deadlock); answers come back one JSON line per request with
// `--output-style=JSON --inlines`. Every answer is cached per (file, address).
// llvm-symbolizer demangles C++ and finds separate debug info by build-id
// (`--debug-file-directory`), so this file only speaks its protocol.

import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// An `AddressSymbolizer` backed by a long-lived `llvm-symbolizer` process.
public final class LLVMSymbolizer: AddressSymbolizer {
    /// The llvm-symbolizer executable.
    public let executable: String
    /// Extra directories for separate debug files, passed as `--debug-file-directory`.
    public let debugDirectories: [String]
    /// Called with (done, total) while a large batch is being symbolized.
    public var progress: ((Int, Int) -> Void)?

    private var child: ChildProcess?
    private var cache: [SymbolRequest: [SymbolizedFrame]] = [:]
    private var pending: [UInt8] = []
    private var broken = false

    /// Uses `executable` (see `LLVMSymbolizer.find()`); the process starts on first use.
    public init(executable: String, debugDirectories: [String] = []) {
        self.executable = executable
        self.debugDirectories = debugDirectories
    }

    deinit {
        if let child {
            close(child.stdin)
            close(child.stdout)
            _ = child.wait()
        }
    }

    /// Finds llvm-symbolizer: `$HEAPSNAP_SYMBOLIZER`, then beside this
    /// executable, then beside the `swift` on PATH (the toolchain ships one),
    /// then `llvm-symbolizer` on PATH, then Debian's `/usr/lib/llvm-*/bin`.
    public static func find(environment: [String: String] = ProcessInfo.processInfo.environment) -> String? {
        if let explicit = environment["HEAPSNAP_SYMBOLIZER"], !explicit.isEmpty {
            return access(explicit, X_OK) == 0 ? explicit : nil
        }
        var candidates: [String] = []
        if let me = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe") {
            candidates.append((me as NSString).deletingLastPathComponent + "/llvm-symbolizer")
        }
        let path = (environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":").map(String.init)
        for dir in path where access(dir + "/swift", X_OK) == 0 {
            let real = URL(fileURLWithPath: dir + "/swift").resolvingSymlinksInPath().path
            candidates.append((real as NSString).deletingLastPathComponent + "/llvm-symbolizer")
            break
        }
        for dir in path { candidates.append(dir + "/llvm-symbolizer") }
        let versioned = ((try? FileManager.default.contentsOfDirectory(atPath: "/usr/lib")) ?? [])
            .filter { $0.hasPrefix("llvm-") }
            .sorted { (Int($0.dropFirst(5)) ?? 0) > (Int($1.dropFirst(5)) ?? 0) }
        candidates += versioned.map { "/usr/lib/\($0)/bin/llvm-symbolizer" }
        return candidates.first { access($0, X_OK) == 0 }
    }

    public func symbolize(_ requests: [SymbolRequest]) -> [[SymbolizedFrame]] {
        var missing: [SymbolRequest] = []
        var seen = Set<SymbolRequest>()
        for request in requests where cache[request] == nil && seen.insert(request).inserted {
            missing.append(request)
        }
        if !missing.isEmpty { run(missing) }
        return requests.map { cache[$0] ?? [] }
    }

    private func start() -> ChildProcess? {
        if let child { return child }
        if broken { return nil }
        var arguments = [executable, "--inlines", "--output-style=JSON", "--demangle", "--functions=linkage"]
        arguments += debugDirectories.map { "--debug-file-directory=\($0)" }
        // A symbolizer that dies must not kill us with SIGPIPE; writes then fail with EPIPE.
        signal(SIGPIPE, SIG_IGN)
        do {
            child = try ChildProcess.spawn(path: executable, arguments: arguments, pipeStdin: true, pipeStdout: true, silenceStderr: true)
        } catch {
            broken = true
        }
        return child
    }

    /// Symbolizes `requests` (all uncached and distinct) in chunks, caching every answer.
    private func run(_ requests: [SymbolRequest]) {
        let chunk = 4096
        let startTime = DispatchTime.now().uptimeNanoseconds
        var done = 0
        while done < requests.count {
            let slice = Array(requests[done..<min(done + chunk, requests.count)])
            let answers = runChunk(slice)
            for (request, frames) in zip(slice, answers) { cache[request] = frames }
            done += slice.count
            if let progress, DispatchTime.now().uptimeNanoseconds - startTime > 300_000_000 { progress(done, requests.count) }
        }
    }

    private func runChunk(_ requests: [SymbolRequest]) -> [[SymbolizedFrame]] {
        guard let child = start() else { return requests.map { _ in [] } }
        var input: [UInt8] = []
        input.reserveCapacity(requests.count * 64)
        for request in requests {
            // Quoted so paths with spaces survive; a path with a quote cannot be passed.
            let path = request.objectPath.contains("\"") ? "/nonexistent" : request.objectPath
            input += Array("\"\(path)\" 0x\(String(request.address, radix: 16))\n".utf8)
        }
        let fd = child.stdin
        let bytes = input
        let written = DispatchSemaphore(value: 0)
        let writer = Thread {
            writeAll(fd, bytes)
            written.signal()
        }
        writer.start()
        defer { written.wait() }

        // Read exactly one line per request.
        var lines: [ArraySlice<UInt8>] = []
        lines.reserveCapacity(requests.count)
        var buffer = pending
        pending = []
        var lineStart = 0
        var scanFrom = 0
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        var all: [UInt8] = []
        while lines.count < requests.count {
            if let newline = buffer[scanFrom...].firstIndex(of: UInt8(ascii: "\n")) {
                lines.append(buffer[lineStart..<newline])
                lineStart = newline + 1
                scanFrom = lineStart
                continue
            }
            scanFrom = buffer.count
            let n = chunk.withUnsafeMutableBytes { read(child.stdout, $0.baseAddress!, $0.count) }
            if n < 0, errno == EINTR { continue }
            if n <= 0 {
                broken = true
                break
            }
            buffer += chunk[0..<n]
        }
        if lineStart < buffer.count { pending = Array(buffer[lineStart...]) }
        if broken {
            close(child.stdin)
            close(child.stdout)
            _ = child.wait()
            self.child = nil
        }

        // One JSON array of all answers decodes much faster than line by line.
        all.reserveCapacity(buffer.count + 2)
        all.append(UInt8(ascii: "["))
        for (i, line) in lines.enumerated() {
            if i > 0 { all.append(UInt8(ascii: ",")) }
            all += line
        }
        all.append(UInt8(ascii: "]"))
        let decoded: [Answer]
        if let batch = try? JSONDecoder().decode([Answer].self, from: Data(all)) {
            decoded = batch
        } else {
            decoded = lines.map { (try? JSONDecoder().decode(Answer.self, from: Data($0))) ?? Answer(Symbol: nil) }
        }
        var result = decoded.map { answer in
            (answer.Symbol ?? []).map { symbol in
                SymbolizedFrame(function: clean(symbol.FunctionName), file: clean(symbol.FileName),
                                line: symbol.Line ?? 0, column: symbol.Column ?? 0)
            }
        }
        while result.count < requests.count { result.append([]) }
        return result
    }

    private func clean(_ s: String?) -> String {
        guard let s, s != "??", s != "<invalid>" else { return "" }
        return s
    }

    private struct Answer: Decodable {
        var Symbol: [Symbol]?
    }

    private struct Symbol: Decodable {
        var FunctionName: String?
        var FileName: String?
        var Line: Int?
        var Column: Int?
    }
}
