import Testing
@testable import HeapSnapKit

@Suite struct GzipTests {
    @Test func roundTripsAndWritesAGzipHeader() throws {
        let text = Array(String(repeating: "heapsnap flamegraph ", count: 5000).utf8)
        let packed = Gzip.compress(text)
        #expect(packed.prefix(3) == [0x1f, 0x8b, 8]) // gzip magic, deflate
        #expect(packed.count < text.count / 20)
        #expect(Gzip.decompress(packed) == text)
        #expect(Gzip.decompress(Gzip.compress([])) == [])
    }

    @Test func rejectsDamagedInput() {
        let packed = Gzip.compress(Array("some bytes to pack".utf8))
        #expect(Gzip.decompress(Array(packed.dropLast(6))) == nil)
        #expect(Gzip.decompress(Array("not gzip".utf8)) == nil)
    }
}
