import Testing
@testable import HeapSnapKit

@Suite struct SnapshotMergeTests {
    @Test(arguments: [1, 2, 5])
    func mergingNCopiesIsNTimesOne(n: Int) throws {
        let one = sampleSnapshot(stackCount: 4)
        let (merged, warnings) = SnapshotMerge.merge(Array(repeating: ("a.heapsnap", one), count: n))
        #expect(warnings.isEmpty)
        #expect(merged.stacks.count == one.stacks.count)
        #expect(merged.header.flags == .merged)
        #expect(merged.header.samples == one.header.samples * UInt64(n))
        #expect(merged.sources.count == n)
        for record in one.records {
            let stack = one.stacks[record.stack]
            let m = try #require(merged.records.first { merged.stacks[$0.stack] == stack })
            let k = Double(n)
            #expect(m.inuse.samples == record.inuse.samples * UInt64(n))
            #expect(m.inuse.bytes == Estimate(value: record.inuse.bytes.value * k, variance: record.inuse.bytes.variance * k))
            #expect(m.alloc.objects.value == record.alloc.objects.value * k)
        }
        // The merged snapshot is a valid file.
        #expect(try SnapshotReader.decode(SnapshotWriter.encode(merged), name: "m") == merged)
    }

    @Test func matchesStacksAcrossAddressSpaceLayouts() throws {
        var a = sampleSnapshot(stackCount: 2)
        a.sources = [] // as the shim writes it
        var b = a
        b.header.pid = 5151
        // The same files mapped elsewhere, in the other order.
        let shift: UInt64 = 0x1234_5000
        b.modules = a.modules.reversed().map { m in
            Module(start: m.start + shift, end: m.end + shift, fileOffset: m.fileOffset, vaddr: m.vaddr, buildID: m.buildID, path: m.path)
        }
        b.stacks = a.stacks.map { RawStack(frames: $0.frames.map { $0 + shift }, truncated: $0.truncated) }
        // A third process runs a different build of the program.
        var c = a
        c.modules[0].buildID = [1, 2, 3]
        let (merged, _) = SnapshotMerge.merge([("a", a), ("b", b), ("c", c)])
        #expect(merged.modules.count == 3) // demo (two builds) and libc
        #expect(merged.stacks.count == 4) // a and b share both stacks; c's are its own
        #expect(merged.sources.map(\.pid) == [4242, 5151, 4242])
        // Every merged frame still lies in a module of the right file and build.
        for stack in merged.stacks {
            for frame in stack.frames {
                #expect(merged.modules.contains { $0.contains(frame) && $0.path == "/usr/bin/demo" })
            }
        }
        let aRecord = try #require(a.records.first { $0.stack == 1 })
        let shared = try #require(merged.records.first { merged.stacks[$0.stack] == a.stacks[1] })
        #expect(shared.alloc.samples == aRecord.alloc.samples * 2)
    }

    @Test func warnsAboutDifferentRatesAndPrograms() {
        let a = sampleSnapshot()
        var b = a
        b.header.rate = 65536
        b.header.executable = "/usr/bin/other"
        let (merged, warnings) = SnapshotMerge.merge([("a", a), ("b", b)])
        #expect(warnings.count == 2)
        #expect(merged.header.executable == "(several programs)")
    }
}
