// Helpers for tests that compile programs and run commands.

import Foundation
import HeapSnapTestSupport
@testable import HeapSnapKit

enum Toolbox {
    /// The directory holding the test bundle, the heapsnap executable and the preload library.
    static let binDirectory: String = {
        let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? ""
        return (exe as NSString).deletingLastPathComponent
    }()

    static var heapsnap: String { binDirectory + "/heapsnap" }
    static var preloadLibrary: String { binDirectory + "/libheapsnap_preload.so" }
    static let programs = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Programs").path

    /// A fresh temporary directory.
    static func temporaryDirectory(_ tag: String) throws -> String {
        let path = NSTemporaryDirectory() + "heapsnap-test-\(tag)-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    struct Result {
        var status: Int32
        var stdout: String
        var stderr: String
    }

    /// Runs a command to completion, capturing its output.
    @discardableResult
    static func run(_ path: String, _ arguments: [String], environment: [String: String]? = nil) throws -> Result {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = arguments
        if let environment { process.environment = environment }
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let outData = out.fileHandleForReading.readDataToEndOfFile()
        let errData = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return Result(status: process.terminationStatus, stdout: String(decoding: outData, as: UTF8.self),
                      stderr: String(decoding: errData, as: UTF8.self))
    }

    /// `heapsnap dump ARGUMENTS`, again every 20 ms until the snapshot it writes meets `done`, a dump
    /// fails or cannot be read (the test's checks then say why), or `timeout` seconds have passed; the
    /// last dump. A wait on what the test can see: `heapsnap start` only sends a signal, so the process
    /// starts sampling, and meets its next allocations, on its own time.
    static func dump(_ arguments: [String], timeout: Double = 30, until done: (Snapshot) -> Bool) throws -> Result {
        var last: Result?
        try Wait.poll(timeout: timeout, every: 0.02) {
            let dump = try run(heapsnap, ["dump"] + arguments)
            last = dump
            let path = dump.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
            guard dump.status == 0, let snapshot = try? SnapshotReader.read(path: path) else { return true }
            return done(snapshot)
        }
        return last!
    }

    /// The 1-based line of `marker` in a file.
    static func line(of marker: String, in file: String) throws -> Int {
        let text = try String(contentsOfFile: file, encoding: .utf8)
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        guard let i = lines.firstIndex(where: { $0.contains(marker) }) else { throw ToolboxError("no \(marker) in \(file)") }
        return i + 1
    }

    /// The return address (ELF) after the first call to a symbol containing `callee` inside `function`, from objdump.
    static func returnAddress(in binary: String, function: String, callee: String) throws -> UInt64 {
        let dump = try run("/usr/bin/objdump", ["-d", "--no-show-raw-insn", binary]).stdout
        var inside = false, found = false
        for line in dump.split(separator: "\n") {
            if line.hasSuffix(">:") {
                inside = line.contains("<\(function)>:")
                continue
            }
            guard inside else { continue }
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            guard let colon = trimmed.firstIndex(of: ":"), let address = UInt64(trimmed[..<colon], radix: 16) else { continue }
            if found { return address }
            if trimmed.contains("call"), trimmed.contains(callee) { found = true }
        }
        throw ToolboxError("no call to \(callee) in \(function) of \(binary)")
    }

    /// A snapshot mapping `binary` at a fake runtime base, with one stack per return address.
    static func snapshot(binary: String, returnAddresses: [UInt64], buildID: [UInt8]? = nil) -> Snapshot {
        let base: UInt64 = 0x5555_0000_0000
        let module = Module(start: base, end: base + 0x100_0000, fileOffset: 0, vaddr: 0,
                            buildID: buildID ?? ELFFile.buildID(path: binary) ?? [], path: binary)
        let stacks = returnAddresses.map { RawStack(frames: [base + $0]) }
        let records = stacks.indices.map { i in
            StackRecord(stack: i, inuse: SampleGroup(samples: 1, bytes: Estimate(value: 100), objects: Estimate(value: 1)),
                        alloc: SampleGroup(samples: 1, bytes: Estimate(value: 100), objects: Estimate(value: 1)))
        }
        var header = SnapshotHeader()
        header.rate = 1
        return Snapshot(header: header, modules: [module], stacks: stacks, records: records)
    }
}

/// A test helper's failure (a marker or a call that is not where the test expects it).
struct ToolboxError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
