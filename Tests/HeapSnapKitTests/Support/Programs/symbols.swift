// Symbolizer test program (Swift): a class allocation in a known function.
final class Node {
    var value: Int
    init(value: Int) { self.value = value }
}

@inline(never) func makeNode(_ value: Int) -> Node {
    return Node(value: value) // SWIFT_SITE
}

print(makeNode(CommandLine.arguments.count).value)
