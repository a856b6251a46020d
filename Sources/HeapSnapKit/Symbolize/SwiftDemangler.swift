// Swift symbol names, demangled by the runtime's own `swift_demangle`
// (exported by libswiftCore, which this tool links anyway). llvm-symbolizer
// demangles C++ itself but leaves Swift's `$s…` names alone.

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

@_silgen_name("swift_demangle")
private func _swift_demangle(
    _ mangledName: UnsafePointer<CChar>?, _ mangledNameLength: Int,
    _ outputBuffer: UnsafeMutablePointer<CChar>?, _ outputBufferSize: UnsafeMutablePointer<Int>?,
    _ flags: UInt32
) -> UnsafeMutablePointer<CChar>?

/// Demangles Swift names (`$s…`, `$S…`, `$e…`, `_T0…`, with or without a leading `_`).
public struct SwiftDemangler: Demangler {
    public init() {}

    /// Whether `name` looks like a mangled Swift symbol.
    public static func isSwiftMangled(_ name: String) -> Bool {
        let n = name.hasPrefix("_$") ? name.dropFirst() : Substring(name)
        return n.hasPrefix("$s") || n.hasPrefix("$S") || n.hasPrefix("$e") || n.hasPrefix("_T0")
    }

    public func demangle(_ name: String) -> String {
        guard Self.isSwiftMangled(name) else { return name }
        var name = name
        return name.withUTF8 { utf8 in
            utf8.withMemoryRebound(to: CChar.self) { chars in
                guard let out = _swift_demangle(chars.baseAddress, chars.count, nil, nil, 0) else { return String(decoding: utf8, as: UTF8.self) }
                defer { free(out) }
                return String(cString: out)
            }
        }
    }
}
