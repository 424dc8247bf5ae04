import CancelCore
import Foundation
import Synchronization

/// A provider whose answers are scripted per order id, recording every call: for tests of the
/// worker's own logic (routing, retries, deadlines, idempotency). End-to-end tests use the
/// real adapters against the sandbox instead.
final class ScriptedProvider: CancelProvider {
    let id: ProviderID
    let accounts: Set<String>
    private let script: Mutex<[String: [CancelClassification]]>
    let calls = Mutex<[(order: String, at: ContinuousClock.Instant)]>([])
    let latency: Duration
    /// Per order: the earliest time the "provider" accepts a cancel (like feee.io's 5-minute rule).
    let dueTimes: Mutex<[String: Date]>
    /// What the adapter says of its connections (the worker runs about twice as many commands).
    let concurrentCalls: Int?
    /// When set, every call waits for it before it answers.
    let hold: OneShot<Void>?
    /// When set, every call waits for it before its send-time guard (a connection being made).
    let connecting: OneShot<Void>?
    let callsNow = Atomic<Int>(0)
    let mostCallsAtOnce = Atomic<Int>(0)

    init(
        _ id: ProviderID, accounts: Set<String> = ["acct"], latency: Duration = .zero,
        script: [String: [CancelClassification]] = [:],
        dueTimes: [String: Date] = [:], concurrentCalls: Int? = nil, hold: OneShot<Void>? = nil,
        connecting: OneShot<Void>? = nil
    ) {
        self.concurrentCalls = concurrentCalls
        self.hold = hold
        self.connecting = connecting
        self.id = id
        self.accounts = accounts
        self.latency = latency
        self.script = Mutex(script)
        self.dueTimes = Mutex(dueTimes)
    }

    func notBefore(_ request: CancelRequest) -> Date? { self.dueTimes.withLock { $0[request.order.orderID] } }

    func calledAt(_ order: String) -> [ContinuousClock.Instant] {
        self.calls.withLock { $0.filter { $0.order == order }.map(\.at) }
    }

    func knowsAccount(_ account: String) -> Bool { self.accounts.contains(account) }

    func cancel(_ request: CancelRequest, sendGuard: @escaping SendGuard) async -> ProviderCallResult? {
        if let connecting = self.connecting { _ = await connecting.wait(timeout: .seconds(60)) }
        guard await sendGuard() == .send else { return nil }
        self.calls.withLock { $0.append((request.order.orderID, .now)) }
        let now = self.callsNow.add(1, ordering: .relaxed).newValue
        self.mostCallsAtOnce.max(now, ordering: .relaxed)
        if self.latency > .zero { try? await Task.sleep(for: self.latency) }
        if let hold = self.hold { _ = await hold.wait(timeout: .seconds(60)) }
        self.callsNow.subtract(1, ordering: .relaxed)
        let classification = self.script.withLock { script -> CancelClassification in
            guard var answers = script[request.order.orderID], !answers.isEmpty else { return .cancelled }
            let next = answers.removeFirst()
            script[request.order.orderID] = answers.isEmpty ? [next] : answers
            return next
        }
        return ProviderCallResult(
            classification: classification, answer: ProviderAnswer(httpStatus: 200, message: "\(classification)"),
            reason: "scripted \(classification)")
    }

    func callCount(_ order: String) -> Int { self.calls.withLock { $0.filter { $0.order == order }.count } }
    var totalCalls: Int { self.calls.withLock { $0.count } }
}
