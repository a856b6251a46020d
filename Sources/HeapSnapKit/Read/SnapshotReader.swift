// Reads snapshot files (docs/FORMAT.md). Placeholder signatures; being implemented.

/// Decodes snapshot files, validating every length before it is used.
public enum SnapshotReader {
    /// Reads and validates the snapshot at `path`.
    public static func read(path: String) throws(HeapSnapError) -> Snapshot {
        throw .corrupt(file: path, reason: "reader not implemented yet")
    }

    /// Decodes a snapshot from memory; `name` is used in error messages.
    public static func decode(_ bytes: [UInt8], name: String) throws(HeapSnapError) -> Snapshot {
        throw .corrupt(file: name, reason: "reader not implemented yet")
    }
}
