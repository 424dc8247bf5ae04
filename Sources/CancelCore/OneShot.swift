import Synchronization

/// A value published once, and waited for with a timeout: "the server is bound", "the
/// ledger's schema exists", "every expected outcome arrived". `set` wakes every waiter; a
/// waiter that times out (or whose task is cancelled) leaves without waking the others.
public final class OneShot<Value: Sendable>: Sendable {
    private struct State {
        var value: Value?
        var waiters: [Int: CheckedContinuation<Value?, Never>] = [:]
        var nextID = 0
    }

    private let state = Mutex(State())

    public init() {}

    /// The value, if it was set.
    public var value: Value? { self.state.withLock { $0.value } }

    /// Publishes `value` (the first call wins) and wakes every waiter.
    public func set(_ value: Value) {
        let waiters: [CheckedContinuation<Value?, Never>] = self.state.withLock { state in
            guard state.value == nil else { return [] }
            state.value = value
            defer { state.waiters = [:] }
            return Array(state.waiters.values)
        }
        for waiter in waiters { waiter.resume(returning: value) }
    }

    /// The value once it is set; nil if `timeout` passes first or the task is cancelled.
    public func wait(timeout: Duration) async -> Value? {
        if let value = self.value { return value }
        return await withTimeout(timeout) { await self.wait() } ?? nil
    }

    /// The value once it is set; nil if the task is cancelled first.
    public func wait() async -> Value? {
        if let value = self.value { return value }
        let id = self.state.withLock { state in
            state.nextID += 1
            return state.nextID
        }
        return await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Value?, Never>) in
                let known: Value?? = self.state.withLock { state in
                    if let value = state.value { return .some(value) }
                    if Task.isCancelled { return .some(nil) }
                    state.waiters[id] = continuation
                    return .none
                }
                if let known { continuation.resume(returning: known) }
            }
        } onCancel: {
            let waiter = self.state.withLock { $0.waiters.removeValue(forKey: id) }
            waiter?.resume(returning: nil)
        }
    }
}

/// Runs `operation` and returns its result, or nil when `timeout` passes first (the operation
/// is then cancelled and not waited for beyond its reaction to cancellation).
public func withTimeout<T: Sendable>(_ timeout: Duration, _ operation: @escaping @Sendable () async -> T) async -> T? {
    await withTaskGroup(of: T?.self) { group in
        group.addTask { await operation() }
        group.addTask {
            try? await Task.sleep(for: timeout)
            return nil
        }
        let first = await group.next() ?? nil
        group.cancelAll()
        return first
    }
}

/// Runs `operation` in a task of its own and returns its result, or nil when `timeout` passes
/// first: then the operation is cancelled and *not* waited for (`withTimeout` waits for its
/// reaction to cancellation). For a probe of a store whose calls may not end on cancellation
/// (a PostgreSQL statement waits for its answer): the probe must answer in time regardless.
public func withTimeoutAbandoning<T: Sendable>(
    _ timeout: Duration, _ operation: @escaping @Sendable () async -> T
) async -> T? {
    let result = OneShot<T>()
    let task = Task { result.set(await operation()) }
    guard let value = await result.wait(timeout: timeout) else {
        task.cancel()
        return nil
    }
    return value
}

/// Runs `operation` in a task of its own and returns its result; when the calling task is
/// cancelled first, cancels the operation and throws `CancellationError` at once, leaving the
/// operation to end on its own.
///
/// For a call into a library that does not always answer cancellation (PostgresNIO 1.33's
/// queries are never answered on a connection that just closed): whoever waits for it must
/// still be able to stop.
public func abandonedOnCancel<T: Sendable>(
    _ operation: @escaping @Sendable () async throws -> T
) async throws -> T {
    let result = OneShot<Result<T, any Error>>()
    let task = Task {
        do {
            result.set(.success(try await operation()))
        } catch {
            result.set(.failure(error))
        }
    }
    return try await withTaskCancellationHandler {
        guard let outcome = await result.wait() else { throw CancellationError() }
        return try outcome.get()
    } onCancel: {
        task.cancel()
    }
}
