public import Foundation

/// What a provider adapter needs to cancel one order.
public struct CancelRequest: Sendable, Hashable {
    public var provider: ProviderID
    public var account: String
    public var order: OrderReference
    /// For feee.io's rule: no cancel before creation + 5 minutes.
    public var orderCreatedAt: Date?
    /// For logs and the sandbox's request log; never sent to a provider (none documents one).
    public var idempotencyKey: String
    /// 1 for the first call of this key, then 2, 3, …
    public var attempt: Int

    public init(
        provider: ProviderID,
        account: String,
        order: OrderReference,
        orderCreatedAt: Date? = nil,
        idempotencyKey: String,
        attempt: Int = 1
    ) {
        self.provider = provider
        self.account = account
        self.order = order
        self.orderCreatedAt = orderCreatedAt
        self.idempotencyKey = idempotencyKey
        self.attempt = attempt
    }

    public init(command: CancelCommand, attempt: Int) {
        self.init(
            provider: command.provider,
            account: command.account,
            order: command.order,
            orderCreatedAt: command.orderCreatedAt,
            idempotencyKey: command.idempotencyKey,
            attempt: attempt
        )
    }
}

/// One provider's cancel call. Implementations never throw: every failure (transport,
/// timeout, unexpected body) is classified, so the worker handles all of them exhaustively.
public protocol CancelProvider: Sendable {
    var id: ProviderID { get }

    /// Whether the worker has credentials for `account` at this provider (commands for other
    /// accounts are answered `rejected` without a call).
    func knowsAccount(_ account: String) -> Bool

    /// Makes the call and classifies the answer. `sendGuard` runs right before the request is
    /// written — after the call waited for its connection — and may stop it: then nothing is
    /// sent and the answer is nil.
    func cancel(_ request: CancelRequest, sendGuard: @escaping SendGuard) async -> ProviderCallResult?

    /// The earliest time the provider accepts a cancel of this order (feee.io: creation +
    /// 5 minutes), when it is known; nil when it is now or unknown. The order waits alone
    /// until then, without a call and without using up an attempt.
    func notBefore(_ request: CancelRequest) -> Date?
}

extension CancelProvider {
    public func notBefore(_ request: CancelRequest) -> Date? { nil }

    /// The call without a guard (tools and tests): it is always sent.
    public func cancel(_ request: CancelRequest) async -> ProviderCallResult {
        await self.cancel(request, sendGuard: { .send })
            ?? ProviderCallResult(classification: .unknown, answer: ProviderAnswer(), reason: "not sent")
    }
}

/// The worker's word right before a request is written.
public enum SendVerdict: Sendable, Hashable {
    /// Write it now.
    case send
    /// Not yet: the user's rate-limit slot, or a provider pause, comes at `until`.
    case wait(until: ContinuousClock.Instant)
    /// Never: the partition moved, the claim was lost, or the deadline passed.
    case abandon(reason: String)
}

extension SendVerdict {
    /// How soon after a `.send` the request must reach its connection; a request that reaches it
    /// later (its process was paused or starved in between) is not sent, and the guard is asked
    /// again. The pacing adds it to the spacing of a user's calls, like network jitter.
    public static let defaultSendWindow: Duration = .milliseconds(50)
}

/// Checked immediately before a provider request is written (see `SendVerdict`).
public typealias SendGuard = @Sendable () async -> SendVerdict
