#if DevTools
    import DevTools
    import Foundation
    import UnixSignals

    /// Runs `body`, a chaos or bench run that starts worker processes. Foundation starts each in
    /// a process group of its own, out of a Ctrl-C's reach: on SIGINT or SIGTERM they are killed
    /// before this process exits 130 (left running, they kept a port and CPU each).
    func stoppingItsWorkersOnInterrupt<T: Sendable>(
        _ what: String, _ body: @escaping @Sendable () async throws -> T
    ) async throws -> T {
        try await withThrowingTaskGroup(of: T?.self) { group in
            group.addTask { try await body() }
            group.addTask {
                for await _ in await UnixSignalsSequence(trapping: .sigint, .sigterm) { break }
                return nil
            }
            guard let first = try await group.next(), let result = first else {
                ChaosRunner.killStartedWorkers()
                FileHandle.standardError.write(Data("\(what): interrupted; its workers were stopped\n".utf8))
                Foundation.exit(ExitStatus.interrupted.rawValue)
            }
            group.cancelAll()
            return result
        }
    }
#endif
