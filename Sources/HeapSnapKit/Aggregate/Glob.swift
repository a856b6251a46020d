// Shell-style globs, as the trim stage (AllocatorFrames) and the filter stage
// (ProfileFilter) match frames' functions, files and modules with them.

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// A shell-style glob (`fnmatch` without flags: `*` crosses `/`), with a
/// literal-prefix check first so that most mismatches cost a few byte compares.
struct Glob: Sendable, Hashable {
    let pattern: String
    let prefix: String
    let literal: Bool

    init(_ pattern: String) {
        self.pattern = pattern
        let wildcard = pattern.firstIndex { $0 == "*" || $0 == "?" || $0 == "[" || $0 == "\\" }
        prefix = String(pattern[..<(wildcard ?? pattern.endIndex)])
        literal = wildcard == nil
    }

    func matches(_ text: String) -> Bool {
        if literal { return text == pattern }
        guard text.utf8.starts(with: prefix.utf8) else { return false }
        return fnmatch(pattern, text, 0) == 0
    }
}
