// Encodes `Snapshot` values as docs/FORMAT.md files: for `heapsnap merge`,
// and for tests that need files the shim did not write.
//
// Files are created the way the shim creates them: a temporary name in the
// target directory (O_EXCL|O_NOFOLLOW, mode 0600), written, then renamed, so
// no reader ever sees a partial file under the final name.

import Glibc

/// Encodes snapshots in the current format version.
public enum SnapshotWriter {
    /// The file's bytes.
    /// - Complexity: O(size of the snapshot).
    public static func encode(_ snapshot: Snapshot) -> [UInt8] {
        var out = ByteWriter()
        out.bytes(SnapshotFormat.magic)
        out.u16(SnapshotFormat.major)
        out.u16(SnapshotFormat.minor)
        out.u32(0)

        out.record(.process) { w in
            let h = snapshot.header
            w.u32(h.pid); w.u32(h.ppid); w.u32(h.seq); w.u32(h.flags.rawValue)
            w.u64(h.startNanoseconds); w.u64(h.timeNanoseconds); w.u64(max(h.rate, 1))
            w.u32(h.maxDepth); w.u32(h.session)
            w.u64(h.samples); w.u64(h.dropped); w.u64(h.truncated); w.u64(h.shimBytes); w.u64(h.budget)
            w.string(h.executable)
            w.string(h.hostname)
            w.string(h.commandLine.map { $0 + "\0" }.joined())
        }
        out.record(.modules) { w in
            w.u32(UInt32(snapshot.modules.count)); w.u32(0)
            for m in snapshot.modules {
                let path = Array(m.path.utf8)
                let buildID = Array(m.buildID.prefix(SnapshotFormat.maxBuildIDLength))
                w.u64(m.start); w.u64(m.end); w.u64(m.fileOffset); w.u64(m.vaddr)
                w.u16(UInt16(buildID.count)); w.u16(0); w.u32(UInt32(path.count))
                w.bytes(buildID); w.bytes(path)
            }
        }
        out.record(.stacks) { w in
            w.u32(UInt32(snapshot.stacks.count)); w.u32(0)
            for s in snapshot.stacks {
                let frames = s.frames.prefix(SnapshotFormat.maxDepth)
                w.u32(UInt32(frames.count)); w.u32(s.truncated ? 1 : 0)
                for f in frames { w.u64(f) }
            }
        }
        out.record(.samples) { w in
            w.u32(UInt32(snapshot.records.count)); w.u32(0)
            for r in snapshot.records {
                w.u32(UInt32(r.stack)); w.u32(0)
                w.group(r.inuse)
                w.group(r.alloc)
            }
        }
        if !snapshot.sources.isEmpty {
            out.record(.sources) { w in
                w.u32(UInt32(snapshot.sources.count)); w.u32(0)
                for s in snapshot.sources {
                    w.u32(s.pid); w.u32(s.seq); w.u64(s.timeNanoseconds)
                    w.string(s.hostname); w.string(s.path)
                }
            }
        }
        if let python = snapshot.python {
            out.record(.python) { w in
                w.u32(python.status.rawValue); w.u32(python.version); w.u32(python.flags.rawValue); w.u32(0)
                w.string(python.note)
                w.u32(UInt32(python.functions.count)); w.u32(0)
                for f in python.functions {
                    w.u32(f.firstLine)
                    w.string(f.name)
                    w.string(f.file)
                }
            }
        }
        if let peak = snapshot.peak {
            out.record(.peak) { w in
                w.u64(peak.timeNanoseconds); w.f64(peak.inuseBytes.value); w.f64(peak.inuseBytes.variance)
                w.u32(UInt32(peak.records.count)); w.u32(0)
                for r in peak.records {
                    w.u32(UInt32(r.stack)); w.u32(0)
                    w.group(r.inuse)
                    w.group(r.alloc)
                }
            }
        }
        if let high = snapshot.peak?.high {
            out.record(.high) { w in
                w.u64(high.timeNanoseconds); w.f64(high.inuseBytes.value); w.f64(high.inuseBytes.variance)
            }
        }
        if let series = snapshot.series {
            out.record(.series) { w in
                w.u64(series.intervalNanoseconds)
                w.u32(UInt32(series.points.count)); w.u32(0)
                for p in series.points {
                    w.u64(p.timeNanoseconds); w.f64(p.inuseBytes.value); w.f64(p.inuseBytes.variance)
                    w.f64(p.allocBytes); w.u64(p.rssBytes)
                }
            }
        }
        if let r = snapshot.retention {
            out.record(.thin) { w in
                w.u32(r.keep); w.u32(r.kept); w.u64(r.written); w.u64(r.thinned); w.u64(r.lost)
                w.u32(r.oldestSeq); w.u32(0); w.u64(r.oldestNanoseconds); w.u64(r.widestGapNanoseconds)
            }
        }
        let crc = CRC32.checksum(out.buffer, 0..<out.buffer.count)
        out.record(.end) { w in w.u32(crc); w.u32(0) }
        return out.buffer
    }

    /// Writes `snapshot` to `path` safely: a temporary file beside it
    /// (O_EXCL|O_NOFOLLOW, mode 0600), fsync, rename. On failure nothing is
    /// left behind under either name.
    public static func write(_ snapshot: Snapshot, to path: String) throws(HeapSnapError) {
        let bytes = encode(snapshot)
        let directory = path.lastIndex(of: "/").map { String(path[..<$0]) } ?? "."
        let base = path.lastIndex(of: "/").map { String(path[path.index(after: $0)...]) } ?? path
        var template = Array("\(directory.isEmpty ? "/" : directory)/.\(base).tmp.XXXXXX".utf8CString)
        // mkstemp opens with O_CREAT|O_EXCL (so never through a symlink), mode 0600.
        let fd = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
        guard fd >= 0 else { throw .cannotWrite(file: path, step: "create a temporary file", reason: String(cString: strerror(errno))) }
        let temporary = template.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
        func fail(_ what: String) -> HeapSnapError {
            let reason = String(cString: strerror(errno))
            close(fd)
            unlink(temporary)
            return .cannotWrite(file: path, step: what, reason: reason)
        }
        var written = 0
        while written < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + written, $0.count - written) }
            if n < 0 {
                if errno == EINTR { continue }
                throw fail("write")
            }
            written += n
        }
        guard fsync(fd) == 0 else { throw fail("sync") }
        guard close(fd) == 0 else { unlink(temporary); throw .cannotWrite(file: path, step: "close", reason: String(cString: strerror(errno))) }
        guard rename(temporary, path) == 0 else {
            let reason = String(cString: strerror(errno))
            unlink(temporary)
            throw .cannotWrite(file: path, step: "rename into place", reason: reason)
        }
    }
}

/// Little-endian encoding into a growing buffer.
private struct ByteWriter {
    var buffer: [UInt8] = []

    mutating func bytes(_ b: [UInt8]) { buffer.append(contentsOf: b) }
    mutating func u16(_ v: UInt16) { withUnsafeBytes(of: v.littleEndian) { buffer.append(contentsOf: $0) } }
    mutating func u32(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { buffer.append(contentsOf: $0) } }
    mutating func u64(_ v: UInt64) { withUnsafeBytes(of: v.littleEndian) { buffer.append(contentsOf: $0) } }
    mutating func f64(_ v: Double) { u64(v.bitPattern) }

    mutating func string(_ s: String) {
        let utf8 = Array(s.utf8.prefix(SnapshotFormat.stringLimit))
        u32(UInt32(utf8.count))
        bytes(utf8)
    }

    mutating func group(_ g: SampleGroup) {
        u64(g.samples)
        f64(g.bytes.value); f64(g.objects.value)
        f64(g.bytes.variance); f64(g.objects.variance)
    }

    /// Appends a record: its header, then what `body` writes, with the length patched in.
    mutating func record(_ tag: SnapshotFormat.Tag, _ body: (inout ByteWriter) -> Void) {
        u32(tag.rawValue); u32(0)
        let lengthAt = buffer.count
        u64(0)
        let start = buffer.count
        body(&self)
        let length = UInt64(buffer.count - start).littleEndian
        withUnsafeBytes(of: length) { buffer.replaceSubrange(lengthAt..<lengthAt + 8, with: $0) }
    }
}
