// Small spelling helpers every stage shares: hex numbers and bytes, a path's
// last component.

/// `value` in lowercase hex without a prefix ("7f3a"); write `"0x" + hex(v)` where a prefix is wanted.
func hex(_ value: some BinaryInteger) -> String { String(value, radix: 16) }

/// `bytes` in lowercase hex, two digits each, as `file` and `/usr/lib/debug/.build-id` spell build-ids.
func hex(_ bytes: [UInt8]) -> String {
    var s = ""
    s.reserveCapacity(bytes.count * 2)
    for byte in bytes {
        if byte < 16 { s += "0" }
        s += String(byte, radix: 16)
    }
    return s
}

/// The last path component of `path` (the whole string when it has no `/`).
func baseName(_ path: String) -> String {
    guard let slash = path.lastIndex(of: "/") else { return path }
    return String(path[path.index(after: slash)...])
}
