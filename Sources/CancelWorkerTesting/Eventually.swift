/// Polls `condition` every 50 ms until it holds or `timeout` passes; whether it held. Tests
/// wait on conditions with it instead of sleeping a guessed time.
public func eventually(
    timeout: Duration = .seconds(30), _ condition: @Sendable () async throws -> Bool
) async throws -> Bool {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if try await condition() { return true }
        try await Task.sleep(for: .milliseconds(50))
    }
    return try await condition()
}
