public import Foundation

/// The fate of a command (`status` of `cancel-outcome.v1`).
public enum OutcomeStatus: String, Sendable, Hashable, Codable, CaseIterable {
    case cancelled
    case alreadyCancelled = "already_cancelled"
    case notCancellable = "not_cancellable"
    case notFound = "not_found"
    case rejected
    /// The deadline passed before a call could be made; no call was made.
    case expired
    /// Dead-lettered (configuration error or attempts exhausted). An operator may replay it, in
    /// which case a terminal outcome follows; this one has its own `outcome_id`.
    case failed

    /// Terminal statuses are final for the idempotency key: exactly one is published per key.
    public var isTerminal: Bool { self != .failed }
}

/// What the worker publishes for a command (`cancel-outcome.v1`).
public struct CancelOutcome: Sendable, Hashable, Codable {
    public static let schema = "cancel-outcome.v1"

    public var schema: String = CancelOutcome.schema
    /// Deterministic: the same key gives the same id (see `OutcomeID`), so consumers dedupe by id.
    public var outcomeID: String
    public var commandID: String
    public var idempotencyKey: String
    public var provider: String
    public var account: String
    public var order: [String: JSONValue]?
    public var status: OutcomeStatus
    public var reason: String
    /// For `failed`: the dead-letter error class (`configuration`, `retries_exhausted`, …).
    public var errorClass: String?
    public var providerResponse: ProviderAnswer?
    /// Provider calls made for this key.
    public var attempts: Int
    /// Earlier calls for this key whose result was unknown (timeout, reset, 5xx…): any of them
    /// may have cancelled the order. With a `not_found`, `already_cancelled` or refusal, the
    /// order may have been cancelled by our own earlier call (no provider documents what a
    /// repeated cancel returns). Absent when every call's result was known.
    public var uncertainAttempts: Int?
    public var requestedAt: Date?
    public var completedAt: Date
    public var workerID: String
    public var correlationID: String?
    public var metadata: [String: JSONValue]?

    public init(
        outcomeID: String,
        identity: CommandIdentity,
        status: OutcomeStatus,
        reason: String,
        errorClass: String? = nil,
        providerResponse: ProviderAnswer? = nil,
        attempts: Int,
        completedAt: Date,
        workerID: String
    ) {
        self.outcomeID = outcomeID
        self.commandID = identity.commandID
        self.idempotencyKey = identity.idempotencyKey
        self.provider = identity.provider
        self.account = identity.account
        self.order = identity.order
        self.status = status
        self.reason = reason
        self.errorClass = errorClass
        self.providerResponse = providerResponse
        self.attempts = attempts
        self.requestedAt = identity.requestedAt
        self.completedAt = completedAt
        self.workerID = workerID
        self.correlationID = identity.correlationID
        self.metadata = identity.metadata
    }

    enum CodingKeys: String, CodingKey {
        case schema
        case outcomeID = "outcome_id"
        case commandID = "command_id"
        case idempotencyKey = "idempotency_key"
        case provider, account, order, status, reason
        case errorClass = "error_class"
        case providerResponse = "provider_response"
        case attempts
        case uncertainAttempts = "uncertain_attempts"
        case requestedAt = "requested_at"
        case completedAt = "completed_at"
        case workerID = "worker_id"
        case correlationID = "correlation_id"
        case metadata
    }

    /// Deterministic JSON (sorted keys, millisecond UTC timestamps): the bytes the ledger keeps,
    /// so a re-publication is byte-identical.
    ///
    /// Written by `JSONWriter`, byte for byte what `CancelOutcome.foundationEncoder` writes
    /// (`JSONWriterDifferentialTests`): the members below are in sorted key order.
    public func encoded() -> [UInt8] {
        var writer = JSONWriter(capacity: 640)
        var members = JSONWriter.ObjectWriter(taking: &writer)
        members.field("account", self.account)
        members.field("attempts", self.attempts)
        members.field("command_id", self.commandID)
        members.field("completed_at", Timestamp.format(self.completedAt))
        members.field("correlation_id", self.correlationID)
        members.field("error_class", self.errorClass)
        members.field("idempotency_key", self.idempotencyKey)
        members.field("metadata", self.metadata)
        members.field("order", self.order)
        members.field("outcome_id", self.outcomeID)
        members.field("provider", self.provider)
        if let answer = self.providerResponse {
            members.field("provider_response") { response in
                response.field("code", answer.code)
                response.field("http_status", answer.httpStatus)
                response.field("message", answer.message)
                response.field("order_status", answer.orderStatus)
            }
        }
        members.field("reason", self.reason)
        members.field("requested_at", self.requestedAt.map(Timestamp.format))
        members.field("schema", self.schema)
        members.field("status", self.status.rawValue)
        members.field("uncertain_attempts", self.uncertainAttempts)
        members.field("worker_id", self.workerID)
        return members.end().bytes
    }

    /// The `JSONEncoder` that wrote outcomes before `JSONWriter` (sorted keys, millisecond UTC
    /// timestamps): the reference the differential tests and the micro-benchmark compare with.
    public static let foundationEncoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        encoder.dateEncodingStrategy = .custom { date, encoder in
            var container = encoder.singleValueContainer()
            try container.encode(Timestamp.format(date))
        }
        return encoder
    }()

    static let decoder: JSONDecoder = {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .custom { decoder in
            let container = try decoder.singleValueContainer()
            let text = try container.decode(String.self)
            guard let date = Timestamp.parse(text) else {
                throw DecodingError.dataCorruptedError(
                    in: container, debugDescription: "not an RFC 3339 timestamp: \(text)")
            }
            return date
        }
        return decoder
    }()
}
