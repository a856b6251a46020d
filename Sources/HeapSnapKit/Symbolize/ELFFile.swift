// Reads the one thing the tool needs from an ELF file on disk: its GNU
// build-id note. Works on 32- and 64-bit little- and big-endian files; reads
// only the headers and note segments/sections, never the whole file.

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Minimal ELF inspection.
public enum ELFFile {
    /// The `NT_GNU_BUILD_ID` note of the file at `path`; nil when the file
    /// cannot be read, is not ELF, or has no build-id.
    public static func buildID(path: String) -> [UInt8]? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { return nil }
        let size = UInt64(st.st_size)

        func read(_ offset: UInt64, _ count: Int) -> [UInt8]? {
            guard count >= 0, count <= 1 << 20, offset <= size, UInt64(count) <= size - offset else { return nil }
            var bytes = [UInt8](repeating: 0, count: count)
            var done = 0
            while done < count {
                let n = bytes.withUnsafeMutableBytes { buffer in
                    pread(fd, buffer.baseAddress! + done, count - done, off_t(offset) + off_t(done))
                }
                if n < 0, errno == EINTR { continue }
                guard n > 0 else { return nil }
                done += n
            }
            return bytes
        }

        guard let ident = read(0, 64), ident.count >= 52, ident[0] == 0x7F, ident[1] == 0x45, ident[2] == 0x4C, ident[3] == 0x46
        else { return nil }
        let is64 = ident[4] == 2
        let little = ident[5] != 2
        func u16(_ b: [UInt8], _ o: Int) -> UInt64 {
            little ? UInt64(b[o]) | UInt64(b[o + 1]) << 8 : UInt64(b[o + 1]) | UInt64(b[o]) << 8
        }
        func u32(_ b: [UInt8], _ o: Int) -> UInt64 {
            little ? u16(b, o) | u16(b, o + 2) << 16 : u16(b, o + 2) | u16(b, o) << 16
        }
        func u64(_ b: [UInt8], _ o: Int) -> UInt64 {
            little ? u32(b, o) | u32(b, o + 4) << 32 : u32(b, o + 4) | u32(b, o) << 32
        }
        func word(_ b: [UInt8], _ o: Int) -> UInt64 { is64 ? u64(b, o) : u32(b, o) }

        func findNote(_ bytes: [UInt8]) -> [UInt8]? {
            var o = 0
            while o + 12 <= bytes.count {
                let nameSize = Int(u32(bytes, o)), descSize = Int(u32(bytes, o + 4)), type = u32(bytes, o + 8)
                let nameStart = o + 12
                let descStart = nameStart + (nameSize + 3) & ~3
                let next = descStart + (descSize + 3) & ~3
                guard nameSize >= 0, descSize >= 0, descStart + descSize <= bytes.count else { return nil }
                if type == 3, nameSize == 4, bytes[nameStart..<nameStart + 4] == [0x47, 0x4E, 0x55, 0] {
                    return Array(bytes[descStart..<descStart + descSize])
                }
                o = next
            }
            return nil
        }

        // Program headers: PT_NOTE segments.
        let phoff = word(ident, is64 ? 32 : 28)
        let phentsize = Int(u16(ident, is64 ? 54 : 42)), phnum = Int(u16(ident, is64 ? 56 : 44))
        if phnum > 0, phentsize >= (is64 ? 56 : 32), let table = read(phoff, phentsize * phnum) {
            for i in 0..<phnum {
                let e = i * phentsize
                guard u32(table, e) == 4 else { continue }  // PT_NOTE
                let offset = is64 ? u64(table, e + 8) : u32(table, e + 4)
                let filesz = is64 ? u64(table, e + 32) : u32(table, e + 16)
                if filesz <= 1 << 16, let notes = read(offset, Int(filesz)), let id = findNote(notes) { return id }
            }
        }
        // Section headers: SHT_NOTE sections (separate debug files).
        let shoff = word(ident, is64 ? 40 : 32)
        let shentsize = Int(u16(ident, is64 ? 58 : 46)), shnum = Int(u16(ident, is64 ? 60 : 48))
        if shnum > 0, shentsize >= (is64 ? 64 : 40), let table = read(shoff, shentsize * shnum) {
            for i in 0..<shnum {
                let e = i * shentsize
                guard u32(table, e + 4) == 7 else { continue }  // SHT_NOTE
                let offset = is64 ? u64(table, e + 24) : u32(table, e + 16)
                let filesz = is64 ? u64(table, e + 32) : u32(table, e + 20)
                if filesz <= 1 << 16, let notes = read(offset, Int(filesz)), let id = findNote(notes) { return id }
            }
        }
        return nil
    }
}

/// Finds modules' files on this host, trusting a file only when its build-id
/// matches the snapshot's; otherwise looks for a separate debug file by
/// build-id (`<dir>/.build-id/ab/cdef….debug`).
public final class FileSystemModuleLocator: ModuleLocator {
    /// Where the distribution installs separate debug files (`libc6-dbg` and the other `-dbg` packages); always searched.
    public static let systemDebugDirectory = "/usr/lib/debug"

    /// Directories searched for `.build-id/xx/yyyy.debug` files, in order: the extra ones, then the system's.
    public let debugDirectories: [String]
    private var cache: [Module: ModuleLocation] = [:]

    /// Searches `extraDebugDirectories` first, then `systemDebugDirectory`.
    public init(debugDirectories extraDebugDirectories: [String] = []) {
        debugDirectories = extraDebugDirectories + [Self.systemDebugDirectory]
    }

    public func locate(_ module: Module) -> ModuleLocation {
        var key = module
        key.start = 0; key.end = 0; key.fileOffset = 0; key.vaddr = 0
        if let hit = cache[key] { return hit }
        let result = resolve(module)
        cache[key] = result
        return result
    }

    /// The separate debug file for a build-id, when one exists.
    public func debugFile(buildID: String) -> String? {
        guard buildID.count > 2 else { return nil }
        let prefix = String(buildID.prefix(2)), rest = String(buildID.dropFirst(2))
        for dir in debugDirectories {
            let path = "\(dir)/.build-id/\(prefix)/\(rest).debug"
            if access(path, R_OK) == 0 { return path }
        }
        return nil
    }

    private func resolve(_ module: Module) -> ModuleLocation {
        let path = module.path
        if path.hasPrefix("[") { return ModuleLocation(objectPath: nil, status: "no file") }  // [vdso] and friends
        let wanted = module.buildIDHex
        var onDisk = path
        if onDisk.hasSuffix(" (deleted)") { onDisk.removeLast(" (deleted)".count) }
        let exists = access(onDisk, R_OK) == 0
        if exists {
            let found = ELFFile.buildID(path: onDisk)
            if wanted.isEmpty || found.map({ hex($0) }) == wanted {
                return ModuleLocation(objectPath: onDisk, status: "ok")
            }
        }
        if !wanted.isEmpty, let debug = debugFile(buildID: wanted) {
            return ModuleLocation(objectPath: debug, status: "debug file")
        }
        if exists {
            let found = ELFFile.buildID(path: onDisk).map { hex($0) } ?? "none"
            return ModuleLocation(
                objectPath: nil,
                warning: "\(path): build-id \(found) on disk differs from the snapshot's \(wanted) (rebuilt or upgraded since?); its frames are shown as \(baseName(path))+0xADDR",
                status: "build-id mismatch")
        }
        return ModuleLocation(
            objectPath: nil,
            warning: "\(path): file not found and no debug file for build-id \(wanted.isEmpty ? "(none)" : wanted); its frames are shown as \(baseName(path))+0xADDR",
            status: "missing")
    }
}
