public import Foundation

/// The two times the worker reads, behind one seam so its decisions and waits run on a manual
/// clock in tests: wall time (`Date`: deadlines, due times, ledger leases, record timestamps)
/// and monotonic time (`ContinuousClock.Instant`: pacing, backoffs, every sleep).
public protocol WorkerClock: Sendable {
    /// Wall-clock time now.
    var date: Date { get }
    /// Monotonic time now.
    var now: ContinuousClock.Instant { get }
    /// Sleeps until `deadline` on this clock; throws `CancellationError` if the task is cancelled.
    func sleep(until deadline: ContinuousClock.Instant) async throws
}

extension WorkerClock {
    /// Both readings at once, for the pure decisions that compare against wall and monotonic times.
    public var reading: ClockReading { ClockReading(date: self.date, instant: self.now) }

    /// The monotonic instant at which this clock's wall time reaches `date` (to the millisecond).
    /// A date beyond ±100 years from now counts as 100 years (a header or field no worker wrote
    /// must not trap the conversion).
    public func instant(for date: Date) -> ContinuousClock.Instant {
        let limit = 100 * 365.25 * 86_400_000.0
        let milliseconds = (date.timeIntervalSince(self.date) * 1000).rounded()
        let bounded = milliseconds.isNaN ? 0 : Swift.min(Swift.max(milliseconds, -limit), limit)
        return self.now + .milliseconds(Int64(bounded))
    }
}

/// One reading of a `WorkerClock`: wall and monotonic time at the same moment.
public struct ClockReading: Sendable, Hashable {
    public var date: Date
    public var instant: ContinuousClock.Instant

    public init(date: Date, instant: ContinuousClock.Instant) {
        self.date = date
        self.instant = instant
    }
}

/// The system's clocks: `Date()` and `ContinuousClock`. What the worker uses outside tests.
public struct SystemClock: WorkerClock {
    public init() {}

    public var date: Date { Date() }

    public var now: ContinuousClock.Instant { ContinuousClock.now }

    public func sleep(until deadline: ContinuousClock.Instant) async throws {
        try await Task.sleep(until: deadline, clock: .continuous)
    }
}
