public import Foundation

/// A request to cancel one order at one provider (`cancel-command.v1`). Commands never carry
/// secrets: credentials belong to the worker's configuration, per provider and account.
public struct CancelCommand: Sendable, Hashable {
    /// Unique per message, chosen by the sender (for tracing one attempt).
    public var commandID: String
    /// The worker performs at most one cancel per key; duplicates share its single outcome.
    public var idempotencyKey: String
    public var provider: ProviderID
    /// Whose credentials and rate limit apply (the provider's user or merchant account).
    public var account: String
    public var order: OrderReference
    public var requestedAt: Date
    /// After this instant, no provider call is made: the outcome is `expired`.
    public var deadline: Date?
    /// When the order was created at the provider (feee.io only cancels after 5 minutes).
    public var orderCreatedAt: Date?
    /// Echoed in the outcome.
    public var correlationID: String?
    /// Echoed in the outcome, uninterpreted.
    public var metadata: [String: JSONValue]?

    public init(
        commandID: String,
        idempotencyKey: String,
        provider: ProviderID,
        account: String,
        order: OrderReference,
        requestedAt: Date,
        deadline: Date? = nil,
        orderCreatedAt: Date? = nil,
        correlationID: String? = nil,
        metadata: [String: JSONValue]? = nil
    ) {
        self.commandID = commandID
        self.idempotencyKey = idempotencyKey
        self.provider = provider
        self.account = account
        self.order = order
        self.requestedAt = requestedAt
        self.deadline = deadline
        self.orderCreatedAt = orderCreatedAt
        self.correlationID = correlationID
        self.metadata = metadata
    }

    /// The Kafka key: one user's commands share a partition, so one worker paces them.
    public var kafkaKey: String { Self.kafkaKey(provider: self.provider.rawValue, account: self.account) }

    public static func kafkaKey(provider: String, account: String) -> String { "\(provider):\(account)" }

    /// The identity an outcome is addressed with.
    public var identity: CommandIdentity {
        CommandIdentity(
            commandID: self.commandID,
            idempotencyKey: self.idempotencyKey,
            provider: self.provider.rawValue,
            account: self.account,
            order: self.order.json,
            requestedAt: self.requestedAt,
            correlationID: self.correlationID,
            metadata: self.metadata
        )
    }
}

/// What an outcome needs to be addressed: present even when the rest of a command is invalid.
public struct CommandIdentity: Sendable, Hashable {
    public var commandID: String
    public var idempotencyKey: String
    public var provider: String
    public var account: String
    public var order: [String: JSONValue]?
    public var requestedAt: Date?
    public var correlationID: String?
    public var metadata: [String: JSONValue]?

    public init(
        commandID: String,
        idempotencyKey: String,
        provider: String,
        account: String,
        order: [String: JSONValue]? = nil,
        requestedAt: Date? = nil,
        correlationID: String? = nil,
        metadata: [String: JSONValue]? = nil
    ) {
        self.commandID = commandID
        self.idempotencyKey = idempotencyKey
        self.provider = provider
        self.account = account
        self.order = order
        self.requestedAt = requestedAt
        self.correlationID = correlationID
        self.metadata = metadata
    }
}

/// Why a record is not a valid command.
public enum CommandError: Error, Sendable, Hashable, CustomStringConvertible {
    /// Not a command at all (not JSON, not an object, no identity): dead-lettered as `invalid_command`.
    case undecodable(String)
    /// A command with an identity but invalid content: answered with a `rejected` outcome.
    case invalid(String)

    public var description: String {
        switch self {
        case .undecodable(let reason), .invalid(let reason): reason
        }
    }
}

extension CancelCommand {
    /// The command as upstream services send it (`cancel-command.v1`, sorted keys).
    public func encoded() -> [UInt8] {
        var object: [String: JSONValue] = [
            "command_id": .string(self.commandID),
            "idempotency_key": .string(self.idempotencyKey),
            "provider": .string(self.provider.rawValue),
            "account": .string(self.account),
            "order": .object(self.order.json),
            "requested_at": .string(Timestamp.format(self.requestedAt)),
        ]
        if let deadline = self.deadline { object["deadline"] = .string(Timestamp.format(deadline)) }
        if let created = self.orderCreatedAt { object["order_created_at"] = .string(Timestamp.format(created)) }
        if let correlationID = self.correlationID { object["correlation_id"] = .string(correlationID) }
        if let metadata = self.metadata { object["metadata"] = .object(metadata) }
        // What `JSONEncoder` with sorted keys writes, byte for byte (`JSONWriter`'s contract),
        // without its boxing: `CancelClient.enqueue` encodes every command.
        var writer = JSONWriter(capacity: 384)
        writer.write(object)
        return writer.bytes
    }
}
