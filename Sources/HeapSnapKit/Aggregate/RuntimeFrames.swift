// Attribution to the program's own code: frames of language runtimes and
// standard libraries are skipped at the top of stacks, the way allocator
// frames are, so a row names the first frame the program itself wrote. In
// stacks with Python frames, the interpreter's own native frames (the glue
// between Python frames: _PyEval_Vector, PyObject_Call, pymain_run_file, …)
// are dropped everywhere, which leaves Python frames, C-extension frames and
// the program's native code.

/// Which frames belong to a language runtime or standard library.
///
/// Patterns are shell globs (`*` crosses `/`): module patterns are tested
/// against the module's file name, file patterns against the source file,
/// function patterns against the demangled name.
public struct RuntimeFrames: Sendable, Hashable {
    public var modules: [String]
    public var files: [String]
    public var functions: [String]
    /// Module file names of interpreters whose frames are glue between Python frames.
    public var interpreters: [String]

    public init(modules: [String] = RuntimeFrames.defaultModules, files: [String] = RuntimeFrames.defaultFiles,
                functions: [String] = RuntimeFrames.defaultFunctions, interpreters: [String] = RuntimeFrames.defaultInterpreters) {
        self.modules = modules
        self.files = files
        self.functions = functions
        self.interpreters = interpreters
    }

    /// CPython and its standard extension modules (lib-dynload: _json, _pickle, …), the C and
    /// C++ runtimes, the loader, Swift's runtime and core libraries. A pattern with a `/` is
    /// tested against the module's whole path.
    public static let defaultModules: [String] = [
        "libpython*", "python", "python2*", "python3*", "*/lib/python3.*/lib-dynload/*", "*/lib/python2.*/lib-dynload/*",
        "libc.so*", "libc-*.so", "libm.so*", "libpthread*.so*", "ld-linux*.so*", "libdl.so*",
        "libstdc++.so*", "libc++.so*", "libc++abi.so*", "libgcc_s.so*",
        "libswiftCore.so", "libswift_*.so", "libswiftDispatch.so", "libdispatch.so", "libFoundation*.so", "libBlocksRuntime.so",
    ]

    /// Sources of standard libraries: system headers (C++ templates inlined into the program),
    /// Swift's and Rust's standard libraries, Python's standard library and frozen modules.
    public static let defaultFiles: [String] = [
        "/usr/include/*", "/usr/lib/gcc/*/include/*", "/usr/lib/llvm-*/include/*",
        "*/swift/stdlib/public/*", "/rustc/*",
        "*/lib/python3.*/*", "*/lib/python2.*/*", "<frozen *>",
    ]

    /// Swift standard-library code specialised into the program's own module.
    public static let defaultFunctions: [String] = [
        "Swift.*", "static Swift.*", "(extension in Swift)*", "protocol witness for Swift.*", "closure #* in Swift.*",
        "*specialization <*> of Swift.*", "*specialization <*> of static Swift.*", "*specialization <*> of (extension in Swift)*",
    ]

    public static let defaultInterpreters: [String] = ["libpython*", "python", "python2*", "python3*"]

    /// Third-party Python packages are not the standard library.
    private static let notRuntimeFiles = [Glob("*/site-packages/*"), Glob("*/dist-packages/*")]

    /// Whether `frame` is runtime code.
    public func matches(_ frame: Frame) -> Bool {
        Compiled(self).isRuntime(frame)
    }

    private struct Compiled {
        let modules, files, functions, interpreters: [Glob]

        init(_ r: RuntimeFrames) {
            modules = r.modules.map(Glob.init)
            files = r.files.map(Glob.init)
            functions = r.functions.map(Glob.init)
            interpreters = r.interpreters.map(Glob.init)
        }

        func isRuntime(_ frame: Frame) -> Bool {
            if !frame.file.isEmpty, files.contains(where: { $0.matches(frame.file) }) {
                return !RuntimeFrames.notRuntimeFiles.contains { $0.matches(frame.file) }
            }
            if frame.module != PythonFrame.module, !frame.module.isEmpty,
               modules.contains(where: { $0.matches($0.pattern.contains("/") ? frame.module : frame.moduleName) }) { return true }
            return functions.contains { $0.matches(frame.function) }
        }

        func isInterpreter(_ frame: Frame) -> Bool {
            frame.module != PythonFrame.module && !frame.module.isEmpty
                && interpreters.contains { $0.matches(frame.moduleName) }
        }
    }

    /// `profile` with runtime frames skipped: at the top of every stack while
    /// a frame of the program's own code lies further out (a stack made only
    /// of runtime frames is kept whole), and, in stacks with Python frames,
    /// the interpreter's native frames everywhere.
    ///
    /// - Complexity: O(frames × patterns + total stack depth).
    public func trim(_ profile: Profile) -> Profile {
        let compiled = Compiled(self)
        let runtime = profile.frames.map(compiled.isRuntime)
        let interpreter = profile.frames.map(compiled.isInterpreter)
        let python = profile.frames.map { $0.module == PythonFrame.module }
        var result = profile
        for i in result.samples.indices {
            var frames = result.samples[i].frames
            if frames.contains(where: { python[$0] }) {
                let kept = frames.filter { !interpreter[$0] }
                if !kept.isEmpty { frames = kept }
            }
            if let own = frames.firstIndex(where: { !runtime[$0] }), own > 0 {
                frames.removeFirst(own)
            }
            result.samples[i].frames = frames
        }
        return result
    }
}
