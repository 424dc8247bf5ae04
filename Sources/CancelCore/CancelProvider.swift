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
    /// The command's deadline: a request not written by then is not sent (`SendVerdict`).
    public var deadline: Date?

    public init(
        provider: ProviderID,
        account: String,
        order: OrderReference,
        orderCreatedAt: Date? = nil,
        idempotencyKey: String,
        attempt: Int = 1,
        deadline: Date? = nil
    ) {
        self.provider = provider
        self.account = account
        self.order = order
        self.orderCreatedAt = orderCreatedAt
        self.idempotencyKey = idempotencyKey
        self.attempt = attempt
        self.deadline = deadline
    }

    public init(command: CancelCommand, attempt: Int) {
        self.init(
            provider: command.provider,
            account: command.account,
            order: command.order,
            orderCreatedAt: command.orderCreatedAt,
            idempotencyKey: command.idempotencyKey,
            attempt: attempt,
            deadline: command.deadline
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

    /// How many calls the adapter makes at once at most (its connections); nil: no bound of its
    /// own. The worker runs about twice as many of the provider's commands at once.
    var concurrentCalls: Int? { get }
}

extension CancelProvider {
    public func notBefore(_ request: CancelRequest) -> Date? { nil }
    public var concurrentCalls: Int? { nil }

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
    /// How soon after a `.send` the request must reach its connection (and never after the
    /// command's deadline); a request that reaches it later — its process was paused or stalled
    /// in between — is not sent, and the guard is asked again. Shorter than the lease margin
    /// (`claim-lease` ≥ provider timeout + 2 s), so a request written in its window is written
    /// under a valid claim. The ordinary delay between the guard and the write (milliseconds) is
    /// absorbed, with network jitter, by the pacing's `rate-limit-jitter-allowance`.
    public static let defaultSendWindow: Duration = .seconds(1)
}

/// Checked immediately before a provider request is written (see `SendVerdict`).
public typealias SendGuard = @Sendable () async -> SendVerdict
