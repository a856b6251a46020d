// Symbolized profiles, cached per side of a question (a `SnapshotSelection`:
// one file, a file's peak, or a merge of several files), each file identified
// by its stamp (path, size, mtime). Each side is read, taken at its moment and
// merged by `Pipeline.select` and symbolized as the CLI does it; the rest of
// the question (trim, diff, filter) is `ProfileQuery.result`, in Views.swift.
// Symbolization is slow (seconds for a big profile the first time) and the
// symbolizer is one long-lived process, so it runs on one serial queue, off
// the server's threads; requests for the same source share one job; a
// request waits a little and otherwise answers "pending" with the
// symbolizer's progress, which the page shows while it polls.

import Dispatch
import HeapSnapKit
import Synchronization

/// Which profile a view needs: the side (file ids, moment) and the stamps of its files.
struct ProfileSourceKey: Sendable, Hashable {
    /// The side, as the request names it.
    var selection: SnapshotSelection
    /// The files' stamps, in request order.
    var files: [FileStamp]
}

/// The answer to a profile request.
enum ProfileLookup: Sendable {
    /// Symbolized (not yet trimmed or filtered).
    case ready(Profile)
    /// Still symbolizing: addresses done of total (0/0 before the symbolizer reports).
    case pending(done: Int, total: Int)
    /// The source cannot be read, or has no peak.
    case failed(ServeError)
}

/// Runs symbolization jobs one at a time on its own queue (the symbolizer process and its cache are not thread-safe).
final class SymbolizationQueue: @unchecked Sendable {
    // Touched only on `queue`.
    private let symbolizer: (any AddressSymbolizer)?
    private let locator: any ModuleLocator
    private let queue = DispatchQueue(label: "heapsnap.symbolize")

    init(symbolizer: (any AddressSymbolizer)?, locator: any ModuleLocator) {
        self.symbolizer = symbolizer
        self.locator = locator
    }

    /// The symbolized profile of `selected`, reporting progress (done, total addresses) from the queue.
    func profile(of selected: SelectedSnapshot, progress: @escaping @Sendable (Int, Int) -> Void) async -> Profile {
        await withCheckedContinuation { continuation in
            queue.async { [self] in
                let llvm = symbolizer as? LLVMSymbolizer
                llvm?.progress = progress
                let profile = ProfileSymbolizer(symbolizer: symbolizer, locator: locator).profile(of: selected)
                llvm?.progress = nil
                continuation.resume(returning: profile)
            }
        }
    }
}

/// Symbolization progress per job, written from the symbolizer's queue and read by requests.
final class ProgressTable: Sendable {
    private let table = Mutex<[ProfileSourceKey: (Int, Int)]>([:])

    func set(_ key: ProfileSourceKey, _ value: (Int, Int)) { table.withLock { $0[key] = value } }
    func remove(_ key: ProfileSourceKey) { table.withLock { _ = $0.removeValue(forKey: key) } }
    func get(_ key: ProfileSourceKey) -> (Int, Int)? { table.withLock { $0[key] } }
}

/// The cache of symbolized profiles, shared by all requests.
actor ProfileStore {
    private let directories: ServedDirectories
    private let worker: SymbolizationQueue
    private var results: [ProfileSourceKey: ProfileLookup] = [:]
    private var order: [ProfileSourceKey] = []
    private var running: Set<ProfileSourceKey> = []
    private let progress = ProgressTable()
    /// Profiles kept (oldest dropped first).
    static let capacity = 48

    /// `symbolizer` nil leaves frames as module+0xADDR (tests pass a fake one).
    init(directories: ServedDirectories, symbolizer: (any AddressSymbolizer)?, locator: any ModuleLocator) {
        self.directories = directories
        worker = SymbolizationQueue(symbolizer: symbolizer, locator: locator)
    }

    /// The symbolized profile of `selection`, whose ids resolve to `files`, waiting at most `wait` for it.
    func profile(_ selection: SnapshotSelection, files: [ServedFile], wait: Duration) async -> ProfileLookup {
        var stamps: [FileStamp] = []
        for file in files {
            guard let stamp = directories.stamp(file) else { return .failed(.notFound(id: file.id)) }
            stamps.append(stamp)
        }
        let key = ProfileSourceKey(selection: selection, files: stamps)
        if let done = results[key] { return done }
        if !running.contains(key) {
            running.insert(key)
            Task { await self.build(key, files: files) }
        }
        let deadline = ContinuousClock.now + wait
        while ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(20))
            if let done = results[key] { return done }
        }
        let (done, total) = progress.get(key) ?? (0, 0)
        return .pending(done: done, total: total)
    }

    /// The jobs in flight: (done, total) addresses each.
    func activity() -> [(done: Int, total: Int)] {
        running.map { progress.get($0) ?? (0, 0) }
    }

    private func build(_ key: ProfileSourceKey, files: [ServedFile]) async {
        let outcome: ProfileLookup
        do throws(ServeError) {
            var snapshots: [Snapshot] = []
            for file in files { snapshots.append(try directories.snapshot(file).snapshot) }
            let selected: SelectedSnapshot
            do throws(HeapSnapError) {
                selected = try Pipeline.select(key.selection, from: snapshots)
            } catch {
                throw .notExportable(error.description)
            }
            let progress = progress
            let profile = await worker.profile(of: selected) { done, total in
                progress.set(key, (done, total))
            }
            outcome = .ready(profile)
        } catch {
            outcome = .failed(error)
        }
        results[key] = outcome
        order.append(key)
        if order.count > Self.capacity { results.removeValue(forKey: order.removeFirst()) }
        running.remove(key)
        progress.remove(key)
    }
}
