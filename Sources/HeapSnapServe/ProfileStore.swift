// Symbolized profiles, cached per source: one file, a file's peak, or a
// merge of several files, each identified by its stamp (path, size, mtime).
// Symbolization is slow (seconds for a big profile the first time) and the
// symbolizer is one long-lived process, so it runs on one serial queue, off
// the server's threads; requests for the same source share one job; a
// request waits a little and otherwise answers "pending" with the
// symbolizer's progress, which the page shows while it polls.

import Dispatch
import HeapSnapKit
import Synchronization

/// Which profile a view needs: snapshot files (several are merged) and whether to take their peak.
struct ProfileSourceKey: Sendable, Hashable {
    /// The files' stamps, in request order.
    var files: [FileStamp]
    /// Use each file's peak (`PEAK` record) instead of its state at snapshot time.
    var peak: Bool
}

/// The answer to a profile request.
enum ProfileLookup: Sendable {
    /// Symbolized (not yet trimmed or filtered).
    case ready(Profile)
    /// Still symbolizing: addresses done of total (0/0 before the symbolizer reports).
    case pending(done: Int, total: Int)
    /// The source cannot be read or has no peak.
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

    /// The symbolized profile of `snapshot`, reporting progress (done, total addresses) from the queue.
    func profile(of snapshot: Snapshot, file: String, progress: @escaping @Sendable (Int, Int) -> Void) async -> Profile {
        await withCheckedContinuation { continuation in
            queue.async { [self] in
                let llvm = symbolizer as? LLVMSymbolizer
                llvm?.progress = progress
                let profile = ProfileSymbolizer(symbolizer: symbolizer, locator: locator).profile(of: snapshot, file: file)
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

    /// The profile of `files` (merged when several; their peaks with `peak`), waiting at most `wait` for it.
    func profile(_ files: [ServedFile], peak: Bool, wait: Duration) async -> ProfileLookup {
        var stamps: [FileStamp] = []
        for file in files {
            guard let stamp = directories.stamp(file) else { return .failed(.notFound(id: file.id)) }
            stamps.append(stamp)
        }
        let key = ProfileSourceKey(files: stamps, peak: peak)
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
            var inputs: [(path: String, snapshot: Snapshot)] = []
            for file in files {
                var snapshot = try directories.snapshot(file).snapshot
                if key.peak {
                    guard let p = snapshot.peak else {
                        throw .notExportable("\(file.id): has no peak record (written before format 1.2, or never sampled)")
                    }
                    snapshot.records = p.records
                    snapshot.header.timeNanoseconds = p.timeNanoseconds
                }
                inputs.append((file.id, snapshot))
            }
            let (snapshot, name) = inputs.count == 1
                ? (inputs[0].snapshot, inputs[0].path)
                : (SnapshotMerge.merge(inputs).snapshot, "merge of " + inputs.map(\.path).joined(separator: ", "))
            let progress = progress
            let profile = await worker.profile(of: snapshot, file: name + (key.peak ? " (peak)" : "")) { done, total in
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
