// Many snapshot files as series: which files the arguments name, whose they
// are, and in what order. Arguments are files or directories; a directory
// contributes its `*.heapsnap` files (not hidden ones, not subdirectories),
// and anything else in it is not a heapsnap file by name and is passed over
// without a word. Only headers are read (`SnapshotReader.readHeader`), so
// listing thousands of files costs their first bytes. A file that is named
// like a snapshot but cannot be used (damaged, a newer format, a merged
// snapshot) becomes one line in `problems` and the rest goes on.
//
// Files are grouped into runs (one process's sampling session: host, pid and
// sampling start, so a reused pid or a restarted session is a run of its
// own), and runs into programs (the executable, and for an interpreter its
// script: two Python services are two programs). Runs and their files are
// in time order.

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Snapshot files found in files and directories, grouped by program and run.
public struct SnapshotSeries: Sendable {
    /// One snapshot file and its header.
    public struct Entry: Sendable, Hashable {
        public var path: String
        public var header: SnapshotHeader
    }

    /// One process's sampling session: its snapshot files in time order.
    public struct Run: Sendable, Hashable {
        public var hostname: String
        public var pid: UInt32
        /// When sampling started (the files' `start_ns`).
        public var startNanoseconds: UInt64
        public var entries: [Entry]
    }

    /// The runs of one program, ordered by their first snapshot.
    public struct Program: Sendable, Hashable {
        /// What the program is called: the script of an interpreter, else argv[0]'s or the executable's name.
        public var name: String
        /// The executable path.
        public var executable: String
        public var runs: [Run]

        /// Every file of the program, oldest first.
        public var entries: [Entry] { runs.flatMap(\.entries).sorted { Self.ordered($0, $1) } }

        static func ordered(_ a: Entry, _ b: Entry) -> Bool {
            (a.header.timeNanoseconds, a.header.pid, a.header.seq, a.path) < (b.header.timeNanoseconds, b.header.pid, b.header.seq, b.path)
        }
    }

    /// The programs found, the one with the most files first.
    public var programs: [Program]
    /// Files named like snapshots that could not be used, one error each (to print and go on).
    public var problems: [HeapSnapError]
    /// The files and directories scanned.
    public var arguments: [String]

    /// The files `arguments` name: each file, and the `*.heapsnap` files of each directory.
    /// Throws (naming it) for an argument that does not exist or cannot be read.
    /// - Complexity: O(directory entries) plus one header read per snapshot file.
    public static func scan(_ arguments: [String]) throws(HeapSnapError) -> SnapshotSeries {
        var paths: [String] = []
        for argument in arguments {
            var st = stat()
            guard stat(argument, &st) == 0 else { throw .unreadable(file: argument, reason: String(cString: strerror(errno))) }
            if st.st_mode & S_IFMT == S_IFDIR {
                paths += try snapshotFiles(in: argument)
            } else {
                paths.append(argument)
            }
        }
        var seen: Set<String> = []
        var entries: [Entry] = []
        var problems: [HeapSnapError] = []
        for path in paths where seen.insert(path).inserted {
            do {
                let header = try SnapshotReader.readHeader(path: path)
                if header.flags.contains(.merged) {
                    problems.append(.corrupt(file: path, reason: "a merged snapshot (heapsnap merge) is not a moment of one process; it was left out"))
                    continue
                }
                entries.append(Entry(path: path, header: header))
            } catch {
                problems.append(error)
            }
        }
        return SnapshotSeries(entries: entries, problems: problems, arguments: arguments)
    }

    /// Groups `entries` into programs and runs.
    public init(entries: [Entry], problems: [HeapSnapError] = [], arguments: [String] = []) {
        struct RunKey: Hashable { var hostname: String; var pid: UInt32; var start: UInt64 }
        var runs: [RunKey: [Entry]] = [:]
        var programOf: [RunKey: String] = [:]
        for entry in entries {
            let key = RunKey(hostname: entry.header.hostname, pid: entry.header.pid, start: entry.header.startNanoseconds)
            runs[key, default: []].append(entry)
            programOf[key] = Self.programKey(entry.header)
        }
        var byProgram: [String: [Run]] = [:]
        for (key, files) in runs {
            let sorted = files.sorted { Program.ordered($0, $1) }
            byProgram[programOf[key]!, default: []].append(Run(hostname: key.hostname, pid: key.pid, startNanoseconds: key.start, entries: sorted))
        }
        programs = byProgram.map { _, runs in
            let runs = runs.sorted { a, b in Program.ordered(a.entries[0], b.entries[0]) }
            let header = runs.last!.entries.last!.header
            return Program(name: Self.programName(header), executable: header.executable, runs: runs)
        }
        programs.sort { a, b in
            let (ca, cb) = (a.runs.reduce(0) { $0 + $1.entries.count }, b.runs.reduce(0) { $0 + $1.entries.count })
            return ca != cb ? ca > cb : a.name < b.name
        }
        self.problems = problems
        self.arguments = arguments
    }

    /// The program the user means: the only one, or the one named `name` (its name, executable path or file name).
    /// Throws `severalPrograms` naming them when there are several and no name, `noSuchProgram` for a name that matches none.
    public func program(named name: String?) throws(HeapSnapError) -> Program {
        if let name {
            let matches = programs.filter { $0.name == name || $0.executable == name || baseName($0.executable) == name }
            guard let match = matches.first else {
                throw .noSuchProgram(name: name, programs: programs.map(\.name))
            }
            return match
        }
        guard let first = programs.first else { throw .noSnapshots(arguments: arguments) }
        guard programs.count == 1 else {
            throw .severalPrograms(programs.map { p in "\(p.name) (\(p.runs.count) process\(p.runs.count == 1 ? "" : "es"), \(p.entries[0].path))" })
        }
        return first
    }

    /// The `*.heapsnap` files directly in `directory`, sorted by name.
    static func snapshotFiles(in directory: String) throws(HeapSnapError) -> [String] {
        guard let handle = opendir(directory) else { throw .unreadable(file: directory, reason: String(cString: strerror(errno))) }
        defer { closedir(handle) }
        var names: [String] = []
        while let entry = readdir(handle) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            guard !name.hasPrefix("."), name.hasSuffix(".heapsnap") else { continue }
            var st = stat()
            let path = directory.hasSuffix("/") ? directory + name : directory + "/" + name
            // lstat: a symlink in a shared directory such as /tmp is not followed.
            guard lstat(path, &st) == 0, st.st_mode & S_IFMT == S_IFREG else { continue }
            names.append(path)
        }
        return names.sorted()
    }

    /// Which program a header belongs to: the executable, and for an interpreter its script or module.
    static func programKey(_ header: SnapshotHeader) -> String {
        header.executable + "\0" + (script(header.commandLine) ?? "")
    }

    /// The name shown for a program: an interpreter's script (`gunicorn`, `app.py`), else the program's name.
    static func programName(_ header: SnapshotHeader) -> String {
        script(header.commandLine).map(baseName) ?? header.programName
    }

    /// The script an interpreter runs (`python3 app.py`, `python3 -m flask`), when argv[0] is an interpreter.
    static func script(_ commandLine: [String]) -> String? {
        guard let first = commandLine.first else { return nil }
        let interpreter = baseName(String(first.split(separator: " ").first ?? ""))
        guard ["python", "ruby", "node", "perl"].contains(where: { interpreter.hasPrefix($0) }) else { return nil }
        var arguments = commandLine.dropFirst().makeIterator()
        while let argument = arguments.next() {
            if argument == "-m" || argument == "-c" { return arguments.next().map { argument == "-m" ? $0 : "-c" } }
            if argument.hasPrefix("-") { continue }
            return argument
        }
        return nil
    }
}
