import Glibc
import Testing
@testable import HeapSnapKit

/// A small snapshot with every record and field set to distinct values.
func sampleSnapshot(stackCount: Int = 3) -> Snapshot {
    var header = SnapshotHeader()
    header.formatMinor = SnapshotFormat.minor
    header.pid = 4242
    header.ppid = 1
    header.seq = 7
    header.flags = [.final]
    header.startNanoseconds = 1_700_000_000_000_000_000
    header.timeNanoseconds = 1_700_000_005_000_000_000
    header.rate = 524_288
    header.maxDepth = 64
    header.session = 2
    header.samples = 123
    header.dropped = 4
    header.truncated = 5
    header.shimBytes = 65_536
    header.budget = 64 << 20
    header.executable = "/usr/bin/demo"
    header.hostname = "host-1"
    header.commandLine = ["demo", "--flag", ""]
    let modules = [
        Module(start: 0x5555_0000_1000, end: 0x5555_0000_9000, fileOffset: 0x1000, vaddr: 0x1000,
               buildID: [0xde, 0xad, 0xbe, 0xef], path: "/usr/bin/demo"),
        Module(start: 0x7f00_0000_0000, end: 0x7f00_0010_0000, fileOffset: 0x26000, vaddr: 0x26000,
               buildID: [], path: "/lib/x86_64-linux-gnu/libc.so.6"),
    ]
    var stacks: [RawStack] = []
    var records: [StackRecord] = []
    for i in 0..<stackCount {
        stacks.append(RawStack(frames: (0...i).map { 0x5555_0000_1000 + UInt64($0 * 16 + i) }, truncated: i == 1))
        let inuse = SampleGroup(samples: UInt64(i), bytes: Estimate(value: Double(i) * 1000, variance: Double(i) * 10),
                                objects: Estimate(value: Double(i), variance: 0.5))
        let alloc = SampleGroup(samples: UInt64(i + 2), bytes: Estimate(value: Double(i) * 3000 + 1, variance: 99),
                                objects: Estimate(value: Double(i) + 2, variance: 0.25))
        records.append(StackRecord(stack: stackCount - 1 - i, inuse: inuse, alloc: alloc))
    }
    let sources = [SnapshotSource(pid: 1, seq: 0, timeNanoseconds: 5, hostname: "a", path: "/tmp/x.heapsnap")]
    return Snapshot(header: header, modules: modules, stacks: stacks, records: records, sources: sources)
}

/// Replaces the END record's checksum so a mutated file reaches the structural checks.
func fixChecksum(_ bytes: inout [UInt8]) {
    guard bytes.count >= 24 else { return }
    let endStart = bytes.count - 24
    let crc = CRC32.checksum(bytes, 0..<endStart)
    withUnsafeBytes(of: crc.littleEndian) { bytes.replaceSubrange(bytes.count - 8..<bytes.count - 4, with: $0) }
}

func decodeError(_ bytes: [UInt8]) -> HeapSnapError? {
    do {
        _ = try SnapshotReader.decode(bytes, name: "t.heapsnap")
        return nil
    } catch {
        return error
    }
}

@Suite struct SnapshotReaderTests {
    @Test func roundTripsEveryField() throws {
        let snapshot = sampleSnapshot()
        let decoded = try SnapshotReader.decode(SnapshotWriter.encode(snapshot), name: "t")
        #expect(decoded == snapshot)
        #expect(decoded.header.commandLine == ["demo", "--flag", ""])
        #expect(decoded.modules[0].buildIDHex == "deadbeef")
    }

    @Test func checksumIsZlibCRC32() {
        // The standard check value of CRC-32/ISO-HDLC.
        #expect(CRC32.checksum(Array("123456789".utf8), 0..<9) == 0xCBF4_3926)
    }

    @Test func acceptsAFileWrittenByHand() throws {
        // Independent of SnapshotWriter: the smallest valid file, built from FORMAT.md.
        var b: [UInt8] = Array("HEAPSNAP".utf8) + [1, 0, 0, 0, 0, 0, 0, 0]
        func le(_ v: UInt64, _ n: Int) -> [UInt8] { (0..<n).map { UInt8(truncatingIfNeeded: v >> (8 * UInt64($0))) } }
        var proc = le(99, 4) + le(1, 4) + le(3, 4) + le(1, 4) + le(10, 8) + le(20, 8) + le(1, 8)
        proc += le(64, 4) + le(1, 4) + [UInt64](repeating: 0, count: 5).flatMap { le($0, 8) }
        proc += le(1, 4) + Array("x".utf8) + le(0, 4) + le(2, 4) + [0x61, 0]
        b += Array("PROC".utf8) + le(0, 4) + le(UInt64(proc.count), 8) + proc
        b += Array("MODS".utf8) + le(0, 4) + le(8, 8) + le(0, 8)
        let stack = le(1, 4) + le(0, 4) + le(1, 4) + le(0, 4) + le(0x1234, 8)
        b += Array("STKS".utf8) + le(0, 4) + le(UInt64(stack.count), 8) + stack
        let group = le(1, 8) + [100.0, 1.0, 0, 0].flatMap { le($0.bitPattern, 8) }
        let smpl = le(1, 4) + le(0, 4) + le(0, 4) + le(0, 4) + group + group
        b += Array("SMPL".utf8) + le(0, 4) + le(UInt64(smpl.count), 8) + smpl
        b += Array("ZZZZ".utf8) + le(0, 4) + le(3, 8) + [1, 2, 3] // unknown record: skipped
        b += Array("END ".utf8) + le(0, 4) + le(8, 8) + le(UInt64(CRC32.checksum(b, 0..<b.count)), 4) + le(0, 4)
        let s = try SnapshotReader.decode(b, name: "hand")
        #expect(s.header.pid == 99 && s.header.seq == 3 && s.header.flags == .exact)
        #expect(s.header.commandLine == ["a"])
        #expect(s.stacks == [RawStack(frames: [0x1234])])
        #expect(s.records.first?.inuse.bytes.value == 100)
    }

    @Test(arguments: [
        ([UInt8](), "empty"),
        (Array("HEAP".utf8), "truncated inside the header"),
        (Array("GIF89a......................".utf8), "not a heapsnap snapshot"),
        (Array("#!/bin/sh\necho hi\n".utf8), "not a heapsnap snapshot"),
    ])
    func rejectsForeignFiles(bytes: [UInt8], message: String) {
        let error = decodeError(bytes)
        #expect(error?.description.contains(message) == true, "\(String(describing: error))")
        #expect(error?.description.hasPrefix("t.heapsnap: ") == true)
    }

    @Test func rejectsAnotherMajorVersion() {
        var bytes = SnapshotWriter.encode(sampleSnapshot())
        bytes[8] = 2
        #expect(decodeError(bytes) == .unsupportedVersion(file: "t.heapsnap", major: 2))
    }

    @Test func rejectsEveryTruncation() {
        let bytes = SnapshotWriter.encode(sampleSnapshot())
        for length in 0..<bytes.count {
            let error = decodeError(Array(bytes[0..<length]))
            #expect(error != nil, "accepted a file cut at \(length) of \(bytes.count) bytes")
        }
    }

    @Test func rejectsEveryFlippedByte() {
        let bytes = SnapshotWriter.encode(sampleSnapshot())
        for i in 0..<bytes.count {
            var damaged = bytes
            damaged[i] ^= 0x20
            // Without a checksum match a flip anywhere is caught; the magic,
            // version and checksum bytes fail their own checks first.
            #expect(decodeError(damaged) != nil, "accepted a flip at offset \(i)")
        }
    }

    @Test func rejectsTrailingBytes() {
        let bytes = SnapshotWriter.encode(sampleSnapshot()) + [0]
        #expect(decodeError(bytes)?.description.contains("follow the END record") == true)
    }

    /// Structural lies with a valid checksum: each must be caught by the parser itself.
    @Test func rejectsLyingLengthsWithValidChecksum() {
        let good = SnapshotWriter.encode(sampleSnapshot())
        let procLengthAt = 16 + 8
        let modsCountAt: Int = {
            // Header 16 + PROC record header 16 + PROC payload.
            16 + 16 + (Int(good[procLengthAt]) | Int(good[procLengthAt + 1]) << 8)
        }() + 16
        func lie(at offset: Int, _ value: UInt64, width: Int) -> HeapSnapError? {
            var bytes = good
            for k in 0..<width { bytes[offset + k] = UInt8(truncatingIfNeeded: value >> (8 * UInt64(k))) }
            fixChecksum(&bytes)
            return decodeError(bytes)
        }
        #expect(lie(at: procLengthAt, 1 << 60, width: 8)?.description.contains("claims") == true)
        #expect(lie(at: modsCountAt, 0xFFFF_FFFF, width: 4)?.description.contains("room for at most") == true)
        #expect(lie(at: modsCountAt + 8, .max, width: 8)?.description.contains("start") == true) // start > end
    }

    @Test func rejectsNegativeAndNonFiniteValues() {
        var snapshot = sampleSnapshot()
        snapshot.records[0].alloc.bytes.value = -.infinity
        #expect(decodeError(SnapshotWriter.encode(snapshot))?.description.contains("is -inf") == true)
        snapshot = sampleSnapshot()
        snapshot.records[0].inuse.samples = 100
        #expect(decodeError(SnapshotWriter.encode(snapshot))?.description.contains("more live samples") == true)
        snapshot = sampleSnapshot()
        snapshot.records[1].stack = snapshot.records[0].stack
        #expect(decodeError(SnapshotWriter.encode(snapshot))?.description.contains("two entries") == true)
    }

    /// A seeded mutation fuzzer: random byte flips, insertions, deletions and
    /// splices, plus lies in the size fields (record lengths, counts, stack
    /// depths, string lengths set to 2^60, 2^32-1 and the like); half of them
    /// with the checksum repaired so that they reach the record parsers.
    /// Every input must decode or fail cleanly, and a claimed 2^60 bytes must
    /// be checked against the bytes present before anything is allocated (a
    /// reserve of that size would trap). HEAPSNAP_FUZZ_ROUNDS=2000000 runs a
    /// longer campaign by hand.
    @Test func survivesMutatedInputs() {
        var rng = SplitMix64(seed: 0x5eed)
        let seeds = [SnapshotWriter.encode(sampleSnapshot(stackCount: 1)), SnapshotWriter.encode(sampleSnapshot(stackCount: 4))]
        let sizeFields = seeds.map(Self.sizeFields)
        let lies: [UInt64] = [1 << 60, 1 << 63, .max, 0xFFFF_FFFF, 1 << 32, 0x7FFF_FFFF, 1 << 20, 1025]
        let rounds = Int(getenv("HEAPSNAP_FUZZ_ROUNDS").map { String(cString: $0) } ?? "") ?? 100_000
        var accepted = 0, lied = 0
        for round in 0..<rounds {
            var bytes = seeds[round % seeds.count]
            if round % 4 < 2 {   // one repaired checksum (round % 4 == 0), one not
                // A size field of the intact file set to a lie, at its own width.
                let (offset, width) = sizeFields[round % seeds.count][Int(rng.next() % UInt64(sizeFields[round % seeds.count].count))]
                let value = lies[Int(rng.next() % UInt64(lies.count))]
                for k in 0..<width { bytes[offset + k] = UInt8(truncatingIfNeeded: value >> (8 * UInt64(k))) }
                lied += 1
            }
            for _ in 0...(rng.next() % 4) {
                let at = Int(rng.next() % UInt64(max(bytes.count, 1)))
                switch rng.next() % 6 {
                case 0 where !bytes.isEmpty: bytes[at] ^= UInt8(truncatingIfNeeded: 1 << (rng.next() % 8))
                case 1 where !bytes.isEmpty: bytes[at] = [0x00, 0xFF, 0x7F, 0x80][Int(rng.next() % 4)]
                case 2: bytes.insert(UInt8(truncatingIfNeeded: rng.next()), at: at)
                case 3 where !bytes.isEmpty: bytes.removeSubrange(at..<min(bytes.count, at + Int(rng.next() % 16) + 1))
                case 4: break       // leave the lie (if any) alone
                default: bytes = Array(bytes[0..<at])
                }
            }
            if round % 2 == 0 { fixChecksum(&bytes) }
            if decodeError(bytes) == nil { accepted += 1 }
        }
        // Some checksum-repaired mutations only change values (a pid, a frame):
        // those are valid files. Most mutations must be rejected.
        #expect(accepted < rounds / 2)
        #expect(rounds < 1000 || lied >= rounds / 2 - 1)
        if rounds != 100_000 { print("fuzz: \(rounds) inputs, \(lied) with lying size fields, \(accepted) accepted") }
    }

    /// (offset, width) of every size field of an encoded snapshot: each record's
    /// length, the counts of MODS/STKS/SMPL, every stack's depth, every module's
    /// build-id and path lengths and PROC's first string length.
    static func sizeFields(_ bytes: [UInt8]) -> [(Int, Int)] {
        func u32(_ at: Int) -> Int { (0..<4).reduce(0) { $0 | Int(bytes[at + $1]) << (8 * $1) } }
        func u16(_ at: Int) -> Int { Int(bytes[at]) | Int(bytes[at + 1]) << 8 }
        var fields: [(Int, Int)] = []
        var at = 16
        while at + 16 <= bytes.count {
            let tag = String(decoding: bytes[at..<at + 4], as: UTF8.self)
            let length = u32(at + 8)     // small files: the high half is 0
            fields.append((at + 8, 8))
            let payload = at + 16
            switch tag {
            case "PROC":
                fields.append((payload + 88, 4))
            case "MODS":
                fields.append((payload, 4))
                var m = payload + 8
                for _ in 0..<u32(payload) {
                    fields.append((m + 32, 2))
                    fields.append((m + 36, 4))
                    m += 40 + u16(m + 32) + u32(m + 36)
                }
            case "STKS":
                fields.append((payload, 4))
                var st = payload + 8
                for _ in 0..<u32(payload) {
                    fields.append((st, 4))
                    st += 8 + 8 * u32(st)
                }
            case "SMPL":
                fields.append((payload, 4))
            default:
                break
            }
            at = payload + length
        }
        return fields
    }

    @Test func readsFromDiskAndNamesMissingFiles() throws {
        let path = "/tmp/heapsnap-reader-test-\(getpid()).heapsnap"
        defer { unlink(path) }
        try SnapshotWriter.write(sampleSnapshot(), to: path)
        var info = stat()
        #expect(stat(path, &info) == 0 && info.st_mode & 0o777 == 0o600)
        #expect(try SnapshotReader.read(path: path) == sampleSnapshot())
        #expect(throws: HeapSnapError.self) { try SnapshotReader.read(path: path + ".missing") }
        do {
            _ = try SnapshotReader.read(path: "/tmp")
            Issue.record("read a directory")
        } catch {
            #expect(error.description == "/tmp: cannot read: not a regular file")
        }
    }
}

/// A small deterministic generator for the fuzzer (SplitMix64).
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
