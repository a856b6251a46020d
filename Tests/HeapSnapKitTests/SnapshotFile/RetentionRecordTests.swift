// The THIN record (docs/FORMAT.md 1.4): what the shim's retention
// (HEAPSNAP_KEEP) had thinned when a snapshot was written, as `info` and its
// JSON say it; files without it (1.3 and older, or no periodic snapshots)
// read as before. And the process tree `start|dump|stop --tree` walks.

import Foundation
import Testing

@testable import HeapSnapKit

@Suite struct RetentionRecordTests {
    static let day: UInt64 = 86_400 * 1_000_000_000

    func thinned() -> Snapshot {
        var s = sampleSnapshot(stackCount: 3)
        s.retention = Retention(keep: 100, kept: 100, written: 20_160, thinned: 20_057, lost: 3, oldestSeq: 2,
                                oldestNanoseconds: s.header.timeNanoseconds - 7 * Self.day + 3_600_000_000_000,
                                widestGapNanoseconds: 16 * 3_600_000_000_000)
        return s
    }

    @Test func roundTripsAndInfoSaysIt() throws {
        let s = thinned()
        let read = try SnapshotReader.decode(SnapshotWriter.encode(s), name: "t")
        #expect(read == s)
        let info = InfoReport(snapshot: read, file: "f", locator: TrustingLocator())
        let text = TableRenderer(options: RenderOptions(width: 200)).render(info)
        let line = try #require(text.split(separator: "\n").first { $0.hasPrefix("retention") }, "\(text)")
        #expect(line.hasSuffix("HEAPSNAP_KEEP=100: 100 of 20,160 periodic snapshots kept, 20,057 thinned, "
            + "3 gone or replaced before thinning (not deleted); the oldest kept #2, 6 d 23 h before this one; "
            + "spacing grows with age, up to 16 h 0 min"), "\(line)")
        let json = try #require(try JSONSerialization.jsonObject(with: Data(JSONRenderer().render(info).utf8)) as? [String: Any])
        let r = try #require(json["retention"] as? [String: Any])
        #expect(r["keep"] as? Int == 100 && r["kept"] as? Int == 100 && r["written"] as? Int == 20_160)
        #expect(r["thinned"] as? Int == 20_057 && r["lost"] as? Int == 3 && r["oldestSeq"] as? Int == 2)
        #expect(r["oldestNs"] as? Int == Int(s.retention!.oldestNanoseconds) && r["widestGapNs"] as? Int == 16 * 3_600_000_000_000)
    }

    @Test func keepZeroAndNothingThinnedYet() {
        var r = thinned().retention!
        r.keep = 0
        r.kept = 57
        r.written = 57
        r.thinned = 0
        r.lost = 0
        #expect(Format.retention(r, at: r.oldestNanoseconds + 90_000_000_000) == "HEAPSNAP_KEEP=0: all 57 periodic snapshots kept; the oldest kept #2, 1 min 30 s before this one")
        r.keep = 100
        #expect(Format.retention(r, at: r.oldestNanoseconds).hasPrefix("HEAPSNAP_KEEP=100: 57 of 57 periodic snapshots kept, none thinned yet;"))
    }

    /// Older files (no THIN) read as before, and `info` has no retention line, null in JSON.
    @Test func withoutTheRecord() throws {
        let s = sampleSnapshot(stackCount: 3)
        let read = try SnapshotReader.decode(SnapshotWriter.encode(s), name: "t")
        #expect(read.retention == nil)
        let info = InfoReport(snapshot: read, file: "f", locator: TrustingLocator())
        #expect(!TableRenderer().render(info).contains("retention"))
        #expect(JSONRenderer().render(info).contains("\"retention\": null"))
    }

    @Test func rejectsCountsThatDoNotAddUp() {
        var s = thinned()
        s.retention!.thinned = 30_000
        #expect {
            try SnapshotReader.decode(SnapshotWriter.encode(s), name: "t.heapsnap")
        } throws: { error in
            "\(error)".contains("t.heapsnap") && "\(error)".contains("THIN record: 100 kept, 30000 thinned and 3 lost of 20160 written")
        }
    }

    /// A /proc of files: 10 -> 11 (two threads: 12 from one, 13 from the other) and 11 -> 14.
    @Test(arguments: [true, false])
    func processTree(childrenFiles: Bool) throws {
        let proc = try Toolbox.temporaryDirectory("proc")
        defer { try? FileManager.default.removeItem(atPath: proc) }
        let tree: [(pid: Int32, ppid: Int32, threads: [Int32: [Int32]])] = [
            (10, 1, [10: [11]]), (11, 10, [11: [12], 15: [13]]), (12, 11, [12: [14]]), (13, 11, [13: []]),
            (14, 12, [14: []]), (20, 1, [20: []]),
        ]
        for p in tree {
            for (tid, kids) in p.threads {
                let task = "\(proc)/\(p.pid)/task/\(tid)"
                try FileManager.default.createDirectory(atPath: task, withIntermediateDirectories: true)
                if childrenFiles {
                    try kids.map { "\($0) " }.joined().write(toFile: task + "/children", atomically: false, encoding: .utf8)
                }
            }
            try "\(p.pid) (a (b) c) S \(p.ppid) 1 1 0 -1\n".write(toFile: "\(proc)/\(p.pid)/stat", atomically: false, encoding: .utf8)
        }
        #expect(ProcessTree.members(of: 10, proc: proc) == [10, 11, 12, 13, 14])
        #expect(ProcessTree.members(of: 12, proc: proc) == [12, 14])
        #expect(ProcessTree.members(of: 20, proc: proc) == [20])
        #expect(ProcessTree.members(of: 99, proc: proc) == [99])    // gone: the caller refuses it
        #expect(ProcessTree.parentPID(stat: "7 (x) y) S 3 7 7") == 3)
    }
}
