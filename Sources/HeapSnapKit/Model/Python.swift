// Python frames in snapshots: what the shim read from a CPython interpreter.
//
// In a Python process the shim replaces each native activation of the
// interpreter's eval loop by the Python frames it ran. Such a frame is not an
// address: it is a tagged value (top byte 0xF1) holding an index into the
// file's table of Python functions (the `PYTH` record) and a line number.
// The symbolize stage turns it into an ordinary `Frame` (qualified name,
// file, line), so every later stage handles Python like native code.

/// What the shim knew of the process's CPython interpreter (`PYTH`).
public struct PythonInfo: Sendable, Hashable {
    /// Whether the shim read Python frames.
    public enum Status: UInt32, Sendable {
        /// A CPython the shim knows: stacks hold Python frames.
        case frames = 1
        /// A CPython the shim does not know (another version, a debug or free-threaded build): native frames only.
        case unsupported = 2
    }

    /// How the shim saw the interpreter's own allocator (pymalloc).
    public struct Flags: OptionSet, Sendable, Hashable {
        public let rawValue: UInt32
        public init(rawValue: UInt32) { self.rawValue = rawValue }
        /// The MEM and OBJ allocator domains were wrapped: pymalloc's objects were sampled.
        public static let wrapped = Flags(rawValue: 1 << 0)
        /// The domains already used malloc (`PYTHONMALLOC=malloc`): the malloc hooks saw every object.
        public static let usesMalloc = Flags(rawValue: 1 << 1)
        /// The interpreter's free lists of lists, dicts, tuples and floats were kept empty while
        /// sampling: every such object is a fresh allocation, charged to the line that created it.
        public static let freeListsOff = Flags(rawValue: 1 << 2)
        /// HEAPSNAP_NATIVE=inner: on threads running Python, only the natives below the
        /// innermost Python frame were walked (no interpreter frames between Python frames,
        /// none below the outermost).
        public static let nativeInner = Flags(rawValue: 1 << 3)
        /// HEAPSNAP_NATIVE=none: threads running Python recorded their Python frames only
        /// (no native walk), as tracemalloc and memray record them.
        public static let nativeNone = Flags(rawValue: 1 << 4)
    }

    public var status: Status
    /// The running version as `PY_VERSION_HEX` (0x030B02F0 is 3.11.2).
    public var version: UInt32
    public var flags: Flags
    /// One line from the shim, e.g. "CPython 3.11.2: Python frames".
    public var note: String
    /// The functions Python frames index, in file order.
    public var functions: [PythonFunction]

    public init(status: Status, version: UInt32, flags: Flags = [], note: String, functions: [PythonFunction] = []) {
        self.status = status
        self.version = version
        self.flags = flags
        self.note = note
        self.functions = functions
    }

    /// One line when objects the interpreter reused from its free lists may be charged to the
    /// line that first allocated their memory rather than the line that created them
    /// (tracemalloc's answer): the shim could not keep the free lists empty for this snapshot.
    public var reuseWarning: String? {
        if flags.contains(.freeListsOff) { return nil }
        let why = status == .frames
            ? "the free lists were not kept empty in this session (HEAPSNAP_PYTHON_FREE_LISTS=keep, a snapshot of an older heapsnap, or a main thread that never ran Python code while sampling)"
            : "this interpreter is not one heapsnap knows (\(note))"
        return "Python lists, dicts, tuples and floats reused from the interpreter's free lists are charged to the line that first allocated their memory, not the line that created them: \(why)"
    }

    /// "3.11.2".
    public var versionString: String {
        "\(version >> 24).\((version >> 16) & 0xFF).\((version >> 8) & 0xFF)"
    }
}

/// A Python function as a code object names it.
public struct PythonFunction: Sendable, Hashable {
    /// `co_qualname`: `Cache.store`, `main.<locals>.<lambda>`.
    public var name: String
    /// `co_filename`, as the interpreter saw it.
    public var file: String
    /// `co_firstlineno`: the line of the `def`.
    public var firstLine: UInt32

    public init(name: String, file: String, firstLine: UInt32) {
        self.name = name
        self.file = file
        self.firstLine = firstLine
    }
}

/// The encoding of a Python frame in a stack (FORMAT.md, `PYTH`).
public enum PythonFrame {
    /// The top byte of every Python frame; user-space return addresses never have it.
    public static let tag: UInt64 = 0xF1
    /// The largest line a frame can carry.
    public static let maxLine = 0xFF_FFFF

    /// The function index and line of a Python frame, nil for an address.
    public static func decode(_ frame: UInt64) -> (function: Int, line: Int)? {
        guard frame >> 56 == tag else { return nil }
        return (Int((frame >> 24) & 0xFFFF_FFFF), Int(frame & 0xFF_FFFF))
    }

    /// The frame for line `line` of function `function`.
    public static func encode(function: Int, line: Int) -> UInt64 {
        tag << 56 | UInt64(UInt32(truncatingIfNeeded: function)) << 24 | UInt64(min(max(line, 0), maxLine))
    }

    /// The module name Python frames carry in a `Profile` (`--by module`).
    public static let module = "[python]"
}
