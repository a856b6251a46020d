// Trimming allocator frames: the frames of the shim, the unwinder, malloc
// wrappers and allocation helpers are removed from the top of every stack,
// so the first frame left is the allocation site in the program's own code.

/// Which frames count as "the allocator" and are trimmed from the top of stacks.
///
/// A pattern is a shell glob (`fnmatch`, `*` matches any characters including
/// `/` and `::`) tested against the frame's demangled function name and
/// against its module's file name (`libunwind.so*`).
public struct AllocatorFrames: Sendable, Hashable {
    /// The patterns in use.
    public var patterns: [String]

    public init(patterns: [String] = AllocatorFrames.defaultPatterns) {
        self.patterns = patterns
    }

    /// Glob patterns for allocator frames of C, C++, Swift, Python, GLib and common allocators.
    public static let defaultPatterns: [String] = [
        // heapsnap's own shim and the unwinder it calls.
        "libheapsnap_preload.so*", "libheapsnap.so*", "heapsnap_*", "libunwind.so*", "libunwind-*.so*", "_ULx86_64_*", "_Ux86_64_*", "unw_*",
        // The C allocation functions and glibc's internals.
        "malloc", "calloc", "realloc", "reallocarray", "free", "memalign", "posix_memalign", "aligned_alloc",
        "valloc", "pvalloc", "__libc_*", "__GI___libc_*", "_int_malloc", "_int_realloc", "_int_memalign", "tcache_*",
        "_mid_memalign", "__posix_memalign", "strdup", "__strdup", "strndup", "__strndup",
        // C++: operator new and the standard allocators.
        "operator new*", "std::allocator<*", "std::__new_allocator<*", "__gnu_cxx::new_allocator<*",
        "std::allocator_traits<*", "std::__allocate_at_least*", "std::__libcpp_allocate*", "std::__1::allocator<*",
        "std::__1::allocator_traits<*", "std::_Vector_base<*>::_M_allocate*", "std::__cxx11::basic_string<*>::_M_create*",
        "__cxa_allocate_exception",
        // Swift runtime allocation entry points.
        "swift_allocObject", "swift_slowAlloc", "swift::swift_slowAlloc*", "_swift_allocObject_*", "swift_allocBox",
        "swift_allocEmptyBox", "swift_allocateGenericClassMetadata*", "swift::swift_allocObject*",
        // CPython's allocator API.
        "PyMem_*", "_PyMem_*", "PyObject_Malloc", "PyObject_Calloc", "PyObject_Realloc", "_PyObject_*", "pymalloc_*",
        "PyObject_GC_New*", "PyObject_GC_Resize*", "gc_alloc",
        // GLib.
        "g_malloc*", "g_malloc0*", "g_realloc*", "g_try_malloc*", "g_try_realloc*", "g_slice_alloc*", "g_memdup*", "g_strdup*",
        // jemalloc, tcmalloc, mimalloc.
        "je_*", "tc_*", "tcmalloc::*", "mi_malloc*", "mi_calloc*", "mi_realloc*", "_mi_*",
        // Wrappers of well-known servers: Redis/Valkey zmalloc, nginx, PostgreSQL memory contexts.
        "zmalloc*", "zcalloc*", "zrealloc*", "ztrymalloc*", "ztrycalloc*", "ztryrealloc*", "zstrdup",
        "ngx_alloc", "ngx_calloc", "ngx_palloc*", "ngx_pnalloc", "ngx_pcalloc", "ngx_pmemalign",
        "palloc", "palloc0", "palloc_extended", "repalloc", "MemoryContextAlloc*", "AllocSetAlloc*",
    ]

    /// Whether `frame` is an allocator frame.
    public func matches(_ frame: Frame) -> Bool {
        let compiled = patterns.map(Glob.init)
        return Self.matches(frame, compiled)
    }

    private static func matches(_ frame: Frame, _ globs: [Glob]) -> Bool {
        let module = frame.moduleName
        for glob in globs {
            if glob.matches(frame.function) { return true }
            if !module.isEmpty, glob.matches(module) { return true }
        }
        return false
    }

    /// `profile` with allocator frames removed from the top of every stack.
    /// A stack made only of allocator frames keeps its outermost frame.
    ///
    /// - Complexity: O(frames × patterns + samples).
    public func trim(_ profile: Profile) -> Profile {
        guard !patterns.isEmpty else { return profile }
        let globs = patterns.map(Glob.init)
        let isAllocator = profile.frames.map { Self.matches($0, globs) }
        var result = profile
        for i in result.samples.indices {
            let frames = result.samples[i].frames
            var first = 0
            while first < frames.count - 1, isAllocator[frames[first]] { first += 1 }
            if first > 0 { result.samples[i].frames = Array(frames[first...]) }
        }
        return result
    }
}
