// The trimming stage: a Profile in, the same Profile with allocator frames
// (AllocatorFrames) and then, unless kept, the frames of language runtimes
// (RuntimeFrames) cut from the top of every stack. Every question goes
// through it first (ProfileQuery.trimming), so top, diff, flamegraph, export,
// timeline and the web view name the same allocation site.

/// Which frames are cut from the top of stacks.
public struct Trimming: Sendable, Hashable {
    /// Trim allocator frames (malloc wrappers, `operator new`, `PyMem_*`, …).
    public var allocatorFrames: Bool
    /// Extra allocator-frame globs, added to `AllocatorFrames.defaultPatterns`.
    public var extraAllocatorPatterns: [String]
    /// Skip frames of language runtimes and standard libraries (`RuntimeFrames`).
    public var runtimeFrames: Bool

    public init(allocatorFrames: Bool = true, extraAllocatorPatterns: [String] = [], runtimeFrames: Bool = true) {
        self.allocatorFrames = allocatorFrames
        self.extraAllocatorPatterns = extraAllocatorPatterns
        self.runtimeFrames = runtimeFrames
    }

    /// The allocator frames these settings trim (none when `allocatorFrames` is off).
    public var allocator: AllocatorFrames {
        AllocatorFrames(patterns: allocatorFrames ? AllocatorFrames.defaultPatterns + extraAllocatorPatterns : [])
    }

    /// `profile` with allocator frames, then runtime frames, trimmed.
    /// - Complexity: O(samples × depth).
    public func apply(_ profile: Profile) -> Profile {
        let trimmed = allocator.trim(profile)
        return runtimeFrames ? RuntimeFrames().trim(trimmed) : trimmed
    }
}
