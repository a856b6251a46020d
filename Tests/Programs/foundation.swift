// foundation.swift - a Swift host for ShimTests' real-program matrix
// (RobustnessTests.swift), compiled at test time with swiftc: Codable
// round trips through JSONEncoder/JSONDecoder, Data, String and
// dictionary work, and a concurrentPerform whose per-index results are
// combined in order. Deterministic output.
import Foundation

struct Item: Codable, Equatable {
    var id: Int
    var name: String
    var tags: [String]
    var score: Double
}

var items: [Item] = []
for i in 0..<8000 {
    items.append(Item(id: i, name: "item-\(i)", tags: (0..<(i % 5)).map { "tag\($0)" }, score: Double(i) / 8))
}
let encoder = JSONEncoder()
encoder.outputFormatting = [.sortedKeys]
var total = 0
var hash: UInt64 = 14_695_981_039_346_656_037
for round in 0..<4 {
    let data = try! encoder.encode(items)
    total += data.count
    for byte in data { hash = (hash ^ UInt64(byte)) &* 1_099_511_628_211 }
    let back = try! JSONDecoder().decode([Item].self, from: data)
    precondition(back == items, "round \(round): decode mismatch")
    let text = String(decoding: data, as: UTF8.self)
    total += text.split(separator: ",").count
    items = back.map { var x = $0; x.tags.append("r\(round)"); return x }
}
var index: [String: [Int]] = [:]
for item in items { index["n\(item.tags.count)", default: []].append(item.id) }
let keys = index.keys.sorted()
var perIndex = [Int](repeating: 0, count: 64)
perIndex.withUnsafeMutableBufferPointer { out in
    let base = out.baseAddress!
    DispatchQueue.concurrentPerform(iterations: 64) { k in
        let words = (0..<200).map { "w\($0 * k)" }.joined(separator: " ")
        base[k] = Data(words.utf8).reduce(0) { $0 &+ Int($1) }
    }
}
print("bytes+fields \(total) hash \(hash)")
print("keys \(keys.joined(separator: ",")) sizes \(keys.map { index[$0]!.count })")
print("parallel \(perIndex.reduce(0, &+))")
