// What the snapshot list shows: every served file's header and totals
// (no symbolization: a read and a sum), grouped by process, with each
// process's timeline. Summaries are cached per file stamp (path, size,
// mtime), so a poll re-reads only new or changed files. A file that cannot
// be read is listed with its one-line error.

import HeapSnapKit

/// One point of a process's timeline (a snapshot's totals, or a point of its series).
struct TimelinePoint: Sendable, Codable, Hashable {
    /// Milliseconds since the Unix epoch.
    var timeMs: Double
    /// Estimated bytes in use.
    var inuseBytes: Double
    /// The 95% half-width of `inuseBytes`.
    var inuseBytesError: Double
    /// Resident set size in bytes (series points only; 0 when unknown).
    var rssBytes: Double?
}

/// One snapshot file as the list shows it.
struct SnapshotSummary: Sendable, Codable, Hashable {
    var id: String
    var name: String
    var size: Int64
    /// One line when the file cannot be read (then the fields below are zero or empty).
    var error: String?
    var pid: UInt32 = 0
    var seq: UInt32 = 0
    var session: UInt32 = 0
    var hostname: String = ""
    var executable: String = ""
    var commandLine: String = ""
    /// Milliseconds since the Unix epoch: when the snapshot was taken, and when sampling started.
    var timeMs: Double = 0
    var startMs: Double = 0
    /// Format flags: exact, final, at-exit, periodic, merged.
    var flags: [String] = []
    var rate: UInt64 = 0
    var samples: UInt64 = 0
    var dropped: UInt64 = 0
    var inuseBytes: Double = 0
    var inuseBytesError: Double = 0
    var inuseObjects: Double = 0
    var allocBytes: Double = 0
    /// The peak since sampling started, when the file records it.
    var peak: TimelinePoint?
    /// The merged processes' count, for a merged snapshot.
    var sources: Int = 0
    /// What the shim's retention (`HEAPSNAP_KEEP`) had thinned when this file was written, as `info` says it; nil without.
    var retention: String?
    /// The series the shim recorded while sampling, when the file has one (not sent in lists; see `ProcessGroup.series`).
    var series: [TimelinePoint]? = nil

    enum CodingKeys: String, CodingKey {
        case id, name, size, error, pid, seq, session, hostname, executable, commandLine, timeMs, startMs, flags, rate,
             samples, dropped, inuseBytes, inuseBytesError, inuseObjects, allocBytes, peak, sources, retention
    }

    /// The summary of a decoded snapshot.
    init(file: ServedFile, size: Int64, snapshot: Snapshot) {
        id = file.id
        name = lastPathComponent(file.id)
        self.size = size
        let h = snapshot.header
        pid = h.pid
        seq = h.seq
        session = h.session
        hostname = h.hostname
        executable = h.executable
        commandLine = Format.commandLine(h.commandLine)
        timeMs = Double(h.timeNanoseconds) / 1e6
        startMs = Double(h.startNanoseconds) / 1e6
        flags = Format.flags(h.flags)
        rate = h.rate
        samples = h.samples
        dropped = h.dropped
        var inuse = Estimate.zero, objects = Estimate.zero, alloc = Estimate.zero
        for record in snapshot.records {
            inuse += record.inuse.bytes
            objects += record.inuse.objects
            alloc += record.alloc.bytes
        }
        inuseBytes = inuse.value
        inuseBytesError = Confidence.z * inuse.standardDeviation
        inuseObjects = objects.value
        allocBytes = alloc.value
        if let p = snapshot.peak?.highest {
            peak = TimelinePoint(timeMs: Double(p.timeNanoseconds) / 1e6, inuseBytes: p.inuseBytes.value,
                                 inuseBytesError: Confidence.z * p.inuseBytes.standardDeviation, rssBytes: nil)
        }
        sources = snapshot.sources.count
        retention = snapshot.retention.map { Format.retention($0, at: h.timeNanoseconds) }
        series = snapshot.series.map { s in
            s.points.map {
                TimelinePoint(timeMs: Double($0.timeNanoseconds) / 1e6, inuseBytes: $0.inuseBytes.value,
                              inuseBytesError: Confidence.z * $0.inuseBytes.standardDeviation,
                              rssBytes: $0.rssBytes > 0 ? Double($0.rssBytes) : nil)
            }
        }
    }

    /// The summary of a file that could not be read.
    init(file: ServedFile, size: Int64, error: String) {
        id = file.id
        name = lastPathComponent(file.id)
        self.size = size
        self.error = error
    }

    /// Whether this is a merged snapshot.
    var isMerged: Bool { flags.contains("merged") }
}

/// The snapshots of one process (or the merged files, or the unreadable ones), oldest first.
struct ProcessGroup: Sendable, Codable, Hashable {
    /// "host/pid", "merged/ID" or "unreadable".
    var key: String
    var pid: UInt32
    var hostname: String
    var executable: String
    /// The executable's file name.
    var program: String
    var commandLine: String
    var snapshots: [SnapshotSummary]
    /// The timeline: the series of the newest snapshot that has one (the timeline
    /// record), else empty; the page adds each snapshot's totals as points.
    var series: [TimelinePoint]
}

/// The served snapshots, summarized and grouped; safe to call from many requests at once.
actor SnapshotCatalog {
    /// The directories read.
    let directories: ServedDirectories
    private var cache: [String: (stamp: FileStamp, summary: SnapshotSummary)] = [:]

    init(directories: ServedDirectories) {
        self.directories = directories
    }

    /// Every served file's summary, by id.
    /// - Complexity: O(files) stats, plus a read of each new or changed file.
    func summaries() -> [SnapshotSummary] {
        var seen: Set<String> = []
        var result: [SnapshotSummary] = []
        for file in directories.list() {
            guard let stamp = directories.stamp(file) else { continue }
            seen.insert(file.path)
            if let cached = cache[file.path], cached.stamp == stamp, cached.summary.id == file.id {
                result.append(cached.summary)
                continue
            }
            let summary: SnapshotSummary
            do {
                let (snapshot, readStamp) = try directories.snapshot(file)
                summary = SnapshotSummary(file: file, size: readStamp.size, snapshot: snapshot)
            } catch {
                summary = SnapshotSummary(file: file, size: stamp.size, error: error.description)
            }
            cache[file.path] = (stamp, summary)
            result.append(summary)
        }
        cache = cache.filter { seen.contains($0.key) }
        return result
    }

    /// The summaries grouped by process: newest activity first; snapshots oldest first.
    func groups() -> [ProcessGroup] {
        Self.group(summaries())
    }

    static func group(_ summaries: [SnapshotSummary]) -> [ProcessGroup] {
        var byKey: [String: [SnapshotSummary]] = [:]
        for summary in summaries {
            let key = summary.error != nil ? "unreadable" : summary.isMerged ? "merged/\(summary.id)" : "\(summary.hostname)/\(summary.pid)"
            byKey[key, default: []].append(summary)
        }
        var groups: [ProcessGroup] = byKey.map { key, members in
            let snapshots = members.sorted { ($0.timeMs, $0.seq, $0.id) < ($1.timeMs, $1.seq, $1.id) }
            let newest = snapshots.last!
            let series = snapshots.last(where: { $0.series?.isEmpty == false })?.series ?? []
            return ProcessGroup(key: key, pid: newest.pid, hostname: newest.hostname, executable: newest.executable,
                                program: lastPathComponent(newest.executable.isEmpty ? newest.name : newest.executable),
                                commandLine: newest.commandLine, snapshots: snapshots, series: series)
        }
        groups.sort { a, b in
            if (a.key == "unreadable") != (b.key == "unreadable") { return b.key == "unreadable" }
            let ta = a.snapshots.last?.timeMs ?? 0, tb = b.snapshots.last?.timeMs ?? 0
            return ta != tb ? ta > tb : a.key < b.key
        }
        return groups
    }
}
