// The heapsnap executable on bad input: exit status 2 and one line naming the file.

import Foundation
import Testing
@testable import HeapSnapKit

@Suite struct ExitCodeTests {
    static func badFiles(in dir: String) throws -> [(String, String)] {
        let good = SnapshotWriter.encode(Fixture.snapshot())
        var files: [(String, String)] = []
        func put(_ name: String, _ bytes: [UInt8], _ expected: String) throws {
            let path = dir + "/" + name
            try Data(bytes).write(to: URL(fileURLWithPath: path))
            files.append((path, expected))
        }
        try put("empty.heapsnap", [], "empty")
        try put("text.heapsnap", Array("hello, world\n".utf8), "not a heapsnap snapshot")
        try put("truncated.heapsnap", Array(good.prefix(good.count / 2)), "corrupt")
        var flipped = good
        flipped[good.count / 3] ^= 0x40
        try put("flipped.heapsnap", flipped, "corrupt")
        var major = good
        major[8] = 9
        try put("major.heapsnap", major, "version 9")
        files.append((dir + "/missing.heapsnap", "cannot read"))
        return files
    }

    @Test func badInputExitsTwoWithOneLine() throws {
        let dir = try Toolbox.temporaryDirectory("cli")
        let good = dir + "/good.heapsnap"
        try SnapshotWriter.write(Fixture.snapshot(), to: good)
        for (path, expected) in try Self.badFiles(in: dir) {
            for arguments in [["top", path], ["info", path], ["diff", good, path], ["diff", path, good], ["top", "--format", "json", path]] {
                let result = try Toolbox.run(Toolbox.heapsnap, arguments)
                #expect(result.status == 2, "\(arguments)")
                let lines = result.stderr.split(separator: "\n")
                #expect(lines.count == 1, "\(arguments): \(result.stderr)")
                #expect(result.stderr.contains(path) && result.stderr.contains(expected), "\(arguments): \(result.stderr)")
                #expect(result.stdout.isEmpty)
            }
        }
    }

    @Test func goodFileWorksInEveryFormat() throws {
        let dir = try Toolbox.temporaryDirectory("cli-good")
        let good = dir + "/good.heapsnap"
        try SnapshotWriter.write(Fixture.snapshot(), to: good)
        for format in ["table", "json", "csv"] {
            for command in [["top", good], ["info", good], ["diff", good, good]] {
                let result = try Toolbox.run(Toolbox.heapsnap, command + ["--format", format])
                #expect(result.status == 0, "\(command) \(format): \(result.stderr)")
                #expect(!result.stdout.isEmpty)
            }
        }
        // The fixture's modules do not exist here: one warning per module, in the output.
        let info = try Toolbox.run(Toolbox.heapsnap, ["info", good]).stdout
        #expect(info.contains("missing"))
    }

    @Test func writeAndExportFailuresExitOneNamingTheFile() throws {
        let dir = try Toolbox.temporaryDirectory("cli-write")
        let good = dir + "/good.heapsnap"
        try SnapshotWriter.write(Fixture.snapshot(), to: good)
        let target = dir + "/no/such/dir/out.heapsnap"
        let merge = try Toolbox.run(Toolbox.heapsnap, ["merge", good, "-o", target])
        #expect(merge.status == 1)
        #expect(merge.stderr.hasPrefix("heapsnap: \(target): cannot write (create a temporary file): No such file or directory"),
                "\(merge.stderr)")
        #expect(merge.stderr.split(separator: "\n").count == 1)
        let export = try Toolbox.run(Toolbox.heapsnap, ["export", good, "--format", "folded", "-o", dir + "/no/out.folded"])
        #expect(export.status == 1)
        #expect(export.stderr.contains("heapsnap: \(dir)/no/out.folded: cannot write (write): "), "\(export.stderr)")
    }

    @Test func usageErrorsAndProcessErrors() throws {
        #expect(try Toolbox.run(Toolbox.heapsnap, ["top"]).status == 64)
        #expect(try Toolbox.run(Toolbox.heapsnap, ["top", "--by", "nonsense", "x"]).status == 64)
        let gone = try Toolbox.run(Toolbox.heapsnap, ["dump", "999999"])
        #expect(gone.status == 1)
        #expect(gone.stderr.contains("no such process"))
        let plain = try Toolbox.run(Toolbox.heapsnap, ["dump", String(getpid())])
        #expect(plain.status == 1)
        #expect(plain.stderr.contains("not loaded"))
        let missing = try Toolbox.run(Toolbox.heapsnap, ["run", "--", "/nonexistent/command"])
        #expect(missing.status == 127)
        #expect(missing.stderr == "heapsnap: /nonexistent/command: cannot run: No such file or directory\n", "\(missing.stderr)")
        for command in ["top", "diff", "info", "run", "start", "stop", "dump"] {
            let help = try Toolbox.run(Toolbox.heapsnap, [command, "--help"])
            #expect(help.stdout.contains("heapsnap \(command)"), "\(command) --help has an example")
        }
    }
}
