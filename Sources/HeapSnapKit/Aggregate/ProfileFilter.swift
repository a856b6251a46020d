// The filter stage, tracemalloc's `Filter`: a Profile in, the same Profile
// without the samples whose allocation site's file or module (or any frame's)
// the globs reject out. The filter itself is a Model value
// (Model/Filtering.swift). Every question applies it after trimming and the
// diff (`ProfileQuery.result`), so top, diff, flamegraph, export and the web
// view filter alike; the profile remembers what was applied for the report header.

extension ProfileFilter {
    /// `profile` with only the samples this filter accepts; the frame table is
    /// unchanged. Records itself and the sample count before it in `filtering`.
    ///
    /// - Complexity: O(samples × globs), × depth with `allFrames`.
    public func apply(_ profile: Profile) -> Profile {
        guard !keepsEverything else { return profile }
        let includes = include.map(Glob.init), excludes = exclude.map(Glob.init)
        var result = profile
        result.samples = profile.samples.filter { Self.accepts($0, in: profile, includes, excludes, allFrames) }
        result.filtering = Filtering(filter: self, samplesBefore: profile.filtering?.samplesBefore ?? profile.samples.count)
        return result
    }

    /// Whether `sample` of `profile` passes.
    public func accepts(_ sample: Sample, in profile: Profile) -> Bool {
        keepsEverything || Self.accepts(sample, in: profile, include.map(Glob.init), exclude.map(Glob.init), allFrames)
    }

    private static func accepts(_ sample: Sample, in profile: Profile, _ includes: [Glob], _ excludes: [Glob], _ allFrames: Bool) -> Bool {
        let frames = (allFrames ? sample.frames[...] : sample.frames.prefix(1)).map { profile.frames[$0] }
        if !includes.isEmpty, !frames.contains(where: { matches($0, includes) }) { return false }
        if !excludes.isEmpty, frames.contains(where: { matches($0, excludes) }) { return false }
        return true
    }

    private static func matches(_ frame: Frame, _ globs: [Glob]) -> Bool {
        globs.contains { g in
            (!frame.file.isEmpty && (g.matches(frame.file) || g.matches(baseName(frame.file))))
                || (!frame.module.isEmpty && (g.matches(frame.module) || g.matches(frame.moduleName)))
        }
    }
}
