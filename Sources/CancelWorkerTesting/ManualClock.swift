public import CancelCore
public import Foundation
import Synchronization

/// A `WorkerClock` that moves only when a test advances it: wall and monotonic time move
/// together, and a sleeper resumes once the clock is advanced to its deadline. Tests of the
/// worker's waits (rate slots, backoffs, due times, deadlines) run without a real sleep.
public final class ManualClock: WorkerClock {
    private struct Sleeper {
        var deadline: ContinuousClock.Instant
        var continuation: CheckedContinuation<Void, any Error>
    }

    private struct State {
        var elapsed: Duration = .zero
        var sleepers: [Int: Sleeper] = [:]
        var nextID = 0
        /// Tests waiting until this many sleepers wait.
        var watchers: [(count: Int, continuation: CheckedContinuation<Void, Never>)] = []
    }

    private let state = Mutex(State())
    /// Where monotonic time starts.
    public let start: ContinuousClock.Instant
    /// Where wall time starts.
    public let startDate: Date

    public init(start: ContinuousClock.Instant = .now, startDate: Date = Date(timeIntervalSince1970: 1_800_000_000)) {
        self.start = start
        self.startDate = startDate
    }

    public var now: ContinuousClock.Instant { self.start + self.state.withLock { $0.elapsed } }

    public var date: Date { self.startDate.addingTimeInterval(self.state.withLock { $0.elapsed }.timeInterval) }

    /// Tasks sleeping on this clock right now.
    public var sleepers: Int { self.state.withLock { $0.sleepers.count } }

    public func sleep(until deadline: ContinuousClock.Instant) async throws {
        let id = self.state.withLock { state in
            state.nextID += 1
            return state.nextID
        }
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                let (resume, watchers) = self.state.withLock {
                    state -> (Result<Void, any Error>?, [CheckedContinuation<Void, Never>]) in
                    if Task.isCancelled { return (.failure(CancellationError()), []) }
                    if deadline <= self.start + state.elapsed { return (.success(()), []) }
                    state.sleepers[id] = Sleeper(deadline: deadline, continuation: continuation)
                    return (nil, Self.satisfied(&state))
                }
                for watcher in watchers { watcher.resume() }
                if let resume { continuation.resume(with: resume) }
            }
        } onCancel: {
            let sleeper = self.state.withLock { $0.sleepers.removeValue(forKey: id) }
            sleeper?.continuation.resume(throwing: CancellationError())
        }
    }

    /// Moves both times forward by `duration` and wakes every sleeper whose deadline it reached.
    public func advance(by duration: Duration) {
        let woken = self.state.withLock { state -> [CheckedContinuation<Void, any Error>] in
            state.elapsed += duration
            let now = self.start + state.elapsed
            let due = state.sleepers.filter { $0.value.deadline <= now }
            for id in due.keys { state.sleepers[id] = nil }
            return due.values.sorted { $0.deadline < $1.deadline }.map(\.continuation)
        }
        for continuation in woken { continuation.resume() }
    }

    /// Returns once at least `count` tasks sleep on this clock (a test's way to know the code
    /// under test reached its wait, without a real sleep).
    public func waitForSleepers(_ count: Int = 1) async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let ready = self.state.withLock { state in
                guard state.sleepers.count < count else { return true }
                state.watchers.append((count, continuation))
                return false
            }
            if ready { continuation.resume() }
        }
    }

    /// The watchers whose count of sleepers is reached, removed from `state`.
    private static func satisfied(_ state: inout State) -> [CheckedContinuation<Void, Never>] {
        let count = state.sleepers.count
        let ready = state.watchers.filter { $0.count <= count }.map(\.continuation)
        state.watchers.removeAll { $0.count <= count }
        return ready
    }
}
