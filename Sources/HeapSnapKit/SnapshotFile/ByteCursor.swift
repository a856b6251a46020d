// Bounds-checked little-endian decoding over a byte buffer.
//
// Every read checks the bytes that remain first, so a length field that lies
// (2^60 bytes, say) fails here before anything is allocated for it.

/// Why a read failed; the reader turns it into a `HeapSnapError` naming the file.
struct DecodeFailure: Error {
    var reason: String
}

/// A read position in a slice of bytes.
struct ByteCursor {
    private let bytes: [UInt8]
    /// Absolute offset of the next byte to read.
    private(set) var offset: Int
    /// Absolute offset one past the last readable byte.
    let end: Int

    init(_ bytes: [UInt8], from start: Int = 0, to end: Int? = nil) {
        self.bytes = bytes
        self.offset = start
        self.end = end ?? bytes.count
    }

    var remaining: Int { end - offset }
    var isAtEnd: Bool { offset == end }

    mutating func require(_ count: Int, _ what: @autoclosure () -> String) throws(DecodeFailure) {
        guard count >= 0, count <= remaining else {
            throw DecodeFailure(reason: "\(what()) needs \(count) bytes at offset \(offset), only \(remaining) remain")
        }
    }

    mutating func skip(_ count: Int, _ what: @autoclosure () -> String) throws(DecodeFailure) {
        try require(count, what())
        offset += count
    }

    mutating func u8(_ what: @autoclosure () -> String) throws(DecodeFailure) -> UInt8 {
        try require(1, what())
        defer { offset += 1 }
        return bytes[offset]
    }

    mutating func u16(_ what: @autoclosure () -> String) throws(DecodeFailure) -> UInt16 {
        UInt16(truncatingIfNeeded: try little(2, what()))
    }

    mutating func u32(_ what: @autoclosure () -> String) throws(DecodeFailure) -> UInt32 {
        UInt32(truncatingIfNeeded: try little(4, what()))
    }

    mutating func u64(_ what: @autoclosure () -> String) throws(DecodeFailure) -> UInt64 {
        try little(8, what())
    }

    mutating func f64(_ what: @autoclosure () -> String) throws(DecodeFailure) -> Double {
        Double(bitPattern: try little(8, what()))
    }

    mutating func bytes(_ count: Int, _ what: @autoclosure () -> String) throws(DecodeFailure) -> [UInt8] {
        try require(count, what())
        defer { offset += count }
        return Array(bytes[offset..<offset + count])
    }

    /// A FORMAT.md `str`: u32 length, then bytes, at most `limit` long; decoded leniently as UTF-8.
    mutating func string(_ what: @autoclosure () -> String, limit: Int = 1 << 20) throws(DecodeFailure) -> String {
        let length = Int(try u32("\(what()) length"))
        guard length <= limit else {
            throw DecodeFailure(reason: "\(what()) claims \(length) bytes (limit \(limit))")
        }
        return String(decoding: try bytes(length, what()), as: UTF8.self)
    }

    private mutating func little(_ size: Int, _ what: @autoclosure () -> String) throws(DecodeFailure) -> UInt64 {
        try require(size, what())
        var value: UInt64 = 0
        for i in 0..<size {
            value |= UInt64(bytes[offset + i]) << (8 * UInt64(i))
        }
        offset += size
        return value
    }
}
