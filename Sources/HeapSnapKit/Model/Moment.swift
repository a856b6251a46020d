// Which moment of a snapshot file a question reads: the file as written or
// the peak it carries, and how a command line names it (`FILE@peak`,
// `--at peak`).

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Which moment of a snapshot file a command reads: what was in use when the
/// file was written, or at the peak it carries (`PEAK`).
public enum Moment: String, Sendable, CaseIterable {
    /// The snapshot itself (`SMPL`).
    case snapshot
    /// The peak since sampling started (`PEAK`).
    case peak
}

/// A snapshot file and the moment of it to read, as a command line names it:
/// `FILE` or `FILE@peak`.
public struct SnapshotRef: Sendable, Hashable, CustomStringConvertible {
    /// The file.
    public var path: String
    /// The moment of the file.
    public var moment: Moment

    /// The suffix that names a file's peak.
    public static let peakSuffix = "@peak"

    public init(path: String, moment: Moment = .snapshot) {
        self.path = path
        self.moment = moment
    }

    /// `FILE@peak` is the peak of FILE, anything else the file itself. A file
    /// whose own name ends in `@peak` is read as itself when it exists.
    public init(argument: String, fileExists: (String) -> Bool = { access($0, F_OK) == 0 }) {
        if argument.hasSuffix(Self.peakSuffix), argument.count > Self.peakSuffix.count, !fileExists(argument) {
            self.init(path: String(argument.dropLast(Self.peakSuffix.count)), moment: .peak)
        } else {
            self.init(path: argument)
        }
    }

    /// `FILE` or `FILE@peak`.
    public var description: String { moment == .peak ? path + Self.peakSuffix : path }
}

extension Snapshot {
    /// The snapshot as it was at `moment`: for `.peak`, the peak's per-stack
    /// records in place of `records` (stacks, modules and header unchanged).
    /// Throws `noPeak` naming `file` when the file carries no `PEAK`.
    public func at(_ moment: Moment, file: String) throws(HeapSnapError) -> Snapshot {
        guard moment == .peak else { return self }
        guard let peak else { throw .noPeak(file: file) }
        var result = self
        result.records = peak.records
        return result
    }
}
