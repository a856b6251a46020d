// Test program for runtime-frame attribution (Tests/ShimTests/AttributionTests.swift):
// Swift arrays and strings grown in two functions of the program.
@inline(never) func grow(_ n: Int) -> [[Int]] {
    var rows: [[Int]] = []
    for i in 0..<n { rows.append(Array(repeating: i, count: 64)) }
    return rows
}
@inline(never) func names(_ n: Int) -> [String] {
    var out: [String] = []
    for i in 0..<n { out.append("name-\(i)-" + String(repeating: "x", count: 40)) }
    return out
}
let a = grow(20000)
let b = names(30000)
print(a.count, b.count)
