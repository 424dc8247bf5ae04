/// What a provider said, kept verbatim for the outcome: HTTP status, its own code and message,
/// and the order status it reported. Never contains credentials.
public struct ProviderAnswer: Sendable, Hashable, Codable {
    public var httpStatus: Int?
    /// The provider's own result code (`code` of feee/taker/futures), as text.
    public var code: String?
    public var message: String?
    /// The order status the provider reported (Fungies `status`, FastPOD `order_status`, feee `status`).
    public var orderStatus: String?

    public init(httpStatus: Int? = nil, code: String? = nil, message: String? = nil, orderStatus: String? = nil) {
        self.httpStatus = httpStatus
        self.code = code
        self.message = message
        self.orderStatus = orderStatus
    }

    enum CodingKeys: String, CodingKey {
        case httpStatus = "http_status"
        case code
        case message
        case orderStatus = "order_status"
    }
}

/// How the worker must treat a provider's answer.
public enum CancelClassification: Sendable, Hashable, CustomStringConvertible {
    /// The order is now cancelled.
    case cancelled
    /// It was cancelled (or refunded) before: a success.
    case alreadyCancelled
    /// Filled, completed, shipped…: it cannot be cancelled any more.
    case notCancellable
    /// The provider does not know the order.
    case notFound
    /// The provider refused the request as malformed (400, 422, parameter errors).
    case rejected
    /// Try again after `after` (nil: the provider said when nothing; use the retry policy).
    /// `scope` says whether only this account or the whole provider must wait.
    case retryLater(after: Duration?, scope: ThrottleScope)
    /// The cancel may or may not have happened: 5xx, timeout, connection reset.
    case unknown
    /// Bad credentials, bad signature, missing permission, wrong URL: fix configuration, replay.
    case configuration

    public var description: String {
        switch self {
        case .cancelled: "cancelled"
        case .alreadyCancelled: "already_cancelled"
        case .notCancellable: "not_cancellable"
        case .notFound: "not_found"
        case .rejected: "rejected"
        case .retryLater(let after, let scope):
            "retry_later(after: \(after.map { "\($0)" } ?? "unspecified"), scope: \(scope))"
        case .unknown: "unknown"
        case .configuration: "configuration"
        }
    }

    /// The outcome status a final classification maps to (nil: retry or dead-letter instead).
    public var terminalStatus: OutcomeStatus? {
        switch self {
        case .cancelled: .cancelled
        case .alreadyCancelled: .alreadyCancelled
        case .notCancellable: .notCancellable
        case .notFound: .notFound
        case .rejected: .rejected
        case .retryLater, .unknown, .configuration: nil
        }
    }
}

/// Who a provider's "slow down" applies to.
public enum ThrottleScope: String, Sendable, Hashable {
    /// This account only (per-user limits).
    case account
    /// Every account at this provider (a global limit or an outage).
    case provider
    /// Only this order: other orders of the account go on (feee.io's 5-minute rule).
    case order
}

/// One provider call's result: its classification, the raw answer, and a human-readable reason.
public struct ProviderCallResult: Sendable, Hashable {
    public var classification: CancelClassification
    public var answer: ProviderAnswer
    /// Why, in words an operator understands (never a secret).
    public var reason: String
    /// An `unknown` that is sure no request left: no connection could be made (refused, no
    /// TLS handshake, no connection before the timeout). Retried as any `unknown`, but not a
    /// call in doubt: a later "not found" is not noted as maybe our own cancel.
    public var nothingSent: Bool

    public init(
        classification: CancelClassification, answer: ProviderAnswer, reason: String, nothingSent: Bool = false
    ) {
        self.classification = classification
        self.answer = answer
        self.reason = reason
        self.nothingSent = nothingSent
    }
}
