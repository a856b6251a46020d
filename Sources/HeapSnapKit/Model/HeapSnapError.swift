/// Every failure the tool reports. Each message names the file (or process)
/// and what is wrong, on one line.
public enum HeapSnapError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The file could not be opened or read.
    case unreadable(file: String, reason: String)
    /// The file is not a heapsnap snapshot at all.
    case notASnapshot(file: String)
    /// A snapshot of a format version this tool does not read.
    case unsupportedVersion(file: String, major: UInt16)
    /// The file is a snapshot but is damaged or truncated.
    case corrupt(file: String, reason: String)
    /// Any other failure, with a complete message.
    case failed(String)

    public var description: String {
        switch self {
        case .unreadable(let file, let reason): "\(file): cannot read: \(reason)"
        case .notASnapshot(let file): "\(file): not a heapsnap snapshot (wrong magic number)"
        case .unsupportedVersion(let file, let major):
            "\(file): snapshot format version \(major) is not supported (this heapsnap reads version 1); use a newer heapsnap"
        case .corrupt(let file, let reason): "\(file): corrupt snapshot: \(reason)"
        case .failed(let message): message
        }
    }
}
