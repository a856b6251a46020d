// Constants of docs/FORMAT.md shared by the reader and the writer, and the
// file's checksum.

import CZlib

/// The numbers docs/FORMAT.md fixes.
enum SnapshotFormat {
    static let magic: [UInt8] = Array("HEAPSNAP".utf8)
    static let major: UInt16 = 1
    static let minor: UInt16 = 4
    static let headerSize = 16
    /// Tag, reserved, length.
    static let recordHeaderSize = 16
    static let groupSize = 40
    static let sampleEntrySize = 8 + 2 * groupSize
    static let maxDepth = 1024
    static let maxBuildIDLength = 64
    static let stringLimit = 1 << 20

    /// Record tags: four ASCII bytes read as a little-endian u32.
    enum Tag: UInt32 {
        case process = 0x434F_5250 // "PROC"
        case modules = 0x5344_4F4D // "MODS"
        case stacks = 0x534B_5453 // "STKS"
        case samples = 0x4C50_4D53 // "SMPL"
        case sources = 0x5343_5253 // "SRCS"
        case python = 0x4854_5950 // "PYTH"
        case peak = 0x4B41_4550 // "PEAK"
        case series = 0x5352_4553 // "SERS"
        case high = 0x4847_4948 // "HIGH"
        case thin = 0x4E49_4854 // "THIN"
        case end = 0x2044_4E45 // "END "

        var name: String {
            String(decoding: withUnsafeBytes(of: rawValue.littleEndian) { Array($0) }, as: UTF8.self)
        }
    }
}

/// CRC-32 as zlib and PNG compute it (reflected, polynomial 0xEDB88320), by zlib's `crc32`.
enum CRC32 {
    /// The checksum of `bytes[range]`.
    /// - Complexity: O(n).
    static func checksum(_ bytes: [UInt8], _ range: Range<Int>) -> UInt32 {
        bytes.withUnsafeBufferPointer { buffer in
            var crc = crc32(0, nil, 0)
            var start = range.lowerBound
            while start < range.upperBound {  // zlib takes a 32-bit length
                let count = min(range.upperBound - start, Int(UInt32.max))
                crc = crc32(crc, buffer.baseAddress! + start, uInt(count))
                start += count
            }
            return UInt32(truncatingIfNeeded: crc)
        }
    }
}
