// The only files the server ever reads: `*.heapsnap` files under the
// directories given with --dir. A request names a file by an id,
// "<directory index>/<path relative to it>"; anything else is refused before
// the file system is touched: absolute paths, empty, `.` or `..` components,
// NUL bytes. What is left is resolved with realpath(3) and must still lie
// inside its directory (a symlink pointing out is refused), be a regular
// file, and is opened with O_NOFOLLOW.

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import HeapSnapKit

/// A served file: its id in requests and its resolved path.
struct ServedFile: Sendable, Hashable, Comparable {
    /// "<directory index>/<relative path>", as requests name it.
    var id: String
    /// The resolved absolute path (no symlinks).
    var path: String

    static func < (a: ServedFile, b: ServedFile) -> Bool { a.id < b.id }
}

/// What identifies one version of a file: a changed file gets a new stamp, so caches keyed by it never serve stale data.
struct FileStamp: Sendable, Hashable {
    var path: String
    var size: Int64
    var modifiedNanoseconds: Int64
}

/// The directories `heapsnap serve` reads from, and the checks every request's file goes through.
struct ServedDirectories: Sendable {
    /// Resolved absolute paths, in the order given.
    let roots: [String]
    /// Largest file read (snapshots grow with distinct stacks; this is far above any real one).
    static let maximumFileSize: Int64 = 512 << 20
    /// Files listed at most (a directory full of other files must not stall the page).
    static let maximumListed = 20_000

    /// Resolves each directory; throws naming the first that is missing or not a directory.
    init(_ directories: [String]) throws(ServeError) {
        var roots: [String] = []
        for directory in directories {
            guard let resolved = Self.realPath(directory) else {
                throw .badRequest("\(directory): cannot serve it: \(String(cString: strerror(errno)))")
            }
            var st = stat()
            guard stat(resolved, &st) == 0, st.st_mode & S_IFMT == S_IFDIR else {
                throw .badRequest("\(directory): cannot serve it: not a directory")
            }
            if !roots.contains(resolved) { roots.append(resolved) }
        }
        self.roots = roots
    }

    /// The file a request names, after every check (see the file's opening comment).
    func resolve(_ id: String) throws(ServeError) -> ServedFile {
        guard !id.isEmpty, id.utf8.count <= 4096, !id.utf8.contains(0) else { throw .refusedPath(id: id, reason: "not a file id") }
        guard !id.hasPrefix("/") else { throw .refusedPath(id: id, reason: "absolute paths are not accepted; name files as DIR-INDEX/NAME") }
        guard let slash = id.firstIndex(of: "/"), let index = Int(id[..<slash]), roots.indices.contains(index),
              id[..<slash].allSatisfy(\.isASCII) else {
            throw .refusedPath(id: id, reason: "not under a served directory (ids look like 0/heapsnap.PID.SEQ.heapsnap)")
        }
        let relative = id[id.index(after: slash)...]
        let components = relative.split(separator: "/", omittingEmptySubsequences: false)
        guard !components.isEmpty, !components.contains(where: { $0.isEmpty || $0 == "." || $0 == ".." }) else {
            throw .refusedPath(id: id, reason: "empty, '.' and '..' path components are not accepted")
        }
        guard relative.hasSuffix(".heapsnap") else { throw .refusedPath(id: id, reason: "only *.heapsnap files are served") }
        let root = roots[index]
        guard let resolved = Self.realPath(root + "/" + relative) else { throw .notFound(id: id) }
        guard resolved.hasPrefix(root == "/" ? "/" : root + "/") else {
            throw .refusedPath(id: id, reason: "it leads outside the served directory")
        }
        var st = stat()
        guard stat(resolved, &st) == 0, st.st_mode & S_IFMT == S_IFREG else { throw .refusedPath(id: id, reason: "not a regular file") }
        return ServedFile(id: id, path: resolved)
    }

    /// The id of an absolute path under a served directory (for a snapshot a process just wrote), if any.
    func id(ofPath path: String) -> String? {
        guard let resolved = Self.realPath(path) else { return nil }
        for (index, root) in roots.enumerated() {
            let prefix = root == "/" ? "/" : root + "/"
            if resolved.hasPrefix(prefix) { return "\(index)/\(resolved.dropFirst(prefix.count))" }
        }
        return nil
    }

    /// Whether snapshots written to `directory` show up here (it is a served directory or inside one).
    func serves(directory: String) -> Bool {
        guard let resolved = Self.realPath(directory) else { return false }
        return roots.contains { resolved == $0 || resolved.hasPrefix($0 == "/" ? "/" : $0 + "/") }
    }

    /// Every `*.heapsnap` file under the served directories (not hidden, up to `depth` levels
    /// down), symlinks only when they stay inside; sorted by id.
    /// - Complexity: O(directory entries).
    func list(depth: Int = 3) -> [ServedFile] {
        var files: [ServedFile] = []
        for (index, root) in roots.enumerated() {
            walk(root, relative: "", root: root, index: index, depth: depth, into: &files)
        }
        return files.sorted()
    }

    private func walk(_ directory: String, relative: String, root: String, index: Int, depth: Int, into files: inout [ServedFile]) {
        guard let handle = opendir(directory) else { return }
        defer { closedir(handle) }
        while let entry = readdir(handle), files.count < Self.maximumListed {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            guard !name.hasPrefix(".") else { continue }
            let path = directory + "/" + name
            let id = "\(index)/\(relative)\(name)"
            var st = stat()
            guard lstat(path, &st) == 0 else { continue }
            switch st.st_mode & S_IFMT {
            case S_IFDIR where depth > 0:
                walk(path, relative: relative + name + "/", root: root, index: index, depth: depth - 1, into: &files)
            case S_IFREG where name.hasSuffix(".heapsnap"):
                files.append(ServedFile(id: id, path: path))
            case S_IFLNK where name.hasSuffix(".heapsnap"):
                if let file = try? resolve(id) { files.append(file) }
            default:
                continue
            }
        }
    }

    /// The file's stamp now, or nil when it is gone.
    func stamp(_ file: ServedFile) -> FileStamp? {
        var st = stat()
        guard lstat(file.path, &st) == 0, st.st_mode & S_IFMT == S_IFREG else { return nil }
        return FileStamp(path: file.path, size: Int64(st.st_size),
                         modifiedNanoseconds: Int64(st.st_mtim.tv_sec) * 1_000_000_000 + Int64(st.st_mtim.tv_nsec))
    }

    /// Reads `file` (O_NOFOLLOW, regular files only) and its stamp as read.
    func contents(of file: ServedFile) throws(ServeError) -> (bytes: [UInt8], stamp: FileStamp) {
        let fd = open(file.path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK)
        guard fd >= 0 else {
            throw .badSnapshot(.unreadable(file: file.id, reason: String(cString: strerror(errno))))
        }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0, st.st_mode & S_IFMT == S_IFREG else { throw .refusedPath(id: file.id, reason: "not a regular file") }
        guard Int64(st.st_size) <= Self.maximumFileSize else {
            throw .badSnapshot(.unreadable(file: file.id, reason: "larger than \(Self.maximumFileSize >> 20) MiB"))
        }
        var bytes = [UInt8](repeating: 0, count: Int(st.st_size))
        var done = 0
        while done < bytes.count {
            let n = bytes.withUnsafeMutableBytes { read(fd, $0.baseAddress! + done, $0.count - done) }
            if n < 0, errno == EINTR { continue }
            guard n > 0 else { break }
            done += n
        }
        bytes.removeSubrange(done...)
        let stamp = FileStamp(path: file.path, size: Int64(st.st_size),
                              modifiedNanoseconds: Int64(st.st_mtim.tv_sec) * 1_000_000_000 + Int64(st.st_mtim.tv_nsec))
        return (bytes, stamp)
    }

    /// Reads and decodes the snapshot `file`; errors name the file by its id.
    func snapshot(_ file: ServedFile) throws(ServeError) -> (snapshot: Snapshot, stamp: FileStamp) {
        let (bytes, stamp) = try contents(of: file)
        do {
            return (try SnapshotReader.decode(bytes, name: file.id), stamp)
        } catch {
            throw .badSnapshot(error)
        }
    }

    static func realPath(_ path: String) -> String? {
        guard let resolved = realpath(path, nil) else { return nil }
        defer { free(resolved) }
        return String(cString: resolved)
    }
}

/// The part of `path` after its last "/".
func lastPathComponent(_ path: String) -> String {
    path.lastIndex(of: "/").map { String(path[path.index(after: $0)...]) } ?? path
}
