// tracemalloc's `Filter`: keep or drop samples by glob on the allocation
// site's file or module (or on any frame's). Shared by `top`, `diff`,
// `flamegraph` and `export`, so every view of a snapshot filters alike.

/// Include/exclude globs over a profile's samples.
public struct SampleFilter: Sendable {
    private let includes: [Glob]
    private let excludes: [Glob]
    private let allFrames: Bool

    /// Keeps samples matching one of `include` (all when empty) and none of
    /// `exclude`; `allFrames` tests every frame instead of the allocation site only.
    public init(include: [String] = [], exclude: [String] = [], allFrames: Bool = false) {
        includes = include.map(Glob.init)
        excludes = exclude.map(Glob.init)
        self.allFrames = allFrames
    }

    /// Whether `sample` of `profile` passes.
    public func accepts(_ sample: Sample, in profile: Profile) -> Bool {
        if includes.isEmpty && excludes.isEmpty { return true }
        let frames = (allFrames ? sample.frames[...] : sample.frames.prefix(1)).map { profile.frames[$0] }
        if !includes.isEmpty, !frames.contains(where: { Self.matches($0, includes) }) { return false }
        if !excludes.isEmpty, frames.contains(where: { Self.matches($0, excludes) }) { return false }
        return true
    }

    private static func matches(_ frame: Frame, _ globs: [Glob]) -> Bool {
        globs.contains { g in
            (!frame.file.isEmpty && (g.matches(frame.file) || g.matches(baseName(frame.file))))
                || (!frame.module.isEmpty && (g.matches(frame.module) || g.matches(frame.moduleName)))
        }
    }
}
