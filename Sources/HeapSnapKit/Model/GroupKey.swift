// What a row of a table stands for: the grouping (tracemalloc's `lineno`,
// `filename`, `traceback`, and heapsnap's function and module) and the key of
// one group. The aggregate stage groups by them; a timeline names its sites
// with them.

/// What samples are grouped by.
public enum GroupBy: String, Sendable, CaseIterable, Codable {
    /// The allocation site's `file:line` (tracemalloc's `lineno`).
    case line
    /// The allocation site's function.
    case function
    /// The allocation site's source file.
    case file
    /// The module (executable or library) holding the allocation site.
    case module
    /// The whole stack.
    case traceback
}

/// What a row groups: the fields the grouping uses, the rest empty.
public struct GroupKey: Sendable, Hashable {
    /// Source file (line and file groupings).
    public var file: String = ""
    /// Source line (line grouping).
    public var line: Int = 0
    /// Function (function grouping, and line grouping of code without line info).
    public var function: String = ""
    /// Module path (module grouping, and code without line info).
    public var module: String = ""
    /// The whole stack, innermost first (traceback grouping).
    public var stack: [Frame] = []

    public init(file: String = "", line: Int = 0, function: String = "", module: String = "", stack: [Frame] = []) {
        self.file = file
        self.line = line
        self.function = function
        self.module = module
        self.stack = stack
    }

    /// The key of `frame` under `groupBy` (not for traceback).
    public init(_ frame: Frame, by groupBy: GroupBy) {
        switch groupBy {
        case .line:
            if frame.hasSourceLocation {
                self.init(file: frame.file, line: frame.line)
            } else {
                self.init(function: frame.function, module: frame.module)
            }
        case .function: self.init(function: frame.function)
        case .file:
            if frame.file.isEmpty { self.init(module: frame.module) } else { self.init(file: frame.file) }
        case .module: self.init(module: frame.module)
        case .traceback: self.init(stack: [frame])
        }
    }

    /// One line naming the group (`file:line`, a function, a file, a module, or the allocation site of a stack).
    public var label: String {
        if let top = stack.first { return top.location }
        if !file.isEmpty { return line > 0 ? "\(file):\(line)" : file }
        if !function.isEmpty { return function }
        if !module.isEmpty { return module }
        return "<unknown>"
    }

    /// Total order used as the last tie-breaker.
    static func ordered(_ a: GroupKey, _ b: GroupKey) -> Bool {
        if a.label != b.label { return a.label < b.label }
        if (a.file, a.line, a.function, a.module) != (b.file, b.line, b.function, b.module) {
            return (a.file, a.line, a.function, a.module) < (b.file, b.line, b.function, b.module)
        }
        return a.stack.lexicographicallyPrecedes(b.stack)
    }
}
