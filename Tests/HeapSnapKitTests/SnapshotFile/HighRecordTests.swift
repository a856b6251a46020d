// The HIGH record (docs/FORMAT.md 1.3): the running maximum of the in-use
// estimate, beside the per-stack copy of PEAK, which may lag it by a step.
// What the reports print as "the peak" comes from it; files without it (1.2)
// read as before.

import Testing

@testable import HeapSnapKit

@Suite struct HighRecordTests {
    /// A snapshot whose PEAK copy (9 MB at +2 s) lags its maximum (9.4 MB at +2.1 s).
    func withHigh() -> Snapshot {
        var s = sampleSnapshot(stackCount: 3)
        let start = s.header.startNanoseconds
        s.peak = Peak(timeNanoseconds: start + 2_000_000_000, inuseBytes: Estimate(value: 9e6, variance: 4e10),
                      records: [StackRecord(stack: 2, inuse: SampleGroup(samples: 5, bytes: Estimate(value: 9e6, variance: 4e10), objects: Estimate(value: 90, variance: 9)),
                                            alloc: SampleGroup(samples: 7, bytes: Estimate(value: 1e7, variance: 5e10), objects: Estimate(value: 100, variance: 10)))],
                      high: HighWater(timeNanoseconds: start + 2_100_000_000, inuseBytes: Estimate(value: 9.4e6, variance: 4.2e10)))
        return s
    }

    @Test func roundTripsAndIsWhatReportsCallThePeak() throws {
        let s = withHigh()
        let read = try SnapshotReader.decode(SnapshotWriter.encode(s), name: "t")
        #expect(read == s)
        let peak = try #require(read.peak)
        #expect(peak.highest == peak.high)
        #expect(peak.highest.inuseBytes.value == 9.4e6 && peak.inuseBytes.value == 9e6)

        let summary = try #require(MemorySummary(read).peak)
        #expect(summary.inuseBytes.value == 9.4e6 && summary.timeNanoseconds == s.header.startNanoseconds + 2_100_000_000)
        #expect(summary.copyBytes.value == 9e6 && summary.copyNanoseconds == s.header.startNanoseconds + 2_000_000_000)
        let line = TableRenderer.memoryFields(MemorySummary(read), estimated: true).first { $0.0 == "peak" }?.1 ?? ""
        #expect(line.hasPrefix("8.96 MiB"), "\(line)")
        #expect(line.contains("(2.10 s after start)") && line.contains("--at peak reads 1 stacks copied at 2.00 s (8.58 MiB"), "\(line)")
        let exit = TableRenderer().renderExitSummary(MemorySummary(read), file: "f", estimated: true)
        #expect(exit.first?.hasPrefix("peak: 8.96 MiB") == true, "\(exit)")
    }

    /// A 1.2 file has no HIGH: the copy is the peak, as before.
    @Test func withoutHighTheCopyIsThePeak() throws {
        var s = withHigh()
        s.peak!.high = nil
        let read = try SnapshotReader.decode(SnapshotWriter.encode(s), name: "t")
        let peak = try #require(read.peak)
        #expect(peak.high == nil)
        #expect(peak.highest == HighWater(timeNanoseconds: peak.timeNanoseconds, inuseBytes: peak.inuseBytes))
        let line = TableRenderer.memoryFields(MemorySummary(read), estimated: true).first { $0.0 == "peak" }?.1 ?? ""
        #expect(line.hasSuffix("1 stacks; --at peak reads it"), "\(line)")
    }

    /// A HIGH below the copy's total (the shim rounds weights to whole bytes) never lowers the peak.
    @Test func neverBelowTheCopy() throws {
        var s = withHigh()
        s.peak!.high = HighWater(timeNanoseconds: s.peak!.timeNanoseconds + 1, inuseBytes: Estimate(value: 9e6 - 0.5, variance: 0))
        #expect(s.peak!.highest.inuseBytes.value == 9e6)
        #expect(s.peak!.highest.timeNanoseconds == s.peak!.timeNanoseconds)
    }

    @Test func rejectsANegativeHigh() {
        var s = withHigh()
        s.peak!.high!.inuseBytes = Estimate(value: -1, variance: 0)
        #expect(decodeError(SnapshotWriter.encode(s))?.description.contains("HIGH record: in-use bytes -1.0") == true)
    }
}
