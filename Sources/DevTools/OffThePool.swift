import Foundation

/// Runs a blocking body (a child process to its end, a pipe read to EOF) on a thread of its
/// own and awaits its result: blocking waits never hold one of the cooperative pool's threads,
/// of which a 2-core machine has two.
func offThePool<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        Thread.detachNewThread { continuation.resume(with: Result { try body() }) }
    }
}

extension Process {
    /// Waits until the process exits, off the cooperative pool; its exit status.
    func exited() async -> Int32 {
        (try? await offThePool { [self] in
            self.waitUntilExit()
            return self.terminationStatus
        }) ?? -1
    }
}
