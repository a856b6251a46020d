// Reads snapshot files (docs/FORMAT.md) into `Snapshot` values.
//
// Invariants: nothing is allocated for a count or length before the bytes it
// claims are known to be in the file; every rejection is one
// `HeapSnapError` naming the file and the problem. The whole file is read
// into memory first (snapshots are small: they grow with distinct stacks, not
// with allocations), then decoded in one pass over its records.

import Glibc

/// Decodes snapshot files, validating every length before it is used.
public enum SnapshotReader {
    /// Reads and validates the snapshot at `path`.
    /// - Complexity: O(file size).
    public static func read(path: String) throws(HeapSnapError) -> Snapshot {
        try decode(try readFile(path), name: path)
    }

    /// Reads only the header and the `PROC` record of the snapshot at `path` (who wrote it and
    /// when), without the rest of the file or its checksum: what listing many files needs. A file
    /// that is damaged further on is found when it is read with `read(path:)`.
    /// - Complexity: O(size of PROC).
    public static func readHeader(path: String) throws(HeapSnapError) -> SnapshotHeader {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw .unreadable(file: path, reason: String(cString: strerror(errno))) }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw .unreadable(file: path, reason: String(cString: strerror(errno))) }
        guard (info.st_mode & S_IFMT) == S_IFREG else { throw .unreadable(file: path, reason: "not a regular file") }
        // PROC comes first: 16 bytes of header, 16 of record header, then its payload (three strings of at most 1 MiB).
        let limit = min(Int(info.st_size), 16 + 16 + 96 + 3 * (SnapshotFormat.stringLimit + 4))
        var bytes = [UInt8](repeating: 0, count: limit)
        var done = 0
        while done < limit {
            let n = bytes.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress! + done, limit - done) }
            if n < 0, errno == EINTR { continue }
            if n < 0 { throw .unreadable(file: path, reason: String(cString: strerror(errno))) }
            if n == 0 { break }
            done += n
        }
        bytes.removeSubrange(done...)
        return try Decoder(bytes: bytes, name: path).decodeHeader()
    }

    /// Decodes a snapshot from memory; `name` is used in error messages.
    /// - Complexity: O(bytes.count).
    public static func decode(_ bytes: [UInt8], name: String) throws(HeapSnapError) -> Snapshot {
        guard bytes.count >= SnapshotFormat.magic.count,
              Array(bytes[0..<SnapshotFormat.magic.count]) == SnapshotFormat.magic
        else {
            if bytes.isEmpty { throw .corrupt(file: name, reason: "the file is empty") }
            if SnapshotFormat.magic.starts(with: bytes) {
                throw .corrupt(file: name, reason: "truncated inside the header (\(bytes.count) bytes)")
            }
            throw .notASnapshot(file: name)
        }
        do {
            return try Decoder(bytes: bytes, name: name).decode()
        } catch let failure {
            if case .unsupported(let major) = failure.kind {
                throw .unsupportedVersion(file: name, major: major)
            }
            throw .corrupt(file: name, reason: failure.reason)
        }
    }

    /// Reads a whole regular file.
    static func readFile(_ path: String) throws(HeapSnapError) -> [UInt8] {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw .unreadable(file: path, reason: String(cString: strerror(errno))) }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw .unreadable(file: path, reason: String(cString: strerror(errno))) }
        guard (info.st_mode & S_IFMT) == S_IFREG else { throw .unreadable(file: path, reason: "not a regular file") }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(Int(info.st_size))
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let n = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                throw .unreadable(file: path, reason: String(cString: strerror(errno)))
            }
            if n == 0 { return bytes }
            bytes.append(contentsOf: chunk[0..<n])
        }
    }
}

/// One pass over the records of a file whose magic has been checked.
private struct Decoder {
    struct Failure: Error {
        enum Kind { case corrupt, unsupported(UInt16) }
        var kind: Kind = .corrupt
        var reason: String
    }

    let bytes: [UInt8]
    let name: String

    func decode() throws(Failure) -> Snapshot {
        var cursor = ByteCursor(bytes, from: SnapshotFormat.magic.count)
        let major: UInt16
        var header = SnapshotHeader()
        do {
            major = try cursor.u16("format major version")
            header.formatMinor = try cursor.u16("format minor version")
            try cursor.skip(4, "header")
        } catch { throw Failure(reason: "truncated inside the header (\(bytes.count) bytes)") }
        guard major == SnapshotFormat.major else { throw Failure(kind: .unsupported(major), reason: "") }

        var snapshot = Snapshot()
        var high: HighWater?
        var seen: Set<UInt32> = []
        let required: [SnapshotFormat.Tag] = [.process, .modules, .stacks, .samples]
        var nextRequired = 0
        while true {
            let recordStart = cursor.offset
            guard cursor.remaining >= SnapshotFormat.recordHeaderSize else {
                throw Failure(reason: "truncated: the file ends at offset \(bytes.count) without an END record")
            }
            let tagValue = try Failure.wrap { () throws(DecodeFailure) in try cursor.u32("record tag") }
            let (reserved, claimed) = try Failure.wrap { () throws(DecodeFailure) in
                (try cursor.u32("record header"), try cursor.u64("record length"))
            }
            guard reserved == 0 else {
                throw Failure(reason: "record at offset \(recordStart) has a non-zero reserved field")
            }
            guard claimed <= UInt64(cursor.remaining) else {
                let tagName = SnapshotFormat.Tag(rawValue: tagValue)?.name ?? "0x" + hex(tagValue)
                throw Failure(reason:
                    "record \(tagName) at offset \(recordStart) claims \(claimed) bytes, only \(cursor.remaining) remain (truncated file?)")
            }
            let length = Int(claimed)
            var payload = ByteCursor(bytes, from: cursor.offset, to: cursor.offset + length)
            try cursor.skipOrFail(length)

            guard let tag = SnapshotFormat.Tag(rawValue: tagValue) else { continue } // unknown: skip
            if tag == .end {
                try checkEnd(&payload, recordStart: recordStart, after: cursor)
                guard nextRequired == required.count else {
                    throw Failure(reason: "missing \(required[nextRequired].name) record")
                }
                try checkPythonFrames(snapshot)
                try checkPeak(snapshot)
                snapshot.peak?.high = high  // HIGH without PEAK has nothing to qualify
                return snapshot
            }
            guard !seen.contains(tagValue) else { throw Failure(reason: "\(tag.name) record appears twice") }
            seen.insert(tagValue)
            if let position = required.firstIndex(of: tag) {
                guard position == nextRequired else {
                    throw Failure(reason: "\(tag.name) record before \(required[nextRequired].name)")
                }
                nextRequired += 1
            }
            do throws(DecodeFailure) {
                switch tag {
                case .process:
                    let minor = header.formatMinor
                    header = try Self.process(&payload)
                    header.formatMinor = minor
                    snapshot.header = header
                case .modules: snapshot.modules = try Self.modules(&payload)
                case .stacks: snapshot.stacks = try Self.stacks(&payload)
                case .samples: snapshot.records = try Self.samples(&payload, stackCount: snapshot.stacks.count)
                case .sources: snapshot.sources = try Self.sources(&payload)
                case .python: snapshot.python = try Self.python(&payload)
                case .peak: snapshot.peak = try Self.peak(&payload)
                case .series: snapshot.series = try Self.series(&payload)
                case .high: high = try Self.high(&payload)
                case .thin: snapshot.retention = try Self.retention(&payload)
                case .end: break
                }
            } catch {
                throw Failure(reason: "\(tag.name) record: \(error.reason)")
            }
            if tag != .process, !payload.isAtEnd {
                throw Failure(reason: "\(tag.name) record has \(payload.remaining) unexplained bytes at its end")
            }
        }
    }

    /// The header and `PROC` only (`SnapshotReader.readHeader`), with the same errors as a full decode.
    func decodeHeader() throws(HeapSnapError) -> SnapshotHeader {
        guard bytes.count >= SnapshotFormat.magic.count, Array(bytes[0..<SnapshotFormat.magic.count]) == SnapshotFormat.magic else {
            if bytes.isEmpty { throw .corrupt(file: name, reason: "the file is empty") }
            if SnapshotFormat.magic.starts(with: bytes) { throw .corrupt(file: name, reason: "truncated inside the header (\(bytes.count) bytes)") }
            throw .notASnapshot(file: name)
        }
        var cursor = ByteCursor(bytes, from: SnapshotFormat.magic.count)
        let major: UInt16, minor: UInt16
        do throws(DecodeFailure) {
            major = try cursor.u16("format major version")
            minor = try cursor.u16("format minor version")
            try cursor.skip(4, "header")
        } catch { throw .corrupt(file: name, reason: "truncated inside the header (\(bytes.count) bytes)") }
        guard major == SnapshotFormat.major else { throw .unsupportedVersion(file: name, major: major) }
        let tag: UInt32, length: UInt64
        do throws(DecodeFailure) {
            tag = try cursor.u32("record tag")
            _ = try cursor.u32("record header")
            length = try cursor.u64("record length")
        } catch { throw .corrupt(file: name, reason: "truncated: the file ends before its PROC record") }
        guard tag == SnapshotFormat.Tag.process.rawValue else { throw .corrupt(file: name, reason: "the first record is not PROC") }
        guard length <= UInt64(cursor.remaining) else {
            throw .corrupt(file: name, reason: "record PROC claims \(length) bytes, only \(cursor.remaining) remain (truncated file?)")
        }
        var payload = ByteCursor(bytes, from: cursor.offset, to: cursor.offset + Int(length))
        do throws(DecodeFailure) {
            var header = try Self.process(&payload)
            header.formatMinor = minor
            return header
        } catch { throw .corrupt(file: name, reason: "PROC record: \(error.reason)") }
    }

    private func checkEnd(_ payload: inout ByteCursor, recordStart: Int, after cursor: ByteCursor) throws(Failure) {
        guard payload.remaining == 8 else { throw Failure(reason: "END record has length \(payload.remaining), expected 8") }
        let (stored, reserved) = try Failure.wrap { () throws(DecodeFailure) in
            (try payload.u32("checksum"), try payload.u32("reserved"))
        }
        guard reserved == 0 else { throw Failure(reason: "END record's reserved field is \(reserved), not 0") }
        guard cursor.isAtEnd else {
            throw Failure(reason: "\(cursor.remaining) bytes follow the END record")
        }
        let computed = CRC32.checksum(bytes, 0..<recordStart)
        guard stored == computed else {
            throw Failure(reason: "checksum mismatch (stored \("0x" + hex(stored)), computed \("0x" + hex(computed))): the file was damaged")
        }
    }

    private static func process(_ c: inout ByteCursor) throws(DecodeFailure) -> SnapshotHeader {
        var h = SnapshotHeader()
        h.pid = try c.u32("pid")
        h.ppid = try c.u32("ppid")
        h.seq = try c.u32("seq")
        h.flags = SnapshotHeader.Flags(rawValue: try c.u32("flags"))
        h.startNanoseconds = try c.u64("start_ns")
        h.timeNanoseconds = try c.u64("time_ns")
        h.rate = try c.u64("rate")
        guard h.rate >= 1 else { throw DecodeFailure(reason: "rate is 0") }
        h.maxDepth = try c.u32("max_depth")
        h.session = try c.u32("session")
        h.samples = try c.u64("samples")
        h.dropped = try c.u64("dropped")
        h.truncated = try c.u64("truncated")
        h.shimBytes = try c.u64("shim_bytes")
        h.budget = try c.u64("budget")
        h.executable = try c.string("exe")
        h.hostname = try c.string("hostname")
        let cmdline = try c.string("cmdline")
        var arguments = cmdline.split(separator: "\0", omittingEmptySubsequences: false).map(String.init)
        if arguments.last == "" { arguments.removeLast() }
        h.commandLine = arguments
        return h
    }

    private static func modules(_ c: inout ByteCursor) throws(DecodeFailure) -> [Module] {
        let count = try c.count(minimumEntrySize: 40, "module")
        var modules: [Module] = []
        modules.reserveCapacity(count)
        for i in 0..<count {
            let start = try c.u64("module \(i) start")
            let end = try c.u64("module \(i) end")
            let fileOffset = try c.u64("module \(i) file_offset")
            let vaddr = try c.u64("module \(i) vaddr")
            let buildIDLength = Int(try c.u16("module \(i) build_id_len"))
            try c.skip(2, "module \(i) reserved")
            let pathLength = Int(try c.u32("module \(i) path_len"))
            guard start < end else { throw DecodeFailure(reason: "module \(i) has start \("0x" + hex(start)) >= end \("0x" + hex(end))") }
            guard buildIDLength <= SnapshotFormat.maxBuildIDLength else {
                throw DecodeFailure(reason: "module \(i) build-id length \(buildIDLength) exceeds \(SnapshotFormat.maxBuildIDLength)")
            }
            guard pathLength <= SnapshotFormat.stringLimit else {
                throw DecodeFailure(reason: "module \(i) path length \(pathLength) exceeds the limit")
            }
            let buildID = try c.bytes(buildIDLength, "module \(i) build-id")
            let path = String(decoding: try c.bytes(pathLength, "module \(i) path"), as: UTF8.self)
            modules.append(Module(start: start, end: end, fileOffset: fileOffset, vaddr: vaddr, buildID: buildID, path: path))
        }
        return modules
    }

    private static func stacks(_ c: inout ByteCursor) throws(DecodeFailure) -> [RawStack] {
        let count = try c.count(minimumEntrySize: 8, "stack")
        var stacks: [RawStack] = []
        stacks.reserveCapacity(count)
        for i in 0..<count {
            let depth = Int(try c.u32("stack \(i) depth"))
            let flags = try c.u32("stack \(i) flags")
            guard depth <= SnapshotFormat.maxDepth else {
                throw DecodeFailure(reason: "stack \(i) has depth \(depth), more than \(SnapshotFormat.maxDepth)")
            }
            try c.require(depth * 8, "stack \(i) frames")
            var frames: [UInt64] = []
            frames.reserveCapacity(depth)
            for _ in 0..<depth { frames.append(try c.u64("frame")) }
            stacks.append(RawStack(frames: frames, truncated: flags & 1 != 0))
        }
        return stacks
    }

    /// Entries laid out as in `SMPL` (also `PEAK`'s): each stack at most once, in-use
    /// samples never above allocated ones; with `stackCount`, stacks checked against it
    /// (an optional record may come before `STKS`: its stacks are checked at the end).
    private static func samples(_ c: inout ByteCursor, stackCount: Int?) throws(DecodeFailure) -> [StackRecord] {
        let count = try c.count(minimumEntrySize: SnapshotFormat.sampleEntrySize, "entry")
        var records: [StackRecord] = []
        records.reserveCapacity(count)
        var used = Set<Int>()
        for i in 0..<count {
            let stack = Int(try c.u32("entry \(i) stack"))
            try c.skip(4, "entry \(i) reserved")
            if let stackCount, stack >= stackCount {
                throw DecodeFailure(reason: "entry \(i) names stack \(stack), but there are \(stackCount) stacks")
            }
            guard used.insert(stack).inserted else { throw DecodeFailure(reason: "stack \(stack) has two entries") }
            let inuse = try group(&c, "entry \(i) inuse")
            let alloc = try group(&c, "entry \(i) alloc")
            guard inuse.samples <= alloc.samples else {
                throw DecodeFailure(reason: "entry \(i) has more live samples (\(inuse.samples)) than allocated ones (\(alloc.samples))")
            }
            records.append(StackRecord(stack: stack, inuse: inuse, alloc: alloc))
        }
        return records
    }

    private static func group(_ c: inout ByteCursor, _ what: String) throws(DecodeFailure) -> SampleGroup {
        let samples = try c.u64("\(what) samples")
        var values: [Double] = []
        for field in ["bytes", "objects", "bytes_var", "objects_var"] {
            let value = try c.f64("\(what) \(field)")
            guard value.isFinite, value >= 0 else { throw DecodeFailure(reason: "\(what) \(field) is \(value)") }
            values.append(value)
        }
        return SampleGroup(samples: samples,
                           bytes: Estimate(value: values[0], variance: values[2]),
                           objects: Estimate(value: values[1], variance: values[3]))
    }

    private static func python(_ c: inout ByteCursor) throws(DecodeFailure) -> PythonInfo {
        let rawStatus = try c.u32("status")
        guard let status = PythonInfo.Status(rawValue: rawStatus) else {
            throw DecodeFailure(reason: "unknown status \(rawStatus)")
        }
        let version = try c.u32("version")
        let flags = PythonInfo.Flags(rawValue: try c.u32("flags"))
        try c.skip(4, "reserved")
        let note = try c.string("note")
        let count = try c.count(minimumEntrySize: 12, "function")
        var functions: [PythonFunction] = []
        functions.reserveCapacity(count)
        for i in 0..<count {
            let firstLine = try c.u32("function \(i) first line")
            let name = try c.string("function \(i) name")
            let file = try c.string("function \(i) file")
            functions.append(PythonFunction(name: name, file: file, firstLine: firstLine))
        }
        return PythonInfo(status: status, version: version, flags: flags, note: note, functions: functions)
    }

    /// Every Python frame names a function of the `PYTH` record.
    private func checkPythonFrames(_ snapshot: Snapshot) throws(Failure) {
        let count = snapshot.python?.functions.count ?? 0
        for (i, stack) in snapshot.stacks.enumerated() {
            for frame in stack.frames {
                guard let python = PythonFrame.decode(frame) else { continue }
                guard snapshot.python != nil else {
                    throw Failure(reason: "stack \(i) has a Python frame but the file has no PYTH record")
                }
                guard python.function < count else {
                    throw Failure(reason: "stack \(i) names Python function \(python.function), but PYTH has \(count)")
                }
            }
        }
    }

    private static func peak(_ c: inout ByteCursor) throws(DecodeFailure) -> Peak {
        let time = try c.u64("time_ns")
        let bytes = try c.f64("inuse_bytes"), variance = try c.f64("inuse_bytes_var")
        guard bytes.isFinite, bytes >= 0, variance.isFinite, variance >= 0 else {
            throw DecodeFailure(reason: "in-use bytes \(bytes) ± variance \(variance)")
        }
        let records = try samples(&c, stackCount: nil)
        return Peak(timeNanoseconds: time, inuseBytes: Estimate(value: bytes, variance: variance), records: records)
    }

    private static func high(_ c: inout ByteCursor) throws(DecodeFailure) -> HighWater {
        let time = try c.u64("time_ns")
        let bytes = try c.f64("inuse_bytes"), variance = try c.f64("inuse_bytes_var")
        guard bytes.isFinite, bytes >= 0, variance.isFinite, variance >= 0 else {
            throw DecodeFailure(reason: "in-use bytes \(bytes) ± variance \(variance)")
        }
        return HighWater(timeNanoseconds: time, inuseBytes: Estimate(value: bytes, variance: variance))
    }

    private static func retention(_ c: inout ByteCursor) throws(DecodeFailure) -> Retention {
        let keep = try c.u32("keep"), kept = try c.u32("kept")
        let written = try c.u64("written"), thinned = try c.u64("thinned"), lost = try c.u64("lost")
        let oldestSeq = try c.u32("oldest_seq")
        try c.skip(4, "reserved")
        let oldest = try c.u64("oldest_ns"), gap = try c.u64("widest_gap_ns")
        guard thinned <= written, lost <= written - thinned, UInt64(kept) <= written else {
            throw DecodeFailure(reason: "\(kept) kept, \(thinned) thinned and \(lost) lost of \(written) written")
        }
        return Retention(keep: keep, kept: kept, written: written, thinned: thinned, lost: lost, oldestSeq: oldestSeq,
                         oldestNanoseconds: oldest, widestGapNanoseconds: gap)
    }

    private static func series(_ c: inout ByteCursor) throws(DecodeFailure) -> Series {
        let interval = try c.u64("interval_ns")
        let count = try c.count(minimumEntrySize: 40, "point")
        var points: [SeriesPoint] = []
        points.reserveCapacity(count)
        var last: UInt64 = 0
        for i in 0..<count {
            let time = try c.u64("point \(i) time_ns")
            let bytes = try c.f64("point \(i) inuse_bytes"), variance = try c.f64("point \(i) inuse_bytes_var")
            let alloc = try c.f64("point \(i) alloc_bytes")
            let rss = try c.u64("point \(i) rss_bytes")
            guard [bytes, variance, alloc].allSatisfy({ $0.isFinite && $0 >= 0 }) else {
                throw DecodeFailure(reason: "point \(i) has a non-finite or negative value")
            }
            guard time >= last else { throw DecodeFailure(reason: "point \(i) is earlier than the point before it") }
            last = time
            points.append(SeriesPoint(timeNanoseconds: time, inuseBytes: Estimate(value: bytes, variance: variance),
                                      allocBytes: alloc, rssBytes: rss))
        }
        return Series(intervalNanoseconds: interval, points: points)
    }

    /// Every stack the peak names is in `STKS`.
    private func checkPeak(_ snapshot: Snapshot) throws(Failure) {
        guard let peak = snapshot.peak else { return }
        for record in peak.records where record.stack >= snapshot.stacks.count {
            throw Failure(reason: "PEAK names stack \(record.stack), but there are \(snapshot.stacks.count) stacks")
        }
    }

    private static func sources(_ c: inout ByteCursor) throws(DecodeFailure) -> [SnapshotSource] {
        let count = try c.count(minimumEntrySize: 24, "source")
        var sources: [SnapshotSource] = []
        for i in 0..<count {
            let pid = try c.u32("source \(i) pid")
            let seq = try c.u32("source \(i) seq")
            let time = try c.u64("source \(i) time_ns")
            let hostname = try c.string("source \(i) hostname")
            let path = try c.string("source \(i) path")
            sources.append(SnapshotSource(pid: pid, seq: seq, timeNanoseconds: time, hostname: hostname, path: path))
        }
        return sources
    }
}

private extension Decoder.Failure {
    static func wrap<T>(_ body: () throws(DecodeFailure) -> T) throws(Decoder.Failure) -> T {
        do { return try body() } catch { throw Decoder.Failure(reason: error.reason) }
    }
}

private extension ByteCursor {
    /// Reads a record's `count u32, reserved u32` prefix and checks that `count`
    /// entries of at least `minimumEntrySize` bytes can fit in what remains.
    mutating func count(minimumEntrySize: Int, _ what: String) throws(DecodeFailure) -> Int {
        let count = Int(try u32("\(what) count"))
        try skip(4, "reserved")
        guard count <= remaining / minimumEntrySize else {
            throw DecodeFailure(reason: "claims \(count) \(what)s but has room for at most \(remaining / minimumEntrySize)")
        }
        return count
    }

    mutating func skipOrFail(_ count: Int) throws(Decoder.Failure) {
        do { try skip(count, "record payload") } catch { throw Decoder.Failure(reason: error.reason) }
    }
}

