// Values as the text people read: sizes, counts, percentages, durations, times, and a snapshot's
// command line, flags, Python and retention notes, shared by the renderers and the web view.
// (The snapshot file's own format is SnapshotFile/SnapshotFormat.swift.)

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Values as text (pure functions, locale-independent, deterministic): `Format.bytes(1536)` is `1.50 KiB`.
public enum Format {
    /// Bytes in binary units with three significant digits: `512 B`, `1.50 KiB`, `12.3 MiB`, `-4.00 GiB`.
    public static func bytes(_ value: Double, signed: Bool = false) -> String {
        let sign = value < 0 ? "-" : (signed && value > 0 ? "+" : "")
        var v = abs(value)
        if v < 1023.5 { return sign + String(Int(v.rounded())) + " B" }
        let units = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"]
        var unit = -1
        while (v >= 1023.5 || unit < 0) && unit < units.count - 1 {
            v /= 1024
            unit += 1
        }
        return sign + threeDigits(v) + " " + units[unit]
    }

    /// A count rounded to an integer with thousands separators: `1,234`, `+56`.
    public static func count(_ value: Double, signed: Bool = false) -> String {
        let rounded = value.rounded()
        guard rounded.isFinite, abs(rounded) < 9e18 else { return String(value) }
        let n = Int64(rounded)
        let sign = n < 0 ? "-" : (signed && n > 0 ? "+" : "")
        return sign + grouped(n.magnitude)
    }

    /// An integer with thousands separators.
    public static func grouped(_ n: UInt64) -> String {
        let digits = String(n)
        var out = ""
        for (i, c) in digits.enumerated() {
            if i > 0, (digits.count - i) % 3 == 0 { out += "," }
            out.append(c)
        }
        return out
    }

    /// A percentage with one decimal: `45.2%`; empty when the total is 0.
    public static func percent(_ part: Double, of total: Double) -> String {
        guard total != 0, part.isFinite else { return "" }
        return fixed(100 * part / total, decimals: 1) + "%"
    }

    /// `value` with a fixed number of decimals.
    public static func fixed(_ value: Double, decimals: Int) -> String {
        var scale = 1.0
        for _ in 0..<decimals { scale *= 10 }
        let scaled = (abs(value) * scale).rounded()
        let whole = UInt64(scaled / scale)
        let fraction = UInt64(scaled - Double(whole) * scale)
        var s = (value < 0 && scaled != 0 ? "-" : "") + String(whole)
        if decimals > 0 {
            var f = String(fraction)
            while f.count < decimals { f = "0" + f }
            s += "." + f
        }
        return s
    }

    static func threeDigits(_ v: Double) -> String {
        if v < 9.995 { return fixed(v, decimals: 2) }
        if v < 99.95 { return fixed(v, decimals: 1) }
        return fixed(v, decimals: 0)
    }

    /// A duration in seconds from nanoseconds: `12.3 s`, `2 h 5 min`.
    public static func duration(nanoseconds: Double) -> String {
        let s = nanoseconds / 1e9
        if s < 0 { return "-" + duration(nanoseconds: -nanoseconds) }
        if s < 60 { return fixed(s, decimals: s < 10 ? 2 : 1) + " s" }
        if s < 3600 { return "\(Int(s) / 60) min \(Int(s) % 60) s" }
        return "\(Int(s) / 3600) h \(Int(s) % 3600 / 60) min"
    }

    /// What `info` says about a snapshot's `THIN` record, written at `now` (ns since the epoch):
    /// `HEAPSNAP_KEEP=100: 100 of 2,345 periodic snapshots kept, 2,245 thinned; the oldest kept #0,
    /// 6 d 23 h before this one; spacing grows with age, up to 16 h 0 min`.
    public static func retention(_ r: Retention, at now: UInt64) -> String {
        var text = "HEAPSNAP_KEEP=\(r.keep): "
        text += r.keep == 0 ? "all \(grouped(r.written)) periodic snapshots kept"
            : "\(grouped(UInt64(r.kept))) of \(grouped(r.written)) periodic snapshots kept, "
                + (r.thinned == 0 ? "none thinned yet" : "\(grouped(r.thinned)) thinned")
        if r.lost > 0 { text += ", \(grouped(r.lost)) gone or replaced before thinning (not deleted)" }
        if r.oldestNanoseconds > 0, r.written > 0 {
            let age = now >= r.oldestNanoseconds ? Double(now - r.oldestNanoseconds) : 0
            text += "; the oldest kept #\(r.oldestSeq), \(longDuration(nanoseconds: age)) before this one"
        }
        if r.thinned > 0, r.widestGapNanoseconds > 0 {
            text += "; spacing grows with age, up to \(longDuration(nanoseconds: Double(r.widestGapNanoseconds)))"
        }
        return text
    }

    /// `duration`, with days past 48 hours: `6 d 23 h`.
    static func longDuration(nanoseconds: Double) -> String {
        let s = nanoseconds / 1e9
        guard s >= 48 * 3600 else { return duration(nanoseconds: nanoseconds) }
        return "\(Int(s) / 86400) d \(Int(s) % 86400 / 3600) h"
    }

    /// UTC time from nanoseconds since the epoch: `2024-05-01 12:00:00.123 UTC`.
    public static func time(nanoseconds: UInt64) -> String {
        var t = time_t(nanoseconds / 1_000_000_000)
        var parts = tm()
        gmtime_r(&t, &parts)
        func two(_ v: Int32) -> String { v < 10 ? "0\(v)" : "\(v)" }
        let ms = Int(nanoseconds / 1_000_000 % 1000)
        let msText = ms < 10 ? "00\(ms)" : ms < 100 ? "0\(ms)" : "\(ms)"
        return "\(parts.tm_year + 1900)-\(two(parts.tm_mon + 1))-\(two(parts.tm_mday)) \(two(parts.tm_hour)):\(two(parts.tm_min)):\(two(parts.tm_sec)).\(msText) UTC"
    }

    /// The flags of a snapshot as words.
    /// "CPython 3.11.2: Python frames (42 functions); pymalloc objects sampled".
    public static func python(_ p: PythonInfo) -> String {
        var s = p.note
        if p.status == .frames { s += " (\(p.functions.count) functions)" }
        if p.flags.contains(.wrapped) {
            s += "; pymalloc objects sampled"
        } else if p.flags.contains(.usesMalloc) {
            s += "; PYTHONMALLOC=malloc: every object through malloc"
        } else {
            s += "; pymalloc not seen (objects of 512 bytes or less are missing)"
        }
        if p.flags.contains(.freeListsOff) { s += "; free lists off: objects charged to the line that created them" }
        if p.flags.contains(.nativeInner) { s += "; HEAPSNAP_NATIVE=inner: natives only below the innermost Python frame" }
        if p.flags.contains(.nativeNone) { s += "; HEAPSNAP_NATIVE=none: Python frames only on threads running Python" }
        return s
    }

    public static func flags(_ flags: SnapshotHeader.Flags) -> [String] {
        var words: [String] = []
        if flags.contains(.exact) { words.append("exact") }
        if flags.contains(.final) { words.append("final") }
        if flags.contains(.atExit) { words.append("at-exit") }
        if flags.contains(.periodic) { words.append("periodic") }
        if flags.contains(.merged) { words.append("merged") }
        return words
    }

    /// The command line as one string, arguments with spaces quoted. Programs
    /// that rewrite their title (redis, nginx, postgres) leave the rest of the
    /// old argument area as NULs, read back as a run of empty arguments: a run
    /// of two or more at the end is that padding and is not shown.
    public static func commandLine(_ arguments: [String]) -> String {
        var arguments = arguments
        let padding = arguments.reversed().prefix { $0.isEmpty }.count
        if padding >= 2 { arguments.removeLast(padding) }
        return arguments.map { arg in
            arg.isEmpty || arg.contains(where: { $0 == " " || $0 == "\"" || $0 == "'" }) ? "'" + arg.replacingAll("'", "'\\''") + "'" : arg
        }.joined(separator: " ")
    }

    /// The number of terminal columns `s` takes (characters; no ANSI escapes expected).
    static func width(_ s: String) -> Int { s.count }

    /// `s` cut to `width` characters, with `…` where text was removed. `keepEnd`
    /// keeps the end (for paths), else the beginning.
    static func fit(_ s: String, _ width: Int, keepEnd: Bool) -> String {
        guard width > 0 else { return "" }
        guard s.count > width else { return s }
        if width == 1 { return "…" }
        return keepEnd ? "…" + String(s.suffix(width - 1)) : String(s.prefix(width - 1)) + "…"
    }

    static func pad(_ s: String, _ width: Int, right: Bool) -> String {
        let n = width - s.count
        guard n > 0 else { return s }
        let spaces = String(repeating: " ", count: n)
        return right ? spaces + s : s + spaces
    }
}

extension String {
    func replacingAll(_ target: String, _ replacement: String) -> String {
        guard !target.isEmpty else { return self }
        var out = ""
        var rest = self[...]
        while let range = rest.range(of: target) {
            out += rest[..<range.lowerBound]
            out += replacement
            rest = rest[range.upperBound...]
        }
        return out + rest
    }
}

// The warning is text (numbers formatted as every table formats them), so it
// lives with the formatting rather than in the model.
extension SnapshotHeader {
    /// One line when the shim dropped samples because its memory budget was full: how many,
    /// their share, that every figure of this snapshot is therefore low, and the fix (naming
    /// the budget that was in force). Nil when nothing was dropped. Every output that shows
    /// figures of this snapshot shows this line once (`ProfileSource.droppedWarnings`).
    public var droppedWarning: String? {
        guard dropped > 0 else { return nil }
        let share = samples >= dropped && samples > 0 ? Double(dropped) / Double(samples) : 1
        let percent = share < 0.0005 ? "<0.1%" : Format.fixed(100 * share, decimals: 1) + "%"
        let full = budget > 0 ? "HEAPSNAP_MAX_MEMORY=\(Units.spelled(budget)) was full" : "the shim's memory budget (HEAPSNAP_MAX_MEMORY) was full"
        return "\(Format.grouped(dropped)) of \(Format.grouped(samples)) samples (\(percent)) were dropped because \(full): "
            + "figures are low; raise HEAPSNAP_MAX_MEMORY, or sample less often (a larger HEAPSNAP_RATE)"
    }
}
