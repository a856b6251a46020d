// One vocabulary for values: every spelling in one table goes through the
// shim's parser (a real process with the variable set: the value it used is
// in its snapshot's header, a refusal is its one line on stderr) and through
// HeapSnapKit's `Units`, which the CLI's --rate and --timeout use; both must
// give the table's answer.

import Foundation
import HeapSnapKit
import Testing

@Suite("Units")
struct UnitsTests {
    /// A spelling and what it means; nil where both parsers must refuse it.
    struct Case: CustomTestStringConvertible, Sendable {
        var text: String
        var value: UInt64?
        var testDescription: String { "\"\(text)\" -> \(value.map(String.init) ?? "refused")" }
    }

    /// Sizes, as HEAPSNAP_RATE (and `heapsnap run --rate`) take them.
    static let sizes: [Case] = [
        Case(text: "4096", value: 4096), Case(text: "1", value: 1),
        Case(text: "16K", value: 16 << 10), Case(text: "16k", value: 16 << 10), Case(text: "16KB", value: 16 << 10),
        Case(text: "16kb", value: 16 << 10), Case(text: "16KiB", value: 16 << 10), Case(text: "16kIb", value: 16 << 10),
        Case(text: "2M", value: 2 << 20), Case(text: "3mib", value: 3 << 20), Case(text: "1G", value: 1 << 30),
        Case(text: "007K", value: 7 << 10),
        Case(text: "16B", value: nil), Case(text: "16Ki", value: nil), Case(text: "16KiBs", value: nil), Case(text: "16KK", value: nil),
        Case(text: "16T", value: nil), Case(text: "1.5M", value: nil), Case(text: "-16", value: nil), Case(text: "+16", value: nil),
        Case(text: " 16K", value: nil), Case(text: "16K ", value: nil), Case(text: "0x10", value: nil), Case(text: "K", value: nil),
        Case(text: "", value: nil), Case(text: "18446744073709551616", value: nil), Case(text: "17179869184G", value: nil),
        Case(text: "16\u{212A}", value: nil),
    ]

    /// Durations in seconds, as HEAPSNAP_INTERVAL (and `--timeout`) take them, in nanoseconds.
    static let durations: [Case] = [
        Case(text: "10", value: 10_000_000_000), Case(text: "0.5", value: 500_000_000), Case(text: ".25", value: 250_000_000),
        Case(text: "2.", value: 2_000_000_000), Case(text: "0.0015", value: 1_500_000), Case(text: "1.0000000019", value: 1_000_000_001),
        Case(text: "1000000000", value: 1_000_000_000_000_000_000), Case(text: "0", value: 0), Case(text: ".", value: 0),
        Case(text: "1e3", value: nil), Case(text: "-1", value: nil), Case(text: "+1", value: nil), Case(text: " 1", value: nil),
        Case(text: "1s", value: nil), Case(text: "1,5", value: nil), Case(text: "1.2.3", value: nil), Case(text: "", value: nil),
        Case(text: "1000000001", value: nil), Case(text: "inf", value: nil),
    ]

    /// Runs /bin/true under the shim, sampling from the start with `variable` set to `text`; the stderr line
    /// refusing it (nil when accepted) and the at-exit snapshot, if one was written.
    func shim(_ variable: String, _ text: String) throws -> (refusal: String?, snapshot: Snapshot?) {
        let dir = try Scratch()
        let r = try run("/bin/true", [], env: ["HEAPSNAP_DIR": dir.path, "HEAPSNAP_START": "1", "HEAPSNAP_AT_EXIT": "1", variable: text])
        #expect(r.status == 0, "\(r.stderr)")
        let refusal = r.stderr.split(separator: "\n").first { $0.contains("\(variable)=\"\(text)\" is not valid") }.map(String.init)
        return (refusal, try dir.snapshots.last.map(dir.read))
    }

    @Test("sizes: HEAPSNAP_RATE and Units.bytes agree", arguments: sizes)
    func size(_ c: Case) throws {
        #expect(Units.bytes(c.text) == c.value)
        let (refusal, snapshot) = try shim("HEAPSNAP_RATE", c.text)
        let header = try #require(snapshot?.header, "the at-exit snapshot")
        if let value = c.value {
            #expect(refusal == nil)
            #expect(header.rate == value)
        } else {
            #expect(refusal != nil, "the shim took \"\(c.text)\" as \(header.rate)")
            #expect(header.rate == 524_288, "the default")
        }
    }

    @Test("durations: HEAPSNAP_INTERVAL and Units.nanoseconds agree", arguments: durations)
    func duration(_ c: Case) throws {
        #expect(Units.nanoseconds(seconds: c.text) == c.value)
        // The shim keeps intervals of 0 (off) or 1 ms and more; what it refuses beyond spelling is its range.
        let inRange = c.value.map { $0 == 0 || $0 >= 1_000_000 }
        #expect(inRange != false, "the table holds spellings, not ranges")
        let (refusal, _) = try shim("HEAPSNAP_INTERVAL", c.text)
        #expect((refusal == nil) == (c.value != nil), "\(refusal ?? "accepted")")
    }
}
