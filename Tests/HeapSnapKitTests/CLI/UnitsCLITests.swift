// The CLI's size and duration options take what the HEAPSNAP_* variables take
// (`Units`; ShimTests "Units" holds the table both parsers are checked on).

import Foundation
import Testing
@testable import HeapSnapKit

@Suite struct UnitsCLITests {
    @Test("run --rate 16K samples every 16 KiB, as HEAPSNAP_RATE=16K does")
    func rateWithASuffix() throws {
        try #require(FileManager.default.fileExists(atPath: Toolbox.preloadLibrary), "the preload library beside heapsnap: \(Toolbox.preloadLibrary)")
        for (spelling, rate) in [("16K", UInt64(16 << 10)), ("2MiB", UInt64(2 << 20)), ("4096", UInt64(4096))] {
            let dir = try Toolbox.temporaryDirectory("units")
            defer { try? FileManager.default.removeItem(atPath: dir) }
            let run = try Toolbox.run(Toolbox.heapsnap, ["run", "--rate", spelling, "--dir", dir, "--", "/bin/true"])
            #expect(run.status == 0, "\(run.stderr)")
            let written = try #require(run.stderr.split(separator: "\n").first { $0.hasPrefix("heapsnap: wrote ") }, "\(run.stderr)")
            #expect(try SnapshotReader.read(path: String(written.dropFirst("heapsnap: wrote ".count))).header.rate == rate, "--rate \(spelling)")
        }
    }

    @Test("a size or duration the variables refuse is a usage error naming the option")
    func refusedSpellings() throws {
        for arguments in [["run", "--rate", "16X", "--", "/bin/true"], ["run", "--rate", "1.5M", "--", "/bin/true"],
                          ["run", "--rate", "0", "--", "/bin/true"], ["dump", "1", "--timeout", "1e3"], ["dump", "1", "--timeout", "-1"],
                          ["dump", "1", "--timeout", "0"]] {
            let result = try Toolbox.run(Toolbox.heapsnap, arguments)
            #expect(result.status == 64, "\(arguments): \(result.stderr)")
            let option = arguments.contains("--rate") ? "--rate" : "--timeout"
            #expect(result.stderr.split(separator: "\n").first?.contains(option) == true, "\(arguments): \(result.stderr)")
        }
        // Spelled right, the option passes parsing: the failure is then the process's (no such process, status 1).
        let dump = try Toolbox.run(Toolbox.heapsnap, ["dump", "999999999", "--timeout", ".5"])
        #expect(dump.status == 1 && dump.stderr.contains("process 999999999"), "\(dump.stderr)")
    }
}
