import Testing
@testable import HeapSnapKit

@Suite struct GzipTests {
    @Test func roundTripsAndWritesAGzipHeader() throws {
        let text = Array(String(repeating: "heapsnap flamegraph ", count: 5000).utf8)
        let packed = Gzip.compress(text)
        #expect(packed.prefix(3) == [0x1f, 0x8b, 8]) // gzip magic, deflate
        #expect(packed.count < text.count / 20)
        #expect(Gunzip.decompress(packed) == text)
        #expect(Gunzip.decompress(Gzip.compress([])) == [])
        #expect(Gunzip.decompress(Array(packed.dropLast(6))) == nil) // the trailer is there
    }
}

@Suite struct CRC32Tests {
    /// The standard check value of CRC-32 ("123456789" -> 0xCBF43926), and a sub-range.
    @Test func checkValue() {
        let bytes = Array("xx123456789yy".utf8)
        #expect(CRC32.checksum(bytes, 2..<11) == 0xCBF4_3926)
        #expect(CRC32.checksum(bytes, 0..<0) == 0)
    }
}
