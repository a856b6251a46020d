// What the filter stage keeps and what it did: tracemalloc's `Filter` as a
// value (the stage that applies it is Aggregate/ProfileFilter.swift), and the
// record a filtered profile keeps of it for the report header.

/// Include/exclude globs over a profile's samples.
public struct ProfileFilter: Sendable, Hashable {
    /// Keep only samples matching one of these globs (all kept when empty).
    public var include: [String]
    /// Drop samples matching one of these globs.
    public var exclude: [String]
    /// Test every frame of the stack, not only the allocation site (tracemalloc's `all_frames`).
    public var allFrames: Bool

    /// A glob matches a frame's file path or file name, or its module's path or file name.
    public init(include: [String] = [], exclude: [String] = [], allFrames: Bool = false) {
        self.include = include
        self.exclude = exclude
        self.allFrames = allFrames
    }

    /// Whether this filter keeps every sample.
    public var keepsEverything: Bool { include.isEmpty && exclude.isEmpty }
}

/// What the filter stage did to a profile: the filter and how many samples there were before it.
public struct Filtering: Sendable, Hashable {
    /// The filter applied.
    public var filter: ProfileFilter
    /// Samples before filtering (both sides of a diff).
    public var samplesBefore: Int
}
