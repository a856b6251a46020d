// Waiting in tests, on the condition a test needs (a file written, a line printed, a handler
// installed, a count reached), never for a fixed time: a poll with a short pause, up to a deadline
// generous enough for a machine busy with other builds, so that only a hang reaches it. A test that
// needs the condition says what it waited for when it does not come (`Wait.until`, `Wait.for`); one
// that only reports whether it came (a lost request is a count, not a failure) uses `Wait.poll`.
// Shared by every test target (Package.swift: HeapSnapTestSupport).

import Foundation

/// A condition a test waited for that did not come before the deadline.
public struct WaitTimedOut: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// Polls for a condition until a deadline.
public enum Wait {
    /// A wait's deadline in seconds unless the test gives one.
    public static let deadline: Double = 60

    /// The pause between two looks, in seconds, unless the test gives one.
    public static let pause: Double = 0.002

    /// Looks at `condition` until it holds (true) or `timeout` seconds have passed (false); it is
    /// looked at once more at the deadline.
    @discardableResult
    public static func poll(timeout: Double = deadline, every interval: Double = pause,
                            _ condition: () throws -> Bool) rethrows -> Bool {
        let end = ContinuousClock.now + .seconds(timeout)
        while true {
            let late = ContinuousClock.now >= end
            if try condition() { return true }
            if late { return false }
            usleep(UInt32(interval * 1_000_000))
        }
    }

    /// Waits until `condition` holds; past `timeout` seconds, throws `WaitTimedOut` naming `what`
    /// (evaluated then, so it can show the state the test was left with).
    public static func until(_ what: @autoclosure () -> String, timeout: Double = deadline, every interval: Double = pause,
                             _ condition: () throws -> Bool) throws {
        guard try poll(timeout: timeout, every: interval, condition) else { throw timedOut(what(), timeout) }
    }

    /// Waits until `produce` gives a value, and returns it; past `timeout` seconds, throws
    /// `WaitTimedOut` naming `what`.
    public static func `for`<T>(_ what: @autoclosure () -> String, timeout: Double = deadline, every interval: Double = pause,
                                _ produce: () throws -> T?) throws -> T {
        var value: T?
        try until(what(), timeout: timeout, every: interval) {
            value = try produce()
            return value != nil
        }
        return value!
    }

    /// `poll` for async conditions (a request to a server): true once `condition` holds, false when
    /// `timeout` seconds have passed first.
    @discardableResult
    public static func poll(timeout: Double = deadline, every interval: Double = pause,
                            _ condition: () async throws -> Bool) async throws -> Bool {
        let end = ContinuousClock.now + .seconds(timeout)
        while true {
            let late = ContinuousClock.now >= end
            if try await condition() { return true }
            if late { return false }
            try await Task.sleep(for: .seconds(interval))
        }
    }

    /// `for` for async producers.
    public static func `for`<T>(_ what: @autoclosure () -> String, timeout: Double = deadline, every interval: Double = pause,
                                _ produce: () async throws -> T?) async throws -> T {
        var value: T?
        let came = try await poll(timeout: timeout, every: interval) {
            value = try await produce()
            return value != nil
        }
        guard came, let value else { throw timedOut(what(), timeout) }
        return value
    }

    static func timedOut(_ what: String, _ timeout: Double) -> WaitTimedOut {
        WaitTimedOut("waited \(timeout) s for \(what)")
    }
}
