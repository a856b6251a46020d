// The symbolize stage: turns a raw `Snapshot` into a symbolized `Profile`.
//
// Three small protocols keep it testable: an `AddressSymbolizer` names ELF
// addresses in object files (llvm-symbolizer in production, a table in tests),
// a `ModuleLocator` decides which object file on this host may be used for a
// module of the snapshot (build-id checked), and a `Demangler` turns Swift
// symbol names into source names. `ProfileSymbolizer` drives them: each
// distinct address is symbolized once, inlined frames become frames of their
// own, and a module that cannot be trusted gets one warning and
// `module+0xADDR` frames instead of names.

/// An address to name: an object file and an ELF virtual address inside it.
public struct SymbolRequest: Sendable, Hashable {
    /// Path of the ELF file (executable, library, or separate debug file) to read.
    public var objectPath: String
    /// ELF virtual address (`Module.elfAddress(of:)`), already moved into the call instruction.
    public var address: UInt64

    public init(objectPath: String, address: UInt64) {
        self.objectPath = objectPath
        self.address = address
    }
}

/// One source frame as a symbolizer reports it.
public struct SymbolizedFrame: Sendable, Hashable {
    /// Function name, possibly still mangled (Swift); empty when unknown.
    public var function: String
    /// Source file; empty when unknown.
    public var file: String
    /// Source line; 0 when unknown.
    public var line: Int
    /// Source column; 0 when unknown.
    public var column: Int

    public init(function: String, file: String = "", line: Int = 0, column: Int = 0) {
        self.function = function
        self.file = file
        self.line = line
        self.column = column
    }
}

/// Names addresses in object files.
public protocol AddressSymbolizer {
    /// For each request, its frames innermost (most deeply inlined) first and
    /// the real (outermost) function last; an empty array when nothing is known.
    ///
    /// Recoverable trouble (a file it cannot read) yields empty results, not an error.
    func symbolize(_ requests: [SymbolRequest]) -> [[SymbolizedFrame]]
}

/// The object file to symbolize a module with, or why there is none.
public struct ModuleLocation: Sendable, Hashable {
    /// The file to give the symbolizer; nil when the module's frames stay unnamed.
    public var objectPath: String?
    /// One line explaining why the module is not symbolized (nil when fine or not worth a warning).
    public var warning: String?
    /// A short status for `info`: "ok", "debug file", "missing", "build-id mismatch", "no file".
    public var status: String

    public init(objectPath: String?, warning: String? = nil, status: String) {
        self.objectPath = objectPath
        self.warning = warning
        self.status = status
    }
}

/// Decides which file on this host stands for a module of a snapshot.
public protocol ModuleLocator {
    /// Where to find `module`'s code and symbols, checked against its build-id.
    func locate(_ module: Module) -> ModuleLocation
}

/// Turns mangled names into readable ones.
public protocol Demangler {
    /// The demangled `name`, or `name` itself when it is not mangled.
    func demangle(_ name: String) -> String
}

/// Builds a `Profile` from a `Snapshot`: locate modules, symbolize each
/// distinct address once, expand inlined frames, demangle.
public struct ProfileSymbolizer {
    /// Names addresses; nil means no symbolizer is available (every frame is `module+0xADDR`).
    public var symbolizer: (any AddressSymbolizer)?
    /// Finds object files for modules.
    public var locator: any ModuleLocator
    /// Demangles what the symbolizer left mangled (Swift names).
    public var demangler: any Demangler

    public init(symbolizer: (any AddressSymbolizer)?, locator: any ModuleLocator, demangler: any Demangler = SwiftDemangler()) {
        self.symbolizer = symbolizer
        self.locator = locator
        self.demangler = demangler
    }

    /// The symbolized profile of `snapshot`; `file` names it in the output.
    ///
    /// - Complexity: O(stacks × depth × log modules) plus one symbolizer
    ///   request per distinct address.
    public func profile(of snapshot: Snapshot, file: String) -> Profile {
        var warnings: [String] = []
        let modules = snapshot.modules.enumerated().sorted { $0.element.start < $1.element.start }
        let starts = modules.map(\.element.start)
        let locations: [ModuleLocation] = snapshot.modules.map { locator.locate($0) }
        for location in locations {
            if let warning = location.warning, !warnings.contains(warning) { warnings.append(warning) }
        }
        if let warning = snapshot.python?.reuseWarning { warnings.append(warning) }
        if symbolizer == nil, locations.contains(where: { $0.objectPath != nil }) {
            warnings.append("no llvm-symbolizer found (set HEAPSNAP_SYMBOLIZER or install llvm); frames are shown as module+0xADDR")
        }

        // Which module holds an address: binary search on the sorted starts.
        func moduleIndex(of address: UInt64) -> Int? {
            var low = 0, high = starts.count
            while low < high {
                let mid = (low + high) / 2
                if starts[mid] <= address { low = mid + 1 } else { high = mid }
            }
            guard low > 0 else { return nil }
            let candidate = modules[low - 1]
            return candidate.element.contains(address) ? candidate.offset : nil
        }

        // Distinct addresses, in first-seen order (deterministic requests).
        var addressSlot: [UInt64: Int] = [:]
        var addresses: [UInt64] = []
        for stack in snapshot.stacks {
            for address in stack.frames where addressSlot[address] == nil {
                addressSlot[address] = addresses.count
                addresses.append(address)
            }
        }

        // Requests for the addresses in usable modules.
        var requests: [SymbolRequest] = []
        var requestOf = [Int](repeating: -1, count: addresses.count)
        var owner = [Int](repeating: -1, count: addresses.count)
        for (slot, address) in addresses.enumerated() where PythonFrame.decode(address) == nil {
            // A return address points after the call; step back into it.
            let pc = address == 0 ? 0 : address - 1
            guard let m = moduleIndex(of: pc) else { continue }
            owner[slot] = m
            if symbolizer != nil, let path = locations[m].objectPath {
                requestOf[slot] = requests.count
                requests.append(SymbolRequest(objectPath: path, address: snapshot.modules[m].elfAddress(of: pc)))
            }
        }
        let answers = requests.isEmpty ? [] : (symbolizer?.symbolize(requests) ?? [])

        // Frames per address, interned.
        var frames: [Frame] = []
        var frameIndex: [Frame: Int] = [:]
        func intern(_ frame: Frame) -> Int {
            if let i = frameIndex[frame] { return i }
            frames.append(frame)
            frameIndex[frame] = frames.count - 1
            return frames.count - 1
        }
        var demangled: [String: String] = [:]
        var framesOfSlot: [[Int]] = []
        framesOfSlot.reserveCapacity(addresses.count)
        let pythonFunctions = snapshot.python?.functions ?? []
        for (slot, address) in addresses.enumerated() {
            if let python = PythonFrame.decode(address) {
                // The reader checked the index; a frame names its function's file and line.
                let function = pythonFunctions[python.function]
                framesOfSlot.append([intern(Frame(function: function.name, file: function.file, line: python.line,
                                                  module: PythonFrame.module))])
                continue
            }
            let pc = address == 0 ? 0 : address - 1
            guard owner[slot] >= 0 else {
                framesOfSlot.append([intern(Frame(function: "0x" + hex(pc)))])
                continue
            }
            let module = snapshot.modules[owner[slot]]
            let fallback = baseName(module.path) + "+0x" + hex(module.elfAddress(of: pc))
            let answer = requestOf[slot] >= 0 && requestOf[slot] < answers.count ? answers[requestOf[slot]] : []
            let known = answer.filter { !$0.function.isEmpty || !$0.file.isEmpty }
            if known.isEmpty {
                framesOfSlot.append([intern(Frame(function: fallback, module: module.path))])
                continue
            }
            var indices: [Int] = []
            for (i, symbol) in known.enumerated() {
                var name = fallback
                if !symbol.function.isEmpty {
                    if let cached = demangled[symbol.function] {
                        name = cached
                    } else {
                        name = demangler.demangle(symbol.function)
                        demangled[symbol.function] = name
                    }
                }
                indices.append(intern(Frame(function: name, file: symbol.file, line: symbol.line, column: symbol.column,
                                            module: module.path, inlined: i < known.count - 1)))
            }
            framesOfSlot.append(indices)
        }

        var samples: [Sample] = []
        samples.reserveCapacity(snapshot.records.count)
        var totals = Values.zero
        for record in snapshot.records {
            let values = Values(record)
            totals += values
            guard record.stack >= 0, record.stack < snapshot.stacks.count else { continue }
            let stack = snapshot.stacks[record.stack]
            var indices: [Int] = []
            indices.reserveCapacity(stack.frames.count * 2)
            for address in stack.frames { indices += framesOfSlot[addressSlot[address]!] }
            samples.append(Sample(frames: indices, values: values, truncated: stack.truncated))
        }
        let source = ProfileSource(file: file, header: snapshot.header, modules: snapshot.modules, totals: totals)
        return Profile(frames: frames, samples: samples, source: source, warnings: warnings)
    }
}
